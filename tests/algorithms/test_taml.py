"""TAML: the inequality measures against NumPy, both regularisers' gradients against their objectives, lambda = 0."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from gradcheck import finite_difference_grad
from jaxmeta.algorithms.taml import inequality, prediction_entropy
from jaxmeta.core.meta_step import meta_gradient


def numpy_inequality(losses, measure, alpha=2.0):
    losses = np.asarray(losses, np.float64)
    b, mu = len(losses), losses.mean()
    if measure == "theil":
        return sum(loss / mu * np.log(loss / mu) for loss in losses) / b
    if measure == "variance-of-logarithms":
        mean_log = sum(np.log(loss) for loss in losses) / b
        return sum((np.log(loss) - mean_log) ** 2 for loss in losses) / b
    if alpha == 0:
        return -sum(np.log(loss / mu) for loss in losses) / b
    if alpha == 1:
        return numpy_inequality(losses, "theil")
    return sum((loss / mu) ** alpha - 1 for loss in losses) / (b * alpha * (alpha - 1))


LOSSES = np.array([0.3, 1.2, 2.5, 0.9, 1.7])


@pytest.mark.parametrize("measure, alpha", [("theil", 2.0), ("variance-of-logarithms", 2.0),
                                            ("generalized-entropy", 2.0), ("generalized-entropy", 0.5),
                                            ("generalized-entropy", 0.0), ("generalized-entropy", 1.0),
                                            ("generalized-entropy", -1.0)])
def test_each_inequality_measure_equals_its_numpy_statement(measure, alpha):
    np.testing.assert_allclose(inequality(jnp.asarray(LOSSES), measure, alpha),
                               numpy_inequality(LOSSES, measure, alpha), rtol=1e-12)
    assert abs(float(inequality(jnp.full(4, 1.3), measure, alpha))) < 1e-12  # equal losses: no inequality


def test_prediction_entropy_is_the_mean_softmax_entropy():
    logits = np.random.default_rng(0).normal(size=(6, 4))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(prediction_entropy(jnp.asarray(logits)), -(p * np.log(p)).sum(-1).mean(), rtol=1e-12)


def linear_classifier(key, features=4, classes=3):
    """A float64 linear softmax classifier, its loss and a 3-way task."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {"w": 0.3 * jax.random.normal(k1, (features, classes), jnp.float64),
              "b": 0.1 * jax.random.normal(k2, (classes,), jnp.float64)}
    apply = lambda p, x: jnp.tanh(x @ p["w"]) * 2 + p["b"]  # noqa: E731 (non-linear: second-order terms)
    labels = jnp.arange(6) % classes
    task = jaxmeta.Task((jax.random.normal(k3, (6, features), jnp.float64), labels),
                        (jax.random.normal(k4, (6, features), jnp.float64), labels))
    return params, apply, jaxmeta.classification_loss(apply), task


