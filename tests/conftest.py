"""Test configuration: float64 everywhere (gradients are checked to tight tolerances), four CPU
devices (for the sharding tests), the real Omniglot archives, found through JAXMETA_DATA,
loaded once per session, and a cache of this test run's own.

The preprocessed arrays go to a temporary ``JAXMETA_CACHE`` made for the run and removed at its
end, never to the user's ``~/.cache/jaxmeta``. The xdist workers of one run share it (its name
is handed down to them), and so do the drivers and notebook kernels the tests start, which
inherit the environment.

XLA compiles with LLVM's optimisations off (``--xla_backend_optimization_level=0``, appended to
``XLA_FLAGS`` for this process and the drivers it starts): the tests' models are tiny, so most of
their time is compiling, and unoptimised code computes the same functions. On this 2-core machine
the flag cut compile-bound tests by about a third. The notebooks, which train for minutes, run
with the flags as they were (tests/test_notebooks.py). Speed is measured by the benchmarks, not here."""

import os
import shutil
import tempfile
from pathlib import Path

OPTIMISATION_FLAG = "--xla_backend_optimization_level=0"
USER_XLA_FLAGS = "JAXMETA_TEST_USER_XLA_FLAGS"  # the flags as the run found them, for the notebook kernels
if USER_XLA_FLAGS not in os.environ:  # the run's first process; its workers inherit both variables
    os.environ[USER_XLA_FLAGS] = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{os.environ[USER_XLA_FLAGS]} {OPTIMISATION_FLAG}".strip()  # before jax's backend

import jax  # noqa: E402
import pytest  # noqa: E402

from jaxmeta.data.omniglot import load_omniglot  # noqa: E402
from jaxmeta.data.paths import CACHE_ENV, DATA_ENV, data_root  # noqa: E402

# The first process of a run to import this (xdist's controller, or the only process) makes the cache;
# the workers it starts inherit the variables and use the same folder.
if "JAXMETA_TEST_CACHE" not in os.environ:
    os.environ["JAXMETA_TEST_CACHE"] = tempfile.mkdtemp(prefix="jaxmeta-test-cache-")
TEST_CACHE = Path(os.environ["JAXMETA_TEST_CACHE"])
OWNS_CACHE = not os.environ.get("PYTEST_XDIST_WORKER")
os.environ[CACHE_ENV] = str(TEST_CACHE)

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_num_cpu_devices", 4)  # before any computation: tests/distributed shard over them


def pytest_sessionfinish(session, exitstatus):
    """The controller (or a run without workers) removes the run's cache when every test is done."""
    if OWNS_CACHE:
        shutil.rmtree(TEST_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Drop jax's compiled executables when a test module ends.

    XLA's CPU backend maps each compiled kernel's code and data into memory of its own, three
    memory maps a kernel, held as long as jax caches the executable. A worker that runs hundreds
    of test modules gathered over 60,000 maps and hit Linux's limit (``vm.max_map_count``, 65,530
    by default): the next compilation segfaulted, in whichever test came then. One module maps at
    most about 10,000; clearing the caches at its end returns the worker to a few hundred."""
    yield
    jax.clear_caches()


def pytest_collection_modifyitems(config, items):
    """Run the tests marked ``long`` first, so that parallel workers finish together."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session")
def omniglot_root():
    root = data_root() / "omniglot"
    if not (root / "images_background.zip").exists():
        pytest.fail(
            f"The Omniglot archives are not in {root.resolve()}. Set {DATA_ENV} to the folder holding "
            "omniglot/ (default ../shared/data); these tests need the real data and do not skip."
        )
    return root


@pytest.fixture(scope="session")
def omniglot(omniglot_root, tmp_path_factory):
    return load_omniglot(omniglot_root, cache_dir=tmp_path_factory.mktemp("omniglot-cache"))
