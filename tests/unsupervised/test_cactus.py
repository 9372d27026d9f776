"""jaxmeta.unsupervised.cactus: tasks drawn from k-means partitions take their classes from distinct clusters
of one partition and K + Q distinct members of each, never from clusters too small, in the layout every
meta-learner trains on; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.unsupervised import CactusSampler, Partitions


def hand_made_partitions():
    """Two partitions of 12 images. Partition 0: clusters of sizes 4, 4, 3, 1 (cluster 3 too small for 3
    images per class); partition 1: sizes 11, 1, 0, 0 (only one usable cluster: never chosen for 2 ways)."""
    first = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3])
    second = np.array([0] * 11 + [1])
    assignments = np.stack([np.random.default_rng(0).permutation(first), second])
    sizes = np.stack([np.bincount(a, minlength=4) for a in assignments])
    return Partitions(jnp.asarray(assignments), jnp.asarray(sizes), jnp.ones((2, 3)), jnp.zeros(2))


def images_numbered(n=12):
    """Image i is filled with the value i, so that a drawn pixel says which image it is."""
    return jnp.broadcast_to(jnp.arange(n, dtype=jnp.uint8)[:, None, None], (n, 4, 4))


def test_tasks_take_distinct_usable_clusters_of_one_partition_and_distinct_members():
    clusters = hand_made_partitions()
    sampler = CactusSampler.create(images_numbered(), clusters, 64, ways=2, shots=1, queries=2, dtype="uint8")
    np.testing.assert_array_equal(sampler.usable_clusters(), [3, 1])
    assert "1 of 2 partitions usable" in sampler.summary()
    assignments = np.asarray(clusters.assignments[0])
    seen = set()
    partitions, chosen_clusters, drawn = jax.vmap(sampler.indices)(jax.random.split(jax.random.key(0), 64))
    for partition, chosen, members in zip(partitions, np.asarray(chosen_clusters), np.asarray(drawn)):
        assert int(partition) == 0 and len(set(chosen)) == 2 and 3 not in chosen  # never the 1-image cluster
        for cluster, images in zip(chosen, members):
            assert len(set(images)) == 3 and np.all(assignments[images] == cluster)
            seen.update(images.tolist())
    assert seen == set(np.flatnonzero(assignments != 3).tolist())  # every image of a usable cluster is drawn


def test_the_batch_has_the_episode_layout_with_consistent_labels():
    clusters = hand_made_partitions()
    sampler = CactusSampler.create(images_numbered(), clusters, 5, ways=2, shots=1, queries=2)
    task = jax.jit(lambda s, k: s(k))(sampler, jax.random.key(0))  # a pytree: traced, not baked in
    (xs, ys), (xq, yq) = task.support, task.query
    assert xs.shape == (5, 2, 4, 4, 1) and xq.shape == (5, 4, 4, 4, 1) and xs.dtype == jnp.float32
    assert ys.shape == (5, 2) and yq.shape == (5, 4)
    assignments = np.asarray(clusters.assignments[0])
    for b in range(5):
        assert sorted(np.asarray(ys[b]).tolist()) == [0, 1]
        support_ids = np.rint(np.asarray(xs[b, :, 0, 0, 0]) * 255).astype(int)
        query_ids = np.rint(np.asarray(xq[b, :, 0, 0, 0]) * 255).astype(int)
        assert not set(support_ids) & set(query_ids)  # support and query are disjoint
        cluster_of_label = {int(y): assignments[i] for i, y in zip(support_ids, np.asarray(ys[b]))}
        assert len(set(cluster_of_label.values())) == 2
        assert all(assignments[i] == cluster_of_label[int(y)] for i, y in zip(query_ids, np.asarray(yq[b])))
    again = sampler(jax.random.key(0))
    jax.tree.map(np.testing.assert_array_equal, task, again)


@pytest.mark.parametrize("sizes, message", [
    (dict(ways=2, shots=3, queries=2), "No partition has 2 clusters of at least shots \\+ queries = 5 images"),
    (dict(ways=5, shots=1, queries=1), "A 5-way task needs 5 classes"),
    (dict(ways=2, shots=0, queries=1), "shots must be a positive int"),
])
def test_impossible_tasks_are_refused_with_the_fix(sizes, message):
    with pytest.raises(ValueError, match=message):
        CactusSampler.create(images_numbered(), hand_made_partitions(), 4, **sizes)


def test_images_that_do_not_match_the_partitions_are_refused():
    with pytest.raises(ValueError, match="for the same N"):
        CactusSampler.create(images_numbered(10), hand_made_partitions(), 4, ways=2, shots=1, queries=1)
