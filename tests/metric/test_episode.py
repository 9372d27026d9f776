"""Metric learners as MetaLearners: gradients, batching, evaluation, support-order invariance,
and a short training run on real Omniglot episodes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmeta
from jaxmeta.metric import (GaussianPrototypicalNetwork, MatchingNetwork, PrototypicalNetwork, RelationNetwork,
                            SemiSupervisedPrototypicalNetwork, SiameseNetwork, metric_learner)
from jaxmeta.metric.episode import episode_metrics
from jaxmeta.models import MLP, ConvEmbedding
from episode_training import accuracy_before_and_after_training

WAYS = 3


def vector_task(rng, shots=2, queries=4):
    sx = rng.normal(size=(WAYS * shots, 6))
    sy = np.repeat(np.arange(WAYS), shots)[rng.permutation(WAYS * shots)]
    qy = rng.integers(0, WAYS, queries)
    return jaxmeta.Task((sx, sy), (rng.normal(size=(queries, 6)), qy))


ORDER_INVARIANT = {
    "protonet": lambda: PrototypicalNetwork(MLP((8, 5)), ways=WAYS),
    "gaussian": lambda: GaussianPrototypicalNetwork(MLP((8, 6)), ways=WAYS),
    "semi-supervised": lambda: SemiSupervisedPrototypicalNetwork(MLP((8, 5)), ways=WAYS, distractor=True),
    "matching": lambda: MatchingNetwork(MLP((8, 5)), ways=WAYS),
    "siamese": lambda: SiameseNetwork(MLP((8, 5)), ways=WAYS),
    "relation": lambda: RelationNetwork(MLP((8, 5)), ways=WAYS,
                                        relation=_VectorRelation()),
}


class _VectorRelation(jaxmeta.models.MLP):
    """A relation module for vector embeddings: an MLP with a sigmoid output."""

    features: tuple = (8, 1)

    def __call__(self, pairs):
        return jax.nn.sigmoid(super().__call__(pairs))[:, 0]


@pytest.mark.parametrize("name", sorted(ORDER_INVARIANT))
def test_predictions_do_not_depend_on_the_order_of_the_support_set(name):
    rng = np.random.default_rng(5)
    model = ORDER_INVARIANT[name]()
    (sx, sy), (qx, _) = vector_task(rng, shots=3)
    params = model.init(jax.random.key(0), sx, sy, qx)["params"]
    order = rng.permutation(len(sx))
    np.testing.assert_allclose(model.apply({"params": params}, sx[order], sy[order], qx),
                               model.apply({"params": params}, sx, sy, qx), rtol=1e-9, atol=1e-12)


@pytest.mark.long
def test_task_gradient_is_the_gradient_of_the_episode_loss_and_the_meta_step_averages_tasks():
    rng = np.random.default_rng(6)
    model = PrototypicalNetwork(MLP((8, 5)), ways=WAYS)
    tasks = [vector_task(rng) for _ in range(3)]
    params = jax.tree.map(lambda x: x.astype(jnp.float64), model.init(
        jax.random.key(0), tasks[0].support[0], tasks[0].support[1], tasks[0].query[0])["params"])
    learner = metric_learner(model)

    def loss(p, task):
        (sx, sy), (qx, qy) = task
        scores = model.apply({"params": p}, sx, sy, qx)
        return -jnp.mean(jax.nn.log_softmax(scores)[jnp.arange(len(qy)), qy])

    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)  # noqa: E731

    grads, metrics = learner.task_grad(params, tasks[0], jax.random.key(1))
    jax.tree.map(close, grads, jax.grad(loss)(params, tasks[0]))
    np.testing.assert_allclose(metrics["loss"], loss(params, tasks[0]), rtol=1e-12)
    batch = jax.tree.map(lambda *xs: np.stack(xs), *tasks)
    mean_grads, _ = jaxmeta.meta_gradient(learner, params, batch, jax.random.key(2))
    expected = jax.tree.map(lambda *gs: sum(gs) / 3, *[jax.grad(loss)(params, t) for t in tasks])
    jax.tree.map(close, mean_grads, expected)


def test_evaluate_scores_each_task_once_and_adapt_explains_itself():
    rng = np.random.default_rng(7)
    model = PrototypicalNetwork(MLP((8, 5)), ways=WAYS)
    tasks = [vector_task(rng) for _ in range(5)]
    params = model.init(jax.random.key(0), tasks[0].support[0], tasks[0].support[1], tasks[0].query[0])["params"]
    batch = jax.tree.map(lambda *xs: np.stack(xs), *tasks)
    learner = metric_learner(model)
    scores = jaxmeta.evaluate(learner, params, batch, key=jax.random.key(0), chunk_size=2)
    expected = [episode_metrics(model, params, t)[1] for t in tasks]
    np.testing.assert_allclose(scores.metrics["accuracy"][:, 0], [float(m["accuracy"]) for m in expected])
    np.testing.assert_allclose(scores.losses[:, 0], [float(m["loss"]) for m in expected], rtol=1e-12)
    assert scores.losses.shape == (5, 1) and sorted(scores.summary()) == ["accuracy", "loss"]
    assert metric_learner(model).score == learner.score  # equal models share the compiled evaluation
    with pytest.raises(ValueError, match="no inner loop"):
        jaxmeta.evaluate(learner, params, batch, key=jax.random.key(0), steps=3)
    with pytest.raises(TypeError, match=r"jaxmeta.evaluate\(learner, params, tasks"):
        learner.adapt(params, tasks[0].support, key=jax.random.key(0))


@pytest.mark.long
def test_a_short_training_run_on_omniglot_clearly_beats_chance(omniglot):
    """ProtoNet with a narrow conv-4: 5-way 1-shot accuracy on held-out characters after 100 episodes."""
    model = PrototypicalNetwork(ConvEmbedding(features=16, conv="im2col"), ways=5)
    before, after = accuracy_before_and_after_training(model, omniglot, steps=100, meta_batch=4)
    assert after > 0.7 and after > before + 0.1, (before, after)
