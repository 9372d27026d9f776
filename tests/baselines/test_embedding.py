"""jaxmeta.baselines.embedding: 1-nearest neighbour against NumPy, logistic regression at the optimum of its
objective (a zero gradient, float64), per-task accuracy over a batch, bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta import Task
from jaxmeta.baselines import embedding_accuracy, logistic_regression, logistic_regression_predict, nearest_neighbour


def test_nearest_neighbour_equals_numpy_for_both_metrics():
    support, query = jax.random.normal(jax.random.key(0), (10, 4)), jax.random.normal(jax.random.key(1), (6, 4))
    labels = jnp.arange(10) % 3
    s, q = np.asarray(support), np.asarray(query)
    euclidean = np.asarray(labels)[((q[:, None] - s[None]) ** 2).sum(-1).argmin(1)]
    cosine = np.asarray(labels)[((q / np.linalg.norm(q, axis=1, keepdims=True))
                                 @ (s / np.linalg.norm(s, axis=1, keepdims=True)).T).argmax(1)]
    np.testing.assert_array_equal(nearest_neighbour(support, labels, query), euclidean)
    np.testing.assert_array_equal(nearest_neighbour(support, labels, query, "cosine"), cosine)
    assert not np.array_equal(euclidean, cosine)  # the metrics disagree on these points


def test_logistic_regression_reaches_the_optimum_of_its_objective():
    with jax.enable_x64(True):
        z = jax.random.normal(jax.random.key(2), (12, 3), jnp.float64)
        y = jnp.array([0, 1, 2] * 4)  # not separable by much: the regulariser matters
        c = 0.7
        weight, bias = logistic_regression(z, y, num_classes=3, c=c)

        def objective(weight, bias):
            logits = z @ weight + bias
            return c * jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, y)) + 0.5 * jnp.sum(weight ** 2)

        grad_w, grad_b = jax.grad(objective, argnums=(0, 1))(weight, bias)
        assert float(jnp.max(jnp.abs(grad_w))) < 1e-6 and float(jnp.max(jnp.abs(grad_b))) < 1e-6
        # The stationarity condition in closed form: W = C Z^T (Y - P), with P the softmax probabilities.
        p = jax.nn.softmax(z @ weight + bias)
        np.testing.assert_allclose(weight, c * z.T @ (jax.nn.one_hot(y, 3) - p), atol=1e-6)
        weaker = logistic_regression(z, y, num_classes=3, c=0.01)[0]
        assert float(jnp.linalg.norm(weaker)) < float(jnp.linalg.norm(weight))  # more regularised: smaller


def test_embedding_accuracy_scores_each_task_and_gives_each_its_own_key():
    centres = jnp.array([[5.0, 0.0], [0.0, 5.0], [-5.0, -5.0]])
    support_x = jnp.broadcast_to(centres, (4, 3, 2))
    labels = jnp.broadcast_to(jnp.arange(3), (4, 3))
    query_x = support_x + 0.5 * jax.random.normal(jax.random.key(3), (4, 3, 2))
    query_y = labels.at[0, 0].set(2)  # one wrong label in the first task: accuracy 2/3 there
    tasks = Task((support_x, labels), (query_x, query_y))
    predict = functools.partial(logistic_regression_predict, num_classes=3)
    np.testing.assert_allclose(embedding_accuracy(lambda p, x: x, None, tasks, predict), [2 / 3, 1, 1, 1])
    np.testing.assert_allclose(embedding_accuracy(lambda p, x: x * p, 2.0, tasks, nearest_neighbour),
                               [2 / 3, 1, 1, 1])
    for chunk_size in (1, 3):  # chunks, the last one shorter: the same per-task scores, keys included
        np.testing.assert_allclose(embedding_accuracy(lambda p, x: x, None, tasks, predict, chunk_size=chunk_size),
                                   [2 / 3, 1, 1, 1])
    seen = []
    keyed = lambda s, y, q, key: jnp.full(q.shape[0], jax.random.randint(key, (), 0, 1000))  # noqa: E731
    draws = embedding_accuracy(lambda p, x: x, None, Task((support_x, labels), (query_x, jnp.zeros_like(labels))),
                               lambda s, y, q, key: seen.append(1) or keyed(s, y, q, key), key=jax.random.key(4))
    assert draws.shape == (4,) and seen == [1]  # traced once for the batch
    chunked = embedding_accuracy(lambda p, x: x, None, Task((support_x, labels), (query_x, jnp.zeros_like(labels))),
                                 keyed, key=jax.random.key(4), chunk_size=3)
    np.testing.assert_array_equal(chunked, draws)


@pytest.mark.parametrize("call, message", [
    (lambda: nearest_neighbour(jnp.zeros((2, 2)), jnp.zeros(2, int), jnp.zeros((1, 2)), "manhattan"),
     "Unknown metric 'manhattan'"),
    (lambda: logistic_regression(jnp.zeros((2, 2)), jnp.zeros(2, int), num_classes=2, c=0.0),
     "c .the inverse regularisation strength. must be positive"),
    (lambda: logistic_regression(jnp.zeros((2, 2)), jnp.zeros(2, int), num_classes=0), "num_classes must be"),
    (lambda: embedding_accuracy(lambda p, x: x, None, Task((jnp.zeros((3, 2)), jnp.zeros(3, int)),
                                                           (jnp.zeros((3, 2)), jnp.zeros(3, int))), nearest_neighbour),
     "tasks must be a batch"),
    (lambda: embedding_accuracy(lambda p, x: x, None, Task((jnp.zeros((1, 3, 2)), jnp.zeros((1, 3), int)),
                                                           (jnp.zeros((1, 3, 2)), jnp.zeros((1, 3), int))),
                                nearest_neighbour, chunk_size=0), "chunk_size must be a positive int"),
])
def test_bad_input_is_refused_with_the_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call()
