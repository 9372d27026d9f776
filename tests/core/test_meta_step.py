"""The shared meta step: task-axis checks and optimizer application."""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

import jaxmeta
from jaxmeta.core.meta_step import task_batch_size

loss_fn = jaxmeta.regression_loss(lambda w, x: x @ w)


def _tasks(n_support_tasks, n_query_tasks):
    return jaxmeta.Task(
        support=(jnp.ones((n_support_tasks, 5, 2)), jnp.ones((n_support_tasks, 5))),
        query=(jnp.ones((n_query_tasks, 5, 2)), jnp.ones((n_query_tasks, 5))),
    )


def test_inconsistent_task_axes_are_named():
    learner = jaxmeta.maml(loss_fn, inner_lr=0.1)
    with pytest.raises(ValueError, match=r"number of tasks.*\.support\[0\]: 4.*\.query\[0\]: 3"):
        jaxmeta.meta_gradient(learner, jnp.zeros(2), _tasks(4, 3), jax.random.key(0))


def test_non_task_input_gets_a_clear_error():
    with pytest.raises(TypeError, match=r"Task\(support=\(x_s, y_s\), query=\(x_q, y_q\)\)"):
        task_batch_size({"support": jnp.ones((2, 3))})
    with pytest.raises(ValueError, match="leading task axis"):
        task_batch_size(jaxmeta.Task(jnp.ones(()), jnp.ones(())))


def test_meta_step_applies_the_optimizer_to_the_mean_gradient():
    learner = jaxmeta.maml(loss_fn, inner_lr=0.1)
    key = jax.random.key(0)
    tasks = jaxmeta.Task(
        support=(jax.random.normal(key, (3, 5, 2)), jax.random.normal(jax.random.key(1), (3, 5))),
        query=(jax.random.normal(jax.random.key(2), (3, 5, 2)), jax.random.normal(jax.random.key(3), (3, 5))),
    )
    theta = jnp.array([0.5, -0.5])
    optimizer = optax.sgd(0.1, momentum=0.9)
    state, metrics = jaxmeta.make_meta_step(learner, optimizer)(jaxmeta.init_state(learner, optimizer, theta),
                                                                tasks, key)
    grads, _ = jaxmeta.meta_gradient(learner, theta, tasks, key)
    chex.assert_trees_all_close(state.meta_params, theta - 0.1 * grads, rtol=1e-10)
    assert set(metrics) == {"loss", "support_loss"}


@pytest.mark.parametrize("task_chunk", [1, 2, 5])
def test_tasks_in_groups_give_the_same_meta_gradient_as_all_at_once(task_chunk):
    learner = jaxmeta.maml(loss_fn, inner_lr=0.1, inner_steps=2)
    keys = jax.random.split(jax.random.key(0), 4)
    tasks = jaxmeta.Task(
        support=(jax.random.normal(keys[0], (5, 4, 2)), jax.random.normal(keys[1], (5, 4))),
        query=(jax.random.normal(keys[2], (5, 4, 2)), jax.random.normal(keys[3], (5, 4))),
    )  # 5 tasks: a chunk of 2 leaves a remainder
    theta = jnp.array([0.3, -0.7])
    expected = jaxmeta.meta_gradient(learner, theta, tasks, jax.random.key(1))
    got = jaxmeta.meta_gradient(learner, theta, tasks, jax.random.key(1), task_chunk=task_chunk)
    chex.assert_trees_all_close(got, expected, rtol=1e-12)
    step = jaxmeta.make_meta_step(learner, optax.sgd(1.0), task_chunk=task_chunk)
    state, _ = step(jaxmeta.init_state(learner, optax.sgd(1.0), theta), tasks, jax.random.key(1))
    chex.assert_trees_all_close(state.meta_params, theta - expected[0], rtol=1e-12)


def test_a_bad_task_chunk_is_refused():
    learner = jaxmeta.maml(loss_fn, inner_lr=0.1)
    with pytest.raises(ValueError, match="task_chunk must be None or a positive int, got 0"):
        jaxmeta.meta_gradient(learner, jnp.zeros(2), _tasks(2, 2), jax.random.key(0), task_chunk=0)


def test_task_chunk_with_serial_visits_is_refused_not_ignored():
    learner = jaxmeta.maml(loss_fn, inner_lr=0.1)
    with pytest.raises(ValueError, match="task_chunk=2 has no effect with serial=True"):
        jaxmeta.make_meta_step(learner, optax.sgd(1.0), serial=True, task_chunk=2)
