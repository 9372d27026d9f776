"""A multilayer perceptron as a Flax linen module (the sinusoid network of MAML: 1-40-40-1, ReLU)."""

from collections.abc import Callable, Sequence
from typing import cast

import flax.linen as nn
import jax

from jaxmeta.core.types import ApplyFn


class MLP(nn.Module):
    """Dense layers with an activation between them (none after the last).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = MLP(features=(40, 40, 1))
      >>> params = model.init(jax.random.key(0), jnp.zeros((1, 1)))["params"]
      >>> model.apply({"params": params}, jnp.zeros((7, 1))).shape
      (7, 1)
    """

    features: Sequence[int] = (40, 40, 1)
    activation: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.features):
            x = nn.Dense(width, name=f"Dense_{i}")(x)
            if i < len(self.features) - 1:
                x = self.activation(x)
        return x


def functional(module: nn.Module) -> ApplyFn:
    """``apply(params, inputs)`` for a Flax module whose only collection is ``params``."""
    return lambda params, inputs: cast(jax.Array, module.apply({"params": params}, inputs))
