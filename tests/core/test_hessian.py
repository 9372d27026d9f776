"""Hessian-vector products and power iteration against explicit Hessians (float64)."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from jaxmeta.core.hessian import hvp, top_hessian_eigenvalue, tree_vdot
from gradcheck import regression_task, tiny_mlp

import jaxmeta


def _flat_loss():
    params, apply = tiny_mlp(jax.random.key(0))
    task = regression_task(jax.random.key(1))
    loss_fn = jaxmeta.regression_loss(apply)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    return params, (lambda p: loss_fn(p, task.support, key=None)[0]), flat, unravel


def test_hvp_equals_the_explicit_hessian_times_the_vector_on_an_mlp():
    params, loss, flat, unravel = _flat_loss()
    hessian = jax.hessian(lambda f: loss(unravel(f)))(flat)
    v = jax.random.normal(jax.random.key(2), flat.shape, flat.dtype)
    got = jax.flatten_util.ravel_pytree(hvp(loss, params, unravel(v)))[0]
    np.testing.assert_allclose(got, hessian @ v, rtol=1e-10, atol=1e-12)


def test_power_iteration_finds_the_eigenvalue_of_largest_magnitude():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    values = np.array([-5.0, 3.0, 2.0, 1.0, 0.5, -0.5, 0.1, 0.0])
    matrix = q @ np.diag(values) @ q.T

    def f(tree):
        return 0.5 * jnp.concatenate([tree["a"], tree["b"]]) @ matrix @ jnp.concatenate([tree["a"], tree["b"]])

    params = {"a": jnp.zeros(3), "b": jnp.zeros(5)}
    value, vector = top_hessian_eigenvalue(f, params, key=jax.random.key(0), iterations=200)
    np.testing.assert_allclose(value, -5.0, rtol=1e-8)
    v = np.concatenate([vector["a"], vector["b"]])
    np.testing.assert_allclose(abs(v @ q[:, 0]), 1.0, rtol=1e-8)
    np.testing.assert_allclose(tree_vdot(vector, vector), 1.0, rtol=1e-12)
