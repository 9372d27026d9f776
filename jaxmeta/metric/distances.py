r"""The geometry the metric learners share: class means, distances, similarities.

Labels are integers ``0..ways-1``; a label of ``-1`` marks an unlabeled
example (the semi-supervised episodes), which :func:`class_means` ignores
because its one-hot row is zero.
"""


import jax
import jax.numpy as jnp


def class_means(embeddings: jax.Array, labels: jax.Array, ways: int,
                weights: jax.Array | None = None) -> jax.Array:
    r"""Per-class (weighted) mean embeddings: the prototypes ``[ways, D]``.

    .. math::
        p_c = \frac{\sum_i w_i\, [y_i = c]\, h_i}{\sum_i w_i\, [y_i = c]}

    with :math:`w_i = 1` unless ``weights`` (``[n]`` or ``[n, D]`` for a
    per-component weighting) is given.

    Example:
      >>> import jax.numpy as jnp
      >>> class_means(jnp.array([[0.0], [2.0], [5.0], [9.0]]), jnp.array([0, 0, 1, -1]), 2).tolist()
      [[1.0], [5.0]]
    """
    onehot = jax.nn.one_hot(labels, ways, dtype=embeddings.dtype)  # [n, ways]; zero rows for label -1
    if weights is None:
        return (onehot.T @ embeddings) / onehot.sum(0)[:, None]
    weights = weights if weights.ndim == 2 else weights[:, None]
    return (onehot.T @ (weights * embeddings)) / (onehot.T @ jnp.broadcast_to(weights, embeddings.shape))


def squared_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    r"""``[m, n]`` squared Euclidean distances :math:`\lVert a_i - b_j \rVert^2` of ``[m, D]`` and ``[n, D]``.

    Computed as :math:`\lVert a\rVert^2 - 2 a \cdot b + \lVert b\rVert^2` (one matrix
    product) and clipped at zero against rounding.

    Example:
      >>> import jax.numpy as jnp
      >>> squared_distances(jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0], [0.0, 1.0]])).tolist()
      [[25.0, 1.0]]
    """
    dots = a @ b.T
    return jnp.maximum(jnp.sum(a * a, -1)[:, None] - 2 * dots + jnp.sum(b * b, -1)[None, :], 0.0)


def cosine_similarities(a: jax.Array, b: jax.Array, epsilon: float = 1e-8) -> jax.Array:
    r"""``[m, n]`` cosine similarities :math:`a_i \cdot b_j / (\lVert a_i\rVert \lVert b_j\rVert)`.

    Norms below ``epsilon`` are raised to ``epsilon`` (a zero vector has similarity 0).

    Example:
      >>> import jax.numpy as jnp
      >>> cosine_similarities(jnp.array([[1.0, 0.0]]), jnp.array([[2.0, 0.0], [0.0, 3.0]])).tolist()
      [[1.0, 0.0]]
    """
    a = a * jax.lax.rsqrt(jnp.maximum(jnp.sum(a * a, -1, keepdims=True), epsilon ** 2))
    b = b * jax.lax.rsqrt(jnp.maximum(jnp.sum(b * b, -1, keepdims=True), epsilon ** 2))
    return a @ b.T
