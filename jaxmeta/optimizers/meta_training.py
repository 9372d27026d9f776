r"""Meta-training a learned optimizer on a family of problems, and the random quadratics of Andrychowicz et al.

A *problem family* is ``sample(key, batch) -> (params, data)``: a batch of
starting points and the data defining each function, for a loss shared by the
family in the library's signature, ``loss_fn(params, data, *, key) -> (loss,
aux)``. :func:`meta_train` draws a batch, optimises it
for ``horizon`` steps in truncations of ``unroll`` steps (one meta-update
each, :func:`~jaxmeta.optimizers.lstm_optimizer.make_truncation_step`), and
repeats with fresh problems.

The paper's synthetic family, :func:`quadratic_problems`:
:math:`f(\theta) = \lVert W\theta - y \rVert_2^2` with :math:`W \in \mathbb{R}^{10\times10}`,
:math:`y \in \mathbb{R}^{10}` and the starting :math:`\theta` all standard normal.

A family of small classifiers, :func:`classification_problems`: the paper's
MNIST optimizee (one hidden layer of 20 sigmoid units, softmax
cross-entropy, :func:`mlp_classifier_loss`) on ``ways``-way classification of
Omniglot characters, downsampled to 14x14. Each problem draws its classes and
its starting weights; held-out problems come from characters of another split.
"""

import functools
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxmeta.core.types import LossFn, Metrics, PRNGKey
from jaxmeta.optimizers.lstm_optimizer import CoordinatewiseLSTM, learned_optimizer, make_truncation_step


def quadratic_loss(params: jax.Array, data, *, key: PRNGKey | None = None) -> tuple[jax.Array, Metrics]:
    r""":math:`\lVert W\theta - y \rVert^2` for ``data = (W, y)``, and no metrics (``key`` is unused)."""
    del key
    weights, targets = data
    return jnp.sum((weights @ params - targets) ** 2), {}


@functools.partial(jax.jit, static_argnames=("batch", "dim"))
def quadratic_problems(key: PRNGKey, batch: int, dim: int = 10):
    """``(theta [batch, dim], (W [batch, dim, dim], y [batch, dim]))``, all standard normal."""
    k_theta, k_w, k_y = jax.random.split(key, 3)
    return (jax.random.normal(k_theta, (batch, dim)),
            (jax.random.normal(k_w, (batch, dim, dim)), jax.random.normal(k_y, (batch, dim))))


def mlp_classifier_loss(params: dict, data, *, key: PRNGKey | None = None) -> tuple[jax.Array, Metrics]:
    r"""Mean softmax cross-entropy of :math:`W_2\,\sigma(W_1 x + b_1) + b_2` on ``data = (x [n, D], y [n])``,
    and ``{"accuracy": ...}`` (``key`` is unused)."""
    del key
    inputs, labels = data
    logits = jax.nn.sigmoid(inputs @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, axis=-1) == labels)}


