"""The LSTM meta-learner of Ravi and Larochelle: its update against the paper's equations, its meta-gradient
against finite differences with the gradient inputs held fixed (float64), and meta-training."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta.optimizers import MetaLSTMCell, lstm_meta_learner, preprocess_gradient
from gradcheck import directional_derivatives, regression_task, tiny_mlp

RNG = np.random.default_rng(0)
CELL = MetaLSTMCell(hidden=4)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_an_update_follows_the_gated_cell_state_equation():
    n = 5
    state = CELL.initial_state(n)._replace(input_gate=jnp.asarray(RNG.uniform(size=n)),
                                           forget_gate=jnp.asarray(RNG.uniform(size=n)))
    theta, gradient, loss = RNG.normal(size=n), RNG.normal(size=n), np.float64(0.7)
    params = CELL.init(jax.random.key(0), state, theta, gradient, loss)["params"]
    params = jax.tree.map(lambda x: x + 0.3 * RNG.normal(size=x.shape), params)  # away from the initial biases
    new_state, new_theta = CELL.apply({"params": params}, state, theta, gradient, loss)

    features = np.concatenate([preprocess_gradient(gradient), np.tile(preprocess_gradient(loss), (n, 1))], -1)
    _, hidden = nn.OptimizedLSTMCell(4).apply({"params": params["lstm"]}, state.carry, features)

    def gate(name, previous):
        inputs = np.concatenate([hidden, theta[:, None], np.asarray(previous)[:, None]], -1)
        return sigmoid(inputs @ np.asarray(params[name]["kernel"])[:, 0] + np.asarray(params[name]["bias"]))

    i, f = gate("input_gate", state.input_gate), gate("forget_gate", state.forget_gate)
    np.testing.assert_allclose(new_theta, f * theta - i * gradient, rtol=1e-10)
    np.testing.assert_allclose(new_state.input_gate, i, rtol=1e-10)
    np.testing.assert_allclose(new_state.forget_gate, f, rtol=1e-10)


def test_the_initial_gates_keep_the_parameters_and_take_small_steps():
    theta, gradient = jnp.ones(3), jnp.full(3, 2.0)
    params = CELL.init(jax.random.key(1), CELL.initial_state(3), theta, gradient, jnp.array(1.0))["params"]
    _, new_theta = CELL.apply({"params": params}, CELL.initial_state(3), theta, gradient, jnp.array(1.0))
    np.testing.assert_allclose(new_theta, sigmoid(5.0) * 1 - sigmoid(-5.0) * 2, atol=0.02)


@pytest.mark.long  # about 10 s of compiling on 2 cores
def test_the_meta_gradient_equals_finite_differences_with_the_fed_gradients_held_fixed():
    """The paper drops the second derivatives: the meta-gradient is the derivative of the unrolled updates
    with the gradients and losses fed to the LSTM frozen at their values along the trajectory."""
    params, apply = tiny_mlp(jax.random.key(0), (2, 3, 1))
    loss_fn = jaxmeta.regression_loss(apply)
    task = regression_task(jax.random.key(1))
    learner = lstm_meta_learner(loss_fn, key=jax.random.key(2), inner_steps=3, cell=CELL)
    meta = learner.init(params)
    meta = meta._replace(meta_learner=jax.tree.map(lambda x: x.astype(jnp.float64), meta.meta_learner))
    grads, _ = learner.task_grad(meta, task, jax.random.key(3))

    flat, unravel = jax.flatten_util.ravel_pytree(params)
    fed, theta, state = [], flat, CELL.initial_state(flat.shape[0])
    for _ in range(3):  # the trajectory at the base point: what the LSTM is fed
        loss, gradient = jax.value_and_grad(lambda v: loss_fn(unravel(v), task.support, key=None)[0])(theta)
        fed.append((loss, gradient))
        state, theta = CELL.apply({"params": meta.meta_learner}, state, theta, gradient, loss)

    def frozen(meta):
        theta, state = jax.flatten_util.ravel_pytree(meta.params)[0], CELL.initial_state(flat.shape[0])
        for loss, gradient in fed:
            state, theta = CELL.apply({"params": meta.meta_learner}, state, theta, gradient, loss)
        return loss_fn(unravel(theta), task.query, key=None)[0]

    autodiff_frozen, numeric = directional_derivatives(frozen, meta, jax.random.key(4))
    flat_grads = jax.flatten_util.ravel_pytree(grads)[0]
    for k, v in zip(jax.random.split(jax.random.key(4), 3), range(3)):  # the same directions as the helper
        direction = jax.random.normal(k, flat_grads.shape, jnp.float64)
        np.testing.assert_allclose(float(flat_grads @ (direction / jnp.linalg.norm(direction))), numeric[v],
                                   rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(autodiff_frozen, numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.long
def test_meta_training_lowers_the_query_loss_after_adaptation():
    model = jaxmeta.models.MLP((16, 1))
    loss_fn = jaxmeta.regression_loss(jaxmeta.models.functional(model))
    params = model.init(jax.random.key(0), jnp.zeros((1, 1)))["params"]
    learner = lstm_meta_learner(loss_fn, key=jax.random.key(1), inner_steps=3, cell=CELL)
    optimizer = optax.adam(1e-2)
    state = jaxmeta.init_state(learner, optimizer, params)
    step = jaxmeta.make_meta_step(learner, optimizer)
    held_out = jaxmeta.sinusoid_tasks(jax.random.key(99), 50, shots=10)

    def query_loss(meta_params):
        return float(jaxmeta.evaluate(learner, meta_params, held_out, key=jax.random.key(5),
                                      steps=3).losses[:, -1].mean())

    before = query_loss(state.meta_params)
    for i in range(150):
        state, _ = step(state, jaxmeta.sinusoid_tasks(jax.random.key(i), 16, shots=10), jax.random.key(1000 + i))
    after = query_loss(state.meta_params)
    assert after < 0.95 * before  # measured: 3.35 -> 3.02; tuning the meta-LSTM on sinusoids is open
