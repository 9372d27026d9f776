"""The loss adapters against direct NumPy formulas."""

import jax
import numpy as np

import jaxmeta


def test_regression_loss_is_mean_squared_error():
    rng = np.random.default_rng(0)
    w, x, y = rng.normal(size=(3, 2)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    loss, aux = jaxmeta.regression_loss(lambda w, x: x @ w)(w, (x, y), key=jax.random.key(0))
    np.testing.assert_allclose(loss, np.mean((x @ w - y) ** 2), rtol=1e-12)
    assert aux == {}


def test_classification_loss_is_cross_entropy_with_accuracy():
    rng = np.random.default_rng(1)
    w, x, labels = rng.normal(size=(4, 3)), rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)
    loss, aux = jaxmeta.classification_loss(lambda w, x: x @ w)(w, (x, labels), key=jax.random.key(0))
    logits = x @ w
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(loss, -log_probs[np.arange(6), labels].mean(), rtol=1e-10)
    np.testing.assert_allclose(aux["accuracy"], np.mean(logits.argmax(1) == labels))
