# Two commands get a newcomer running; both build the local virtual environment first.
#   make run    the sinusoid benchmark in quick mode (MAML, FOMAML, Meta-SGD, Reptile, ANIL; < 1 min)
#   make test   the test suite (unit tests, doctests, notebooks)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test sinusoid-benchmark clean

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

clean:
	rm -rf $(VENV) runs
