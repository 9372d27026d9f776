"""Class means, squared distances and cosine similarities against direct NumPy formulas."""

import numpy as np

from jaxmeta.metric import class_means, cosine_similarities, squared_distances

RNG = np.random.default_rng(0)


def test_class_means_average_each_class_and_ignore_unlabeled_examples():
    embeddings = RNG.normal(size=(9, 4))
    labels = np.array([2, 0, 1, 2, -1, 0, 2, -1, 1])
    expected = np.stack([embeddings[labels == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(class_means(embeddings, labels, 3), expected, rtol=1e-12)


def test_weighted_class_means_per_example_and_per_component():
    embeddings, labels = RNG.normal(size=(6, 3)), np.array([0, 1, 0, 1, 1, 0])
    weights = RNG.uniform(0.5, 2.0, size=(6, 3))
    expected = np.stack([(weights[labels == c] * embeddings[labels == c]).sum(0) / weights[labels == c].sum(0)
                         for c in range(2)])
    np.testing.assert_allclose(class_means(embeddings, labels, 2, weights=weights), expected, rtol=1e-12)
    scalar = weights[:, 0]
    expected = np.stack([(scalar[labels == c, None] * embeddings[labels == c]).sum(0) / scalar[labels == c].sum()
                         for c in range(2)])
    np.testing.assert_allclose(class_means(embeddings, labels, 2, weights=scalar), expected, rtol=1e-12)


def test_squared_distances_and_cosine_similarities():
    a, b = RNG.normal(size=(5, 7)), RNG.normal(size=(3, 7))
    expected = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(squared_distances(a, b), expected, rtol=1e-10)
    norm = lambda x: np.linalg.norm(x, axis=1)  # noqa: E731
    cosine = (a @ b.T) / norm(a)[:, None] / norm(b)[None, :]
    np.testing.assert_allclose(cosine_similarities(a, b), cosine, rtol=1e-12)
    assert np.all(np.asarray(squared_distances(a, a)).diagonal() >= 0)
