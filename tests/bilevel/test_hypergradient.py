"""The four hypergradients against closed forms on a quadratic bilevel problem (float64), DARTS's finite
difference against its O(epsilon^2) error on a cubic one, and the errors on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta.bilevel import (BilevelProblem, finite_difference, first_order, hypergradient, implicit,
                             make_outer_step, unrolled)

N, M = 4, 3  # inner and outer dimensions (different, so swapped variables are caught)


@pytest.fixture(scope="module")
def quadratic():
    r"""L_train = w'Aw/2 - w'B a + a'Ca/2,  L_val = (w-c)'D(w-c)/2 + w'G a + e'a + a'Fa/2, as NumPy matrices."""
    rng = np.random.default_rng(0)

    def spd(n, low, high):
        q, _ = np.linalg.qr(rng.normal(size=(n, n)))
        return q @ np.diag(rng.uniform(low, high, n)) @ q.T

    m = dict(A=spd(N, 1.0, 2.0), B=rng.normal(size=(N, M)), C=spd(M, 1.0, 2.0), D=spd(N, 0.5, 1.5),
             G=rng.normal(size=(N, M)), F=spd(M, 0.5, 1.0), c=rng.normal(size=N), e=rng.normal(size=M),
             w=rng.normal(size=N), a=rng.normal(size=M))
    j = {k: jnp.asarray(v) for k, v in m.items()}
    problem = BilevelProblem(
        inner_loss=lambda w, a, batch, *, key: (0.5 * w @ j["A"] @ w - w @ j["B"] @ a + 0.5 * a @ j["C"] @ a, {}),
        outer_loss=lambda w, a, batch, *, key: (0.5 * (w - j["c"]) @ j["D"] @ (w - j["c"]) + w @ j["G"] @ a
                                                + j["e"] @ a + 0.5 * a @ j["F"] @ a, {}),
    )
    return m, problem


def unrolled_closed_form(m, steps, lr):
    """w_k = M^k w + sum_{j<k} M^j lr B a with M = I - lr A; the total derivative of L_val(w_k(a), a)."""
    mat = np.eye(N) - lr * m["A"]
    jac = sum(np.linalg.matrix_power(mat, j) for j in range(steps)) @ (lr * m["B"])  # dw_k/da
    w_k = np.linalg.matrix_power(mat, steps) @ m["w"] + jac @ m["a"]
    return jac.T @ grad_w_val(m, w_k) + direct(m, w_k), w_k


def grad_w_val(m, w):
    return m["D"] @ (w - m["c"]) + m["G"] @ m["a"]


def direct(m, w):  # the partial derivative of L_val in a
    return m["G"].T @ w + m["e"] + m["F"] @ m["a"]


def call(fn, m):
    return fn(jnp.asarray(m["a"]), jnp.asarray(m["w"]), None, None, jax.random.key(0))


@pytest.mark.parametrize("steps, lr", [(1, 0.3), (4, 0.2)])
def test_unrolled_matches_the_closed_form(quadratic, steps, lr):
    m, problem = quadratic
    expected, w_k = unrolled_closed_form(m, steps, lr)
    result = call(unrolled(problem, steps=steps, lr=lr), m)
    np.testing.assert_allclose(result.grad, expected, rtol=1e-10)
    np.testing.assert_allclose(result.inner, w_k, rtol=1e-10)


def test_unrolled_through_an_optax_optimizer_equals_gradient_descent_with_its_rate(quadratic):
    m, problem = quadratic
    expected, _ = unrolled_closed_form(m, 3, 0.25)
    np.testing.assert_allclose(call(unrolled(problem, steps=3, optimizer=optax.sgd(0.25)), m).grad, expected,
                               rtol=1e-10)


def test_implicit_matches_the_bilevel_hypergradient_at_the_inner_solution(quadratic):
    """Converged inner loop (contraction 1/2 per step), CG for N steps: the implicit-function theorem exactly."""
    m, problem = quadratic
    solve = np.linalg.solve(m["A"], m["B"])  # dw*/da
    w_star = solve @ m["a"]
    expected = solve.T @ grad_w_val(m, w_star) + direct(m, w_star)
    result = call(implicit(problem, steps=200, lr=0.5, cg_steps=N), m)
    np.testing.assert_allclose(result.inner, w_star, rtol=1e-10)
    np.testing.assert_allclose(result.grad, expected, rtol=1e-8)


def test_implicit_evaluates_its_formula_at_an_unconverged_point_and_damping_enters_the_solve(quadratic):
    m, problem = quadratic
    _, w_k = unrolled_closed_form(m, 2, 0.3)  # implicit's own two steps reach the same point
    for damping in (0.0, 0.5):
        v = np.linalg.solve(m["A"] + damping * np.eye(N), grad_w_val(m, w_k))
        result = call(implicit(problem, steps=2, lr=0.3, cg_steps=N, damping=damping), m)
        np.testing.assert_allclose(result.grad, direct(m, w_k) + m["B"].T @ v, rtol=1e-9)


