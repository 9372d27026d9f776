"""Models as Flax linen modules."""

from jaxmeta.models.mlp import MLP
from jaxmeta.models.mlp import functional

__all__ = ["MLP", "functional"]
