"""Test configuration: float64 everywhere (gradients are checked to tight tolerances), four CPU
devices (for the sharding tests), and the real Omniglot archives, found through JAXMETA_DATA,
loaded once per session."""

import jax
import pytest

from jaxmeta.data.omniglot import load_omniglot
from jaxmeta.data.paths import DATA_ENV, data_root

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_num_cpu_devices", 4)  # before any computation: tests/distributed shard over them


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
