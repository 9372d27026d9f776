"""iMAML: the implicit meta-gradient against its closed form on quadratics, CG convergence, batching."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta import Task
from jaxmeta.algorithms.imaml import imaml


def quadratic_loss(w, batch, *, key):
    """0.5 w^T M w - v^T w for a batch (M, v)."""
    del key
    matrix, vector = batch
    return 0.5 * w @ matrix @ w - vector @ w, {}


def _problem(n=4, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(np.linspace(0.5, 3.0, n)) @ q.T
    b, c, theta = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    return a, b, c, theta, Task(support=(a, b), query=(np.eye(n), c))


def _closed_form(a, b, c, theta, lam):
    n = len(theta)
    phi = np.linalg.solve(a + lam * np.eye(n), b + lam * theta)  # argmin L_s + lam/2 |phi - theta|^2
    return phi, np.linalg.solve(np.eye(n) + a / lam, phi - c)     # (I + A/lam)^-1 grad L_q(phi)


def test_implicit_gradient_equals_the_closed_form_on_a_quadratic():
    a, b, c, theta, task = _problem()
    lam = 2.0
    phi, expected = _closed_form(a, b, c, theta, lam)
    learner = imaml(quadratic_loss, inner_lr=0.2, inner_steps=200, lam=lam, cg_steps=4)
    np.testing.assert_allclose(learner.adapt(theta, task.support, key=jax.random.key(0)).params, phi, rtol=1e-10)
    grads, metrics = learner.task_grad(theta, task, jax.random.key(0))
    np.testing.assert_allclose(grads, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(metrics["support_loss"], quadratic_loss(theta, task.support, key=None)[0])



def test_an_inner_optimizer_solves_the_proximal_problem_and_gives_the_implicit_gradient():
    a, b, c, theta, task = _problem(seed=2)
    lam = 2.0
    phi, expected = _closed_form(a, b, c, theta, lam)
    momentum = optax.sgd(0.1, momentum=0.5)
    learner = imaml(quadratic_loss, inner_optimizer=momentum, inner_steps=120, lam=lam, cg_steps=4)
    np.testing.assert_allclose(learner.adapt(theta, task.support, key=jax.random.key(0)).params, phi, rtol=1e-10)
    np.testing.assert_allclose(learner.task_grad(theta, task, jax.random.key(0))[0], expected, rtol=1e-9,
                               atol=1e-12)
    # The first steps are heavy-ball steps on the proximal objective: t = g + 0.5 t, w <- w - 0.1 t.
    w, trace = theta, np.zeros_like(theta)
    for _ in range(3):
        trace = a @ w - b + lam * (w - theta) + 0.5 * trace
        w = w - 0.1 * trace
    short = imaml(quadratic_loss, inner_optimizer=momentum, inner_steps=3, lam=lam)
    np.testing.assert_allclose(short.adapt(theta, task.support, key=jax.random.key(0)).params, w, rtol=1e-12)


def test_implicit_gradient_is_the_limit_of_differentiating_through_the_inner_loop():
    a, b, c, theta, task = _problem(seed=1)
    lam = 1.5
    learner = imaml(quadratic_loss, inner_lr=0.2, inner_steps=300, lam=lam, cg_steps=4)

    def unrolled(theta):  # the same proximal inner loop, differentiated step by step
        def loss(w, batch, *, key):
            return quadratic_loss(w, batch, key=key)[0] + 0.5 * lam * jnp.sum((w - theta) ** 2), {}

        phi = jaxmeta.adapt(loss, theta, task.support, lr=0.2, steps=300, key=jax.random.key(0)).params
        return quadratic_loss(phi, task.query, key=None)[0]

    np.testing.assert_allclose(learner.task_grad(theta, task, jax.random.key(0))[0], jax.grad(unrolled)(theta),
                               rtol=1e-8)


def test_the_error_shrinks_as_conjugate_gradient_iterations_grow():
    a, b, c, theta, task = _problem(n=6, seed=2)
    lam = 0.5  # strong curvature relative to lam, so one iteration is far from the answer
    _, expected = _closed_form(a, b, c, theta, lam)
    errors = []
    for cg_steps in (1, 2, 4, 6):
        learner = imaml(quadratic_loss, inner_lr=0.2, inner_steps=400, lam=lam, cg_steps=cg_steps)
        grads, _ = learner.task_grad(theta, task, jax.random.key(0))
        errors.append(np.linalg.norm(grads - expected) / np.linalg.norm(expected))
    assert errors[0] > 0.01 and all(later < earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 1e-8


def test_meta_step_batches_tasks_and_matches_the_mean_of_task_gradients():
    tasks = [_problem(seed=s)[-1] for s in range(3)]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *tasks)
    theta = jnp.asarray(_problem()[3])
    learner = imaml(quadratic_loss, inner_lr=0.2, inner_steps=50, lam=2.0, cg_steps=4)
    step = jaxmeta.make_meta_step(learner, optax.sgd(1.0))
    state = jaxmeta.init_state(learner, optax.sgd(1.0), theta)
    new_state, _ = step(state, batch, jax.random.key(0))
    keys = jax.random.split(jax.random.key(0), 3)
    mean = np.mean([learner.task_grad(theta, t, k)[0] for t, k in zip(tasks, keys)], axis=0)
    np.testing.assert_allclose(new_state.meta_params, theta - mean, rtol=1e-10)


@pytest.mark.parametrize("kwargs, message", [
    ({"lam": 0.0}, "lam must be a positive number"),
    ({"cg_steps": 0}, "cg_steps"),
    ({"inner_lr": -1.0}, "inner learning rate must be positive"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        imaml(quadratic_loss, **{"inner_lr": 0.1, **kwargs})


@pytest.mark.long
@pytest.mark.parametrize("conv", ["xla", "im2col"])
def test_imaml_runs_through_the_conv4_with_forward_over_reverse_products(conv):
    from jaxmeta.models import Conv4, functional

    model = Conv4(num_classes=2, features=3, blocks=2, conv=conv)
    params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"]
    params = jax.tree.map(lambda p: p.astype(jnp.float64), params)  # one dtype throughout, as in a float32 run
    loss_fn = jaxmeta.classification_loss(functional(model))
    x = jax.random.uniform(jax.random.key(1), (2, 4, 8, 8, 1), jnp.float64)
    task = Task(support=(x[0], jnp.array([0, 1, 0, 1])), query=(x[1], jnp.array([1, 0, 1, 0])))
    grads, metrics = imaml(loss_fn, inner_lr=0.1, inner_steps=3, lam=1.0, cg_steps=3).task_grad(
        params, task, jax.random.key(2))
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads)) and np.isfinite(metrics["loss"])