def classifier_inputs(images: np.ndarray) -> np.ndarray:
    """``[classes, instances, 28, 28]`` ``uint8`` -> ``[classes, instances, 196]`` float32 in [0, 1] (2x2 means)."""
    images = np.asarray(images, np.float32) / 255.0
    classes, instances, height, width = images.shape[:4]
    pooled = images[:, :, : height // 2 * 2, : width // 2 * 2].reshape(classes, instances, height // 2, 2,
                                                                     width // 2, 2).mean(axis=(3, 5))
    return pooled.reshape(classes, instances, -1)


def classification_problems(images: np.ndarray, *, ways: int = 10, hidden: int = 20) -> Callable:
    """A problem family ``sample(key, batch) -> (params, (x, y))`` of ``ways``-way tasks from ``images``.

    ``images`` is ``[classes, instances, 28, 28]`` (e.g. the characters of one
    Omniglot split); a problem is every instance of ``ways`` random classes,
    labelled ``0..ways-1``, and a fresh :func:`mlp_classifier_loss` network
    (weights normal with variance ``1 / fan_in``, zero biases).

    Example:
      >>> import jax, numpy as np
      >>> sample = classification_problems(np.zeros((12, 20, 28, 28), np.uint8), ways=5)
      >>> params, (x, y) = sample(jax.random.key(0), 3)
      >>> x.shape, y.shape, params["w1"].shape
      ((3, 100, 196), (3, 100), (3, 196, 20))
    """
    inputs = jnp.asarray(classifier_inputs(images))
    classes, instances, dim = inputs.shape
    if ways > classes:
        raise ValueError(f"A {ways}-way problem needs {ways} classes, but the images have only {classes}.")
    labels = jnp.repeat(jnp.arange(ways), instances)

    def one(key):
        k_classes, k1, k2 = jax.random.split(key, 3)
        chosen = jax.random.choice(k_classes, classes, (ways,), replace=False)
        params = {"w1": jax.random.normal(k1, (dim, hidden)) / np.sqrt(dim), "b1": jnp.zeros(hidden),
                  "w2": jax.random.normal(k2, (hidden, ways)) / np.sqrt(hidden), "b2": jnp.zeros(ways)}
        return params, (inputs[chosen].reshape(ways * instances, dim), labels)

    return jax.jit(lambda key, batch: jax.vmap(one)(jax.random.split(key, batch)), static_argnums=1)


class MetaTrainingResult(NamedTuple):
    """The trained optimizer parameters, the mean unrolled loss of every truncation, and the batches trained."""

    optimizer_params: dict
    losses: np.ndarray
    iterations: int


def meta_train(loss_fn: LossFn, sample: Callable, *, key: PRNGKey, iterations: int,
               network: CoordinatewiseLSTM = CoordinatewiseLSTM(), batch: int = 16, horizon: int = 100,
               unroll: int = 20, meta_optimizer: optax.GradientTransformation = optax.adam(1e-3),
               optimizer_params=None, progress: bool = True,
               budget_seconds: float | None = None) -> MetaTrainingResult:
    """Meta-train ``network`` on ``iterations`` batches of problems from ``sample``.

    Args:
      loss_fn: ``loss_fn(params, data, *, key) -> (loss, aux)``, the optimizee's loss.
      sample: ``sample(key, batch) -> (params, data)`` with a leading batch axis.
      key: the run's key; iteration ``i`` draws its problems with ``fold_in(key, i)``.
      iterations: how many batches of problems (each ``horizon // unroll`` meta-updates).
      network: the coordinate-wise LSTM.
      batch: problems optimised together.
      horizon, unroll: optimisation steps per problem and per truncation.
      meta_optimizer: the optax optimizer of the LSTM's parameters (the paper: Adam).
      optimizer_params: where to start (default: a fresh initialisation).
      progress: show a tqdm bar with the running loss.
      budget_seconds: stop after the first whole batch that ends past this wall time (default: no budget);
        ``result.iterations`` says how many batches were trained.

    Example:
      >>> import jax
      >>> result = meta_train(quadratic_loss, quadratic_problems, key=jax.random.key(0), iterations=2,
      ...                     batch=2, horizon=4, unroll=2, progress=False)
      >>> result.losses.shape
      (4,)
    """
    if horizon % unroll:
        raise ValueError(f"horizon ({horizon}) must be a multiple of unroll ({unroll}).")
    if budget_seconds is not None and not budget_seconds > 0:
        raise ValueError(f"budget_seconds must be positive, got {budget_seconds}.")
    started = time.monotonic()
    init_key, key = jax.random.split(key)
    loss_keys = jax.random.fold_in(init_key, 1)  # the losses' randomness, apart from the problems'
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
        for j in range(horizon // unroll):
            optimizer_params, meta_state, params, state, loss = step(
                optimizer_params, meta_state, params, state, data,
                jax.random.fold_in(jax.random.fold_in(loss_keys, i), j))
            losses.append(float(loss))
        bar.set_postfix(loss=f"{np.mean(losses[-(horizon // unroll):]):.3g}")
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            break
    bar.close()
    return MetaTrainingResult(optimizer_params, np.asarray(losses), len(losses) // (horizon // unroll))


def optimize(tx: optax.GradientTransformation, loss_fn: LossFn, params, data, steps: int, *,
             key: PRNGKey) -> jax.Array:
    """``[steps + 1]`` losses of ``tx`` minimising ``loss_fn(., data, key=...)`` from ``params`` (the first before
    any step); step ``t`` passes ``fold_in(key, t)`` to the loss."""

    def step(carry, t):
        params, state = carry
        loss_of = lambda p: loss_fn(p, data, key=jax.random.fold_in(key, t))  # noqa: E731
        (loss, _), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), loss

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(steps))
    return jnp.append(losses, loss_fn(params, data, key=jax.random.fold_in(key, steps))[0])
