"""Sequence episodes: every class ``instances`` times, one character per label, a shuffled order, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.data.sequences import SequenceSampler, sequence_tasks


def labelled_images(classes=12, examples=20):
    """Images whose pixels (0, 0) and (0, 1) spell their class and example."""
    images = np.zeros((classes, examples, 6, 6), np.uint8)
    images[:, :, 0, 0] = np.arange(classes)[:, None]
    images[:, :, 0, 1] = np.arange(examples)[None, :]
    return images


def test_an_episode_shows_each_class_instances_times_in_a_shuffled_order():
    tasks = sequence_tasks(jax.random.key(0), jnp.asarray(labelled_images()), 16, ways=5, instances=4,
                           dtype=jnp.uint8)
    assert tasks.support == ()
    images, labels = map(np.asarray, tasks.query)
    assert images.shape == (16, 20, 6, 6, 1) and labels.shape == (16, 20)
    grouped = 0
    for x, y in zip(images, labels):
        np.testing.assert_array_equal(np.bincount(y, minlength=5), [4] * 5)
        for label in range(5):
            chars, drawings = x[y == label, 0, 0, 0], x[y == label, 0, 1, 0]
            assert len(set(chars)) == 1, "one label must be one character"
            assert len(set(drawings)) == 4, "the instances of a class must be distinct drawings"
        assert len({x[y == label, 0, 0, 0][0] for label in range(5)}) == 5
        grouped += np.all(np.diff(y) >= 0)
    assert grouped == 0, "the sequence must be shuffled, not grouped by class"


def test_the_sampler_rotates_per_class_and_checks_sizes():
    images = np.zeros((10, 20, 4, 4), np.uint8)
    images[:, :, 0, 0] = 255  # a mark in the top-left corner shows the rotation
    sampler = SequenceSampler.create(images, 8, ways=5, instances=10, rotate=True)
    x, y = sampler(jax.random.key(1)).query
    corners = np.asarray(x[..., 0])[:, :, [0, 0, -1, -1], [0, -1, 0, -1]].argmax(-1)  # [B, T]: which corner
    for episode_corners, episode_labels in zip(corners, np.asarray(y)):
        for label in range(5):
            assert len(set(episode_corners[episode_labels == label])) == 1, "one rotation per class"
    assert len(set(corners.ravel())) > 1
    with pytest.raises(ValueError, match="20 drawings per character"):
        SequenceSampler.create(images, 8, ways=5, instances=21)
    with pytest.raises(ValueError, match="split has only 10"):
        SequenceSampler.create(images, 8, ways=11, instances=2)
