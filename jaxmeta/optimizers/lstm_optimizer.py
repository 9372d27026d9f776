r"""Learning to learn by gradient descent by gradient descent (Andrychowicz et al. 2016).

An optimizer :math:`m` with parameters :math:`\phi` proposes each update from
the gradient, coordinate by coordinate, keeping a recurrent state per
coordinate:

.. math::
    \theta_{t+1} = \theta_t + g_t, \qquad
    \begin{bmatrix} g_t \\ h_{t+1} \end{bmatrix} = m\big(\operatorname{pre}(\nabla_t), h_t; \phi\big),
    \qquad \nabla_t = \nabla_\theta f(\theta_t),

where :math:`m` is a two-layer LSTM (20 units) shared by all coordinates,
followed by a linear output scaled by 0.1, and :math:`\operatorname{pre}` is
the gradient preprocessing of :mod:`jaxmeta.optimizers.preprocessing`. The
optimizer is trained on a distribution of functions :math:`f` to minimise the
losses along the trajectory,

.. math::
    \mathcal{L}(\phi) = \mathbb{E}_f \Big[\tfrac{1}{T} \sum_{t=1}^{T} f(\theta_t)\Big],

by truncated backpropagation through the unrolled optimisation: the
trajectory is cut into unrolls of ``unroll`` steps, each giving one update of
:math:`\phi`, with :math:`\theta` and the LSTM state carried over. As in the
paper, the gradients :math:`\nabla_t` are inputs whose dependence on
:math:`\phi` is dropped (``stop_gradient``), which avoids second derivatives of
:math:`f`.

:func:`learned_optimizer` packages trained parameters as an optax
``GradientTransformation``, so the learned optimizer drops into any optax
training loop.
"""

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.types import LossFn, PRNGKey
from jaxmeta.optimizers.preprocessing import preprocess_gradient

LSTMState = tuple  # ((c, h) per layer), each [coordinates, hidden]


class CoordinatewiseLSTM(nn.Module):
    """``(state, features [n, 2]) -> (state, updates [n])``: the same small LSTM applied to every coordinate.

    Attributes:
      hidden: units per layer (the paper: 20).
      layers: stacked LSTM layers (the paper: 2).
      output_scale: the factor on the linear output (the paper: 0.1).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> net = CoordinatewiseLSTM()
      >>> state = net.initial_state(5)
      >>> params = net.init(jax.random.key(0), state, jnp.zeros((5, 2)))["params"]
      >>> state, updates = net.apply({"params": params}, state, jnp.zeros((5, 2)))
      >>> updates.shape
      (5,)
    """

    hidden: int = 20
    layers: int = 2
    output_scale: float = 0.1

    def initial_state(self, coordinates: int) -> LSTMState:
        zeros = jnp.zeros((coordinates, self.hidden))
        return tuple((zeros, zeros) for _ in range(self.layers))

    @nn.compact
    def __call__(self, state: LSTMState, features: jax.Array):
        new_state, x = [], features
        for layer in range(self.layers):
            carry, x = nn.OptimizedLSTMCell(self.hidden, name=f"lstm_{layer}")(state[layer], x)
            new_state.append(carry)
        return tuple(new_state), self.output_scale * nn.Dense(1, name="output")(x)[:, 0]


class LearnedOptimizerState(NamedTuple):
    """The LSTM state of every parameter coordinate, a pytree shaped like the parameters."""

    lstm: Any


def learned_optimizer(optimizer_params, network: CoordinatewiseLSTM = CoordinatewiseLSTM()
                      ) -> optax.GradientTransformation:
    """The learned optimizer with parameters ``optimizer_params`` as an optax transformation.

    ``update`` returns the proposed step :math:`g_t` (to be added with
    ``optax.apply_updates``), so it composes with optax like any optimizer.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> net = CoordinatewiseLSTM()
      >>> phi = net.init(jax.random.key(0), net.initial_state(1), jnp.zeros((1, 2)))["params"]
      >>> tx = learned_optimizer(phi, net)
      >>> params = {"w": jnp.ones((2, 3))}
      >>> updates, state = tx.update({"w": jnp.full((2, 3), 0.5)}, tx.init(params))
      >>> optax.apply_updates(params, updates)["w"].shape
      (2, 3)
    """

    def init(params):
        return LearnedOptimizerState(jax.tree.map(lambda p: network.initial_state(p.size), params))

    def update(updates, state, params=None):
        del params
        leaves, treedef = jax.tree.flatten(updates)
        states = treedef.flatten_up_to(state.lstm)
        stepped = [network.apply({"params": optimizer_params}, s, preprocess_gradient(g.reshape(-1)))
                   for g, s in zip(leaves, states)]
        new_updates = [step.reshape(g.shape).astype(g.dtype) for (_, step), g in zip(stepped, leaves)]
        return treedef.unflatten(new_updates), LearnedOptimizerState(treedef.unflatten([s for s, _ in stepped]))

    return optax.GradientTransformation(init, update)


def unrolled_loss(optimizer_params, network: CoordinatewiseLSTM, loss_fn: LossFn, params, state, data, steps: int,
                  *, key: PRNGKey):
    r"""Run the learned optimizer ``steps`` times on ``loss_fn(params, data, key=...)`` from ``params`` and ``state``.

    ``loss_fn`` has the library's signature, ``(params, batch, *, key) -> (loss, aux)``; step ``t``
    draws its keys from ``fold_in(key, t)``. Returns ``(mean_t f(theta_t), (params, state, losses
    [steps]))``, the mean over the iterates after each step; differentiable in ``optimizer_params``
    with the gradients of ``f`` held constant (see the module docstring).
    """
    tx = learned_optimizer(optimizer_params, network)

    def step(carry, t):
        params, state = carry
        gradient_key, loss_key = jax.random.split(jax.random.fold_in(key, t))
        gradient = jax.lax.stop_gradient(jax.grad(lambda p: loss_fn(p, data, key=gradient_key)[0])(params))
        updates, state = tx.update(gradient, state)
        params = optax.apply_updates(params, updates)
        return (params, state), loss_fn(params, data, key=loss_key)[0]

    (params, state), losses = jax.lax.scan(step, (params, state), jnp.arange(steps))
    return losses.mean(), (params, state, losses)


def make_truncation_step(network: CoordinatewiseLSTM, loss_fn: LossFn, meta_optimizer: optax.GradientTransformation,
                         unroll: int):
    """A jitted step of truncated backpropagation over a batch of problems (a leading axis on ``params`` and ``data``).

    ``step(optimizer_params, meta_state, params, state, data, key) -> (optimizer_params, meta_state, params, state,
    loss)``: unroll ``unroll`` steps on every problem (problem ``i`` with the key ``split(key)[i]``), average
    the unrolled losses, and update the optimizer's parameters with ``meta_optimizer``; ``params`` and
    ``state`` come back advanced (and detached) for the next truncation.
    """

    def batch_loss(optimizer_params, params, state, data, key):
        keys = jax.random.split(key, jax.tree.leaves(params)[0].shape[0])
        losses, carried = jax.vmap(
            lambda p, s, d, k: unrolled_loss(optimizer_params, network, loss_fn, p, s, d, unroll, key=k))(
                params, state, data, keys)
        return losses.mean(), carried

    @jax.jit
    def step(optimizer_params, meta_state, params, state, data, key):
        (loss, (params, state, _)), grads = jax.value_and_grad(batch_loss, has_aux=True)(
            optimizer_params, params, state, data, key)
        updates, meta_state = meta_optimizer.update(grads, meta_state, optimizer_params)
        return optax.apply_updates(optimizer_params, updates), meta_state, params, state, loss

    return step
