r"""A batch of trajectories, and the discounted sums every policy-gradient estimator is made of.

A :class:`Trajectories` holds ``N`` trajectories of a fixed horizon ``T``,
each array with leading axes ``[N, T]``. A trajectory that ends early (the
agent reached its goal) keeps its length ``T``: ``mask`` is 1 up to and
including the step that ended it and 0 after, and every sum below counts only
masked steps. ``weights`` say how much each trajectory counts in a mean: ``1/N``
each for a sampled batch; :math:`p_\theta(\tau)` for an enumeration of every
trajectory of a small problem, whose weighted means are then exact expectations.

The discounted reward-to-go and the return are

.. math::
    R_t = \sum_{t' \ge t} \gamma^{t' - t} m_{t'} r_{t'}, \qquad
    R(\tau) = R_0 .

Example:
  >>> import jax.numpy as jnp
  >>> rewards = jnp.array([[1.0, 1.0, 1.0]])
  >>> reward_to_go(rewards, jnp.array([[1.0, 1.0, 0.0]]), discount=0.5).tolist()
  [[1.5, 1.0, 0.0]]
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Trajectories(NamedTuple):
    """``N`` trajectories of horizon ``T``.

    Attributes:
      observations: ``[N, T, obs]`` the observation each action was taken in.
      actions: ``[N, T, ...]`` the actions (``[N, T, act]`` continuous, ``[N, T]`` discrete).
      rewards: ``[N, T]``.
      mask: ``[N, T]`` 1 for the steps of the trajectory, 0 after it ended.
      weights: ``[N]`` each trajectory's weight in a mean (they sum to 1).
    """

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    mask: jax.Array
    weights: jax.Array


def uniform_weights(trajectories: Trajectories) -> Trajectories:
    """``trajectories`` with every weight ``1/N``: a sampled batch."""
    count = trajectories.rewards.shape[0]
    return trajectories._replace(weights=jnp.full((count,), 1.0 / count, trajectories.rewards.dtype))


def discounts(horizon: int, discount: float, dtype=jnp.float32) -> jax.Array:
    r"""``[T]``: :math:`\gamma^t` for ``t = 0..T-1``."""
    return jnp.asarray(discount, dtype) ** jnp.arange(horizon, dtype=dtype)


def reward_to_go(rewards: jax.Array, mask: jax.Array, discount: float) -> jax.Array:
    r"""``[N, T]``: :math:`R_t = \sum_{t' \ge t} \gamma^{t'-t} m_{t'} r_{t'}` (a reverse scan over time)."""

    def back(later, step):
        reward, alive = step
        here = alive * reward + discount * later
        return here, here

    _, values = jax.lax.scan(back, jnp.zeros(rewards.shape[:1], rewards.dtype),
                             (rewards.T, mask.astype(rewards.dtype).T), reverse=True)
    return values.T


def returns(trajectories: Trajectories, discount: float = 1.0) -> jax.Array:
    r"""``[N]``: each trajectory's discounted return :math:`R(\tau)`."""
    return reward_to_go(trajectories.rewards, trajectories.mask, discount)[:, 0]


def average_return(trajectories: Trajectories, discount: float = 1.0) -> jax.Array:
    """The weighted mean of :func:`returns` (with the default ``discount=1``: the summed reward)."""
    return jnp.sum(trajectories.weights * returns(trajectories, discount))


def step_weights(trajectories: Trajectories, dtype=jnp.float32) -> jax.Array:
    """``[N, T]``: each step's weight in a mean over the batch's steps, :math:`w_i m_{it}`: its trajectory's weight
    (a constant: no gradient flows into it) up to the trajectory's end, 0 after. They sum to the mean number of
    steps per trajectory."""
    return jax.lax.stop_gradient(trajectories.weights.astype(dtype))[:, None] * trajectories.mask.astype(dtype)


def step_mean(values: jax.Array, trajectories: Trajectories) -> jax.Array:
    r"""The mean of ``[N, T]`` per-step ``values`` over the batch's steps, each trajectory weighted by its weight:

    .. math:: \frac{\sum_{i,t} w_i m_{it} v_{it}}{\sum_{i,t} w_i m_{it}} .

    The weights are constants here (no gradient flows into them); ``values`` after a trajectory ended do not count.

    Example:
      >>> import jax.numpy as jnp
      >>> batch = Trajectories(None, None, jnp.zeros((2, 2)), jnp.array([[1, 1], [1, 0]]), jnp.array([0.5, 0.5]))
      >>> float(step_mean(jnp.array([[1.0, 2.0], [3.0, 100.0]]), batch))
      2.0
    """
    steps = step_weights(trajectories, values.dtype)
    return jnp.sum(steps * values) / jnp.sum(steps)
