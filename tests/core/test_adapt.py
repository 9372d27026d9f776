"""The inner loop: closed forms on linear regression, options, and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmeta
from jaxmeta.core.adapt import adapt, gradient_step
from jaxmeta.core.losses import regression_loss

linear = regression_loss(lambda w, x: x @ w)


def _linear_task(key, n=6, d=3):
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (n, d), jnp.float64)
    return x, jax.random.normal(ky, (n,), jnp.float64)


def _grad_and_hessian(x, y, w):
    n = x.shape[0]
    return 2.0 / n * x.T @ (x @ w - y), 2.0 / n * x.T @ x


def test_adapt_matches_closed_form_gradient_descent():
    x, y = _linear_task(jax.random.key(0))
    w = jnp.array([0.3, -0.2, 0.5])
    alpha, steps = 0.05, 4
    expected = w
    for _ in range(steps):
        expected = expected - alpha * _grad_and_hessian(x, y, expected)[0]
    result = adapt(linear, w, (x, y), lr=alpha, steps=steps, key=jax.random.key(1))
    np.testing.assert_allclose(result.params, expected, rtol=1e-12)
    assert result.support_losses.shape == (steps,)
    np.testing.assert_allclose(result.support_losses[0], jnp.mean((x @ w - y) ** 2), rtol=1e-12)


@pytest.mark.parametrize("steps", [1, 3])
def test_maml_meta_gradient_equals_closed_form(steps):
    """For a quadratic loss, d phi_k / d theta = (I - alpha H_s)^k, so g = (I - alpha H_s)^k grad L_q(phi_k)."""
    xs, ys = _linear_task(jax.random.key(2))
    xq, yq = _linear_task(jax.random.key(3), n=9)
    theta = jnp.array([0.1, 0.4, -0.3])
    alpha = 0.1
    phi = theta
    for _ in range(steps):
        phi = phi - alpha * _grad_and_hessian(xs, ys, phi)[0]
    _, h_support = _grad_and_hessian(xs, ys, theta)
    g_query, _ = _grad_and_hessian(xq, yq, phi)
    jacobian = np.linalg.matrix_power(np.eye(3) - alpha * np.asarray(h_support), steps)
    expected = jacobian @ np.asarray(g_query)

    learner = jaxmeta.maml(linear, inner_lr=alpha, inner_steps=steps)
    grads, metrics = learner.task_grad(theta, jaxmeta.Task((xs, ys), (xq, yq)), jax.random.key(4))
    np.testing.assert_allclose(grads, expected, rtol=1e-10)
    np.testing.assert_allclose(metrics["loss"], jnp.mean((xq @ phi - yq) ** 2), rtol=1e-12)


def test_per_parameter_learning_rates():
    x, y = _linear_task(jax.random.key(5))
    params = {"a": jnp.array([0.1, 0.2]), "b": jnp.array(0.3)}
    loss_fn = regression_loss(lambda p, x: x[:, :2] @ p["a"] + p["b"] * x[:, 2])
    lrs = {"a": jnp.array([0.01, 0.2]), "b": jnp.array(0.05)}
    new, loss = gradient_step(loss_fn, params, (x, y), lr=lrs, key=jax.random.key(0))
    g = jax.grad(lambda p: loss_fn(p, (x, y), key=None)[0])(params)
    chex.assert_trees_all_close(new, jax.tree.map(lambda p, a, gi: p - a * gi, params, lrs, g), rtol=1e-12)


def test_first_order_switch_makes_inner_jacobian_identity():
    xs, ys = _linear_task(jax.random.key(6))
    xq, yq = _linear_task(jax.random.key(7))
    theta = jnp.array([0.2, -0.1, 0.0])

    def meta_loss(theta, first_order):
        phi = adapt(linear, theta, (xs, ys), lr=0.1, steps=3, key=jax.random.key(0), first_order=first_order).params
        return linear(phi, (xq, yq), key=None)[0]

    phi = adapt(linear, theta, (xs, ys), lr=0.1, steps=3, key=jax.random.key(0)).params
    query_grad = jax.grad(lambda p: linear(p, (xq, yq), key=None)[0])(phi)
    np.testing.assert_allclose(jax.grad(meta_loss)(theta, True), query_grad, rtol=1e-12)
    assert not np.allclose(jax.grad(meta_loss)(theta, False), query_grad)


def test_remat_gives_the_same_meta_gradient():
    xs, ys = _linear_task(jax.random.key(8))
    theta = jnp.array([0.2, -0.1, 0.3])

    def meta_loss(theta, remat):
        phi = adapt(linear, theta, (xs, ys), lr=0.1, steps=5, key=jax.random.key(0), remat=remat).params
        return jnp.sum(phi**3)

    np.testing.assert_allclose(jax.grad(meta_loss)(theta, True), jax.grad(meta_loss)(theta, False), rtol=1e-12)


@pytest.mark.parametrize("steps", [3, 7])  # below and above UNROLL_STEPS: unrolled and looped by default
def test_unrolling_changes_nothing_but_the_program(steps):
    xs, ys = _linear_task(jax.random.key(9))
    theta = jnp.array([0.3, 0.1, -0.2])

    def meta_loss(theta, unroll):
        phi = adapt(linear, theta, (xs, ys), lr=0.1, steps=steps, key=jax.random.key(0), unroll=unroll).params
        return jnp.sum(jnp.sin(phi))

    expected = jax.grad(meta_loss)(theta, None)
    for unroll in (True, 1, 2):
        np.testing.assert_allclose(jax.grad(meta_loss)(theta, unroll), expected, rtol=1e-12)
    program = jax.jit(jax.grad(meta_loss), static_argnums=1).lower(theta, None).as_text()
    assert ("stablehlo.while" in program) == (steps > jaxmeta.core.adapt.UNROLL_STEPS)


@pytest.mark.parametrize("mask", [lambda path: "head" in path, {"body": False, "head": True}])
def test_mask_adapts_only_selected_parameters(mask):
    x, y = _linear_task(jax.random.key(9))
    params = {"body": jnp.array([0.5, -0.5, 0.2]), "head": jnp.array(1.5)}
    loss_fn = regression_loss(lambda p, x: jnp.tanh(x @ p["body"]) * p["head"])
    result = adapt(loss_fn, params, (x, y), lr=0.1, steps=3, key=jax.random.key(0), mask=mask)
    np.testing.assert_array_equal(result.params["body"], params["body"])
    assert not np.allclose(result.params["head"], params["head"])


def test_observe_sees_every_iterate():
    x, y = _linear_task(jax.random.key(10))
    w = jnp.zeros(3)
    result = adapt(linear, w, (x, y), lr=0.1, steps=3, key=jax.random.key(0), observe=lambda p: p)
    assert result.observed.shape == (4, 3)
    for j in range(1, 4):
        partial = adapt(linear, w, (x, y), lr=0.1, steps=j, key=jax.random.key(0)).params
        np.testing.assert_allclose(result.observed[j], partial, rtol=1e-12)
    np.testing.assert_array_equal(result.observed[0], w)


def test_learning_rate_tree_must_match_parameters():
    params = {"a": jnp.zeros(2), "b": jnp.zeros(())}
    batch = (jnp.zeros((3, 3)), jnp.zeros(3))
    loss_fn = regression_loss(lambda p, x: x[:, :2] @ p["a"] + p["b"])
    with pytest.raises(ValueError, match="learning-rate tree does not match the parameters"):
        adapt(loss_fn, params, batch, lr={"a": jnp.zeros(2)}, steps=1, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"\['a'\] has shape \(3,\)"):
        adapt(loss_fn, params, batch, lr={"a": jnp.zeros(3), "b": 0.1}, steps=1, key=jax.random.key(0))


@pytest.mark.parametrize("steps, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_non_positive_or_non_integer_steps_are_rejected(steps, error):
    with pytest.raises(error, match="steps"):
        adapt(linear, jnp.zeros(3), _linear_task(jax.random.key(0)), lr=0.1, steps=steps, key=jax.random.key(0))
    with pytest.raises(error, match="inner_steps"):
        jaxmeta.maml(linear, inner_lr=0.1, inner_steps=steps)


def test_non_positive_learning_rate_and_empty_mask_are_rejected():
    with pytest.raises(ValueError, match="must be positive, got -0.1"):
        jaxmeta.maml(linear, inner_lr=-0.1)
    with pytest.raises(ValueError, match="selects none of the parameters"):
        adapt(linear, jnp.zeros(3), _linear_task(jax.random.key(0)), lr=0.1, steps=1,
              key=jax.random.key(0), mask=lambda path: False)
