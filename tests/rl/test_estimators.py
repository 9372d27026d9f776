"""jaxmeta.rl.estimators: on every trajectory of a tabular MDP weighted by its probability, each surrogate's
gradient is the exact policy gradient; DiCE's Hessian is the exact Hessian of the return (with or without a
baseline) and the naive surrogate's is not. Bad names and shapes are refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.rl import ESTIMATORS, TabularMDP, enumerate_trajectories, expected_return, softmax_policy, surrogate

MDP = TabularMDP(transitions=jnp.array([[0, 1], [1, 0]]), start=0, horizon=3)
REWARDS = jnp.array([[0.5, -1.0], [2.0, 0.3]], jnp.float64)
THETA = jnp.array([[0.2, -0.4], [0.7, 0.1]], jnp.float64)
GAMMA = 0.8


def surrogate_at(name, baselines=None):
    batch = enumerate_trajectories(MDP, REWARDS, THETA)  # sampled at THETA, held fixed
    values = None if baselines is None else baselines[batch.observations, jnp.arange(MDP.horizon)]
    return lambda theta: surrogate(name, softmax_policy().log_prob(theta, batch.observations, batch.actions), batch,
                                   values, GAMMA)


def exact(order):
    f = lambda theta: expected_return(MDP, REWARDS, theta, GAMMA)  # noqa: E731
    return (jax.grad if order == 1 else jax.hessian)(f)(THETA)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_surrogate_has_the_exact_policy_gradient(name):
    np.testing.assert_allclose(jax.grad(surrogate_at(name))(THETA), exact(1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("baselines", [None, jnp.array([[1.0, -2.0, 0.5], [0.3, 0.0, 4.0]])],
                         ids=["no-baseline", "state-baseline"])
def test_dice_has_the_exact_hessian_and_the_naive_surrogate_does_not(baselines):
    hessian = exact(2)
    np.testing.assert_allclose(jax.hessian(surrogate_at("dice", baselines))(THETA), hessian, rtol=1e-10, atol=1e-12)
    naive = jax.hessian(surrogate_at("naive", baselines))(THETA)
    assert np.linalg.norm(naive - hessian) > 0.1 * np.linalg.norm(hessian)


def test_dice_is_worth_the_return_and_its_baseline_term_nothing():
    batch = enumerate_trajectories(MDP, REWARDS, THETA)
    np.testing.assert_allclose(surrogate_at("dice", jnp.ones((2, 3)))(THETA),
                               expected_return(MDP, REWARDS, THETA, GAMMA), rtol=1e-12)
    assert float(batch.weights.sum()) == pytest.approx(1.0)


def test_unknown_estimators_and_misshapen_log_probabilities_are_refused():
    batch = enumerate_trajectories(MDP, REWARDS, THETA)
    with pytest.raises(ValueError, match="Unknown policy-gradient estimator 'reinforce': choose one of naive, dice"):
        surrogate("reinforce", jnp.zeros((8, 3)), batch)
    with pytest.raises(ValueError, match=r"\[N, T\] shape \(8, 3\), got \(8, 3, 2\)"):
        surrogate("dice", jnp.zeros((8, 3, 2)), batch)


def test_normalised_surrogates_have_the_standardised_policy_gradient_averaged_over_steps():
    rng = np.random.default_rng(0)
    batch = enumerate_trajectories(MDP, REWARDS, THETA)._replace(weights=jnp.full(8, 1 / 8))
    batch = batch._replace(mask=jnp.asarray(rng.random((8, 3)) < 0.8, jnp.float64).at[:, 0].set(1.0))
    log_probs = lambda theta: softmax_policy().log_prob(theta, batch.observations, batch.actions)  # noqa: E731
    mask = np.asarray(batch.mask)
    advantages = np.zeros((8, 3))
    for t in reversed(range(3)):
        advantages[:, t] = mask[:, t] * np.asarray(batch.rewards)[:, t] + (GAMMA * advantages[:, t + 1] if t < 2 else 0)
    mean = (mask * advantages).sum() / mask.sum()
    std = np.sqrt((mask * (advantages - mean) ** 2).sum() / mask.sum())
    standardised = (advantages - mean) / std
    expected = jax.grad(lambda theta: jnp.sum(mask * GAMMA ** jnp.arange(3.0) * log_probs(theta) * standardised)
                        / mask.sum())(THETA)
    for name in ESTIMATORS:
        gradient = jax.grad(lambda theta, name=name: surrogate(name, log_probs(theta), batch, None, GAMMA,
                                                              normalize=True))(THETA)
        np.testing.assert_allclose(gradient, expected, rtol=1e-6, atol=1e-10, err_msg=name)
