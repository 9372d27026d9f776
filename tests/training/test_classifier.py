"""Ordinary classification on the meta-training loop: the step against a hand-written SGD step, the batch
source, and batched accuracy."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta import fit
from jaxmeta.training import ImageBatches, classify_accuracy, init_classifier, make_classifier_step


def linear(w, x):
    return x.reshape(x.shape[0], -1) @ w


def test_the_step_is_sgd_on_the_mean_cross_entropy():
    rng = np.random.default_rng(0)
    x, y = jnp.asarray(rng.normal(size=(8, 2, 2, 1))), jnp.asarray(rng.integers(0, 3, 8))
    w = jnp.asarray(rng.normal(size=(4, 3)))
    state, metrics = make_classifier_step(linear, optax.sgd(0.3))(init_classifier(w, optax.sgd(0.3)), (x, y), None)

    def mean_loss(w):
        logp = jax.nn.log_softmax(linear(w, x))
        return -jnp.mean(logp[jnp.arange(8), y])

    np.testing.assert_allclose(state.meta_params, w - 0.3 * jax.grad(mean_loss)(w), rtol=1e-12)
    np.testing.assert_allclose(metrics["loss"], mean_loss(w), rtol=1e-12)
    assert int(state.step) == 1


def test_fit_trains_a_separable_problem_to_full_accuracy():
    x = jnp.asarray(np.eye(4)[:, :, None, None].repeat(2, axis=2))  # four one-hot images, one per class
    y = jnp.arange(4)
    source = ImageBatches.create(x, y, batch_size=4)
    step, optimizer = make_classifier_step(linear, optax.sgd(1.0)), optax.sgd(1.0)
    result = fit(step, init_classifier(jnp.zeros((8, 4)), optimizer), source, key=jax.random.key(0), num_steps=30,
                 steps_per_call=10, progress=False)
    assert classify_accuracy(linear, result.state.meta_params, np.asarray(x), np.asarray(y), batch_size=3) == 1.0


def test_batches_come_from_the_set_and_bad_sets_are_refused():
    source = ImageBatches.create(np.arange(10.0).reshape(10, 1, 1, 1), np.arange(10), batch_size=5)
    images, labels = source(jax.random.key(1))
    np.testing.assert_array_equal(images[:, 0, 0, 0], labels)
    with pytest.raises(ValueError, match="training set is empty"):
        ImageBatches.create(np.zeros((0, 2, 2, 1)), np.zeros(0), batch_size=2)
    with pytest.raises(ValueError, match="one label"):
        ImageBatches.create(np.zeros((3, 2, 2, 1)), np.zeros(2), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        ImageBatches.create(np.zeros((3, 2, 2, 1)), np.zeros(3), batch_size=0)
