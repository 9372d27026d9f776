"""Test configuration: float64 everywhere, so gradients can be checked to tight tolerances."""

import jax

jax.config.update("jax_enable_x64", True)
