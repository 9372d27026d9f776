"""jaxmeta.rl.locomotion: the half-cheetah families' rewards against brax's own physics (the velocity from the
torso's positions), their task distributions, a compiled MAML-TRPO step on them, and the errors for bad input.
brax's ``spring`` pipeline keeps the compilations short; the reward rules do not depend on the pipeline."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.rl import (GaussianMLPPolicy, PolicyGradientAdaptation, gaussian_policy, half_cheetah,
                        init_trpo_state, make_trpo_meta_step, rl_tasks, rollout_sampler)
from jaxmeta.rl.locomotion import brax_environment

BACKEND = "spring"


@pytest.fixture(scope="module")
def cheetahs():
    return {task: half_cheetah(task, horizon=4, backend=BACKEND) for task in ("velocity", "direction")}


@pytest.mark.parametrize("task, goal", [("velocity", 0.7), ("direction", -1.0)])
def test_the_reward_is_the_goal_term_of_the_torso_velocity_minus_the_control_cost(cheetahs, task, goal):
    env, brax_cheetah = cheetahs[task], brax_environment("halfcheetah", backend=BACKEND)
    goal, key = jnp.asarray(goal), jax.random.key(3)
    state, reference = env.reset(goal, key), brax_cheetah.reset(key)
    np.testing.assert_array_equal(env.observe(state), reference.obs)
    step, reference_step = jax.jit(env.step), jax.jit(brax_cheetah.step)
    for action in (jnp.array([2.0, -3.0, 0.5, 0.0, -0.2, 1.5]), jnp.array([-0.4, 0.9, -1.7, 0.3, 0.1, -0.6])):
        clipped = np.clip(np.asarray(action), -1.0, 1.0)
        x_before = reference.pipeline_state.x.pos[0, 0]
        state, reward, done = step(goal, state, action)
        reference = reference_step(reference, jnp.asarray(clipped))
        velocity = (reference.pipeline_state.x.pos[0, 0] - x_before) / brax_cheetah.dt
        progress = -abs(velocity - goal) if task == "velocity" else goal * velocity
        np.testing.assert_allclose(reward, progress - 0.05 * np.sum(clipped ** 2), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(env.observe(state), reference.obs, rtol=1e-6, atol=1e-6)
        assert not bool(done) and abs(float(velocity)) > 1e-3  # it moved, and it is never ended early
    assert env.observation_size == 17 and env.action_size == 6


def test_goal_velocities_are_uniform_on_0_2_and_directions_are_fair_coins(cheetahs):
    velocities = np.asarray(cheetahs["velocity"].sample_tasks(jax.random.key(0), 4000))
    assert velocities.min() >= 0.0 and velocities.max() <= 2.0
    np.testing.assert_allclose(velocities.mean(), 1.0, atol=0.04)  # 4 standard errors of U(0, 2)
    directions = np.asarray(cheetahs["direction"].sample_tasks(jax.random.key(1), 4000))
    assert set(np.unique(directions)) == {-1.0, 1.0}
    np.testing.assert_allclose((directions > 0).mean(), 0.5, atol=0.032)  # 4 standard errors


@pytest.mark.long
def test_a_maml_trpo_step_on_the_half_cheetah_compiles_and_stays_in_its_trust_region(cheetahs):
    env = cheetahs["velocity"]
    policy = gaussian_policy(GaussianMLPPolicy(action_size=env.action_size, hidden=(8,)))
    inner = PolicyGradientAdaptation(policy, rollout_sampler(env, policy, num_trajectories=2), normalize=True)
    params = policy.init(jax.random.key(0), jnp.zeros(env.observation_size))
    state, metrics = make_trpo_meta_step(inner, inner_lr=0.1, max_kl=0.01)(
        init_trpo_state(params), rl_tasks(env.sample_tasks(jax.random.key(1), 2)), jax.random.key(2))
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), state.meta_params, params))
    assert int(state.step) == 1 and max(float(m) for m in moved) > 0
    assert 0 < float(metrics["kl"]) <= 0.01 and float(metrics["loss"]) < float(metrics["loss_before"])
    for name in ("return_before", "return_after"):  # per-step rewards of at most 2 (|v - g| and the torques)
        assert np.isfinite(metrics[name]) and float(metrics[name]) < 0


@pytest.mark.parametrize("make, message", [
    (lambda: half_cheetah("height"), "Unknown half-cheetah task family 'height': choose one of velocity, direction"),
    (lambda: half_cheetah(backend="mjx"), "Unknown brax backend 'mjx'"),
    (lambda: half_cheetah(horizon=0), "horizon must be a positive int"),
    (lambda: half_cheetah(control_cost=-0.1), "control_cost must be non-negative"),
])
def test_bad_settings_are_refused_with_the_fix(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_an_action_of_the_wrong_shape_is_refused(cheetahs):
    env = cheetahs["velocity"]
    state = env.reset(jnp.asarray(1.0), jax.random.key(0))
    with pytest.raises(ValueError, match=r"6 torques, shape \(6,\); got shape \(2,\)"):
        env.step(jnp.asarray(1.0), state, jnp.zeros(2))


def test_without_brax_the_error_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "brax", None)
    with pytest.raises(ImportError, match=r"pip install 'jaxmeta\[rl\]'"):
        half_cheetah(backend=BACKEND)
