"""jaxmeta.rl.rollout: the scanned, vmapped rollout equals a Python loop of single steps, and a trajectory that
reaches its goal stops (mask 0, state frozen)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.rl import GaussianMLPPolicy, Policy, gaussian_policy, navigation, rollout
from jaxmeta.rl.rollout import rollout_one


def test_the_vmapped_rollout_equals_a_python_loop_over_trajectories_and_steps():
    env, policy = navigation(horizon=6), gaussian_policy(GaussianMLPPolicy(action_size=2, hidden=(8,)))
    params, goal, key = policy.init(jax.random.key(0), jnp.zeros(2)), jnp.array([0.2, -0.3]), jax.random.key(1)
    batch = rollout(env, policy, params, goal, key, num_trajectories=3)
    for n, trajectory_key in enumerate(jax.random.split(key, 3)):
        _, key_n = jax.random.split(trajectory_key)
        state = env.reset(goal, None)
        for t, step_key in enumerate(jax.random.split(key_n, env.horizon)):
            np.testing.assert_allclose(batch.observations[n, t], env.observe(state), rtol=1e-6)
            action = policy.sample(params, env.observe(state), step_key)
            np.testing.assert_allclose(batch.actions[n, t], action, rtol=1e-5)
            state, reward, _ = env.step(goal, state, action)
            np.testing.assert_allclose(batch.rewards[n, t], reward, rtol=1e-5)
    np.testing.assert_array_equal(batch.mask, 1.0)
    np.testing.assert_allclose(batch.weights, 1 / 3)


def test_a_trajectory_that_reaches_its_goal_stops_there():
    env = navigation(horizon=6)
    straight = Policy(None, lambda params, observation, key: jnp.array([1.0, 0.0]), None)
    trajectory = rollout_one(env, straight, None, jnp.array([0.3, 0.0]), jax.random.key(0))
    np.testing.assert_array_equal(trajectory.mask, [1, 1, 1, 0, 0, 0])  # at 0.1, 0.2, 0.3: done on the third
    np.testing.assert_allclose(trajectory.observations[:, 0], [0.0, 0.1, 0.2, 0.3, 0.3, 0.3], atol=1e-6)


def test_a_bad_trajectory_count_is_refused():
    env, policy = navigation(horizon=2), gaussian_policy(GaussianMLPPolicy(action_size=2, hidden=(4,)))
    with pytest.raises(ValueError, match="num_trajectories must be a positive int"):
        rollout(env, policy, None, jnp.zeros(2), jax.random.key(0), num_trajectories=0)
