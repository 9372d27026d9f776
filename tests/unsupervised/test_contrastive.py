"""jaxmeta.unsupervised.contrastive: the NT-Xent loss against a NumPy statement, the affine views against
exact shifts and the pixel range, the unlabelled source, a contrastive training that learns, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta import fit
from jaxmeta.training import init_classifier
from jaxmeta.unsupervised import (ContrastiveEncoder, UnlabelledImages, augment, embed_images,
                                  make_contrastive_step, nt_xent, random_affine)


def numpy_nt_xent(first, second, temperature):
    z = np.concatenate([first, second]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(first)
    total = 0.0
    for i in range(2 * n):
        pair = (i + n) % (2 * n)
        others = [np.exp(z[i] @ z[j] / temperature) for j in range(2 * n) if j != i]
        total += -np.log(np.exp(z[i] @ z[pair] / temperature) / sum(others))
    return total / (2 * n)


def test_nt_xent_equals_its_formula():
    first, second = jax.random.normal(jax.random.key(0), (2, 5, 3))
    loss, accuracy = nt_xent(first, second, temperature=0.3)
    np.testing.assert_allclose(float(loss), numpy_nt_xent(np.asarray(first), np.asarray(second), 0.3), rtol=1e-5)
    assert 0.0 <= float(accuracy) <= 1.0
    _, perfect = nt_xent(first, first, temperature=0.3)  # every view's nearest other view is its copy
    assert float(perfect) == 1.0


def test_a_pure_shift_moves_the_image_by_whole_pixels_and_views_stay_in_range():
    image = jax.random.uniform(jax.random.key(1), (9, 9))
    padded = np.pad(np.asarray(image, np.float64), 2)
    at = lambda r, c: padded[r + 2, c + 2]  # noqa: E731
    # translation t draws a shift in (-t, t): the key's shift, then the bilinear interpolation it gives.
    for seed in range(20):
        key = jax.random.key(seed)
        shifted = random_affine(key, image, rotation=0, scale=0, shear=0, translation=1.0)
        shift = jax.random.uniform(jax.random.split(key, 4)[3], (2,), minval=-1.0, maxval=1.0)
        row, col = np.asarray(shift)
        # bilinear: each output pixel mixes the four source pixels around (r - row, c - col)
        rows, cols = np.meshgrid(np.arange(9) - row, np.arange(9) - col, indexing="ij")
        r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
        fr, fc = rows - r0, cols - c0
        expected = ((1 - fr) * (1 - fc) * at(r0, c0) + (1 - fr) * fc * at(r0, c0 + 1)
                    + fr * (1 - fc) * at(r0 + 1, c0) + fr * fc * at(r0 + 1, c0 + 1))
        np.testing.assert_allclose(shifted, expected, atol=1e-5)
    views = augment(jax.random.key(2), (255 * image[None].repeat(4, 0)).astype(jnp.uint8), rotation=30.0)
    assert views.shape == (4, 9, 9, 1) and views.dtype == jnp.float32
    assert float(views.min()) >= 0.0 and float(views.max()) <= 1.0
    assert not np.allclose(views[0], views[1])  # each image its own deformation


def test_the_source_draws_distinct_images():
    images = jnp.arange(10, dtype=jnp.uint8)[:, None, None] * jnp.ones((1, 2, 2), jnp.uint8)
    batch = UnlabelledImages.create(images, batch_size=10)(jax.random.key(3))
    assert sorted(np.asarray(batch[:, 0, 0]).tolist()) == list(range(10))


def test_contrastive_training_learns_to_pair_the_views():
    """Eight random patterns, their two views to be told apart from the other seven: the pairing accuracy
    rises from chance and the loss falls."""
    images = (jax.random.uniform(jax.random.key(4), (8, 12, 12)) > 0.7).astype(jnp.uint8) * 255
    encoder = ContrastiveEncoder(features=8, blocks=2, hidden=16, projection=8)
    params = encoder.init(jax.random.key(5), jnp.zeros((1, 12, 12, 1)))["params"]
    apply = lambda p, x: encoder.apply({"params": p}, x)  # noqa: E731
    optimizer = optax.adam(3e-3)
    step = make_contrastive_step(apply, optimizer, temperature=0.5, rotation=5.0, translation=1.0)
    result = fit(step, init_classifier(params, optimizer), UnlabelledImages.create(images, batch_size=8),
                 key=jax.random.key(6), num_steps=150, steps_per_call=50, progress=False)
    loss, accuracy = result.history["loss"], result.history["accuracy"]
    assert float(np.mean(loss[-20:])) < 0.8 * float(np.mean(loss[:20]))
    assert float(np.mean(accuracy[-20:])) > 0.9
    embedded = embed_images(lambda p, x: encoder.apply({"params": p}, x, project=False), result.state.meta_params,
                            images, batch_size=3)
    assert embedded.shape == (8, 8 * 3 * 3) and np.all(np.isfinite(embedded))


@pytest.mark.parametrize("call, message", [
    (lambda: UnlabelledImages.create(jnp.zeros((5, 4, 4)), batch_size=6), "batch_size must be an int from 2"),
    (lambda: UnlabelledImages.create(jnp.zeros((5, 4, 4, 1)), batch_size=2), "images must be .N, H, W."),
    (lambda: make_contrastive_step(lambda p, x: x, optax.sgd(0.1), temperature=0.0), "temperature must be positive"),
    (lambda: make_contrastive_step(lambda p, x: x, optax.sgd(0.1), rotation=-1.0), "rotation must be a non-negative"),
])
def test_bad_input_is_refused_with_the_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call()
