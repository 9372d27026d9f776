r"""k-means clustering in JAX, and the randomly rescaled partitions of an embedding that CACTUs makes tasks from.

k-means looks for :math:`k` centres :math:`\mu_1 .. \mu_k` and an assignment
:math:`c_i` of every point :math:`z_i` that minimise the inertia

.. math::
    J = \sum_i \lVert z_i - \mu_{c_i} \rVert^2 .

:func:`kmeans` seeds the centres by k-means++ (Arthur and Vassilvitskii
2007: each new centre is a point drawn with probability proportional to its
squared distance from the nearest centre so far) and then runs Lloyd's
iterations: assign every point to its nearest centre, move every centre to the
mean of its points (a centre left without points stays where it was), until
no assignment changes or ``max_iterations``.

:func:`partitions` makes the CACTUs partitions (Hsu, Levine and Finn,
"Unsupervised Learning via Meta-Learning", ICLR 2019): the first on the
embedding as it is, each further one on the embedding with every dimension
multiplied by a weight drawn from :math:`U(0, 1)`, so that the partitions
disagree and the tasks drawn from them are diverse (their code: one k-means
run per partition, k-means++ seeding).

Why in JAX and not scikit-learn: the distances are one matrix product per
iteration, which XLA runs on whatever device holds the embedding, the result
is a deterministic function of a ``jax.random`` key, and the library gains no
dependency. On this project's 2-core CPU, 24,000 Omniglot embeddings of 64
dimensions into 500 clusters take a few seconds per partition.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmeta.core.types import PRNGKey


class KMeans(NamedTuple):
    """A clustering: ``centres [k, D]``, ``assignments [N]`` (the nearest centre of each point), ``inertia``
    (the sum of squared distances to the assigned centres) and ``iterations`` (Lloyd steps run)."""

    centres: jax.Array
    assignments: jax.Array
    inertia: jax.Array
    iterations: jax.Array


def check_embedding(points, k: int) -> None:
    """A clear error for a ``[N, D]`` embedding that cannot be clustered into ``k`` clusters."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int (the number of clusters), got {k!r}.")
    if getattr(points, "ndim", None) != 2:
        raise ValueError(f"The embedding must be a [N, D] array (one row per image), got shape "
                         f"{getattr(points, 'shape', None)}. Flatten each image's features into one row.")
    if k > points.shape[0]:
        raise ValueError(f"k = {k} clusters need at least {k} points, but the embedding has {points.shape[0]}. "
                         f"Use k <= {points.shape[0]}.")
    if not isinstance(points, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(points))):
        bad = int(jnp.sum(~jnp.all(jnp.isfinite(points), axis=1)))
        raise ValueError(f"The embedding has NaN or infinite values in {bad} of its {points.shape[0]} rows; "
                         "check the encoder (a diverged training gives NaN) before clustering.")


def squared_distances(points: jax.Array, centres: jax.Array) -> jax.Array:
    r"""``[N, k]``: :math:`\lVert z_i - \mu_j \rVert^2 = \lVert z_i \rVert^2 - 2 z_i^\top \mu_j +
    \lVert \mu_j \rVert^2`, one matrix product (clipped at 0 against rounding)."""
    cross = points @ centres.T
    return jnp.maximum(jnp.sum(points ** 2, axis=1)[:, None] - 2 * cross + jnp.sum(centres ** 2, axis=1), 0.0)


def kmeans_plus_plus(key: PRNGKey, points: jax.Array, k: int) -> jax.Array:
    """``k`` initial centres ``[k, D]`` drawn by k-means++ from ``points [N, D]``."""
    n = points.shape[0]
    first_key, rest_key = jax.random.split(key)
    first = points[jax.random.randint(first_key, (), 0, n)]
    centres = jnp.zeros((k, points.shape[1]), points.dtype).at[0].set(first)
    nearest = jnp.sum((points - first) ** 2, axis=1)

    def add(i, carry):
        centres, nearest = carry
        # Proportional to the squared distance; a point that is already a centre has probability 0.
        index = jax.random.categorical(jax.random.fold_in(rest_key, i), jnp.log(nearest))
        centre = points[index]
        return centres.at[i].set(centre), jnp.minimum(nearest, jnp.sum((points - centre) ** 2, axis=1))

    return jax.lax.fori_loop(1, k, add, (centres, nearest))[0]


