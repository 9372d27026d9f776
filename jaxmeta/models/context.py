r"""Networks with a context input: the models of CAVIA (Zintgraf et al. 2019, :func:`jaxmeta.cavia`).

A context network computes :math:`f_\theta(x, \phi)`: shared weights
:math:`\theta` and a small per-task context vector :math:`\phi`, which the
inner loop adapts from :math:`\phi_0 = 0`. Its parameters are a
:class:`ContextParams` pair, and :func:`functional_with_context` turns the
module into the library's ``apply(params, inputs)``.

* :class:`ContextMLP`, for regression: the context is concatenated to the
  input, :math:`f_\theta([x; \phi])`.
* :class:`ContextConv4`, for classification: the conv-4 with a FiLM layer
  (Perez et al. 2018) after the batch norm of one block,

  .. math::
      h \mapsto (1 + \gamma) \odot h + \beta, \qquad [\gamma; \beta] = W_{\text{film}}\,\phi + b_{\text{film}},

  one :math:`\gamma` and :math:`\beta` per channel, before the block's ReLU
  and pooling. CAVIA writes :math:`\gamma \odot h + \beta`; the ``1 +``
  (the same family of functions, :math:`b_{\text{film}}` absorbs it) starts
  the network as the plain conv-4 when :math:`b_{\text{film}}` starts at 0.
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmeta.core.types import ApplyFn, Params
from jaxmeta.models.conv import ConvBlock, _conv_trunk, initialisation, max_pool_2x2


class ContextParams(NamedTuple):
    """The parameters a context network is applied with: shared weights and the task's context vector."""

    network: Params
    context: jax.Array


def check_context(context: Any, context_size: int, model: str) -> jax.Array:
    """``context`` as an array of shape ``[context_size]``, or an error naming the mismatch and the fix."""
    context = jnp.asarray(context)
    if context.shape != (context_size,):
        raise ValueError(
            f"{model} was built for a context vector of {context_size} entries, got shape {context.shape}. "
            f"Pass the same context_size to jaxmeta.cavia(...) and to the model ({model}(context_size=...))."
        )
    return context


def functional_with_context(module: nn.Module) -> ApplyFn:
    """``apply(params, inputs)`` with ``params`` a :class:`ContextParams`: ``module.apply(network, inputs, context)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = ContextMLP(features=(8, 1), context_size=2)
      >>> network = model.init(jax.random.key(0), jnp.zeros((1, 1)), jnp.zeros(2))["params"]
      >>> apply = functional_with_context(model)
      >>> apply(ContextParams(network, jnp.zeros(2)), jnp.zeros((5, 1))).shape
      (5, 1)
    """

    def apply(params: ContextParams, inputs: Any) -> jax.Array:
        network, context = params
        return cast(jax.Array, module.apply({"params": network}, inputs, context))

    return apply


class ContextMLP(nn.Module):
    """An MLP on ``[x; context]``: the context vector is appended to every input (CAVIA's regression network).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = ContextMLP(features=(40, 40, 1), context_size=5)
      >>> params = model.init(jax.random.key(0), jnp.zeros((1, 1)), jnp.zeros(5))["params"]
      >>> params["Dense_0"]["kernel"].shape  # 1 input + 5 context entries
      (6, 40)
    """

    features: Sequence[int] = (40, 40, 1)
    context_size: int = 5
    activation: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array) -> jax.Array:
        context = check_context(context, self.context_size, "ContextMLP")
        x = jnp.concatenate([x, jnp.broadcast_to(context.astype(x.dtype), (*x.shape[:-1], self.context_size))],
                            axis=-1)
        for i, width in enumerate(self.features):
            x = nn.Dense(width, name=f"Dense_{i}")(x)
            if i < len(self.features) - 1:
                x = self.activation(x)
        return x


class ContextConv4(nn.Module):
    """The conv-4 classifier with a FiLM layer of the context after block ``film_block`` (CAVIA's classifier).

    ``film_block`` counts from 0: the default 2 is CAVIA's "after the third convolution". The FiLM layer is
    named ``film`` (kernel ``[context_size, 2 features]``, bias at 0); the rest is :class:`jaxmeta.models.Conv4`'s
    (same names, initialisations and batch-norm mode).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = ContextConv4(num_classes=5, features=8, context_size=10)
      >>> params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), jnp.zeros(10))["params"]
      >>> sorted(params)
      ['block_0', 'block_1', 'block_2', 'block_3', 'film', 'head']
      >>> model.apply({"params": params}, jnp.zeros((4, 28, 28, 1)), jnp.ones(10)).shape
      (4, 5)
    """

    num_classes: int
    context_size: int = 100
    film_block: int = 2
    features: int = 64
    blocks: int = 4
    conv: str = "xla"
    init_scheme: str = "lecun"

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array) -> jax.Array:
        if not 0 <= self.film_block < self.blocks:
            raise ValueError(f"film_block must name one of the {self.blocks} blocks (0 to {self.blocks - 1}), "
                             f"got {self.film_block}.")
        context = check_context(context, self.context_size, "ContextConv4")
        x = _conv_trunk(x, features=self.features, blocks=self.film_block, conv=self.conv,
                        init_scheme=self.init_scheme)
        # The FiLM block: conv and batch norm, then FiLM, then the ReLU and pooling.
        x = ConvBlock(self.features, activation=lambda h: h, conv=self.conv, pool=False,
                      init_scheme=self.init_scheme, name=f"block_{self.film_block}")(x)
        film = nn.Dense(2 * self.features, bias_init=nn.initializers.zeros, name="film")(context.astype(x.dtype))
        gamma, beta = jnp.split(film, 2)
        x = max_pool_2x2(nn.relu((1 + gamma) * x + beta))
        for i in range(self.film_block + 1, self.blocks):
            x = ConvBlock(self.features, conv=self.conv, init_scheme=self.init_scheme, name=f"block_{i}")(x)
        scheme = initialisation(self.init_scheme)
        head = nn.Dense(self.num_classes, kernel_init=scheme.head_kernel, bias_init=scheme.head_bias, name="head")
        return head(x.reshape(*x.shape[:-3], -1))
