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

import jax
import jax.numpy as jnp
import optax

from jaxmeta.bilevel.hypergradient import BilevelProblem, HypergradientFn, make_outer_step
from jaxmeta.core.meta_step import MetaTrainState
from jaxmeta.core.types import Params


def init_alternating(outer: Params, inner: Params, outer_optimizer: optax.GradientTransformation,
                     inner_optimizer: optax.GradientTransformation) -> MetaTrainState:
    """The starting state of an alternating search: a :class:`~jaxmeta.MetaTrainState` whose ``meta_params`` are
    ``{"outer": outer, "inner": inner}`` and whose ``opt_state`` is the pair of fresh optimizer states, so that
    :func:`jaxmeta.fit` and :func:`jaxmeta.training.train` (checkpoints, resume, budget) run the search."""
    return MetaTrainState(jnp.zeros((), jnp.int32), {"outer": outer, "inner": inner},
                          (outer_optimizer.init(outer), inner_optimizer.init(inner)))


def make_alternating_step(problem: BilevelProblem, hypergradient_fn: HypergradientFn,
                          outer_optimizer: optax.GradientTransformation,
                          inner_optimizer: optax.GradientTransformation) -> Callable:
    r"""One step of DARTS's alternating search: :math:`\alpha` along the hypergradient, then :math:`w` on its loss.

    ``step(state, batches, key) -> (state, metrics)`` with ``batches = (train_batch, val_batch)``, a pure
    function to ``jax.jit`` with the signature of a meta step (a sampler of batch pairs is its task source);
    ``metrics`` holds the training loss before the weights' step (``loss``) and the outer loss at the
    hypergradient's inner variables (``val_loss``).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta.bilevel import BilevelProblem, implicit
      >>> problem = BilevelProblem(lambda w, a, b, *, key: ((w - a) ** 2, {}),   # w*(a) = a
      ...                          lambda w, a, b, *, key: ((w - 3.0) ** 2, {}))
      >>> sgd = optax.sgd(0.2)
      >>> step = jax.jit(make_alternating_step(problem, implicit(problem, steps=1, lr=0.5), sgd, sgd))
      >>> state = init_alternating(jnp.array(0.0), jnp.array(0.0), sgd, sgd)
      >>> for _ in range(200):
      ...     state, metrics = step(state, (None, None), jax.random.key(0))
      >>> [round(float(x), 3) for x in (state.meta_params["outer"], state.meta_params["inner"])]
      [3.0, 3.0]
    """
    outer_step = make_outer_step(hypergradient_fn, outer_optimizer)

    def step(state, batches, key):
        train_batch, val_batch = batches
        outer_key, inner_key = jax.random.split(key)
        (outer_state, inner_state), inner = state.opt_state, state.meta_params["inner"]
        outer, outer_state, result = outer_step(state.meta_params["outer"], outer_state, inner, train_batch,
                                                val_batch, outer_key)
        train_loss, grads = jax.value_and_grad(
            lambda w: problem.inner_loss(w, outer, train_batch, key=inner_key)[0])(inner)
        updates, inner_state = inner_optimizer.update(grads, inner_state, inner)
        new = MetaTrainState(state.step + 1, {"outer": outer, "inner": optax.apply_updates(inner, updates)},
                             (outer_state, inner_state))
        return new, {"loss": train_loss, "val_loss": result.loss}

    return step
