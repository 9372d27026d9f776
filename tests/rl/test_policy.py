"""jaxmeta.rl.policy: the Gaussian policy's log-density is the normal density's, its samples have its mean and
standard deviation, and actions of the wrong size are refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.rl import GaussianMLPPolicy, gaussian_policy


def test_log_prob_is_the_diagonal_normal_density_and_samples_follow_it():
    module = GaussianMLPPolicy(action_size=2, hidden=(8,), init_std=0.5)
    policy = gaussian_policy(module)
    params = policy.init(jax.random.key(0), jnp.zeros(2))
    observation = jnp.array([0.3, -0.1])
    mean, log_std = module.apply({"params": params}, observation)
    np.testing.assert_allclose(np.exp(log_std), 0.5, rtol=1e-6)
    actions = jax.random.normal(jax.random.key(1), (4, 2))
    std = np.exp(np.asarray(log_std))
    density = np.prod(np.exp(-0.5 * ((actions - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi)), axis=-1)
    np.testing.assert_allclose(policy.log_prob(params, jnp.tile(observation, (4, 1)), actions), np.log(density),
                               rtol=1e-5)
    samples = jax.vmap(lambda k: policy.sample(params, observation, k))(jax.random.split(jax.random.key(2), 20000))
    np.testing.assert_allclose(samples.mean(0), mean, atol=4 * 0.5 / np.sqrt(20000))
    np.testing.assert_allclose(samples.std(0), 0.5, rtol=0.03)


def test_actions_of_the_wrong_size_are_refused():
    policy = gaussian_policy(GaussianMLPPolicy(action_size=2, hidden=(4,)))
    params = policy.init(jax.random.key(0), jnp.zeros(2))
    with pytest.raises(ValueError, match="action size 2"):
        policy.log_prob(params, jnp.zeros((5, 2)), jnp.zeros((5, 3)))
