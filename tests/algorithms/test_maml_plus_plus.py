"""MAML++'s options: the multi-step loss (against its definition and plain MAML), its annealed weights,
derivative-order annealing (switching step, one compilation), per-step parameters, and the factory."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta.algorithms import multi_step_loss_weights
from gradcheck import finite_difference_grad, regression_task, tiny_mlp


def _problem(seed=0):
    params, apply = tiny_mlp(jax.random.key(seed))
    return params, jaxmeta.regression_loss(apply), regression_task(jax.random.key(seed + 100))


def test_last_step_weights_are_plain_maml():
    params, loss_fn, task = _problem()
    msl = jaxmeta.maml(loss_fn, inner_lr=0.3, inner_steps=3, step_weights=[0.0, 0.0, 1.0])
    grads, metrics = msl.task_grad(params, task, jax.random.key(0))
    expected, expected_metrics = jaxmeta.maml(loss_fn, inner_lr=0.3, inner_steps=3).task_grad(
        params, task, jax.random.key(0))
    chex.assert_trees_all_close(grads, expected, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(metrics["loss"], expected_metrics["loss"], rtol=1e-14)


def test_multi_step_loss_is_the_weighted_sum_of_query_losses_after_each_step():
    params, loss_fn, task = _problem(1)
    weights = np.array([0.2, 0.3, 0.5])
    learner = jaxmeta.maml(loss_fn, inner_lr=0.3, inner_steps=3, step_weights=weights)
    grads, _ = learner.task_grad(params, task, jax.random.key(0))

    def weighted(theta):
        total = 0.0
        for j in (1, 2, 3):  # phi_j by a separate j-step adaptation
            phi = jaxmeta.adapt(loss_fn, theta, task.support, lr=0.3, steps=j, key=jax.random.key(0)).params
            total += weights[j - 1] * loss_fn(phi, task.query, key=None)[0]
        return total

    chex.assert_trees_all_close(grads, finite_difference_grad(weighted, params), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match=r"one weight per inner step, 3 in all"):
        jaxmeta.maml(loss_fn, inner_lr=0.3, inner_steps=3, step_weights=[0.5, 0.5])


def test_annealed_weights_go_from_uniform_to_the_last_step():
    schedule = multi_step_loss_weights(inner_steps=5, anneal_steps=100)
    np.testing.assert_allclose(schedule(0), np.full(5, 0.2), rtol=1e-6)
    for t in (10, 50, 99):
        w = np.asarray(schedule(t))
        np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-5)
        assert np.all(w[:-1] >= 0.03 / 5 - 1e-7) and w[-1] > w[0]
    np.testing.assert_allclose(schedule(98)[:-1], np.full(4, 0.03 / 5), rtol=1e-5)  # at the floor from 97 on
    np.testing.assert_array_equal(schedule(100), [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(schedule(10_000), [0, 0, 0, 0, 1])


@pytest.mark.long  # about 10 s of compiling on 2 cores
def test_derivative_order_annealing_switches_at_the_stated_step_in_one_compiled_step():
    params, loss_fn, _ = _problem(2)
    tasks = jax.tree.map(lambda *xs: jnp.stack(xs), *[regression_task(jax.random.key(i)) for i in range(2)])
    learner = jaxmeta.maml(loss_fn, inner_lr=0.3, inner_steps=2, first_order_steps=2)
    optimizer = optax.sgd(1.0)  # the update is minus the meta-gradient
    step = jax.jit(chex.assert_max_traces(jaxmeta.make_meta_step(learner, optimizer, jit=False), n=1))
    first = jaxmeta.fomaml(loss_fn, inner_lr=0.3, inner_steps=2)
    second = jaxmeta.maml(loss_fn, inner_lr=0.3, inner_steps=2)
    state = jaxmeta.init_state(learner, optimizer, params)
    for t in range(4):
        key = jax.random.key(t)
        expected, _ = jaxmeta.meta_gradient(first if t < 2 else second, state.meta_params, tasks, key)
        other, _ = jaxmeta.meta_gradient(second if t < 2 else first, state.meta_params, tasks, key)
        new_state, _ = step(state, tasks, key)
        used = jax.tree.map(lambda a, b: a - b, state.meta_params, new_state.meta_params)
        chex.assert_trees_all_close(used, expected, rtol=1e-9, atol=1e-14)
        assert not np.allclose(jax.flatten_util.ravel_pytree(used)[0], jax.flatten_util.ravel_pytree(other)[0])
        state = new_state
    chex.clear_trace_counter()


@pytest.mark.long
def test_maml_plus_plus_stacks_per_step_norms_learns_rates_and_trains():
    def apply(p, x):
        h = jnp.tanh(x @ p["w"])
        h = (h - h.mean(0)) / jnp.sqrt(h.var(0) + 1e-5) * p["norm"]["scale"] + p["norm"]["bias"]
        return h @ p["head"]

    keys = jax.random.split(jax.random.key(3), 2)
    params = {"w": jax.random.normal(keys[0], (2, 4), jnp.float64), "head": jax.random.normal(keys[1], (4, 1)),
              "norm": {"scale": jnp.ones(4), "bias": jnp.zeros(4)}}
    loss_fn = jaxmeta.regression_loss(apply)
    learner = jaxmeta.maml_plus_plus(loss_fn, inner_steps=3, lr_init=0.1, anneal_steps=5, first_order_steps=2)
    meta = learner.init(params)
    assert meta.params["norm"]["scale"].shape == (4, 4) and meta.params["w"].shape == (2, 4)
    assert meta.rule["w"].shape == (3,)
    task = regression_task(jax.random.key(4))
    grads, _ = learner.at_step(jnp.array(10)).task_grad(meta, task, jax.random.key(0))
    # Every step's norm parameters shape the result: each of the 4 slices gets a gradient.
    assert np.all(np.abs(np.asarray(grads.params["norm"]["scale"])).sum(axis=1) > 0)
    adapted = learner.adapt(meta, task.support, key=jax.random.key(0))
    np.testing.assert_array_equal(adapted.params["norm"]["scale"], meta.params["norm"]["scale"][3])
    with pytest.raises(ValueError, match="cannot run 10"):
        learner.adapt(meta, task.support, key=jax.random.key(0), steps=10)

    optimizer = optax.adam(1e-2)
    step = jaxmeta.make_meta_step(learner, optimizer)
    state = jaxmeta.init_state(learner, optimizer, params)
    tasks = jax.tree.map(lambda *xs: jnp.stack(xs), *[regression_task(jax.random.key(10 + i)) for i in range(3)])
    losses = []
    for t in range(30):
        state, metrics = step(state, tasks, jax.random.key(t))
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.8 * losses[0]
