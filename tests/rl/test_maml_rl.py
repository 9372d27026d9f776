"""jaxmeta.rl.maml_rl: on a tabular MDP whose trajectories are all enumerated (weighted by their probabilities),
a learner's meta-gradient is its estimator's expectation, with no sampling error, so the tolerance is float64
round-off (relative 1e-10), not a sampling error. DiCE's equals the exact meta-gradient of
J(theta + alpha grad J(theta)); the naive surrogate's is measurably off (21% here)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta.rl import (GaussianMLPPolicy, PolicyGradientAdaptation, TabularMDP, enumerate_trajectories,
                        enumeration_sampler, expected_return, gaussian_policy, init_trpo_state, make_trpo_meta_step,
                        maml_rl, navigation, returns_by_step, rl_tasks, rollout_sampler,
                        softmax_policy)

MDP = TabularMDP(transitions=jnp.array([[0, 1, 2], [2, 0, 1], [1, 2, 2]]), start=0, horizon=3)
DISCOUNT, ALPHA = 0.9, 0.5


def reward_tables(count=2):
    return jax.random.normal(jax.random.key(0), (count, 3, 3), jnp.float64)


def theta0():
    return 0.5 * jax.random.normal(jax.random.key(1), (3, 3), jnp.float64)


def exact_meta_gradient(theta, tables, steps=1, mdp=MDP):
    """The mean over tasks of grad_theta J(phi_k), phi_{j+1} = phi_j + alpha grad J(phi_j), in closed form."""

    def objective(theta, rewards):
        J = lambda p: expected_return(mdp, rewards, p, DISCOUNT)  # noqa: E731
        phi = theta
        for _ in range(steps):
            phi = phi + ALPHA * jax.grad(J)(phi)
        return J(phi)

    return jax.jit(lambda theta: jnp.mean(jax.vmap(jax.grad(objective), in_axes=(None, 0))(theta, tables), axis=0))(
        theta)


def learner_meta_gradient(estimator, theta, tables, steps=1, baseline=None, mdp=MDP):
    learner = maml_rl(softmax_policy(), enumeration_sampler(mdp), estimator=estimator, inner_lr=ALPHA,
                      inner_steps=steps, discount=DISCOUNT, baseline=baseline)
    return -compiled_meta_gradient(learner, theta, tables)  # the learner descends the negative return


def compiled_meta_gradient(learner, theta, tables):
    """The learner's meta-gradient, compiled (op by op it takes several times longer)."""
    return jax.jit(lambda theta: jaxmeta.meta_gradient(learner, theta, rl_tasks(tables), jax.random.key(2))[0])(theta)


def state_baseline(trajectories, discount):
    """Any function of the state and time (here a fixed table): it must leave every estimator unbiased."""
    table = jnp.array([[0.3, -1.0, 2.0], [0.5, 0.1, -0.7], [1.5, 0.2, 0.0]], trajectories.rewards.dtype)
    return table[trajectories.observations, jnp.arange(trajectories.rewards.shape[1])]


