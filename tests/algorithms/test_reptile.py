"""Reptile: the pseudo-gradient against its definition, batched and serial."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta.algorithms.reptile import ReptileParams, minibatches
from jaxmeta.algorithms.reptile import outer_optimizer as reptile_outer_optimizer
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
        phi = jax.tree.map(lambda p, gi, vi, t=t: p - lr * gi / (jnp.sqrt(vi / (1 - b2**t)) + eps), phi, grad, v)
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
        grad = jax.grad(lambda p, j=j: loss_fn(p, (batches[0][j], batches[1][j]), key=None)[0])(phi)
        phi = jax.tree.map(lambda p, gi: p - 0.1 * gi, phi, grad)
    chex.assert_trees_all_close(g, jax.tree.map(lambda t, p: t - p, params, phi), rtol=1e-12)
    with pytest.raises(ValueError, match="inner_batch 6 is larger than the support set"):
        jaxmeta.reptile(loss_fn, inner_lr=0.1, inner_steps=3, inner_batch=6).task_grad(params, task, jax.random.key(0))


def test_a_persistent_inner_state_starts_each_task_from_the_carried_moments_and_moves_to_their_mean():
    params, loss_fn, tasks, batch = _setup()
    adam = optax.adam(0.01, b1=0.0)
    learner = jaxmeta.reptile(loss_fn, inner_optimizer=adam, inner_steps=2, persistent_inner_state=True)
    optimizer = reptile_outer_optimizer(0.5)
    state = jaxmeta.init_state(learner, optimizer, params)
    assert isinstance(state.meta_params, ReptileParams)
    step = jaxmeta.make_meta_step(learner, optimizer)
    state, _ = step(state, batch, jax.random.key(0))  # the moments now hold the first meta-step's gradients
    carried = state.meta_params.inner_state

    # One task from the carried state: Adam's v_t = b2 v_{t-1} + (1 - b2) g^2, bias-corrected with the running count.
    count = int(carried[0].count)
    assert count == 2
    phi, v = state.meta_params.params, carried[0].nu
    for t in range(count + 1, count + 3):
        g = jax.grad(lambda p: loss_fn(p, tasks[0].support, key=None)[0])(phi)
        v = jax.tree.map(lambda vi, gi: 0.999 * vi + 0.001 * gi**2, v, g)
        phi = jax.tree.map(lambda p, gi, vi, t=t: p - 0.01 * gi / (jnp.sqrt(vi / (1 - 0.999**t)) + 1e-8),
                           phi, g, v)
    adapted = learner.adapt(state.meta_params, tasks[0].support, key=jax.random.key(0))
    chex.assert_trees_all_close(adapted.params, phi, rtol=1e-10)
    chex.assert_trees_all_close(adapted.opt_state[0].nu, v, rtol=1e-10)

    # The meta step: theta moves by 0.5 of the mean pseudo-gradient, the state to the tasks' mean final state.
    keys = jax.random.split(jax.random.key(1), len(tasks))
    finals = [learner.task_grad(state.meta_params, t, k)[0] for t, k in zip(tasks, keys)]
    new, _ = step(state, batch, jax.random.key(1))
    mean = jax.tree.map(lambda *xs: sum(xs) / len(xs), *finals)
    chex.assert_trees_all_close(new.meta_params.params,
                                jax.tree.map(lambda t, g: t - 0.5 * g, state.meta_params.params, mean.params),
                                rtol=1e-10)
    chex.assert_trees_all_close(new.meta_params.inner_state[0].nu,
                                jax.tree.map(lambda s, g: s - g, carried[0].nu, mean.inner_state[0].nu), rtol=1e-10)
    assert int(new.meta_params.inner_state[0].count) == 4
    with pytest.raises(ValueError, match="persistent_inner_state carries an inner optimizer's state"):
        jaxmeta.reptile(loss_fn, inner_lr=0.1, persistent_inner_state=True)
