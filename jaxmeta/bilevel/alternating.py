r"""The alternating bilevel loop of DARTS (Liu, Simonyan and Yang, ICLR 2019, Algorithm 1).

Until converged, each step

1. updates the outer variables :math:`\alpha` (the architecture) along a
   hypergradient of the validation loss, any :class:`~jaxmeta.bilevel.HypergradientFn`
   (DARTS: :func:`~jaxmeta.bilevel.finite_difference` or :func:`~jaxmeta.bilevel.first_order`);
2. updates the inner variables :math:`w` (the weights) by one step of their
   own optimizer on the training loss :math:`\nabla_w L_{\text{train}}(w, \alpha)`,

both optax updates. The inner variables are not re-solved for each
:math:`\alpha`: the search follows the bilevel solution by taking turns.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from jaxmeta.bilevel.hypergradient import BilevelProblem, HypergradientFn, make_outer_step
from jaxmeta.core.types import Params


class AlternatingState(NamedTuple):
    """The variables of an alternating search and their optimizers' states."""

    outer: Params
    inner: Params
    outer_opt_state: Any
    inner_opt_state: Any


def init_alternating(outer: Params, inner: Params, outer_optimizer: optax.GradientTransformation,
                     inner_optimizer: optax.GradientTransformation) -> AlternatingState:
    """The starting :class:`AlternatingState` (fresh optimizer states)."""
    return AlternatingState(outer, inner, outer_optimizer.init(outer), inner_optimizer.init(inner))


def make_alternating_step(problem: BilevelProblem, hypergradient_fn: HypergradientFn,
                          outer_optimizer: optax.GradientTransformation,
                          inner_optimizer: optax.GradientTransformation) -> Callable:
    r"""One step of DARTS's alternating search: :math:`\alpha` along the hypergradient, then :math:`w` on its loss.

    ``step(state, train_batch, val_batch, key) -> (state, metrics)``, a pure
    function to ``jax.jit``; ``metrics`` holds the outer loss at the
    hypergradient's inner variables (``val_loss``) and the training loss
    before the weights' step (``train_loss``).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta.bilevel import BilevelProblem, implicit
      >>> problem = BilevelProblem(lambda w, a, b, *, key: ((w - a) ** 2, {}),   # w*(a) = a
      ...                          lambda w, a, b, *, key: ((w - 3.0) ** 2, {}))
      >>> sgd = optax.sgd(0.2)
      >>> step = jax.jit(make_alternating_step(problem, implicit(problem, steps=1, lr=0.5), sgd, sgd))
      >>> state = init_alternating(jnp.array(0.0), jnp.array(0.0), sgd, sgd)
      >>> for _ in range(200):
      ...     state, metrics = step(state, None, None, jax.random.key(0))
      >>> round(float(state.outer), 3), round(float(state.inner), 3)
      (3.0, 3.0)
    """
    outer_step = make_outer_step(hypergradient_fn, outer_optimizer)

    def step(state, train_batch, val_batch, key):
        outer_key, inner_key = jax.random.split(key)
        outer, outer_opt_state, result = outer_step(state.outer, state.outer_opt_state, state.inner, train_batch,
                                                    val_batch, outer_key)
        train_loss, grads = jax.value_and_grad(
            lambda w: problem.inner_loss(w, outer, train_batch, key=inner_key)[0])(state.inner)
        updates, inner_opt_state = inner_optimizer.update(grads, state.inner_opt_state, state.inner)
        inner = optax.apply_updates(state.inner, updates)
        return (AlternatingState(outer, inner, outer_opt_state, inner_opt_state),
                {"val_loss": result.loss, "train_loss": train_loss})

    return step
