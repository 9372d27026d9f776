# Two commands get a newcomer running; both build the local virtual environment first.
#   make run    the sinusoid benchmark in quick mode (MAML, FOMAML, Meta-SGD, Reptile, ANIL; < 1 min)
#   make test   the test suite (unit tests, doctests, notebooks)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test sinusoid-benchmark notebooks clean

$(VENV)/installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/installed
	$(PY) benchmarks/sinusoid.py --quick

test: $(VENV)/installed
	$(PY) -m pytest

# The full protocol (70,000 meta-iterations per learner and K); writes benchmarks/results/.
sinusoid-benchmark: $(VENV)/installed
	$(PY) benchmarks/sinusoid.py

# Execute the notebooks in place, so that their stored outputs are current.
notebooks: $(VENV)/installed
	$(PY) -c "import glob, nbformat, nbclient; [nbformat.write(nbclient.NotebookClient(nbformat.read(p, 4), timeout=600, kernel_name='python3').execute(), p) for p in sorted(glob.glob('notebooks/*.ipynb'))]"

clean:
	rm -rf $(VENV) runs
