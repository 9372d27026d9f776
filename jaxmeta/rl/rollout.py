"""Rollouts as one ``jax.lax.scan`` over time, ``jax.vmap``-ed over trajectories (and, by the caller, over tasks).

Each trajectory runs the full horizon; after the step that ends it the state
stays where it was, and the mask is 0 (:class:`~jaxmeta.rl.Trajectories`).
The parameters are held fixed (``jax.lax.stop_gradient``): a surrogate
differentiates the log-probabilities of the sampled actions, not the sampling.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxmeta.rl import GaussianMLPPolicy, gaussian_policy, navigation
  >>> env, policy = navigation(horizon=10), gaussian_policy(GaussianMLPPolicy(action_size=2, hidden=(8,)))
  >>> params = policy.init(jax.random.key(0), jnp.zeros(2))
  >>> batch = rollout(env, policy, params, jnp.array([0.2, 0.1]), jax.random.key(1), num_trajectories=4)
  >>> batch.observations.shape, batch.actions.shape, batch.rewards.shape, float(batch.weights.sum())
  ((4, 10, 2), (4, 10, 2), (4, 10), 1.0)
"""

from typing import Any

import jax
import jax.numpy as jnp

from jaxmeta.core.types import check_positive_int
from jaxmeta.rl.environment import Environment
from jaxmeta.rl.policy import Policy
from jaxmeta.rl.trajectories import Trajectories


def rollout_one(env: Environment, policy: Policy, params: Any, task: Any, key: jax.Array) -> Trajectories:
    """One trajectory of ``env.horizon`` steps (arrays ``[T, ...]``, weight 1)."""
    params = jax.lax.stop_gradient(params)
    reset_key, key = jax.random.split(key)

    def advance(carry, step_key):
        state, ended = carry
        observation = env.observe(state)
        action = policy.sample(params, observation, step_key)
        following, reward, done = env.step(task, state, action)
        state = jax.tree.map(lambda old, new: jnp.where(ended, old, new), state, following)
        alive = jnp.logical_not(ended)
        return (state, jnp.logical_or(ended, done)), (observation, action, reward, alive)

    start = (env.reset(task, reset_key), jnp.zeros((), bool))
    _, (observations, actions, rewards, alive) = jax.lax.scan(advance, start, jax.random.split(key, env.horizon))
    return Trajectories(observations, actions, rewards, alive.astype(rewards.dtype), jnp.ones((), rewards.dtype))


def rollout(env: Environment, policy: Policy, params: Any, task: Any, key: jax.Array, *,
            num_trajectories: int) -> Trajectories:
    """``num_trajectories`` independent trajectories of ``policy`` on ``task``, weights ``1/N`` (``[N, T, ...]``)."""
    count = check_positive_int(num_trajectories, "num_trajectories")
    batch = jax.vmap(lambda k: rollout_one(env, policy, params, task, k))(jax.random.split(key, count))
    return batch._replace(weights=batch.weights / count)