def lloyd(points: jax.Array, centres: jax.Array, *, max_iterations: int = 100) -> KMeans:
    """Lloyd's iterations from ``centres`` until no assignment changes (or ``max_iterations``)."""
    k = centres.shape[0]

    def assign(centres):
        return jnp.argmin(squared_distances(points, centres), axis=1).astype(jnp.int32)

    def move(centres, assignments):
        one_hot = jax.nn.one_hot(assignments, k, dtype=points.dtype)  # [N, k]
        counts = one_hot.sum(axis=0)
        means = (one_hot.T @ points) / jnp.maximum(counts, 1)[:, None]
        return jnp.where(counts[:, None] > 0, means, centres)

    def not_done(carry):
        _, _, changed, iteration = carry
        return changed & (iteration < max_iterations)

    def step(carry):
        centres, assignments, _, iteration = carry
        centres = move(centres, assignments)
        new = assign(centres)
        return centres, new, jnp.any(new != assignments), iteration + 1

    first = assign(centres)
    centres, assignments, _, iterations = jax.lax.while_loop(
        not_done, step, (centres, first, jnp.asarray(True), jnp.asarray(0)))
    inertia = jnp.sum(jnp.take_along_axis(squared_distances(points, centres), assignments[:, None], axis=1))
    return KMeans(centres, assignments, inertia, iterations)


def kmeans(key: PRNGKey, points: jax.Array, k: int, *, max_iterations: int = 100) -> KMeans:
    r"""Cluster ``points [N, D]`` into ``k`` clusters: k-means++ seeding, then Lloyd's iterations.

    At the end every point is assigned to its nearest centre (:func:`squared_distances`); when Lloyd's
    iterations converged, every centre is also the mean of its points.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> points = jnp.array([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0]])
      >>> result = kmeans(jax.random.key(0), points, 2)
      >>> bool(result.assignments[0] == result.assignments[1] != result.assignments[2] == result.assignments[3])
      True
    """
    check_embedding(points, k)
    points = jnp.asarray(points)
    return _kmeans(key, points, k, max_iterations)


@functools.partial(jax.jit, static_argnames=("k", "max_iterations"))
def _kmeans(key, points, k, max_iterations):
    return lloyd(points, kmeans_plus_plus(key, points, k), max_iterations=max_iterations)


class Partitions(NamedTuple):
    """``count`` clusterings of the same ``N`` points: ``assignments [count, N]`` (each point's cluster in
    each partition), ``sizes [count, k]`` (points per cluster), ``scales [count, D]`` (the weights each
    partition's embedding was multiplied by; ones for the first) and ``inertia [count]``."""

    assignments: jax.Array
    sizes: jax.Array
    scales: jax.Array
    inertia: jax.Array


def partitions(key: PRNGKey, embedding: jax.Array, *, k: int, count: int, max_iterations: int = 100,
               progress: bool = False) -> Partitions:
    r"""CACTUs's ``count`` k-means partitions of ``embedding [N, D]`` into ``k`` clusters each.

    Partition 0 clusters the embedding itself; partition :math:`p > 0` clusters
    :math:`z \odot s_p` with :math:`s_p \sim U(0, 1)^D`. Hsu et al. use ``k = 500`` on Omniglot.
    ``progress`` shows a bar over the partitions.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> points = jax.random.normal(jax.random.key(0), (40, 3))
      >>> result = partitions(jax.random.key(1), points, k=4, count=3)
      >>> result.assignments.shape, result.sizes.sum(axis=1).tolist(), result.scales[0].tolist()
      ((3, 40), [40, 40, 40], [1.0, 1.0, 1.0])
    """
    from tqdm import tqdm

    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int (the number of partitions), got {count!r}.")
    check_embedding(embedding, k)
    embedding = jnp.asarray(embedding)
    scale_key, cluster_key = jax.random.split(key)
    scales = jax.random.uniform(scale_key, (count, embedding.shape[1]), embedding.dtype).at[0].set(1.0)
    results = [_kmeans(jax.random.fold_in(cluster_key, p), embedding * scales[p], k, max_iterations)
               for p in tqdm(range(count), desc="k-means partitions", disable=not progress)]
    assignments = jnp.stack([r.assignments for r in results])
    sizes = jax.vmap(lambda a: jnp.bincount(a, length=k))(assignments).astype(jnp.int32)
    return Partitions(assignments, sizes, scales, jnp.stack([r.inertia for r in results]))


def cluster_purity(assignments, labels, *, k: int | None = None) -> float:
    r"""How well clusters follow known classes (a diagnostic; CACTUs never sees the labels): the share of
    points whose cluster's most common label is their own,
    :math:`\frac{1}{N} \sum_c \max_y |\{i : c_i = c, y_i = y\}|`. 1 when every cluster holds one class.

    Example:
      >>> cluster_purity([0, 0, 0, 1, 1, 1], [5, 5, 7, 7, 7, 7])  # cluster 0: two 5s of three
      0.8333333333333334
    """
    import numpy as np

    assignments, labels = np.asarray(assignments), np.asarray(labels)
    if assignments.shape != labels.shape or assignments.ndim != 1:
        raise ValueError(f"assignments and labels must be [N] arrays of the same N, got {assignments.shape} and "
                         f"{labels.shape}.")
    _, label_index = np.unique(labels, return_inverse=True)
    k = int(assignments.max()) + 1 if k is None else k
    counts = np.zeros((k, label_index.max() + 1), np.int64)
    np.add.at(counts, (assignments, label_index), 1)
    return float(counts.max(axis=1).sum() / len(labels))
