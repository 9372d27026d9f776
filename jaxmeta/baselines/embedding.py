r"""Few-shot classification by a fixed embedding: nearest neighbour and logistic regression on the support set.

The baselines of Hsu, Levine and Finn (ICLR 2019, Table 1) for an
unsupervised embedding :math:`z = f(x)`, scored per task:

* **1-nearest neighbour**: a query takes the label of its nearest support
  example, by Euclidean distance :math:`\lVert z_q - z_i \rVert` or by cosine
  similarity;
* **logistic regression**: a multinomial logistic regression fitted on the
  support features, the objective of scikit-learn's ``LogisticRegression``
  (which their code calls),

  .. math::
      \min_{W, b}\; C \sum_i -\log \operatorname{softmax}(W^\top z_i + b)_{y_i}
      + \tfrac12 \lVert W \rVert^2 ,

  a convex problem solved from zero by :func:`optax.lbfgs` (L-BFGS with a
  zoom line search) in a fixed number of iterations, so it is ``jit``- and
  ``vmap``-able over tasks and needs no key.

:func:`embedding_accuracy` scores any such rule: ``predict(support_z,
support_y, query_z) -> query labels`` on each task of a batch.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.types import ApplyFn, Params, PRNGKey, Task, check_choice

METRICS = ("euclidean", "cosine")
"""The distances :func:`nearest_neighbour` compares features by."""


def embedding_accuracy(embed_fn: ApplyFn, params: Params, tasks: Task, predict: Callable[..., jax.Array], *,
                       key: PRNGKey | None = None, chunk_size: int | None = None) -> jax.Array:
    """Per-task query accuracy ``[tasks]`` of ``predict`` on the features of a fixed embedding.

    ``embed_fn(params, images) -> [n, D]``; ``tasks`` is a batch of :class:`~jaxmeta.Task`. The support
    and the query images of a task are embedded separately. ``predict(support_z [n, D], support_y [n],
    query_z [m, D]) -> [m]`` labels, e.g. :func:`nearest_neighbour` or a partial of
    :func:`logistic_regression`'s predictions; with a ``key``, each task's ``predict`` also gets
    ``key=`` a key of its own (for rules that draw, like a randomly initialised head). Jits one program
    for the batch, so call it once on all the tasks; ``chunk_size`` scores that many tasks per call (the
    same program for every full chunk), to bound memory.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxmeta import Task
      >>> x = jnp.array([[[1.0, 0.0], [0.0, 1.0]]]); y = jnp.array([[0, 1]])  # one 2-way 1-shot task
      >>> tasks = Task(support=(x, y), query=(jnp.array([[[0.2, 0.9], [0.8, 0.1]]]), jnp.array([[1, 0]])))
      >>> embedding_accuracy(lambda p, x: x, None, tasks, nearest_neighbour).tolist()
      [1.0]
    """
    (support_x, support_y), (query_x, query_y) = tasks.support, tasks.query
    if support_y.ndim != 2 or query_y.ndim != 2:
        raise ValueError(f"tasks must be a batch: labels [tasks, examples], got support {support_y.shape} and "
                         f"query {query_y.shape}; add a leading task axis for a single task.")

    def one(key, support_x, support_y, query_x, query_y):
        drawing = {} if key is None else {"key": key}
        predicted = predict(embed_fn(params, support_x), support_y, embed_fn(params, query_x), **drawing)
        return jnp.mean(predicted == query_y)

    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int (tasks per call), got {chunk_size!r}.")
    count = support_y.shape[0]
    keys = None if key is None else jax.random.split(key, count)
    score = jax.jit(jax.vmap(one))
    size = count if chunk_size is None else chunk_size
    chunk = lambda x, start: None if x is None else x[start:start + size]  # noqa: E731
    return jnp.concatenate([score(*(chunk(x, start) for x in (keys, support_x, support_y, query_x, query_y)))
                            for start in range(0, count, size)])


def nearest_neighbour(support_z: jax.Array, support_y: jax.Array, query_z: jax.Array,
                      metric: str = "euclidean") -> jax.Array:
    """The label of each query's nearest support example, ``[m]`` (ties: the first in support order).

    Example:
      >>> import jax.numpy as jnp
      >>> support = jnp.array([[0.0, 0.0], [4.0, 4.0]]); labels = jnp.array([3, 7])
      >>> nearest_neighbour(support, labels, jnp.array([[3.0, 3.5], [-1.0, 0.5]])).tolist()
      [7, 3]
    """
    check_choice(metric, METRICS, "metric")
    if metric == "cosine":
        unit = lambda z: z / (jnp.linalg.norm(z, axis=-1, keepdims=True) + 1e-12)  # noqa: E731
        closeness = unit(query_z) @ unit(support_z).T
    else:
        closeness = -jnp.sum((query_z[:, None] - support_z[None]) ** 2, axis=-1)
    return support_y[jnp.argmax(closeness, axis=-1)]


def logistic_regression(features: jax.Array, labels: jax.Array, *, num_classes: int, c: float = 1.0,
                        iterations: int = 100) -> tuple[jax.Array, jax.Array]:
    r"""``(weight [D, classes], bias [classes])`` minimising scikit-learn's multinomial logistic-regression
    objective with inverse regularisation ``c`` (the module docstring), by ``iterations`` of L-BFGS from zero.

    Example:
      >>> import jax.numpy as jnp
      >>> z = jnp.array([[2.0, 0.0], [1.5, 0.5], [-2.0, 0.1], [-1.0, -0.3]]); y = jnp.array([0, 0, 1, 1])
      >>> weight, bias = logistic_regression(z, y, num_classes=2)
      >>> jnp.argmax(z @ weight + bias, -1).tolist()
      [0, 0, 1, 1]
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}.")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}.")
    if not c > 0:
        raise ValueError(f"c (the inverse regularisation strength) must be positive, got {c!r}.")
    if features.ndim != 2:
        raise ValueError(f"features must be [examples, feature_dim], got shape {features.shape}.")

    def objective(wb):
        weight, bias = wb
        logits = features @ weight + bias
        return c * jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, labels)) \
            + 0.5 * jnp.sum(weight ** 2)

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry, _):
        wb, state = carry
        value, grad = value_and_grad(wb, state=state)
        updates, state = solver.update(grad, state, wb, value=value, grad=grad, value_fn=objective)
        return (optax.apply_updates(wb, updates), state), None

    start = (jnp.zeros((features.shape[1], num_classes), features.dtype), jnp.zeros(num_classes, features.dtype))
    (wb, _), _ = jax.lax.scan(step, (start, solver.init(start)), length=iterations)
    return wb


def logistic_regression_predict(support_z: jax.Array, support_y: jax.Array, query_z: jax.Array, *,
                                num_classes: int, c: float = 1.0, iterations: int = 100) -> jax.Array:
    """The labels ``[m]`` a :func:`logistic_regression` fitted on the support features gives the queries
    (a ``predict`` for :func:`embedding_accuracy`, with ``num_classes`` bound by ``functools.partial``)."""
    weight, bias = logistic_regression(support_z, support_y, num_classes=num_classes, c=c, iterations=iterations)
    return jnp.argmax(query_z @ weight + bias, axis=-1)
