"""Meta-training the LSTM optimizer on random quadratics: it learns to optimise functions it has not seen."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta.optimizers import (CoordinatewiseLSTM, learned_optimizer, meta_train, optimize, quadratic_loss,
                                quadratic_problems)


def test_quadratic_problems_and_the_loss():
    theta, (w, y) = quadratic_problems(jax.random.key(0), 3, dim=4)
    assert theta.shape == (3, 4) and w.shape == (3, 4, 4) and y.shape == (3, 4)
    np.testing.assert_allclose(quadratic_loss(theta[0], (w[0], y[0])), np.sum((w[0] @ theta[0] - y[0]) ** 2),
                               rtol=1e-12)


def test_optimize_records_the_loss_before_and_after_every_step():
    theta, data = jax.tree.map(lambda x: x[0], quadratic_problems(jax.random.key(1), 1))
    losses = optimize(optax.sgd(1e-3), quadratic_loss, theta, data, 5)
    assert losses.shape == (6,) and np.isclose(losses[0], quadratic_loss(theta, data))
    assert np.all(np.diff(losses) < 0)


def test_a_short_meta_training_beats_the_untrained_optimizer_on_held_out_quadratics():
    net = CoordinatewiseLSTM(hidden=8)
    result = meta_train(quadratic_loss, quadratic_problems, key=jax.random.key(2), iterations=40, network=net,
                        batch=8, horizon=20, unroll=10, meta_optimizer=optax.adam(1e-2), progress=False)
    assert result.losses.shape == (80,)
    theta, data = quadratic_problems(jax.random.key(99), 16)  # functions not seen in training

    def final_loss(phi):
        return float(jnp.mean(jax.vmap(lambda t, d: optimize(learned_optimizer(phi, net), quadratic_loss, t, d,
                                                               20)[-1])(theta, data)))

    untrained = net.init(jax.random.key(2), net.initial_state(1), jnp.zeros((1, 2)))["params"]
    start = float(jnp.mean(jax.vmap(quadratic_loss)(theta, data)))
    assert final_loss(result.optimizer_params) < 0.5 * final_loss(untrained)
    assert final_loss(result.optimizer_params) < 0.5 * start


def test_the_horizon_must_be_a_multiple_of_the_unroll():
    with pytest.raises(ValueError, match="horizon \\(30\\) must be a multiple of unroll \\(20\\)"):
        meta_train(quadratic_loss, quadratic_problems, key=jax.random.key(0), iterations=1, horizon=30, unroll=20)
