"""The N-way K-shot sampler: invariants of a task, determinism, host == device, bad sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.data.episodes import (HostTaskIterator, classification_tasks, gather, sample_indices,
                                    semi_supervised_tasks)

CLASSES, EXAMPLES, SIZE = 12, 20, 6


def _images():
    """Every image is constant-free: its pixels encode (class, example), and it has no rotational symmetry."""
    base = np.zeros((CLASSES, EXAMPLES, SIZE, SIZE), np.uint8)
    for c in range(CLASSES):
        for e in range(EXAMPLES):
            base[c, e, 0, 0] = 10 * c + 1  # a marker in the top-left corner
            base[c, e, 0, 1] = e + 1
    return base


def _decode(image):
    """(class, example, quarter turns) from a sampled image [H, W, 1] in [0, 1]."""
    pixels = np.rint(np.asarray(image[..., 0]) * 255).astype(int)
    for turns in range(4):
        original = np.rot90(pixels, -turns)
        if original[0, 0] and original[0, 0] % 10 == 1 and original[0, 1]:
            return (original[0, 0] - 1) // 10, original[0, 1] - 1, turns
    raise AssertionError("marker not found")


@pytest.mark.parametrize("rotate", [False, True])
def test_task_invariants(rotate):
    ways, shots, queries = 5, 2, 3
    tasks = classification_tasks(jax.random.key(0), jnp.asarray(_images()), 8, ways=ways, shots=shots,
                                 queries=queries, rotate=rotate)
    assert tasks.support[0].shape == (8, ways * shots, SIZE, SIZE, 1) and tasks.query[1].shape == (8, ways * queries)
    assert tasks.support[0].dtype == jnp.float32 and tasks.support[1].dtype == jnp.int32
    for b in range(8):
        seen = {}
        for part, per_class in ((tasks.support, shots), (tasks.query, queries)):
            labels = np.asarray(part[1][b])
            np.testing.assert_array_equal(np.bincount(labels, minlength=ways), per_class)  # balanced, 0..N-1
            for image, label in zip(part[0][b], labels):
                cls, example, turns = _decode(image)
                seen.setdefault(label, []).append((cls, example, turns))
        classes = [items[0][0] for items in seen.values()]
        assert len(set(classes)) == ways  # distinct classes, one per label
        for items in seen.values():
            assert len({c for c, _, _ in items}) == 1  # a label is one class
            assert len({e for _, e, _ in items}) == shots + queries  # support and query disjoint
            assert len({t for _, _, t in items}) == 1  # one rotation per class per task
            assert rotate or items[0][2] == 0


def test_determinism_and_variety():
    images = jnp.asarray(_images())
    a, b, c = (classification_tasks(jax.random.key(k), images, 16, ways=4, shots=1, queries=2, rotate=True)
               for k in (7, 7, 8))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not np.array_equal(a.support[0], c.support[0])
    rotations = [_decode(img)[2] for img in np.asarray(a.support[0]).reshape(-1, SIZE, SIZE, 1)]
    assert set(rotations) == {0, 1, 2, 3}
    labels = np.asarray(a.support[1])
    assert len({tuple(row) for row in labels}) > 1  # label order varies across tasks


def test_host_iterator_gives_the_device_tasks():
    images = _images()
    iterator = HostTaskIterator(images, 3, ways=4, shots=2, queries=1, rotate=True, seed=5)
    for step in range(2):
        host = next(iterator)
        device = classification_tasks(jax.random.fold_in(jax.random.key(5), step), jnp.asarray(images), 3,
                                      ways=4, shots=2, queries=1, rotate=True)
        jax.tree.map(np.testing.assert_array_equal, host, device)


def test_gather_same_on_numpy_and_jax():
    idx = sample_indices(jax.random.key(1), CLASSES, EXAMPLES, ways=3, shots=1, queries=2, rotate=True)
    jax.tree.map(np.testing.assert_array_equal, gather(_images(), idx, shots=1),
                 gather(jnp.asarray(_images()), idx, shots=1))


def test_bad_sizes_name_the_numbers():
    images = jnp.asarray(_images())
    with pytest.raises(ValueError, match="13-way task needs 13 classes, but the split has only 12"):
        classification_tasks(jax.random.key(0), images, 2, ways=13, shots=1, queries=1)
    with pytest.raises(ValueError, match=r"5 \+ 16 = 21 examples per class, but each class has only 20"):
        classification_tasks(jax.random.key(0), images, 2, ways=5, shots=5, queries=16)
    with pytest.raises(ValueError, match="shots must be a positive int"):
        HostTaskIterator(_images(), 2, ways=2, shots=0, queries=1)


def test_pre_rotated_layout_and_uint8_output_give_the_same_tasks():
    from jaxmeta.data.episodes import EpisodeSampler, with_rotations

    images = jnp.asarray(_images())
    key = jax.random.key(3)
    plain = classification_tasks(key, images, 4, ways=3, shots=2, queries=2, rotate=True)
    pre = classification_tasks(key, with_rotations(images), 4, ways=3, shots=2, queries=2, rotate=True)
    jax.tree.map(np.testing.assert_array_equal, plain, pre)
    raw = EpisodeSampler.create(_images(), 4, ways=3, shots=2, queries=2, rotate=True, dtype="uint8")(key)
    assert raw.support[0].dtype == jnp.uint8
    np.testing.assert_array_equal(raw.support[0].astype(np.float32) * np.float32(1 / 255), plain.support[0])


def test_host_iterator_shares_are_disjoint_parts_of_the_same_global_batch():
    images = np.random.default_rng(0).integers(0, 256, (12, 20, 6, 6), dtype=np.uint8)
    sizes = dict(ways=3, shots=1, queries=2, seed=4)
    whole = next(HostTaskIterator(images, 6, **sizes))
    parts = [next(HostTaskIterator(images, 6, share=slice(i, i + 2), **sizes)) for i in (0, 2, 4)]
    assert parts[0].support[0].shape[0] == 2
    jax.tree.map(lambda full, *pieces: np.testing.assert_array_equal(np.concatenate(pieces), full), whole, *parts)


def test_semi_supervised_tasks_draw_labelled_unlabelled_and_distractor_examples_where_they_say():
    ways, shots, queries, unlabeled, distractors = 3, 2, 4, 3, 2
    tasks = semi_supervised_tasks(jax.random.key(3), jnp.asarray(_images()), 5, ways=ways, shots=shots,
                                  queries=queries, unlabeled=unlabeled, distractors=distractors, rotate=True)
    (support_x, support_y), (query_x, query_y) = tasks
    assert support_x.shape[1] == ways * (shots + unlabeled) + distractors * unlabeled
    for b in range(5):
        support = [_decode(x) for x in support_x[b]]
        query = [_decode(x) for x in query_x[b]]
        labelled, task_unlabelled = support[:ways * shots], support[ways * shots:ways * (shots + unlabeled)]
        distracting = support[ways * (shots + unlabeled):]
        np.testing.assert_array_equal(support_y[b, ways * shots:], -1)  # every unlabelled example reads -1
        # One class (and one rotation) per label, the same in the support and the query set.
        class_of = {}
        for (c, _, turns), y in [*zip(labelled, support_y[b, :ways * shots]), *zip(query, query_y[b])]:
            assert class_of.setdefault(int(y), (c, turns)) == (c, turns)
        assert sorted(class_of) == list(range(ways))
        task_classes = {c for c, _ in class_of.values()}
        assert len(task_classes) == ways
        # Unlabelled examples: `unlabeled` more of each task class; distractors: `unlabeled` of each of
        # `distractors` classes outside the task.
        assert sorted(c for c, _, _ in task_unlabelled) == sorted(c for c in task_classes for _ in range(unlabeled))
        distractor_classes = [c for c, _, _ in distracting]
        assert not set(distractor_classes) & task_classes and len(set(distractor_classes)) == distractors
        assert all(distractor_classes.count(c) == unlabeled for c in set(distractor_classes))
        # No example is drawn twice.
        drawn = [(c, e) for c, e, _ in support + query]
        assert len(drawn) == len(set(drawn))
