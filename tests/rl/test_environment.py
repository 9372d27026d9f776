"""jaxmeta.rl.environment: the 2D navigation rules (clipped moves, the reward after the move, termination near the
goal), its task distribution, and the errors for bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.rl import navigation


def test_a_step_clips_the_action_moves_and_is_rewarded_by_the_new_distance():
    env, goal = navigation(), jnp.array([0.3, -0.2])
    state = env.reset(goal, jax.random.key(0))
    np.testing.assert_array_equal(state, [0.0, 0.0])
    state, reward, done = env.step(goal, state, jnp.array([0.5, -0.05]))
    np.testing.assert_allclose(state, [0.1, -0.05], rtol=1e-6)
    np.testing.assert_allclose(reward, -np.hypot(0.2, 0.15), rtol=1e-6)
    assert not done
    _, squared, _ = navigation(squared=True).step(goal, jnp.zeros(2), jnp.array([0.5, -0.05]))
    np.testing.assert_allclose(squared, -(0.2 ** 2 + 0.15 ** 2), rtol=1e-6)


def test_the_episode_ends_within_the_goal_radius_only():
    env = navigation()
    _, _, done = env.step(jnp.array([0.105, 0.0]), jnp.zeros(2), jnp.array([0.1, 0.0]))  # 0.005 away
    _, _, not_done = env.step(jnp.array([0.115, 0.0]), jnp.zeros(2), jnp.array([0.1, 0.0]))  # 0.015 away
    assert bool(done) and not bool(not_done)


def test_goals_are_uniform_in_the_unit_square_around_the_start():
    goals = np.asarray(navigation().sample_tasks(jax.random.key(0), 4000))
    assert goals.shape == (4000, 2) and goals.min() >= -0.5 and goals.max() <= 0.5
    np.testing.assert_allclose(goals.mean(0), 0.0, atol=0.02)  # 4 standard errors of U(-1/2, 1/2)
    np.testing.assert_allclose(goals.var(0), 1 / 12, rtol=0.06)


@pytest.mark.parametrize("make, message", [
    (lambda: navigation(horizon=0), "horizon must be a positive int"),
    (lambda: navigation(max_speed=0.0), "max_speed must be positive"),
    (lambda: navigation().step(jnp.zeros(2), jnp.zeros(2), jnp.zeros(3)), r"shape \(2,\), got shape \(3,\)"),
    (lambda: navigation().sample_tasks(jax.random.key(0), 0), "number of tasks must be a positive int"),
])
def test_bad_input_is_refused_with_the_fix(make, message):
    with pytest.raises(ValueError, match=message):
        make()
