"""CAVIA: only the context adapts, from zero; the weights get the exact meta-gradient."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from gradcheck import finite_difference_grad, regression_task, tiny_mlp
from jaxmeta.models.context import ContextMLP, ContextParams, functional_with_context

CONTEXT = 3


def context_regression(key):
    """A float64 tanh MLP on [x; context] (2 inputs + 3 context entries) and its regression loss."""
    network, mlp = tiny_mlp(key, sizes=(2 + CONTEXT, 6, 1))

    def apply(params, x):
        context = jnp.broadcast_to(params.context, (*x.shape[:-1], CONTEXT))
        return mlp(params.network, jnp.concatenate([x, context], axis=-1))

    return network, jaxmeta.regression_loss(apply)


def query_loss_after_adaptation(learner, loss_fn, task):
    def loss(network):
        adapted = learner.adapt(network, task.support, key=jax.random.key(0)).params
        return loss_fn(adapted, task.query, key=jax.random.key(0))[0]

    return loss


def test_cavia_adapts_the_context_only_and_its_meta_gradient_matches_finite_differences():
    network, loss_fn = context_regression(jax.random.key(0))
    task = regression_task(jax.random.key(1))
    learner = jaxmeta.cavia(loss_fn, context_size=CONTEXT, inner_lr=0.7, inner_steps=2)
    adapted = learner.adapt(learner.init(network), task.support, key=jax.random.key(0)).params
    chex.assert_trees_all_equal(adapted.network, network)  # the weights do not move in the inner loop
    assert adapted.context.shape == (CONTEXT,) and float(jnp.abs(adapted.context).min()) > 0

    grads, metrics = learner.task_grad(network, task, jax.random.key(0))
    chex.assert_trees_all_equal_structs(grads, network)
    numeric = finite_difference_grad(query_loss_after_adaptation(learner, loss_fn, task), network)
    chex.assert_trees_all_close(grads, numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(metrics["support_loss"], loss_fn(ContextParams(network, jnp.zeros(CONTEXT)),
                                                                task.support, key=jax.random.key(0))[0])


def test_cavia_first_order_treats_the_adapted_context_as_a_constant():
    network, loss_fn = context_regression(jax.random.key(2))
    task = regression_task(jax.random.key(3))
    learner = jaxmeta.cavia(loss_fn, context_size=CONTEXT, inner_lr=0.7, inner_steps=2, first_order=True)
    context = learner.adapt(network, task.support, key=jax.random.key(0)).params.context
    expected = jax.grad(lambda w: loss_fn(ContextParams(w, context), task.query, key=jax.random.key(0))[0])(network)
    grads, _ = learner.task_grad(network, task, jax.random.key(0))
    chex.assert_trees_all_close(grads, expected, rtol=1e-12)
    exact, _ = jaxmeta.cavia(loss_fn, context_size=CONTEXT, inner_lr=0.7, inner_steps=2).task_grad(
        network, task, jax.random.key(0))
    assert not np.allclose(exact[0]["w"], grads[0]["w"])  # the dropped terms are not zero here


def test_cavia_context_step_has_its_closed_form():
    # f = x w + c: one step from c = 0 on the mean squared error gives c_1 = -2 alpha mean(x w - y).
    apply = lambda params, x: x * params.network + params.context[0]  # noqa: E731
    learner = jaxmeta.cavia(jaxmeta.regression_loss(apply), context_size=1, inner_lr=0.25)
    x, y = jnp.array([1.0, 2.0, 4.0]), jnp.array([0.0, 1.0, 5.0])
    context = learner.adapt(jnp.array(1.5), (x, y), key=jax.random.key(0)).params.context
    np.testing.assert_allclose(context, [-2 * 0.25 * np.mean(1.5 * np.asarray(x) - np.asarray(y))], rtol=1e-12)


def test_cavia_trains_a_context_mlp_with_the_meta_step():
    model = ContextMLP(features=(16, 1), context_size=2)
    network = model.init(jax.random.key(0), jnp.zeros((1, 1)), jnp.zeros(2))["params"]
    learner = jaxmeta.cavia(jaxmeta.regression_loss(functional_with_context(model)), context_size=2,
                            inner_lr=1.0)
    tasks = jaxmeta.sinusoid_tasks(jax.random.key(1), 8, shots=10)
    optimizer = optax.adam(1e-2)
    step = jaxmeta.make_meta_step(learner, optimizer)
    state = jaxmeta.init_state(learner, optimizer, network)
    first = None
    for i in range(150):
        state, metrics = step(state, tasks, jax.random.key(i))
        first = metrics["loss"] if first is None else first
    assert float(metrics["loss"]) < 0.75 * float(first)
    evaluation = jaxmeta.evaluate(learner, state.meta_params, tasks, key=jax.random.key(5), steps=2)
    assert evaluation.losses.shape == (8, 3)
    before, after = np.asarray(evaluation.losses).mean(0)[:2]
    assert after < 0.7 * before  # one step of the 2 context entries adapts the trained network to the wave


def test_cavia_refuses_an_empty_context_and_a_mismatched_one():
    loss_fn = jaxmeta.regression_loss(lambda params, x: x)
    with pytest.raises(ValueError, match="empty context"):
        jaxmeta.cavia(loss_fn, context_size=0)
    with pytest.raises(TypeError, match="context_size must be a Python int"):
        jaxmeta.cavia(loss_fn, context_size=2.0)
    model = ContextMLP(features=(4, 1), context_size=5)
    network = model.init(jax.random.key(0), jnp.zeros((1, 1)), jnp.zeros(5))["params"]
    learner = jaxmeta.cavia(jaxmeta.regression_loss(functional_with_context(model)), context_size=3)
    with pytest.raises(ValueError, match=r"context vector of 5 entries, got shape \(3,\).*same context_size"):
        learner.adapt(network, (jnp.zeros((4, 1)), jnp.zeros((4, 1))), key=jax.random.key(0))