def relative_error(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("baseline", [None, state_baseline], ids=["no-baseline", "state-baseline"])
def test_dice_gives_the_exact_meta_gradient_and_the_naive_surrogate_does_not(steps, baseline):
    theta, tables = theta0(), reward_tables()
    exact = exact_meta_gradient(theta, tables, steps)
    np.testing.assert_allclose(learner_meta_gradient("dice", theta, tables, steps, baseline), exact,
                               rtol=1e-10, atol=1e-12)
    assert relative_error(learner_meta_gradient("naive", theta, tables, steps, baseline), exact) > 0.05


def test_lvc_is_exact_for_one_step_episodes_and_biased_across_steps():
    theta, tables = theta0(), reward_tables()
    bandit = MDP._replace(horizon=1)
    np.testing.assert_allclose(learner_meta_gradient("lvc", theta, tables, mdp=bandit),
                               exact_meta_gradient(theta, tables, mdp=bandit), rtol=1e-10, atol=1e-12)
    # over three steps the products of different steps' scores are missing from LVC's curvature (ProMP says so:
    # low variance for a bias; measured here 0.31 relative error, the naive surrogate's 0.21)
    assert relative_error(learner_meta_gradient("lvc", theta, tables), exact_meta_gradient(theta, tables)) > 0.05


def test_first_order_drops_exactly_the_inner_steps_jacobian():
    theta, tables = theta0(), reward_tables()
    learner = maml_rl(softmax_policy(), enumeration_sampler(MDP), inner_lr=ALPHA, discount=DISCOUNT, baseline=None,
                      first_order=True)
    grads = compiled_meta_gradient(learner, theta, tables)

    def at_adapted(rewards):
        J = lambda p: expected_return(MDP, rewards, p, DISCOUNT)  # noqa: E731
        return jax.grad(J)(theta + ALPHA * jax.grad(J)(theta))

    np.testing.assert_allclose(-grads, jnp.mean(jax.vmap(at_adapted)(tables), 0), rtol=1e-10, atol=1e-12)


@pytest.mark.long
def test_a_trpo_meta_step_stays_in_its_trust_region_and_raises_the_adapted_return():
    theta, tables = theta0(), reward_tables()
    inner = PolicyGradientAdaptation(softmax_policy(), enumeration_sampler(MDP), discount=DISCOUNT, baseline=None)
    state, info = make_trpo_meta_step(inner, inner_lr=ALPHA, max_kl=0.01)(init_trpo_state(theta), rl_tasks(tables),
                                                                          jax.random.key(3))
    new = state.meta_params

    def adapted(theta, rewards):
        return theta + ALPHA * jax.grad(lambda p: expected_return(MDP, rewards, p, DISCOUNT))(theta)

    def replayed(theta, rewards):
        """The inner step at theta on the trajectories sampled at theta0 (their probabilities held): TRPO's line
        search re-adapts on the samples it has, as the reference MAML-TRPO code does."""
        batch = enumerate_trajectories(MDP, rewards, theta0())

        def score(p):
            cumulative = jnp.cumsum(softmax_policy().log_prob(p, batch.observations, batch.actions), 1)
            return jnp.sum(batch.weights[:, None] * DISCOUNT ** jnp.arange(3.0) * batch.rewards * cumulative)

        return theta + ALPHA * jax.grad(score)(theta)

    def mean_kl(rewards):  # over the states the adapted old policy visits, as the step weighs them
        old, moved = adapted(theta, rewards), replayed(new, rewards)
        batch = enumerate_trajectories(MDP, rewards, old)
        per_step = softmax_policy().kl(old, moved, batch.observations)
        return jnp.sum(batch.weights[:, None] * per_step) / MDP.horizon

    kls = jax.vmap(mean_kl)(tables)
    assert 0 < float(jnp.mean(kls)) <= 0.01 and float(info["kl"]) == pytest.approx(float(jnp.mean(kls)), rel=1e-9)
    # the true objective, with on-policy adaptation, improves too
    meta_return = lambda theta: jnp.mean(jax.vmap(  # noqa: E731
        lambda r: expected_return(MDP, r, adapted(theta, r), DISCOUNT))(tables))
    assert float(meta_return(new)) > float(meta_return(theta))


@pytest.mark.long
def test_both_outer_updates_run_compiled_on_2d_navigation():
    env = navigation(horizon=4)
    policy = gaussian_policy(GaussianMLPPolicy(action_size=2, hidden=(4,)))
    params = policy.init(jax.random.key(0), jnp.zeros(2))
    tasks = rl_tasks(env.sample_tasks(jax.random.key(1), 2))
    sampler = rollout_sampler(env, policy, num_trajectories=3)
    learner = maml_rl(policy, sampler, inner_lr=0.1)
    state = jaxmeta.init_state(learner, optax.adam(1e-3), params)
    state, metrics = jaxmeta.make_meta_step(learner, optax.adam(1e-3))(state, tasks, jax.random.key(2))
    assert all(np.isfinite(float(v)) for v in metrics.values()) and float(metrics["return_before"]) < 0
    trpo = make_trpo_meta_step(PolicyGradientAdaptation(policy, sampler))
    result = jaxmeta.fit(trpo, init_trpo_state(params), lambda key: tasks, key=jax.random.key(3), num_steps=2,
                         steps_per_call=2, progress=False)
    info = result.history
    assert int(result.state.step) == 2 and np.all(info["kl"] <= 0.01) and np.all(info["loss"] <= info["loss_before"])
    evaluation = jaxmeta.evaluate(learner, result.state.meta_params, tasks, key=jax.random.key(4), steps=2)
    assert np.shape(evaluation.losses) == (2, 3)  # the negative return after 0, 1 and 2 steps, per task


def test_returns_by_step_in_chunks_of_tasks_equal_one_call():
    env = navigation(horizon=4)
    policy = gaussian_policy(GaussianMLPPolicy(action_size=2, hidden=(4,)))
    inner = PolicyGradientAdaptation(policy, rollout_sampler(env, policy, num_trajectories=3), normalize=True)
    params, goals = policy.init(jax.random.key(0), jnp.zeros(2)), env.sample_tasks(jax.random.key(1), 5)
    whole = returns_by_step(inner, params, goals, jax.random.key(2), (0.1, 0.05))
    chunked = returns_by_step(inner, params, goals, jax.random.key(2), (0.1, 0.05), task_chunk=2)  # 2, 2 and 1
    assert whole.shape == (5, 3) and np.ptp(np.asarray(whole)[:, 0]) > 0  # the tasks differ
    np.testing.assert_allclose(chunked, whole, rtol=1e-12)
    with pytest.raises(ValueError, match="task_chunk must be a positive int"):
        returns_by_step(inner, params, goals, jax.random.key(2), (0.1,), task_chunk=0)


@pytest.mark.parametrize("make, message", [
    (lambda: maml_rl(softmax_policy(), enumeration_sampler(MDP), estimator="reinforce"), "Unknown policy-gradient"),
    (lambda: maml_rl(softmax_policy(), enumeration_sampler(MDP), inner_steps=0), "inner_steps must be at least 1"),
    (lambda: make_trpo_meta_step(PolicyGradientAdaptation(softmax_policy()._replace(kl=None),
                                                          enumeration_sampler(MDP))), "has no kl function"),
])
def test_bad_settings_are_refused_with_the_fix(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_an_optax_inner_optimizer_runs_the_inner_step_and_is_differentiated_through():
    """optax.sgd(alpha) on the negative surrogate is gradient ascent with alpha: the same exact meta-gradient."""
    theta, tables = theta0(), reward_tables()
    plain = learner_meta_gradient("dice", theta, tables)
    learner = maml_rl(softmax_policy(), enumeration_sampler(MDP), inner_optimizer=optax.sgd(ALPHA), inner_lr=None,
                      discount=DISCOUNT, baseline=None)
    np.testing.assert_allclose(-compiled_meta_gradient(learner, theta, tables), plain, rtol=1e-10, atol=1e-12)
