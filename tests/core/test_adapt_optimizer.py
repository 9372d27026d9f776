"""Inner loops that run an optax optimizer: meta-gradients against finite differences and against the update
equations written out by hand (not optax), the SGD case against ``lr=``, the options, and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta.core.adapt import adapt
from gradcheck import finite_difference_grad, regression_task, tiny_mlp

LR, MOMENTUM = 0.1, 0.9
ADAM = dict(learning_rate=0.05, b1=0.9, b2=0.99, eps=1e-8)


def momentum_loop(grad_fn, params, steps):
    """SGD with heavy-ball momentum, written out: t_j = g_j + mu t_{j-1}, phi_{j+1} = phi_j - lr t_j."""
    trace = jax.tree.map(jnp.zeros_like, params)
    for _ in range(steps):
        g = grad_fn(params)
        trace = jax.tree.map(lambda t, gi: gi + MOMENTUM * t, trace, g)
        params = jax.tree.map(lambda p, t: p - LR * t, params, trace)
    return params


def adam_loop(grad_fn, params, steps, lr=ADAM["learning_rate"], b1=ADAM["b1"], b2=ADAM["b2"], eps=ADAM["eps"]):
    """Adam, written out: bias-corrected moments, phi_{j+1} = phi_j - lr m_hat / (sqrt(v_hat) + eps)."""
    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    for t in range(1, steps + 1):
        g = grad_fn(params)
        m = jax.tree.map(lambda mi, gi: b1 * mi + (1 - b1) * gi, m, g)
        v = jax.tree.map(lambda vi, gi: b2 * vi + (1 - b2) * gi**2, v, g)
        params = jax.tree.map(
            lambda p, mi, vi, t=t: p - lr * (mi / (1 - b1**t)) / (jnp.sqrt(vi / (1 - b2**t)) + eps), params, m, v)
    return params


OPTIMIZERS = {
    "momentum": (optax.sgd(LR, momentum=MOMENTUM), momentum_loop),
    "adam": (optax.adam(**ADAM), adam_loop),
}


def _problem(seed=0):
    params, apply = tiny_mlp(jax.random.key(seed))
    return params, jaxmeta.regression_loss(apply), regression_task(jax.random.key(seed + 100))


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_meta_gradient_through_the_optimizer_matches_its_equations_and_finite_differences(name, steps):
    params, loss_fn, task = _problem()
    optimizer, loop = OPTIMIZERS[name]
    learner = jaxmeta.maml(loss_fn, inner_optimizer=optimizer, inner_steps=steps)
    grads, metrics = learner.task_grad(params, task, jax.random.key(0))

    def support_grad(p):
        return jax.grad(lambda q: loss_fn(q, task.support, key=None)[0])(p)

    def explicit_meta_loss(theta):
        return loss_fn(loop(support_grad, theta, steps), task.query, key=None)[0]

    def library_meta_loss(theta):
        return loss_fn(learner.adapt(theta, task.support, key=jax.random.key(0)).params, task.query, key=None)[0]

    adapted = learner.adapt(params, task.support, key=jax.random.key(0)).params
    chex.assert_trees_all_close(adapted, jax.jit(loop, static_argnums=(0, 2))(support_grad, params, steps),
                                rtol=1e-12)
    chex.assert_trees_all_close(grads, jax.jit(jax.grad(explicit_meta_loss))(params), rtol=1e-10, atol=1e-14)
    chex.assert_trees_all_close(grads, finite_difference_grad(library_meta_loss, params), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(metrics["loss"], jax.jit(explicit_meta_loss)(params), rtol=1e-12)


def test_a_stateful_optimizer_changes_the_meta_gradient():
    """The state is differentiated through: Adam's meta-gradient is not SGD's, nor that of a stateless Adam step."""
    params, loss_fn, task = _problem(1)
    adam, _ = jaxmeta.maml(loss_fn, inner_optimizer=optax.adam(**ADAM), inner_steps=3).task_grad(
        params, task, jax.random.key(0))
    sgd, _ = jaxmeta.maml(loss_fn, inner_lr=ADAM["learning_rate"], inner_steps=3).task_grad(
        params, task, jax.random.key(0))
    assert not np.allclose(jax.flatten_util.ravel_pytree(adam)[0], jax.flatten_util.ravel_pytree(sgd)[0])


@pytest.mark.parametrize("lr", [0.3, "tree"])
def test_optax_sgd_gives_the_lr_path(lr):
    params, loss_fn, task = _problem(2)
    if lr == "tree":  # a fixed per-parameter rate tree, as optax.sgd's learning rate cannot be one: scale it
        rates = jax.tree.map(lambda p: jnp.full_like(p, 0.2), params)
        by_lr = jaxmeta.maml(loss_fn, inner_lr=rates, inner_steps=3)
        by_optimizer = jaxmeta.maml(loss_fn, inner_lr=rates, inner_optimizer=optax.sgd(1.0), inner_steps=3)
    else:
        by_lr = jaxmeta.maml(loss_fn, inner_lr=lr, inner_steps=3)
        by_optimizer = jaxmeta.maml(loss_fn, inner_optimizer=optax.sgd(lr), inner_steps=3)
    expected, expected_metrics = by_lr.task_grad(params, task, jax.random.key(0))
    grads, metrics = by_optimizer.task_grad(params, task, jax.random.key(0))
    chex.assert_trees_all_close(grads, expected, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(metrics["loss"], expected_metrics["loss"], rtol=1e-14)


def test_first_order_with_an_optimizer_makes_the_inner_jacobian_identity():
    params, loss_fn, task = _problem(3)
    learner = jaxmeta.fomaml(loss_fn, inner_optimizer=optax.adam(**ADAM), inner_steps=3)
    grads, _ = learner.task_grad(params, task, jax.random.key(0))
    phi = learner.adapt(params, task.support, key=jax.random.key(0)).params
    chex.assert_trees_all_close(grads, jax.grad(lambda p: loss_fn(p, task.query, key=None)[0])(phi), rtol=1e-12)


def test_remat_mask_and_observe_work_with_an_optimizer():
    params, loss_fn, task = _problem(4)
    optimizer = optax.adam(**ADAM)

    def meta_loss(theta, **options):
        phi = adapt(loss_fn, theta, task.support, optimizer=optimizer, steps=3, key=jax.random.key(0), **options)
        return loss_fn(phi.params, task.query, key=None)[0]

    chex.assert_trees_all_close(jax.grad(meta_loss)(params, remat=True), jax.grad(meta_loss)(params), rtol=1e-12)

    head = lambda path: "[1]" in path  # noqa: E731  (the output layer of the two-layer MLP)
    result = adapt(loss_fn, params, task.support, optimizer=optimizer, steps=3, key=jax.random.key(0), mask=head)
    chex.assert_trees_all_equal(result.params[0], params[0])
    assert not np.allclose(result.params[1]["w"], params[1]["w"])
    support_grad = lambda p: jax.grad(lambda q: loss_fn(q, task.support, key=None)[0])(p)  # noqa: E731
    head_only = adam_loop(lambda h: support_grad([params[0], h])[1], params[1], 3)
    chex.assert_trees_all_close(result.params[1], head_only, rtol=1e-12)

    observed = adapt(loss_fn, params, task.support, optimizer=optimizer, steps=3, key=jax.random.key(0),
                     observe=lambda p: p).observed
    for j in range(4):
        chex.assert_trees_all_close(jax.tree.map(lambda x, j=j: x[j], observed), adam_loop(support_grad, params, j),
                                    rtol=1e-12)


def test_given_state_continues_the_optimizer():
    """Two calls of 2 steps, the second from the first's final state, make the same 4 steps as one call."""
    params, loss_fn, task = _problem(5)
    optimizer = optax.adam(**ADAM)
    run = lambda p, steps, state=None: adapt(  # noqa: E731
        loss_fn, p, task.support, optimizer=optimizer, opt_state=state, steps=steps, key=jax.random.key(0))
    first = run(params, 2)
    second = run(first.params, 2, first.opt_state)
    chex.assert_trees_all_close(second.params, run(params, 4).params, rtol=1e-12)