def test_finite_difference_is_exact_on_a_quadratic_up_to_rounding(quadratic):
    """L_train is quadratic, so its gradient is linear in w and the central difference has no truncation error."""
    m, problem = quadratic
    expected, w_1 = unrolled_closed_form(m, 1, 0.3)
    result = call(finite_difference(problem, lr=0.3), m)
    np.testing.assert_allclose(result.inner, w_1, rtol=1e-12)
    np.testing.assert_allclose(result.grad, expected, rtol=1e-8)


def test_finite_difference_error_is_second_order_in_its_radius():
    """A cubic coupling w^3 in L_train: the error against the exact one-step hypergradient scales as eps^2."""
    rng = np.random.default_rng(1)
    b = jnp.asarray(rng.normal(size=(N, M)))
    c = jnp.asarray(rng.normal(size=N))
    problem = BilevelProblem(
        inner_loss=lambda w, a, batch, *, key: (0.5 * w @ w - (w ** 3 / 3) @ b @ a, {}),
        outer_loss=lambda w, a, batch, *, key: (0.5 * jnp.sum((w - c) ** 2) + 0.1 * a @ a, {}),
    )
    m = {"a": rng.normal(size=M), "w": rng.normal(size=N)}
    exact = call(unrolled(problem, steps=1, lr=0.2), m).grad
    errors = [float(jnp.linalg.norm(call(finite_difference(problem, lr=0.2, epsilon=eps), m).grad - exact))
              for eps in (0.04, 0.02, 0.01)]
    assert 1e-9 < errors[-1] < 1e-3
    np.testing.assert_allclose([errors[0] / errors[1], errors[1] / errors[2]], [4.0, 4.0], rtol=1e-3)


def test_finite_difference_has_no_correction_where_the_validation_gradient_vanishes():
    problem = BilevelProblem(lambda w, a, batch, *, key: ((w - a) ** 2, {}),
                             lambda w, a, batch, *, key: (jnp.asarray(0.0) * w + a ** 2, {}))
    result = finite_difference(problem, lr=0.5)(jnp.array(1.5), jnp.array(0.0), None, None, jax.random.key(0))
    assert float(result.grad) == 3.0


@pytest.mark.parametrize("steps", [0, 3])
def test_first_order_is_the_direct_derivative_at_the_reached_point(quadratic, steps):
    m, problem = quadratic
    w_k = m["w"] if steps == 0 else unrolled_closed_form(m, steps, 0.3)[1]
    result = call(first_order(problem, steps=steps, lr=0.3), m)
    np.testing.assert_allclose(result.grad, direct(m, w_k), rtol=1e-10)


def test_every_method_drives_the_same_outer_update(quadratic):
    m, problem = quadratic
    optimizer = optax.sgd(0.1)
    for name, options in [("unrolled", dict(steps=1, lr=0.3)), ("implicit", dict(steps=5, lr=0.3)),
                          ("finite-difference", dict(lr=0.3)), ("first-order", {})]:
        fn = hypergradient(name, problem, **options)
        step = jax.jit(make_outer_step(fn, optimizer))
        a = jnp.asarray(m["a"])
        new_a, _, result = step(a, optimizer.init(a), jnp.asarray(m["w"]), None, None, jax.random.key(0))
        np.testing.assert_allclose(new_a, a - 0.1 * call(fn, m).grad, rtol=1e-12, err_msg=name)


def test_bad_input_gets_clear_errors(quadratic):
    m, problem = quadratic
    fn = unrolled(problem, steps=1, lr=0.1)
    with pytest.raises(ValueError, match="order"):  # inner and outer swapped
        fn(jnp.asarray(m["w"]), jnp.asarray(m["a"]), None, None, jax.random.key(0))
    with pytest.raises(TypeError, match="floating-point"):
        fn(jnp.arange(M), jnp.asarray(m["w"]), None, None, jax.random.key(0))
    with pytest.raises(ValueError, match="Unknown hypergradient method"):
        hypergradient("second-order", problem)
    with pytest.raises(ValueError, match="lr"):
        finite_difference(problem, lr=0.0)
    with pytest.raises(ValueError, match="steps"):
        first_order(problem, steps=-1)


def test_an_empty_validation_set_is_refused():
    def loss(w, a, batch, *, key):
        x, y = batch
        return jnp.mean((x @ w - y) ** 2) + a @ a, {}

    fn = implicit(BilevelProblem(loss, loss), steps=1, lr=0.1)
    train = (jnp.ones((3, 2)), jnp.ones(3))
    with pytest.raises(ValueError, match="validation set is empty"):
        fn(jnp.ones(2), jnp.ones(2), train, (jnp.ones((0, 2)), jnp.ones(0)), jax.random.key(0))
