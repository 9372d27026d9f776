"""Relation networks: the pairing of feature maps, the relation module and the MSE objective."""

import jax
import numpy as np

from jaxmeta.metric import RelationNetwork
from jaxmeta.models import ConvEmbedding

WAYS, SHOTS, QUERIES = 3, 2, 4


def episode(rng):
    sx = rng.uniform(size=(WAYS * SHOTS, 28, 28, 1))
    sy = np.repeat(np.arange(WAYS), SHOTS)[rng.permutation(WAYS * SHOTS)]
    qy = rng.integers(0, WAYS, QUERIES)
    return sx, sy, rng.uniform(size=(QUERIES, 28, 28, 1)), qy


def test_relation_scores_pair_each_query_with_each_class_sum():
    rng = np.random.default_rng(3)
    model = RelationNetwork(ConvEmbedding(features=4, pooled_blocks=2, flatten=False, conv="im2col"), ways=WAYS)
    sx, sy, qx, qy = episode(rng)
    params = model.init(jax.random.key(0), sx, sy, qx)["params"]
    scores = model.apply({"params": params}, sx, sy, qx)
    assert scores.shape == (QUERIES, WAYS) and np.all((scores > 0) & (scores < 1))
    maps = np.asarray(model.embedding.apply({"params": params["embedding"]}, np.concatenate([sx, qx])))
    assert maps.shape[1:] == (7, 7, 4)  # 28 -> 14 -> 7, then two blocks without pooling
    support, query = maps[:len(sx)], maps[len(sx):]
    classes = np.stack([support[sy == c].sum(0) for c in range(WAYS)])
    pairs = np.concatenate([np.repeat(query, WAYS, 0), np.tile(classes, (QUERIES, 1, 1, 1))], axis=-1)
    from jaxmeta.metric.relation import RelationModule
    direct = RelationModule().apply({"params": params["relation"]}, pairs).reshape(QUERIES, WAYS)
    np.testing.assert_allclose(scores, direct, rtol=1e-9)
    loss, _ = model.apply({"params": params}, sx, sy, qx, qy, method="episode_loss")
    np.testing.assert_allclose(loss, np.mean((direct - np.eye(WAYS)[qy]) ** 2), rtol=1e-10)
