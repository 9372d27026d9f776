"""Training loops over the functional core."""

from jaxmeta.training.fit import FitResult
from jaxmeta.training.fit import NonFiniteLossError
from jaxmeta.training.fit import fit

__all__ = ["FitResult", "NonFiniteLossError", "fit"]
