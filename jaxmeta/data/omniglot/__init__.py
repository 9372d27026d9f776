"""Omniglot from the official archives or TensorFlow Datasets: loading, preprocessing, caching and splits."""

from jaxmeta.data.omniglot.archives import ARCHIVES
from jaxmeta.data.omniglot.dataset import Omniglot
from jaxmeta.data.omniglot.dataset import load_omniglot
from jaxmeta.data.omniglot.splits import DrawingSplit
from jaxmeta.data.omniglot.splits import LabelledImages
from jaxmeta.data.omniglot.splits import Split
from jaxmeta.data.omniglot.splits import rotate_as_classes
from jaxmeta.data.omniglot.splits import split_characters
from jaxmeta.data.omniglot.splits import split_drawings
from jaxmeta.data.omniglot.tfds_source import TFDS_SPLITS

__all__ = ["ARCHIVES", "DrawingSplit", "LabelledImages", "Omniglot", "Split", "TFDS_SPLITS", "load_omniglot",
           "rotate_as_classes", "split_characters", "split_drawings"]
