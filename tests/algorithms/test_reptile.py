"""Reptile: the pseudo-gradient against its definition, batched and serial."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta.algorithms.reptile import minibatches
from gradcheck import regression_task, tiny_mlp


def _manual_sgd(loss_fn, params, batch, lr, steps):
    for _ in range(steps):
        g = jax.grad(lambda p: loss_fn(p, batch, key=None)[0])(params)
        params = jax.tree.map(lambda p, gi: p - lr * gi, params, g)
    return params


def _setup():
    params, apply = tiny_mlp(jax.random.key(0))
    loss_fn = jaxmeta.regression_loss(apply)
    tasks = [regression_task(jax.random.key(i)) for i in range(3)]
    return params, loss_fn, tasks, jax.tree.map(lambda *xs: jnp.stack(xs), *tasks)


def test_pseudo_gradient_is_theta_minus_phi():
    params, loss_fn, tasks, _ = _setup()
    learner = jaxmeta.reptile(loss_fn, inner_lr=0.1, inner_steps=4)
    g, _ = learner.task_grad(params, tasks[0], jax.random.key(0))
    phi = _manual_sgd(loss_fn, params, tasks[0].support, 0.1, 4)
    chex.assert_trees_all_close(g, jax.tree.map(lambda t, p: t - p, params, phi), rtol=1e-12)


def test_batched_update_is_mean_over_tasks():
    params, loss_fn, tasks, batch = _setup()
    learner = jaxmeta.reptile(loss_fn, inner_lr=0.1, inner_steps=3)
    epsilon = 0.5
    step = jaxmeta.make_meta_step(learner, optax.sgd(epsilon))
    state, _ = step(jaxmeta.init_state(learner, optax.sgd(epsilon), params), batch, jax.random.key(0))
    phis = [_manual_sgd(loss_fn, params, t.support, 0.1, 3) for t in tasks]
    expected = jax.tree.map(lambda t, *ps: t + epsilon * sum(p - t for p in ps) / len(ps), params, *phis)
    chex.assert_trees_all_close(state.meta_params, expected, rtol=1e-10)


def test_serial_update_visits_tasks_in_order():
    params, loss_fn, tasks, batch = _setup()
    learner = jaxmeta.reptile(loss_fn, inner_lr=0.1, inner_steps=2)
    epsilon = 0.3
    step = jaxmeta.make_meta_step(learner, optax.sgd(epsilon), serial=True)
    state, _ = step(jaxmeta.init_state(learner, optax.sgd(epsilon), params), batch, jax.random.key(0))
    theta = params
    for t in tasks:
        phi = _manual_sgd(loss_fn, theta, t.support, 0.1, 2)
        theta = jax.tree.map(lambda a, b: a + epsilon * (b - a), theta, phi)
    chex.assert_trees_all_close(state.meta_params, theta, rtol=1e-10)
    assert int(state.step) == 1


def test_inner_adam_with_beta1_zero_is_the_papers_update():
    """Nichol et al.'s inner loop: Adam with beta1 = 0, phi <- phi - lr g / (sqrt(v_hat) + eps)."""
    params, loss_fn, tasks, _ = _setup()
    lr, b2, eps, steps = 0.01, 0.999, 1e-8, 4
    learner = jaxmeta.reptile(loss_fn, inner_optimizer=optax.adam(lr, b1=0.0, b2=b2, eps=eps), inner_steps=steps)
    g, _ = learner.task_grad(params, tasks[0], jax.random.key(0))
    phi, v = params, jax.tree.map(jnp.zeros_like, params)
    for t in range(1, steps + 1):
        grad = jax.grad(lambda p: loss_fn(p, tasks[0].support, key=None)[0])(phi)
        v = jax.tree.map(lambda vi, gi: b2 * vi + (1 - b2) * gi**2, v, grad)
        phi = jax.tree.map(lambda p, gi, vi: p - lr * gi / (jnp.sqrt(vi / (1 - b2**t)) + eps), phi, grad, v)
    chex.assert_trees_all_close(g, jax.tree.map(lambda t, p: t - p, params, phi), rtol=1e-10)


def test_inner_batches_take_the_support_set_in_shuffled_passes():
    params, loss_fn, tasks, _ = _setup()
    task = tasks[0]  # 5 support examples; 3 steps of 2 take one pass (4) and the start of a second
    learner = jaxmeta.reptile(loss_fn, inner_lr=0.1, inner_steps=3, inner_batch=2)
    g, _ = learner.task_grad(params, task, jax.random.key(0))
    batch_key = jax.random.split(jax.random.key(0), 3)[2]
    batches = minibatches(task.support, 2, 3, key=batch_key)
    first_pass = np.asarray(batches[0][:2]).reshape(4, -1)
    assert len({tuple(row) for row in first_pass}) == 4  # no example twice within a pass
    phi = params
    for j in range(3):
        grad = jax.grad(lambda p: loss_fn(p, (batches[0][j], batches[1][j]), key=None)[0])(phi)
        phi = jax.tree.map(lambda p, gi: p - 0.1 * gi, phi, grad)
    chex.assert_trees_all_close(g, jax.tree.map(lambda t, p: t - p, params, phi), rtol=1e-12)
    with pytest.raises(ValueError, match="inner_batch 6 is larger than the support set"):
        jaxmeta.reptile(loss_fn, inner_lr=0.1, inner_steps=3, inner_batch=6).task_grad(params, task, jax.random.key(0))
