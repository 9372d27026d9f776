"""Adaptation curves and confidence intervals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmeta
from gradcheck import regression_task, tiny_mlp


@pytest.mark.parametrize("chunk_size, task_chunk, progress", [(2, None, False), (None, 2, True)])
def test_curve_entries_equal_query_loss_after_j_steps(chunk_size, task_chunk, progress):
    """Chunks of tasks per call, or tasks two at a time within a call (3 = 2 + 1), change nothing."""
    params, apply = tiny_mlp(jax.random.key(0))
    loss_fn = jaxmeta.regression_loss(apply)
    tasks = jax.tree.map(lambda *xs: jnp.stack(xs), *[regression_task(jax.random.key(i)) for i in range(3)])
    learner = jaxmeta.maml(loss_fn, inner_lr=0.2, inner_steps=1)
    result = jaxmeta.evaluate(learner, params, tasks, key=jax.random.key(1), steps=4, chunk_size=chunk_size,
                              task_chunk=task_chunk, progress=progress)
    assert result.losses.shape == (3, 5)
    keys = jax.random.split(jax.random.key(1), 3)
    for i in range(3):
        task = jax.tree.map(lambda x, i=i: x[i], tasks)
        inner_key, _ = jax.random.split(keys[i])
        np.testing.assert_allclose(result.losses[i, 0], loss_fn(params, task.query, key=None)[0], rtol=1e-12)
        for j in (1, 4):
            phi = learner.adapt(params, task.support, key=inner_key, steps=j).params
            np.testing.assert_allclose(result.losses[i, j], loss_fn(phi, task.query, key=None)[0], rtol=1e-10)
    summary = result.summary()["loss"]
    assert len(summary) == 5 and summary[4][0] < summary[0][0]
    # steps left out: the learner's own number (1); loss_fn=: the query sets scored with another loss.
    own = jaxmeta.evaluate(learner, params, tasks, key=jax.random.key(1))
    np.testing.assert_allclose(own.losses, result.losses[:, :2], rtol=1e-12)
    doubled = lambda p, batch, *, key: (2 * loss_fn(p, batch, key=key)[0], {})  # noqa: E731
    scaled = jaxmeta.evaluate(learner, params, tasks, key=jax.random.key(1), steps=4, loss_fn=doubled)
    np.testing.assert_allclose(scaled.losses, 2 * result.losses, rtol=1e-12)


def test_a_learner_without_a_score_or_an_inner_loop_gets_a_clear_error():
    params, apply = tiny_mlp(jax.random.key(0))
    loss_fn = jaxmeta.regression_loss(apply)
    tasks = jax.tree.map(lambda *xs: jnp.stack(xs), *[regression_task(jax.random.key(i)) for i in range(2)])
    by_hand = jaxmeta.maml(loss_fn, inner_lr=0.2)._replace(score=None)
    with pytest.raises(TypeError, match="pass loss_fn="):
        jaxmeta.evaluate(by_hand, params, tasks, key=jax.random.key(1))
    np.testing.assert_allclose(jaxmeta.evaluate(by_hand, params, tasks, key=jax.random.key(1), loss_fn=loss_fn).losses,
                               jaxmeta.evaluate(jaxmeta.maml(loss_fn, inner_lr=0.2), params, tasks,
                                                key=jax.random.key(1)).losses, rtol=1e-12)


def test_classification_curves_report_accuracy():
    loss_fn = jaxmeta.classification_loss(lambda w, x: x @ w)
    x = jnp.tile(jnp.eye(3)[None], (2, 1, 1))
    tasks = jaxmeta.Task((x, jnp.tile(jnp.arange(3), (2, 1))), (x, jnp.tile(jnp.arange(3), (2, 1))))
    learner = jaxmeta.maml(loss_fn, inner_lr=5.0)
    result = jaxmeta.evaluate(learner, jnp.zeros((3, 3)), tasks, key=jax.random.key(0), steps=2)
    # equal logits before adaptation: argmax picks class 0, right for 1 of 3 examples
    np.testing.assert_allclose(result.metrics["accuracy"][:, 0], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(result.metrics["accuracy"][:, 2], 1.0)


def test_confidence_interval_formula():
    values = np.random.default_rng(0).normal(size=500)
    mean, ci = jaxmeta.confidence_interval(values)
    assert mean == pytest.approx(values.mean())
    assert ci == pytest.approx(1.96 * values.std(ddof=1) / np.sqrt(500))
    with pytest.raises(ValueError, match="at least 2"):
        jaxmeta.confidence_interval([1.0])
