"""jaxmeta.rl.trpo: the forward-over-reverse KL-Hessian-vector product equals the dense Hessian times the vector,
and the line search never accepts a step outside the KL bound (nor one that does not lower the loss)."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.rl import GaussianMLPPolicy, gaussian_kl, gaussian_log_prob, gaussian_policy, hessian_vector_product
from jaxmeta.rl import trpo_update


def tiny_policy():
    module = GaussianMLPPolicy(action_size=2, hidden=(3,), init_std=0.7)
    policy = gaussian_policy(module)
    params = jax.tree.map(lambda x: x.astype(jnp.float64), policy.init(jax.random.key(0), jnp.zeros(2)))
    observations = jax.random.normal(jax.random.key(1), (6, 2), jnp.float64)
    return policy, params, observations


def test_the_kl_hessian_vector_product_is_the_dense_hessian_times_the_vector():
    policy, params, observations = tiny_policy()
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    moved = flat + 0.1 * jax.random.normal(jax.random.key(2), flat.shape, jnp.float64)  # away from KL's minimum
    kl = lambda v: jnp.mean(policy.kl(params, unravel(v), observations))  # noqa: E731
    v = jax.random.normal(jax.random.key(3), flat.shape, jnp.float64)
    np.testing.assert_allclose(hessian_vector_product(kl, moved)(v), jax.hessian(kl)(moved) @ v, rtol=1e-10,
                               atol=1e-12)


def test_the_gaussian_kl_is_the_expected_log_ratio():
    mean_p, log_std_p = jnp.array([0.3, -1.0]), jnp.array([-0.2, 0.4])
    mean_q, log_std_q = jnp.array([0.0, -0.5]), jnp.array([0.1, 0.2])
    samples = mean_p + jnp.exp(log_std_p) * jax.random.normal(jax.random.key(0), (200000, 2))
    ratios = gaussian_log_prob(mean_p, log_std_p, samples) - gaussian_log_prob(mean_q, log_std_q, samples)
    assert abs(float(ratios.mean() - gaussian_kl(mean_p, log_std_p, mean_q, log_std_q))) < \
        4 * float(ratios.std()) / np.sqrt(200000)
    assert float(gaussian_kl(mean_p, log_std_p, mean_p, log_std_p)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("seed", range(4))
def test_no_accepted_step_leaves_the_trust_region_even_where_the_quadratic_model_is_wrong(seed):
    target = 3.0 * jax.random.normal(jax.random.key(seed), (3,), jnp.float64)
    loss = lambda w: jnp.sum((w - target) ** 2)  # noqa: E731
    kl = lambda w: 0.5 * jnp.sum(w ** 2) + 50.0 * jnp.sum(w ** 4)  # noqa: E731  the quartic: the model underestimates
    w, info = trpo_update(lambda w: (loss(w), kl(w)), jnp.zeros(3, jnp.float64), max_kl=0.01)
    assert float(kl(w)) <= 0.01 and float(info["kl"]) == pytest.approx(float(kl(w)))
    assert float(loss(w)) < float(loss(jnp.zeros(3))) and 0 < int(info["backtracks"]) < 15


def test_at_a_minimum_no_step_is_taken():
    loss, kl = (lambda w: jnp.sum(w ** 2)), (lambda w: 0.5 * jnp.sum(w ** 2))
    w, info = trpo_update(lambda w: (loss(w), kl(w)), jnp.zeros(2), max_kl=0.01)
    np.testing.assert_array_equal(w, 0.0)
    assert int(info["backtracks"]) == 15 and float(info["kl"]) == 0.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_kl > 0"):
        trpo_update(lambda w: (w @ w, w @ w), jnp.zeros(2), max_kl=-0.01)
