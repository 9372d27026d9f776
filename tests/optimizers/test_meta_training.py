"""Meta-training the LSTM optimizer on random quadratics: it learns to optimise functions it has not seen."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta.optimizers import (CoordinatewiseLSTM, classification_problems, learned_optimizer, meta_train,
                                mlp_classifier_loss, optimize, quadratic_loss, quadratic_problems)


def test_quadratic_problems_and_the_loss():
    theta, (w, y) = quadratic_problems(jax.random.key(0), 3, dim=4)
    assert theta.shape == (3, 4) and w.shape == (3, 4, 4) and y.shape == (3, 4)
    loss, aux = quadratic_loss(theta[0], (w[0], y[0]), key=None)
    np.testing.assert_allclose(loss, np.sum((w[0] @ theta[0] - y[0]) ** 2), rtol=1e-12)
    assert aux == {}


def test_optimize_records_the_loss_before_and_after_every_step():
    theta, data = jax.tree.map(lambda x: x[0], quadratic_problems(jax.random.key(1), 1))
    losses = optimize(optax.sgd(1e-3), quadratic_loss, theta, data, 5, key=jax.random.key(0))
    assert losses.shape == (6,) and np.isclose(losses[0], quadratic_loss(theta, data)[0])
    assert np.all(np.diff(losses) < 0)


def test_optimize_hands_step_t_the_key_fold_in_key_t():
    """A stochastic loss (the library's signature) sees fold_in(key, t) at step t, in its value and its gradient."""
    def noisy(theta, data, *, key):
        return jnp.sum((theta - data) ** 2) + jax.random.normal(key) * jnp.sum(theta), {}

    theta, data, key, lr = jnp.array([1.0, -2.0]), jnp.array([0.5, 0.5]), jax.random.key(7), 0.1
    losses = optimize(optax.sgd(lr), noisy, theta, data, 3, key=key)
    expected = []
    for t in range(4):
        loss_of = lambda p, t=t: noisy(p, data, key=jax.random.fold_in(key, t))[0]  # noqa: E731
        expected.append(loss_of(theta))
        theta = theta - lr * jax.grad(loss_of)(theta)
    np.testing.assert_allclose(losses, expected, rtol=1e-12)
    assert not np.allclose(losses, optimize(optax.sgd(lr), noisy, jnp.array([1.0, -2.0]), data, 3,
                                            key=jax.random.key(8)))


@pytest.mark.long
def test_a_short_meta_training_beats_the_untrained_optimizer_on_held_out_quadratics():
    net = CoordinatewiseLSTM(hidden=8)
    result = meta_train(quadratic_loss, quadratic_problems, key=jax.random.key(2), iterations=40, network=net,
                        batch=8, horizon=20, unroll=10, meta_optimizer=optax.adam(1e-2), progress=False)
    assert result.losses.shape == (80,) and result.iterations == 40
    theta, data = quadratic_problems(jax.random.key(99), 16)  # functions not seen in training

    def final_loss(phi):
        return float(jnp.mean(jax.vmap(lambda t, d: optimize(learned_optimizer(phi, net), quadratic_loss, t, d,
                                                               20, key=jax.random.key(3))[-1])(theta, data)))

    untrained = net.init(jax.random.key(2), net.initial_state(1), jnp.zeros((1, 2)))["params"]
    start = float(jnp.mean(jax.vmap(lambda t, d: quadratic_loss(t, d)[0])(theta, data)))
    assert final_loss(result.optimizer_params) < 0.5 * final_loss(untrained)
    assert final_loss(result.optimizer_params) < 0.5 * start


def test_the_horizon_must_be_a_multiple_of_the_unroll():
    with pytest.raises(ValueError, match="horizon \\(30\\) must be a multiple of unroll \\(20\\)"):
        meta_train(quadratic_loss, quadratic_problems, key=jax.random.key(0), iterations=1, horizon=30, unroll=20)


def test_a_time_budget_stops_after_the_batch_that_crosses_it():
    kwargs = dict(key=jax.random.key(0), iterations=50, network=CoordinatewiseLSTM(hidden=4), batch=2, horizon=4,
                  unroll=2, progress=False)
    result = meta_train(quadratic_loss, quadratic_problems, budget_seconds=1e-9, **kwargs)
    assert result.iterations == 1 and result.losses.shape == (2,)
    with pytest.raises(ValueError, match="budget_seconds must be positive, got 0"):
        meta_train(quadratic_loss, quadratic_problems, budget_seconds=0, **kwargs)


def test_classification_problems_draw_distinct_classes_and_the_loss_is_the_mlp_cross_entropy():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 3, 28, 28)).astype(np.uint8)
    sample = classification_problems(images, ways=4, hidden=5)
    params, (x, y) = sample(jax.random.key(0), 2)
    assert x.shape == (2, 12, 196) and params["w1"].shape == (2, 196, 5) and params["w2"].shape == (2, 5, 4)
    np.testing.assert_array_equal(y[0], np.repeat(np.arange(4), 3))
    pooled = images.astype(np.float64).reshape(7, 3, 14, 2, 14, 2).mean(axis=(3, 5)).reshape(7, 3, 196) / 255
    rows = [int(np.argmin(np.abs(pooled[:, 0] - x[0, 3 * k]).sum(1))) for k in range(4)]
    assert len(set(rows)) == 4  # four different characters
    np.testing.assert_allclose(x[0].reshape(4, 3, 196), pooled[rows], rtol=1e-5)
    p = jax.tree.map(lambda v: np.asarray(v[0], np.float64), params)
    hidden = 1 / (1 + np.exp(-(np.asarray(x[0], np.float64) @ p["w1"] + p["b1"])))
    logits = hidden @ p["w2"] + p["b2"]
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -np.mean(log_p[np.arange(12), y[0]])
    loss, aux = mlp_classifier_loss(p, (np.asarray(x[0], np.float64), y[0]))
    np.testing.assert_allclose(loss, expected, rtol=1e-10)
    np.testing.assert_allclose(aux["accuracy"], np.mean(np.argmax(logits, 1) == y[0]))
    with pytest.raises(ValueError, match="A 9-way problem needs 9 classes, but the images have only 7"):
        classification_problems(images, ways=9)
