"""ADML and FGSM: the adversarial example against its closed form, the pixel range, every convolution, and the
meta-gradient against finite differences of ADML's objective."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmeta
from gradcheck import finite_difference_grad
from jaxmeta.algorithms.adml import adversarial_score, fgsm
from jaxmeta.models import Conv4, functional

rng = np.random.default_rng(0)


def linear_softmax(features=6, classes=3):
    """A float64 linear softmax classifier on images in [0, 1] and a 3-way task."""
    w = jnp.asarray(rng.normal(size=(features, classes)))
    apply = lambda p, x: x @ p["w"] + p["b"]  # noqa: E731
    params = {"w": w, "b": jnp.asarray(rng.normal(size=classes) * 0.1)}
    labels = jnp.arange(9) % classes
    task = jaxmeta.Task((jnp.asarray(rng.uniform(size=(9, features))), labels),
                        (jnp.asarray(rng.uniform(size=(9, features))), labels))
    return params, apply, jaxmeta.classification_loss(apply), task


def test_fgsm_equals_the_closed_form_step_and_stays_in_the_pixel_range():
    params, apply, loss_fn, task = linear_softmax()
    x, y = (np.asarray(a) for a in task.support)
    # d/dx of the mean cross-entropy of softmax(x W + b): (p - onehot(y)) W^T / N
    logits = x @ np.asarray(params["w"]) + np.asarray(params["b"])
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    slope = (p - np.eye(3)[y]) @ np.asarray(params["w"]).T / len(x)
    for epsilon in (0.0, 0.05, 0.7):
        adversarial, labels = fgsm(loss_fn, params, task.support, epsilon=epsilon, key=jax.random.key(0))
        np.testing.assert_allclose(adversarial, np.clip(x + epsilon * np.sign(slope), 0, 1), rtol=1e-12)
        np.testing.assert_array_equal(labels, y)
        assert float(adversarial.min()) >= 0 and float(adversarial.max()) <= 1
    assert np.isclose(np.asarray(adversarial), 0).any() and np.isclose(np.asarray(adversarial), 1).any()
    shifted, _ = fgsm(loss_fn, params, (2 * task.support[0] - 1, task.support[1]), epsilon=0.9,
                      key=jax.random.key(0), pixel_range=(-1.0, 1.0))
    assert float(shifted.min()) >= -1 and float(shifted.max()) <= 1 and float(shifted.min()) < 0


def test_fgsm_on_uint8_images_through_every_convolution_agrees():
    images = jnp.asarray(rng.integers(0, 256, size=(6, 28, 28, 1)), jnp.uint8)
    labels = jnp.arange(6) % 3
    results = {}
    params = jax.tree.map(lambda a: a.astype(jnp.float32),  # float32: oneDNN's type (the same for all three)
                          Conv4(num_classes=3, features=16).init(jax.random.key(0), images[:1])["params"])
    for conv in ("xla", "im2col", "onednn"):
        model = Conv4(num_classes=3, features=16, conv=conv)
        loss_fn = jaxmeta.classification_loss(functional(model))
        adversarial, _ = jax.jit(lambda p, b, f=loss_fn: fgsm(f, p, b, epsilon=0.1, key=jax.random.key(0)))(
            params, (images, labels))
        assert adversarial.dtype == jnp.float32 and float(adversarial.min()) >= 0 and float(adversarial.max()) <= 1
        results[conv] = np.asarray(adversarial)
    moved = np.abs(results["xla"] - np.asarray(images, np.float32) / 255)
    assert moved.max() > 0.099  # the step was taken
    for conv in ("im2col", "onednn"):  # the same signs, except where a slope is within rounding of zero
        assert np.mean(results[conv] == results["xla"]) > 0.999, conv


def test_adml_meta_gradient_matches_finite_differences_of_its_objective():
    params, apply, loss_fn, task = linear_softmax()
    epsilon, key = 0.1, jax.random.key(3)
    learner = jaxmeta.adml(loss_fn, epsilon=epsilon, inner_lr=0.5, inner_steps=2)
    keys = jax.random.split(key, 6)
    adversarial_support = fgsm(loss_fn, params, task.support, epsilon=epsilon, key=keys[0])
    adversarial_query = fgsm(loss_fn, params, task.query, epsilon=epsilon, key=keys[1])
    maml = jaxmeta.maml(loss_fn, inner_lr=0.5, inner_steps=2)

    def objective(theta):  # the adversarial examples are data made at the current theta
        clean = maml.adapt(theta, task.support, key=keys[2]).params
        robust = maml.adapt(theta, adversarial_support, key=keys[3]).params
        return loss_fn(clean, adversarial_query, key=keys[4])[0] + loss_fn(robust, task.query, key=keys[5])[0]

    grads, metrics = learner.task_grad(params, task, key)
    chex.assert_trees_all_close(grads, finite_difference_grad(objective, params), rtol=1e-6, atol=1e-9)
    assert {"loss", "accuracy", "adversarial_adapted_loss", "adversarial_adapted_accuracy"} <= set(metrics)
    clean_only, _ = jaxmeta.adml(loss_fn, epsilon=0.0, inner_lr=0.5, inner_steps=2).task_grad(params, task, key)
    doubled, _ = maml.task_grad(params, task, key)
    chex.assert_trees_all_close(clean_only, jax.tree.map(lambda g: 2 * g, doubled), rtol=1e-10)  # eps 0: 2x MAML


def test_adversarial_score_attacks_the_adapted_model():
    params, apply, loss_fn, task = linear_softmax()
    maml = jaxmeta.maml(loss_fn, inner_lr=0.5, inner_steps=1)
    tasks = jax.tree.map(lambda x: x[None], task)
    clean = jaxmeta.evaluate(maml, params, tasks, key=jax.random.key(0))
    attacked = jaxmeta.evaluate(adversarial_score(maml, loss_fn, epsilon=0.2), params, tasks, key=jax.random.key(0))
    assert np.all(np.asarray(attacked.losses) > np.asarray(clean.losses))
    none = jaxmeta.evaluate(adversarial_score(maml, loss_fn, epsilon=0.0), params, tasks, key=jax.random.key(0))
    np.testing.assert_allclose(none.losses, clean.losses, rtol=1e-12)


def test_bad_epsilons_and_ranges_are_refused_with_the_fix():
    params, apply, loss_fn, task = linear_softmax()
    with pytest.raises(ValueError, match="epsilon must be a non-negative number"):
        jaxmeta.adml(loss_fn, epsilon=-0.1, inner_lr=0.5)
    with pytest.raises(ValueError, match="epsilon must be a non-negative number"):
        fgsm(loss_fn, params, task.support, epsilon=-1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="pixel_range must be"):
        fgsm(loss_fn, params, task.support, epsilon=0.1, key=jax.random.key(0), pixel_range=(1.0, 0.0))
    with pytest.raises(TypeError, match="needs inner_lr"):
        jaxmeta.adml(loss_fn, epsilon=0.1)
