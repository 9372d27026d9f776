r"""Trust-region policy optimisation (Schulman et al., 2015), the outer update of MAML-RL.

One update of the parameters :math:`\theta` minimises a surrogate loss
:math:`L(\theta)` subject to a bound on the mean KL divergence
:math:`\bar D(\theta) = \mathbb{E}_s\big[D_\text{KL}(\pi_{\theta_\text{old}}(\cdot \mid s)
\,\|\, \pi_\theta(\cdot \mid s))\big]`:

.. math::
    g = \nabla L(\theta_\text{old}), \qquad
    H = \nabla^2 \bar D(\theta_\text{old}), \qquad
    x \approx -(H + \lambda I)^{-1} g \ \text{(conjugate gradient)}, \qquad
    \Delta = \sqrt{\frac{2 \delta}{x^\top H x}}\; x,

then a backtracking line search takes the first of
:math:`\theta_\text{old} + \beta^i \Delta`, :math:`i = 0, 1, \dots`, that lowers
:math:`L` and keeps :math:`\bar D \le \delta`, or stays at
:math:`\theta_\text{old}` if none does. The Hessian-vector products
:math:`Hv` are exact, forward-over-reverse
(``jax.jvp`` of ``jax.grad``), and no Hessian is ever formed; the conjugate
gradient is ``jax.scipy.sparse.linalg.cg``. For MAML-RL both :math:`L` and
:math:`\bar D` are functions of :math:`\theta` through the inner adaptation
(:func:`~jaxmeta.rl.make_trpo_meta_step`). The defaults are MAML-RL's:
:math:`\delta = 0.01`, 10 conjugate-gradient iterations, damping
:math:`\lambda = 10^{-5}`, :math:`\beta = 0.8`, 15 backtracking steps.

Example:
  >>> import jax.numpy as jnp
  >>> loss_and_kl = lambda w: (jnp.sum((w - 0.045) ** 2),  # the loss
  ...                            0.5 * jnp.sum(w ** 2))  # the KL, H = I: the full step (0.1, 0.1) reaches 0.01
  >>> w, info = trpo_update(loss_and_kl, jnp.zeros(2), max_kl=0.01)
  >>> [round(x, 4) for x in w.tolist()], int(info["backtracks"])  # 0.8 of it lowers the loss
  ([0.08, 0.08], 1)
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def hessian_vector_product(f: Callable[[Any], jax.Array], params: Any) -> Callable[[Any], Any]:
    """``v -> (d^2 f / d params^2) v`` at ``params``, forward-over-reverse (``jax.jvp`` of ``jax.grad``)."""
    gradient = jax.grad(f)
    return lambda v: jax.jvp(gradient, (params,), (v,))[1]


def trpo_update(
    loss_and_kl: Callable[[Any], tuple[jax.Array, jax.Array]],
    params: Any,
    *,
    max_kl: float = 0.01,
    cg_iterations: int = 10,
    damping: float = 1e-5,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
) -> tuple[Any, dict[str, jax.Array]]:
    """One TRPO update (module docstring) of ``params``.

    Args:
      loss_and_kl: ``params -> (loss, kl)``: the scalar to lower and the mean KL from the policy at the given
        ``params`` (0 there, with zero gradient). One function, so that a line-search trial evaluates what the
        two share (for MAML-RL, the replayed inner step) once.
      params: :math:`\\theta_\\text{old}`.

    Returns:
      ``(params, info)``; ``info``: ``loss_before``, ``loss`` and ``kl`` at the returned parameters, and
      ``backtracks`` (the accepted :math:`i`, or ``max_backtracks`` when no step was accepted).
    """
    if not max_kl > 0 or not 0 < backtrack_ratio < 1 or max_backtracks < 1 or cg_iterations < 1 or damping < 0:
        raise ValueError(f"TRPO needs max_kl > 0, 0 < backtrack_ratio < 1, max_backtracks >= 1, cg_iterations >= 1 "
                         f"and damping >= 0; got {max_kl}, {backtrack_ratio}, {max_backtracks}, {cg_iterations}, "
                         f"{damping}.")
    flat, unravel = ravel_pytree(params)
    both = lambda v: loss_and_kl(unravel(v))  # noqa: E731
    loss_before, gradient = jax.value_and_grad(lambda v: both(v)[0])(flat)
    curvature = hessian_vector_product(lambda v: both(v)[1], flat)
    direction, _ = jax.scipy.sparse.linalg.cg(lambda v: curvature(v) + damping * v, -gradient, maxiter=cg_iterations)
    quadratic = jnp.dot(direction, curvature(direction))
    full_step = jnp.sqrt(2 * max_kl / jnp.maximum(quadratic, jnp.finfo(flat.dtype).tiny)) * direction

    def candidate(i):
        trial = flat + backtrack_ratio ** i * full_step
        return (trial, *both(trial))

    def acceptable(loss, kl):
        return (loss < loss_before) & (kl <= max_kl)

    def searching(carry):
        i, _, loss, kl = carry
        return (i < max_backtracks - 1) & ~acceptable(loss, kl)

    def backtrack(carry):
        i = carry[0] + 1
        return (i, *candidate(i.astype(flat.dtype)))

    i, trial, loss, kl = jax.lax.while_loop(searching, backtrack, (jnp.asarray(0), *candidate(0.0)))
    accepted = acceptable(loss, kl)
    return unravel(jnp.where(accepted, trial, flat)), {
        "loss_before": loss_before, "loss": jnp.where(accepted, loss, loss_before),
        "kl": jnp.where(accepted, kl, 0.0), "backtracks": jnp.where(accepted, i, max_backtracks)}
