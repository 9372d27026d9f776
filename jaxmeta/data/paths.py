"""Where jaxmeta finds data sets and keeps its caches: one setting each.

* ``JAXMETA_DATA``: the folder holding data sets (``omniglot/`` inside it);
  default ``../shared/data``, relative to the working directory.
* ``JAXMETA_CACHE``: where preprocessed arrays are cached; default
  ``~/.cache/jaxmeta``.
"""

import os
from pathlib import Path

DATA_ENV = "JAXMETA_DATA"
CACHE_ENV = "JAXMETA_CACHE"
DEFAULT_DATA = "../shared/data"


def data_root() -> Path:
    """The data folder: ``$JAXMETA_DATA``, or ``../shared/data``."""
    return Path(os.environ.get(DATA_ENV, DEFAULT_DATA)).expanduser()


def cache_root() -> Path:
    """The cache folder: ``$JAXMETA_CACHE``, or ``~/.cache/jaxmeta``."""
    return Path(os.environ.get(CACHE_ENV, "~/.cache/jaxmeta")).expanduser()
