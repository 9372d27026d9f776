"""The coordinate-wise LSTM optimizer: parameter sharing across coordinates, the optax interface, the
meta-gradient through an unrolled optimisation against finite differences (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta.optimizers import (CoordinatewiseLSTM, learned_optimizer, make_truncation_step, preprocess_gradient,
                                unrolled_loss)
from gradcheck import directional_derivatives

NET = CoordinatewiseLSTM(hidden=5)


def init_params(key=0):
    params = NET.init(jax.random.key(key), NET.initial_state(1), jnp.zeros((1, 2)))["params"]
    return jax.tree.map(lambda x: x.astype(jnp.float64), params)


def test_every_coordinate_runs_the_same_lstm_independently():
    phi, features = init_params(), jnp.asarray(np.random.default_rng(0).normal(size=(6, 2)))
    state, updates = NET.apply({"params": phi}, NET.initial_state(6), features)
    state, updates = NET.apply({"params": phi}, state, features)  # a second step uses the carried state
    for i in range(6):
        s, u = NET.apply({"params": phi}, NET.initial_state(1), features[i:i + 1])
        s, u = NET.apply({"params": phi}, s, features[i:i + 1])
        np.testing.assert_allclose(updates[i], u[0], rtol=1e-12)


def test_the_optax_transformation_updates_each_leaf_from_its_own_gradient_and_state():
    phi = init_params()
    tx = learned_optimizer(phi, NET)
    params = {"a": jnp.ones((2, 3)), "b": jnp.zeros(4)}
    grads = jax.tree.map(lambda p: jnp.asarray(np.random.default_rng(p.size).normal(size=p.shape)), params)
    state = tx.init(params)
    assert state.lstm["a"][0][0].shape == (6, 5) and state.lstm["b"][1][1].shape == (4, 5)
    updates, new_state = tx.update(grads, state)
    _, expected = NET.apply({"params": phi}, NET.initial_state(6), preprocess_gradient(grads["a"].reshape(-1)))
    np.testing.assert_allclose(updates["a"], expected.reshape(2, 3), rtol=1e-12)
    chained = optax.chain(optax.clip(1e-3), learned_optimizer(phi, NET))  # composes like any optax optimizer
    clipped, _ = chained.update(grads, chained.init(params))
    assert jax.tree.structure(clipped) == jax.tree.structure(params)
    assert not np.allclose(new_state.lstm["a"][0][1], 0.0)


def test_the_meta_gradient_matches_finite_differences_when_the_gradient_is_constant():
    """For a linear loss the dropped term (the gradient's dependence on phi) is zero: autodiff is exact."""
    direction = jnp.asarray(np.random.default_rng(1).normal(size=4))
    loss_fn = lambda theta, c, *, key: (jnp.dot(c, theta), {})  # noqa: E731
    theta0 = jnp.zeros(4)

    def meta_loss(phi):
        return unrolled_loss(phi, NET, loss_fn, theta0, learned_optimizer(phi, NET).init(theta0), direction, 5,
                             key=jax.random.key(0))[0]

    autodiff, numeric = directional_derivatives(meta_loss, init_params(), jax.random.key(3))
    np.testing.assert_allclose(autodiff, numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.long
def test_a_truncation_step_lowers_the_unrolled_loss_of_its_batch():
    loss_fn = lambda theta, data, *, key: (jnp.sum((data[0] @ theta - data[1]) ** 2), {})  # noqa: E731
    rng = np.random.default_rng(2)
    data = (jnp.asarray(rng.normal(size=(4, 3, 3))), jnp.asarray(rng.normal(size=(4, 3))))
    theta = jnp.asarray(rng.normal(size=(4, 3)))
    phi, meta = init_params(), optax.adam(3e-2)
    step = make_truncation_step(NET, loss_fn, meta, unroll=5)
    state = jax.vmap(learned_optimizer(phi, NET).init)(theta)
    meta_state, losses = meta.init(phi), []
    for _ in range(15):  # the same start every time: the meta-loss of these four problems must fall
        phi, meta_state, _, _, loss = step(phi, meta_state, theta, state, data, jax.random.key(0))
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0]