def test_minibatches_give_each_step_its_own_batch():
    params, loss_fn, task = _problem(6)
    x, y = task.support  # 5 examples: steps see [0:2], [2:4], [3:5]
    batches = (jnp.stack([x[0:2], x[2:4], x[3:5]]), jnp.stack([y[0:2], y[2:4], y[3:5]]))
    result = adapt(loss_fn, params, batches, lr=0.1, steps=3, key=jax.random.key(0), minibatches=True)
    expected = params
    for j in range(3):
        g = jax.grad(lambda p, j=j: loss_fn(p, (batches[0][j], batches[1][j]), key=None)[0])(expected)
        expected = jax.tree.map(lambda p, gi: p - 0.1 * gi, expected, g)
    chex.assert_trees_all_close(result.params, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="leading axis of 4"):
        adapt(loss_fn, params, batches, lr=0.1, steps=4, key=jax.random.key(0), minibatches=True)


def test_per_step_parameters_give_step_j_its_own_slice():
    x = jnp.linspace(-1.0, 1.0, 6)[:, None]
    loss_fn = jaxmeta.regression_loss(lambda p, x: (x @ p["w"]) * p["gain"])
    params = {"w": jnp.array([0.3]), "gain": jnp.array([[1.0], [2.0], [3.0]])}  # steps 0, 1, 2
    result = adapt(loss_fn, params, (x, jnp.sin(x)), lr=0.1, steps=2, key=jax.random.key(0),
                   per_step=lambda path: "gain" in path, observe=lambda p: p["gain"])
    w = params["w"]
    for gain in (1.0, 2.0):
        w = w - 0.1 * jax.grad(lambda w, gain=gain: jnp.mean(((x @ w) * gain - jnp.sin(x)) ** 2))(w)
    np.testing.assert_allclose(result.params["w"], w, rtol=1e-12)
    np.testing.assert_array_equal(result.params["gain"], [3.0])  # the view after step 2
    np.testing.assert_array_equal(result.observed[:, 0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"\['gain'\] has 3 values; running 4 inner steps needs 5"):
        adapt(loss_fn, params, (x, x), lr=0.1, steps=4, key=jax.random.key(0), per_step=lambda path: "gain" in path)


def test_bad_optimizers_and_states_are_refused_with_the_fix():
    params, loss_fn, task = _problem(7)
    run = lambda **kw: adapt(loss_fn, params, task.support, steps=1, key=jax.random.key(0), **kw)  # noqa: E731
    with pytest.raises(TypeError, match=r"factory: call it.*optimizer=adam\(1e-3\)"):
        run(optimizer=optax.adam)
    with pytest.raises(TypeError, match="must be an optax.GradientTransformation"):
        run(optimizer=(lambda p: None, lambda g, s, p: (g, s)))
    with pytest.raises(TypeError, match="needs lr= .* or optimizer="):
        run()
    with pytest.raises(ValueError, match="state does not match the parameters"):
        run(optimizer=optax.adam(1e-3), opt_state=optax.adam(1e-3).init({"w": jnp.zeros(3)}))
    with pytest.raises(ValueError, match="cannot initialise its state for these parameters"):
        run(optimizer=optax.masked(optax.adam(1e-3), {"w": True}))
    with pytest.raises(TypeError, match="maml needs inner_lr= .* or inner_optimizer="):
        jaxmeta.maml(loss_fn)
    with pytest.raises(TypeError, match="must be an optax.GradientTransformation"):
        jaxmeta.reptile(loss_fn, inner_optimizer="adam")


def test_adam_through_a_dead_relu_needs_eps_root():
    """A gradient entry that is exactly zero makes d sqrt(v) / dv infinite: NaN without eps_root, finite with it."""
    params = {"w": jnp.array([[1.0, -1.0]]), "v": jnp.array([[1.0], [1.0]])}  # the second unit is dead for x > 0
    loss_fn = jaxmeta.regression_loss(lambda p, x: jax.nn.relu(x @ p["w"]) @ p["v"])
    x = jnp.linspace(0.1, 1.0, 4)[:, None]
    task = jaxmeta.Task((x, 2 * x), (x, 3 * x))

    def meta_gradient(eps_root):
        learner = jaxmeta.maml(loss_fn, inner_optimizer=optax.adam(0.1, eps_root=eps_root), inner_steps=2)
        return jax.flatten_util.ravel_pytree(learner.task_grad(params, task, jax.random.key(0))[0])[0]

    assert np.isnan(meta_gradient(0.0)).any()
    assert np.isfinite(meta_gradient(1e-8)).all()
