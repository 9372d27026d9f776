# Two commands get a newcomer running; both build the local virtual environment first.
#   make run    the sinusoid benchmark in quick mode (MAML, FOMAML, Meta-SGD, Reptile, ANIL; < 1 min)
#   make test   the test suite (unit tests, doctests, notebooks)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test docs lint check-minimums sinusoid-benchmark notebooks compare-env maml-speed onednn clean

$(VENV)/installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# conv="onednn" (jaxmeta/models/onednn_conv.py): oneDNN's direct convolutions as XLA FFI custom calls, the
# fastest CPU path for the conv-4. onednn-cpu-gomp is oneDNN 3.2's CPU-only build (GNU OpenMP threads, 39 MB);
# onednn-devel-cpu-gomp adds the headers (the package's `onednn` extra). onednn_conv.build compiles the extension
# against them and jaxlib's FFI headers, with an RPATH into the venv's lib/, and says what is missing (a C++
# compiler, another platform than Linux x86-64) with the fix. A few seconds with the wheels cached. Outside a
# checkout, the first use of conv="onednn" runs the same build into the user's cache.
ONEDNN_EXTENSION := jaxmeta/models/native/libjaxmeta_onednn.so
onednn: $(ONEDNN_EXTENSION)
$(ONEDNN_EXTENSION): jaxmeta/models/native/onednn_conv.cc $(VENV)/installed
	$(PY) -m pip install --quiet -e '.[onednn]'
	$(PY) -c "from jaxmeta.models import onednn_conv; onednn_conv.build(onednn_conv.EXTENSION)"

run: $(VENV)/installed
	$(PY) benchmarks/sinusoid.py --quick

# Two worker processes: much of a test's time is XLA compiling, which uses one core, so two
# workers keep both cores busy. Tests go out one at a time, the long ones first (tests/conftest.py).
test: $(VENV)/installed $(ONEDNN_EXTENSION) lint
	$(PY) -m pytest --numprocesses=2 --maxschedchunk=1 --durations=30

# The documentation site (docs/, Sphinx with myst-nb): warnings are errors, so a broken cross-reference or a
# public name without a page fails the build; the notebooks are rendered from their stored outputs, not run.
$(VENV)/docs-installed: $(VENV)/installed setup.cfg
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $@

docs: $(VENV)/docs-installed
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "The site is in docs/_build/html/index.html"

# ruff (pycodestyle, pyflakes, bugbear, pyupgrade) on the library, the benchmarks and the tests, and mypy on the
# library, configured in pyproject.toml.
lint: $(VENV)/installed
	$(VENV)/bin/ruff check jaxmeta benchmarks tests
	$(VENV)/bin/mypy

# The declared minimum versions (setup.cfg, printed as exact pins by .ci/minimum_requirements.py), installed
# in a fresh environment of their own, import the package and pass the fast tests of the core, the registry
# and the checkpoints (the repository on PYTHONPATH, nothing installed from it). About 2 minutes; CI runs it.
MINIMUM_VENV ?= $(or $(TMPDIR),/tmp)/jaxmeta-minimum-versions
check-minimums:
	rm -rf $(MINIMUM_VENV) && $(PYTHON) -m venv $(MINIMUM_VENV)
	$(MINIMUM_VENV)/bin/python -m pip install --quiet $$($(PYTHON) .ci/minimum_requirements.py) pytest pytest-xdist
	$(MINIMUM_VENV)/bin/python -m pip check
	PYTHONPATH=$(CURDIR) $(MINIMUM_VENV)/bin/python -c "import jaxmeta, jax, flax, optax, orbax.checkpoint; \
	  print('jaxmeta imports on jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__)"
	PYTHONPATH=$(CURDIR) $(MINIMUM_VENV)/bin/python -m pytest --numprocesses=2 -q -m 'not long' \
	  tests/core tests/test_registry.py tests/training/test_checkpoint.py

# The full protocol (70,000 meta-iterations per learner and K); writes benchmarks/results/.
sinusoid-benchmark: $(VENV)/installed
	$(PY) benchmarks/sinusoid.py

# Execute the notebooks in place, so that their stored outputs are current.
notebooks: $(VENV)/installed
	$(PY) -c "import glob, nbformat, nbclient; [nbformat.write(nbclient.NotebookClient(nbformat.read(p, 4), timeout=600, kernel_name='python3').execute(), p) for p in sorted(glob.glob('notebooks/*.ipynb'))]"

# The PyTorch side of the MAML speed comparison (benchmarks/torch_maml.py), into the same venv:
# torch, higher and learn2learn. What worked, and why each step is as it is:
# - torch==2.13.0: this exact pin resolves to the CPU wheel on the machine's disk (pip's find-links);
#   any other spec downloads CUDA torch and its GBs of CUDA packages. higher 0.2.1 installs as it is.
# - learn2learn imports torchvision (and gym) when imported. torchvision 0.28.0 is the release made for
#   torch 2.13; PyPI has only its CUDA build, installed with --no-deps to keep the CPU torch. Its C++ ops
#   (_C.so) link libtorch_cuda and do not load, which torchvision tolerates (extension._has_ops() is
#   False), except that _meta_registrations.py registers fake kernels for torchvision::nms and ::qnms
#   unconditionally, so `import torchvision` fails ("operator torchvision::nms does not exist"). The sed
#   guards those two registrations with _has_ops(). Then the pure-Python parts (transforms, datasets)
#   work and the compiled ops (nms, roi_align, image decoding) raise; MAML uses none of torchvision.
# - learn2learn 0.2.0: the sdist's .c files come from Cython 0.29 and do not compile on Python 3.11
#   (_PyErr_StackItem has no exc_type), so they are regenerated with Cython 3 and built without build
#   isolation. Of its install_requires, importing it needs gym (0.26.2, pure Python) and torchvision;
#   numpy, scipy, requests, tqdm are here already; qpth and pytorch_lightning are optional imports and
#   gsutil is not imported, so those are not installed.
compare-env: $(VENV)/installed
	$(PY) -m pip install --quiet torch==2.13.0 higher
	$(PY) -m pip install --quiet --no-deps torchvision==0.28.0
	sed -i 's/^@torch\.library\.register_fake(\("torchvision::[a-z_]*"\))$$/@(torch.library.register_fake(\1) if torchvision.extension._has_ops() else (lambda f: f))/' \
	  "$$($(PY) -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("torchvision").origin), "_meta_registrations.py"))')"
	$(PY) -m pip install --quiet 'cython>=3' gym==0.26.2
	tmp=$$(mktemp -d) && \
	  $(PY) -m pip download --quiet --no-deps --no-binary :all: learn2learn==0.2.0 -d $$tmp && \
	  tar xzf $$tmp/learn2learn-0.2.0.tar.gz -C $$tmp && \
	  $(VENV)/bin/cython -3 $$tmp/learn2learn-0.2.0/learn2learn/data/*.pyx && \
	  $(PY) -m pip install --quiet --no-build-isolation --no-deps $$tmp/learn2learn-0.2.0 && \
	  rm -rf $$tmp
	$(PY) -c "import torch, higher, learn2learn; print(torch.__version__, learn2learn.__version__)"

# Second-order MAML speed, jaxmeta vs learn2learn / higher / torch.func, side by side (~15 minutes on 2 cores;
# writes benchmarks/results/maml_speed.{json,md}). Run `make compare-env` first for the PyTorch side: it is
# not installed from here, and without it the script measures jaxmeta alone and says which libraries are missing.
maml-speed: $(VENV)/installed
	$(PY) benchmarks/maml_speed.py

clean:
	rm -rf $(VENV) runs
