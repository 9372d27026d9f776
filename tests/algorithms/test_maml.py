"""MAML and FOMAML: finite differences on a non-linear MLP, the FOMAML identity, batching."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmeta
from gradcheck import adapted_query_loss, finite_difference_grad, regression_task, tiny_mlp


def _mlp_problem(seed=0):
    params, apply = tiny_mlp(jax.random.key(seed))
    return params, jaxmeta.regression_loss(apply), regression_task(jax.random.key(seed + 100))


def test_maml_meta_gradient_matches_finite_differences():
    params, loss_fn, task = _mlp_problem()
    learner = jaxmeta.maml(loss_fn, inner_lr=0.3, inner_steps=3)
    grads, _ = learner.task_grad(params, task, jax.random.key(0))

    numeric = finite_difference_grad(adapted_query_loss(learner, loss_fn, task), params)
    chex.assert_trees_all_close(grads, numeric, rtol=1e-6, atol=1e-9)


def test_fomaml_equals_query_gradient_at_adapted_parameters():
    params, loss_fn, task = _mlp_problem(1)
    learner = jaxmeta.fomaml(loss_fn, inner_lr=0.3, inner_steps=2)
    grads, metrics = learner.task_grad(params, task, jax.random.key(0))
    phi = learner.adapt(params, task.support, key=jax.random.key(0)).params
    expected = jax.grad(lambda p: loss_fn(p, task.query, key=None)[0])(phi)
    chex.assert_trees_all_close(grads, expected, rtol=1e-12)
    np.testing.assert_allclose(metrics["loss"], loss_fn(phi, task.query, key=None)[0], rtol=1e-12)
    # ...and differs from the exact second-order gradient.
    exact, _ = jaxmeta.maml(loss_fn, inner_lr=0.3, inner_steps=2).task_grad(params, task, jax.random.key(0))
    assert not np.allclose(jax.flatten_util.ravel_pytree(exact)[0], jax.flatten_util.ravel_pytree(grads)[0])


def test_batched_meta_gradient_equals_python_loop():
    params, loss_fn, _ = _mlp_problem(2)
    tasks = [regression_task(jax.random.key(i)) for i in range(4)]
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *tasks)
    learner = jaxmeta.maml(loss_fn, inner_lr=0.2, inner_steps=2)
    key = jax.random.key(7)
    grads, metrics = jaxmeta.meta_gradient(learner, params, batch, key)
    keys = jax.random.split(key, 4)
    loop = [learner.task_grad(params, task, k) for task, k in zip(tasks, keys)]
    chex.assert_trees_all_close(grads, jax.tree.map(lambda *g: sum(g) / 4, *[g for g, _ in loop]), rtol=1e-12)
    np.testing.assert_allclose(metrics["loss"], np.mean([m["loss"] for _, m in loop]), rtol=1e-12)


def test_jitted_meta_step_compiles_once():
    params, loss_fn, _ = _mlp_problem(3)
    learner = jaxmeta.maml(loss_fn, inner_lr=0.1)
    optimizer = optax.adam(1e-2)
    counted = chex.assert_max_traces(jaxmeta.make_meta_step(learner, optimizer, jit=False), n=1)
    step = jax.jit(counted)
    state = jaxmeta.init_state(learner, optimizer, params)
    for i in range(3):
        tasks = jax.tree.map(lambda *xs: jnp.stack(xs),
                             *[regression_task(jax.random.key(10 * i + j)) for j in range(2)])
        state, metrics = step(state, tasks, jax.random.key(i))
    assert int(state.step) == 3 and np.isfinite(metrics["loss"])
