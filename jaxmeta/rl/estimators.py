r"""Policy-gradient surrogates whose derivatives, taken by ``jax.grad`` at every order, estimate those of the return
(:func:`surrogate` states them).

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxmeta.rl import Trajectories
  >>> one = jnp.ones((1, 1))  # one trajectory of one step, reward 1
  >>> batch = Trajectories(one[..., None], one, one, one, jnp.ones(1))
  >>> d2 = {name: jax.grad(jax.grad(lambda l: surrogate(name, l * one, batch)))(0.0) for name in ESTIMATORS}
  >>> {name: float(value) for name, value in d2.items()}
  {'naive': 0.0, 'dice': 1.0, 'lvc': 1.0}
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxmeta.core.types import check_choice
from jaxmeta.rl.trajectories import Trajectories, discounts, reward_to_go, step_mean, step_weights

ESTIMATORS = ("naive", "dice", "lvc")
"""The surrogates :func:`surrogate` knows."""


def magic_box(x: jax.Array) -> jax.Array:
    r""":math:`\square(x) = \exp(x - \bot x)`: 1 in value, with :math:`\nabla \square(x) = \square(x) \nabla x`."""
    return jnp.exp(x - jax.lax.stop_gradient(x))


def check_estimator(name: str) -> str:
    """Return ``name`` if it is one of :data:`ESTIMATORS`; a clear error otherwise."""
    return check_choice(name, ESTIMATORS, "policy-gradient estimator",
                        hint="'dice' gives unbiased derivatives of every order, 'lvc' less variance, 'naive' is "
                             "only to compare with.")


def surrogate(name: str, log_probs: jax.Array, trajectories: Trajectories, baselines: jax.Array | None = None,
              discount: float = 1.0, normalize: bool = False) -> jax.Array:
    r"""The surrogate ``name``: a scalar to maximise whose every derivative estimates the return's.

    The objective is the expected discounted return
    :math:`J(\theta) = \mathbb{E}_{\tau \sim p_\theta}\big[\sum_t \gamma^t r_t\big]`. A
    surrogate is a function of :math:`\theta` on trajectories sampled from
    :math:`p_\theta` (held fixed) whose gradient estimates :math:`\nabla J`. MAML
    differentiates the inner step :math:`\theta + \alpha \nabla J` once more, so the
    surrogate's *Hessian* must estimate :math:`\nabla^2 J` too:

    .. math::
        \nabla^2 J = \mathbb{E}\Big[\sum_t \gamma^t r_t \big(\nabla^2 W_t
            + \nabla W_t \nabla W_t^\top\big)\Big],
        \qquad W_t = \sum_{t' \le t} \log \pi_\theta(a_{t'} \mid s_{t'}).

    With :math:`\ell_t = \log\pi_\theta(a_t \mid s_t)`, :math:`m_t` the mask,
    :math:`R_t` the reward-to-go, :math:`b_t` a baseline of the state only,
    :math:`A_t = R_t - b_t`, :math:`\bot` the stop-gradient and the "magic box"
    :math:`\square(x) = \exp(x - \bot x)` (value 1, :math:`\nabla \square(x) = \square(x) \nabla x`):

    ``"naive"``, the score-function surrogate of the original MAML-RL code:

    .. math::
        \hat J_\text{naive} = \sum_t m_t \gamma^t \ell_t \,\bot A_t .

    Its gradient is the policy gradient, but its Hessian,
    :math:`\sum_t \gamma^t A_t \nabla^2 \ell_t`, has no
    :math:`\nabla W \nabla W^\top` term: it drops how the inner step's samples
    depend on :math:`\theta` (Rothfuss et al., ProMP, ICLR 2019).

    ``"dice"`` (Foerster et al., ICML 2018), with the baseline term of Mao et al.
    (2019), whose expectation is zero at every order:

    .. math::
        \hat J_\text{DiCE} = \sum_t m_t \gamma^t \Big[\square(W_t)\, r_t
            + \big(1 - \square(\ell_t)\big)\, \square(W_{t-1})\, b_t\Big].

    Every derivative of it is an unbiased estimate of the same derivative of :math:`J`.

    ``"lvc"``, the low-variance curvature estimator of ProMP:

    .. math::
        \hat J_\text{LVC} = \sum_t m_t \gamma^t\, \square(\ell_t) \,\bot A_t .

    Its Hessian keeps each step's own :math:`\nabla \ell_t \nabla \ell_t^\top`
    but none of the products across steps: biased for horizons above one; ProMP
    measures much less variance than DiCE's.

    Each surrogate is a weighted mean over the trajectories (``Trajectories.weights``):
    on an enumeration of every trajectory weighted by its probability, its
    derivatives are exact.

    Args:
      name: one of :data:`ESTIMATORS`.
      log_probs: ``[N, T]`` :math:`\log\pi_\theta(a_t \mid s_t)` of the trajectories' actions, a function of
        the parameters being differentiated.
      trajectories: the batch (held fixed: sampled without gradient).
      baselines: ``[N, T]`` :math:`b_t` (held fixed), or ``None`` for none.
      discount: :math:`\gamma`.
      normalize: standardise the advantages over the batch's steps, :math:`A_t \to (A_t - \mu) / \sigma`
        (weighted mean and standard deviation, held fixed), and divide the sum over time by the mean number
        of steps per trajectory, as the reference MAML-RL implementations do: the scale for which the paper's
        inner step size 0.1 is meant. For DiCE the shift is added to the baseline. The shift and scale come
        from the batch itself, so the estimates are no longer exactly unbiased (the exactness tests use
        ``normalize=False``).
    """
    return SURROGATES[check_estimator(name)](log_probs, trajectories, baselines, discount, normalize)


def _parts(log_probs, trajectories, baselines, discount, normalize):
    """The masked log-probabilities, mask, rewards, baselines, discounts, advantages and the normalisation
    ``(shift, scale)``: the advantages' weighted mean over the batch's steps and ``1 / (std * mean length)`` when
    ``normalize``, else ``(0, 1)``."""
    mask = trajectories.mask.astype(log_probs.dtype)
    if log_probs.shape != mask.shape:
        raise ValueError(f"log_probs must have the trajectories' [N, T] shape {mask.shape}, got {log_probs.shape}: "
                         "one log-probability per step, summed over the action's dimensions.")
    rewards = trajectories.rewards.astype(log_probs.dtype)
    baselines = jnp.zeros_like(rewards) if baselines is None else jax.lax.stop_gradient(baselines)
    gammas = discounts(mask.shape[1], discount, log_probs.dtype)
    advantages = jax.lax.stop_gradient(reward_to_go(rewards, mask, discount) - baselines)
    shift, scale = jnp.zeros((), log_probs.dtype), jnp.ones((), log_probs.dtype)
    if normalize:
        length = jnp.sum(step_weights(trajectories, log_probs.dtype))  # the mean number of steps per trajectory
        shift = step_mean(advantages, trajectories)
        std = jnp.sqrt(step_mean((advantages - shift) ** 2, trajectories))
        scale = 1.0 / ((std + 1e-8) * length)
    return mask * log_probs, mask, rewards, baselines, gammas, advantages - shift, (shift, scale)


def _weighted(per_trajectory: jax.Array, trajectories: Trajectories) -> jax.Array:
    return jnp.sum(jax.lax.stop_gradient(trajectories.weights) * per_trajectory)


def naive(log_probs, trajectories, baselines=None, discount=1.0, normalize=False):
    """The score-function surrogate (its Hessian is biased: see :func:`surrogate`)."""
    logs, mask, _, _, gammas, advantages, (_, scale) = _parts(log_probs, trajectories, baselines, discount,
                                                              normalize)
    return scale * _weighted(jnp.sum(mask * gammas * logs * advantages, axis=1), trajectories)


def dice(log_probs, trajectories, baselines=None, discount=1.0, normalize=False):
    """DiCE with the baseline of Mao et al. (:func:`surrogate`); normalising shifts the baseline and scales."""
    logs, mask, rewards, baselines, gammas, _, (shift, scale) = _parts(log_probs, trajectories, baselines,
                                                                       discount, normalize)
    cumulative = jnp.cumsum(logs, axis=1)
    before = cumulative - logs  # W_{t-1}
    per_step = magic_box(cumulative) * rewards + (1.0 - magic_box(logs)) * magic_box(before) * (baselines + shift)
    return scale * _weighted(jnp.sum(mask * gammas * per_step, axis=1), trajectories)


def lvc(log_probs, trajectories, baselines=None, discount=1.0, normalize=False):
    """The low-variance curvature surrogate of ProMP (:func:`surrogate`)."""
    logs, mask, _, _, gammas, advantages, (_, scale) = _parts(log_probs, trajectories, baselines, discount,
                                                              normalize)
    return scale * _weighted(jnp.sum(mask * gammas * magic_box(logs) * advantages, axis=1), trajectories)


def importance_weighted(log_probs: jax.Array, old_log_probs: jax.Array, trajectories: Trajectories,
                        baselines: jax.Array | None = None, discount: float = 1.0,
                        normalize: bool = False) -> jax.Array:
    r"""TRPO's surrogate of trajectories sampled from an older policy :math:`\pi_\text{old}`:

    .. math::
        \hat J_\text{IS} = \sum_t m_t \gamma^t
            \frac{\pi_\theta(a_t \mid s_t)}{\pi_\text{old}(a_t \mid s_t)}\, \bot A_t ,

    equal in value and gradient to ``"lvc"`` where :math:`\pi_\theta = \pi_\text{old}`; ``normalize`` as in
    :func:`surrogate`.
    """
    logs, mask, _, _, gammas, advantages, (_, scale) = _parts(log_probs, trajectories, baselines, discount,
                                                              normalize)
    ratios = jnp.exp(logs - jax.lax.stop_gradient(mask * old_log_probs))
    return scale * _weighted(jnp.sum(mask * gammas * ratios * advantages, axis=1), trajectories)


SURROGATES: dict[str, Callable[..., jax.Array]] = {"naive": naive, "dice": dice, "lvc": lvc}
