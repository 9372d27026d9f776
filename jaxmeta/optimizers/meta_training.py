r"""Meta-training a learned optimizer on a family of problems, and the random quadratics of Andrychowicz et al.

A *problem family* is ``sample(key, batch) -> (params, data)``: a batch of
starting points and the data defining each function, for a ``loss_fn(params,
data)`` shared by the family. :func:`meta_train` draws a batch, optimises it
for ``horizon`` steps in truncations of ``unroll`` steps (one meta-update
each, :func:`~jaxmeta.optimizers.lstm_optimizer.make_truncation_step`), and
repeats with fresh problems.

The paper's synthetic family, :func:`quadratic_problems`:
:math:`f(\theta) = \lVert W\theta - y \rVert_2^2` with :math:`W \in \mathbb{R}^{10\times10}`,
:math:`y \in \mathbb{R}^{10}` and the starting :math:`\theta` all standard normal.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxmeta.core.types import PRNGKey
from jaxmeta.optimizers.lstm_optimizer import CoordinatewiseLSTM, learned_optimizer, make_truncation_step


def quadratic_loss(params: jax.Array, data) -> jax.Array:
    r""":math:`\lVert W\theta - y \rVert^2` for ``data = (W, y)``."""
    weights, targets = data
    return jnp.sum((weights @ params - targets) ** 2)


def quadratic_problems(key: PRNGKey, batch: int, dim: int = 10):
    """``(theta [batch, dim], (W [batch, dim, dim], y [batch, dim]))``, all standard normal."""
    k_theta, k_w, k_y = jax.random.split(key, 3)
    return (jax.random.normal(k_theta, (batch, dim)),
            (jax.random.normal(k_w, (batch, dim, dim)), jax.random.normal(k_y, (batch, dim))))


class MetaTrainingResult(NamedTuple):
    """The trained optimizer parameters and the mean unrolled loss of every truncation."""

    optimizer_params: dict
    losses: np.ndarray


def meta_train(loss_fn: Callable, sample: Callable, *, key: PRNGKey, iterations: int,
               network: CoordinatewiseLSTM = CoordinatewiseLSTM(), batch: int = 16, horizon: int = 100,
               unroll: int = 20, meta_optimizer: optax.GradientTransformation = optax.adam(1e-3),
               optimizer_params=None, progress: bool = True) -> MetaTrainingResult:
    """Meta-train ``network`` on ``iterations`` batches of problems from ``sample``.

    Args:
      loss_fn: ``loss_fn(params, data) -> scalar``, the optimizee's loss.
      sample: ``sample(key, batch) -> (params, data)`` with a leading batch axis.
      key: the run's key; iteration ``i`` uses ``fold_in(key, i)``.
      iterations: how many batches of problems (each ``horizon // unroll`` meta-updates).
      network: the coordinate-wise LSTM.
      batch: problems optimised together.
      horizon, unroll: optimisation steps per problem and per truncation.
      meta_optimizer: the optax optimizer of the LSTM's parameters (the paper: Adam).
      optimizer_params: where to start (default: a fresh initialisation).
      progress: show a tqdm bar with the running loss.

    Example:
      >>> import jax
      >>> result = meta_train(quadratic_loss, quadratic_problems, key=jax.random.key(0), iterations=2,
      ...                     batch=2, horizon=4, unroll=2, progress=False)
      >>> result.losses.shape
      (4,)
    """
    if horizon % unroll:
        raise ValueError(f"horizon ({horizon}) must be a multiple of unroll ({unroll}).")
    init_key, key = jax.random.split(key)
    if optimizer_params is None:
        optimizer_params = network.init(init_key, network.initial_state(1), jnp.zeros((1, 2)))["params"]
    meta_state = meta_optimizer.init(optimizer_params)
    step = make_truncation_step(network, loss_fn, meta_optimizer, unroll)
    tx = learned_optimizer(optimizer_params, network)
    losses = []
    bar = tqdm(range(iterations), desc="meta-training the optimizer", disable=not progress)
    for i in bar:
        params, data = sample(jax.random.fold_in(key, i), batch)
        state = jax.vmap(tx.init)(params)
        for _ in range(horizon // unroll):
            optimizer_params, meta_state, params, state, loss = step(optimizer_params, meta_state, params, state, data)
            losses.append(float(loss))
        bar.set_postfix(loss=f"{np.mean(losses[-(horizon // unroll):]):.3g}")
    return MetaTrainingResult(optimizer_params, np.asarray(losses))


def optimize(tx: optax.GradientTransformation, loss_fn: Callable, params, data, steps: int) -> jax.Array:
    """``[steps + 1]`` losses of ``tx`` minimising ``loss_fn(., data)`` from ``params`` (the first before any step)."""

    def step(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, data)
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), loss

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return jnp.append(losses, loss_fn(params, data))