def test_entropy_taml_gradient_matches_finite_differences_of_its_objective():
    params, apply, loss_fn, task = linear_classifier(jax.random.key(0))
    maml = jaxmeta.maml(loss_fn, inner_lr=0.4, inner_steps=2)
    learner = jaxmeta.taml_entropy(maml, loss_fn, apply, weight=0.7)

    def objective(theta):
        phi = maml.adapt(theta, task.support, key=jax.random.split(jax.random.key(3))[0]).params
        x = task.query[0]
        return (loss_fn(phi, task.query, key=jax.random.key(0))[0]
                + 0.7 * (prediction_entropy(apply(phi, x)) - prediction_entropy(apply(theta, x))))

    grads, metrics = learner.task_grad(params, task, jax.random.key(3))
    chex.assert_trees_all_close(grads, finite_difference_grad(objective, params), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(metrics["entropy_before"], prediction_entropy(apply(params, task.query[0])))


def test_entropy_taml_with_lambda_zero_is_maml():
    params, apply, loss_fn, task = linear_classifier(jax.random.key(1))
    maml = jaxmeta.maml(loss_fn, inner_lr=0.4, inner_steps=2)
    grads, metrics = jaxmeta.taml_entropy(maml, loss_fn, apply, weight=0.0).task_grad(params, task,
                                                                                       jax.random.key(0))
    expected, expected_metrics = maml.task_grad(params, task, jax.random.key(0))
    chex.assert_trees_all_close(grads, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(metrics["loss"], expected_metrics["loss"], rtol=1e-12)
    weighted, _ = jaxmeta.taml_entropy(maml, loss_fn, apply, weight=1.0).task_grad(params, task, jax.random.key(0))
    assert not np.allclose(weighted["w"], expected["w"])


def task_batch(key, size=4):
    keys = jax.random.split(key, size)
    tasks = [linear_classifier(k)[3] for k in keys]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *tasks)


@pytest.mark.parametrize("measure", ["theil", "generalized-entropy", "variance-of-logarithms"])
def test_inequality_taml_step_is_the_gradient_of_the_batch_objective(measure):
    params, _, loss_fn, _ = linear_classifier(jax.random.key(2))
    tasks = task_batch(jax.random.key(5))
    maml = jaxmeta.maml(loss_fn, inner_lr=0.4, inner_steps=2)
    learner = jaxmeta.taml_inequality(maml, weight=0.8, measure=measure, alpha=0.5)
    keys = jax.random.split(jax.random.key(6), 4)

    def objective(theta):  # the batch's objective written out: mean query loss + lambda I(initial support losses)
        def one(task, key):
            inner_key, query_key = jax.random.split(key)
            adaptation = maml.adapt(theta, task.support, key=inner_key)
            return loss_fn(adaptation.params, task.query, key=query_key)[0], adaptation.support_losses[0]

        query_losses, initial = jax.vmap(one)(tasks, keys)
        return jnp.mean(query_losses) + 0.8 * inequality(initial, measure, 0.5)

    grads, metrics = meta_gradient(learner, params, tasks, jax.random.key(6))
    chex.assert_trees_all_close(grads, jax.grad(objective)(params), rtol=1e-10, atol=1e-13)
    assert set(metrics) >= {"loss", "support_loss", "accuracy"}


def test_inequality_taml_with_lambda_zero_steps_as_maml_and_any_step_uses_its_rule():
    params, _, loss_fn, _ = linear_classifier(jax.random.key(3))
    tasks = task_batch(jax.random.key(7))
    maml = jaxmeta.maml(loss_fn, inner_lr=0.4, inner_steps=1)
    optimizer = optax.adam(1e-2)
    state = jaxmeta.init_state(maml, optimizer, params)
    expected, _ = jaxmeta.make_meta_step(maml, optimizer)(state, tasks, jax.random.key(0))
    zero = jaxmeta.taml_inequality(maml, weight=0.0)
    got, _ = jaxmeta.make_meta_step(zero, optimizer)(state, tasks, jax.random.key(0))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), got, expected)
    with pytest.raises(ValueError, match="combines its task gradients itself"):
        jaxmeta.make_meta_step(zero, optimizer, aggregate=jaxmeta.gradient_agreement())


def test_taml_refuses_bad_settings_with_the_fix():
    params, apply, loss_fn, _ = linear_classifier(jax.random.key(4))
    maml = jaxmeta.maml(loss_fn, inner_lr=0.4)
    with pytest.raises(ValueError, match=r"measure must be one of \('theil', 'generalized-entropy'"):
        jaxmeta.taml_inequality(maml, weight=1.0, measure="gini")
    with pytest.raises(ValueError, match="weight must be a non-negative number"):
        jaxmeta.taml_inequality(maml, weight=-0.5)
    with pytest.raises(ValueError, match="weight must be a non-negative number"):
        jaxmeta.taml_entropy(maml, loss_fn, apply, weight=-1.0)
    with pytest.raises(TypeError, match="wraps a jaxmeta.MetaLearner"):
        jaxmeta.taml_entropy(loss_fn, loss_fn, apply, weight=1.0)
    scheduled = jaxmeta.maml(loss_fn, inner_lr=0.4, first_order_steps=10)
    with pytest.raises(ValueError, match="schedule over meta-steps"):
        jaxmeta.taml_inequality(scheduled, weight=1.0)
