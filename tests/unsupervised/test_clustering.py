"""jaxmeta.unsupervised.clustering: k-means against its definition (nearest centres, centres at their
points' means, the inertia as a NumPy sum), k-means++ seeding, the rescaled CACTUs partitions, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.unsupervised import cluster_purity, kmeans, partitions, squared_distances
from jaxmeta.unsupervised.clustering import kmeans_plus_plus


def blobs(key, centres=6, per=30, dim=5, spread=0.3):
    means = 5.0 * jax.random.normal(key, (centres, dim))
    points = means[:, None] + spread * jax.random.normal(jax.random.fold_in(key, 1), (centres, per, dim))
    return points.reshape(-1, dim), np.repeat(np.arange(centres), per)


def test_squared_distances_equal_numpy():
    points, centres = jax.random.normal(jax.random.key(0), (7, 3)), jax.random.normal(jax.random.key(1), (4, 3))
    expected = ((np.asarray(points)[:, None] - np.asarray(centres)[None]) ** 2).sum(-1)
    np.testing.assert_allclose(squared_distances(points, centres), expected, rtol=1e-5, atol=1e-5)


def test_every_point_is_assigned_to_its_nearest_centre_and_centres_are_their_means():
    points = jax.random.normal(jax.random.key(2), (300, 4))  # no cluster structure: many Lloyd steps
    result = kmeans(jax.random.key(3), points, 12)
    p, c, a = np.asarray(points, np.float64), np.asarray(result.centres, np.float64), np.asarray(result.assignments)
    distances = ((p[:, None] - c[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(a, distances.argmin(1))
    assert 1 < int(result.iterations) < 100  # converged: no assignment changed in the last step
    for cluster in range(12):
        np.testing.assert_allclose(c[cluster], p[a == cluster].mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(result.inertia), distances[np.arange(300), a].sum(), rtol=1e-4)


def test_separated_blobs_are_recovered_exactly_and_the_result_depends_only_on_the_key():
    points, truth = blobs(jax.random.key(4))
    result = kmeans(jax.random.key(5), points, 6)
    found = np.asarray(result.assignments)
    # The same grouping up to the names of the clusters: each blob is one cluster.
    assert all(len(set(found[truth == b])) == 1 for b in range(6)) and len(set(found)) == 6
    again, other = kmeans(jax.random.key(5), points, 6), kmeans(jax.random.key(6), points, 6)
    np.testing.assert_array_equal(result.centres, again.centres)
    assert not np.array_equal(result.centres, other.centres)  # the seeding differs with the key


def test_cluster_purity_counts_the_points_of_each_clusters_majority_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 50)
    assert cluster_purity(labels + 10, labels) == 1.0  # clusters are the classes, under other names
    clusters = rng.integers(0, 5, 50)
    majority = sum(np.bincount(labels[clusters == c]).max() for c in range(5) if np.any(clusters == c))
    assert cluster_purity(clusters, labels) == majority / 50
    assert cluster_purity(np.zeros(50, int), labels) == np.bincount(labels).max() / 50  # one cluster: the top class
    with pytest.raises(ValueError, match="the same N"):
        cluster_purity(clusters[:3], labels)


def test_kmeans_plus_plus_seeds_with_data_points_one_per_far_apart_blob():
    points, truth = blobs(jax.random.key(7), centres=4, per=10)
    seeds = np.asarray(kmeans_plus_plus(jax.random.key(8), points, 4))
    rows = np.asarray(points)
    matches = [np.flatnonzero(np.all(np.isclose(rows, seed), axis=1)) for seed in seeds]
    assert all(len(m) == 1 for m in matches)  # every seed is one of the points
    # The squared-distance weighting spreads them: for blobs this far apart, one seed in each.
    assert sorted(truth[m[0]] for m in matches) == [0, 1, 2, 3]


def test_partitions_rescale_every_dimension_but_the_first_partitions():
    points, _ = blobs(jax.random.key(9), centres=5, per=12, dim=3)
    result = partitions(jax.random.key(10), points, k=5, count=4)
    assert result.assignments.shape == (4, 60) and result.sizes.shape == (4, 5)
    np.testing.assert_array_equal(result.scales[0], np.ones(3))
    scales = np.asarray(result.scales[1:])
    assert np.all((scales > 0) & (scales < 1)) and len({tuple(s) for s in scales}) == 3
    for p in range(4):  # each partition is k-means of its rescaled embedding: nearest centres there
        np.testing.assert_array_equal(np.bincount(np.asarray(result.assignments[p]), minlength=5), result.sizes[p])
        scaled = kmeans(jax.random.fold_in(jax.random.split(jax.random.key(10))[1], p), points * result.scales[p], 5)
        np.testing.assert_array_equal(result.assignments[p], scaled.assignments)


@pytest.mark.parametrize("call, message", [
    (lambda x: kmeans(jax.random.key(0), x, 41), "k = 41 clusters need at least 41 points"),
    (lambda x: kmeans(jax.random.key(0), x, 0), "k must be a positive int"),
    (lambda x: kmeans(jax.random.key(0), x[0], 2), "must be a .N, D. array"),
    (lambda x: kmeans(jax.random.key(0), x.at[3, 1].set(jnp.nan), 2), "NaN or infinite values in 1 of its 40 rows"),
    (lambda x: partitions(jax.random.key(0), x, k=2, count=0), "count must be a positive int"),
])
def test_bad_input_is_refused_with_the_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call(jax.random.normal(jax.random.key(1), (40, 3)))
