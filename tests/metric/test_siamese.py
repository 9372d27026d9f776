"""Siamese networks: weighted L1 pair logits, best-support-image scores, balanced binary cross-entropy."""

import jax
import numpy as np

from jaxmeta.metric import SiameseNetwork
from jaxmeta.models import MLP

WAYS, SHOTS, QUERIES = 3, 2, 5


def test_pair_logits_scores_and_balanced_loss_match_numpy():
    rng = np.random.default_rng(4)
    sx = rng.normal(size=(WAYS * SHOTS, 6))
    sy = np.repeat(np.arange(WAYS), SHOTS)[rng.permutation(WAYS * SHOTS)]
    qx, qy = rng.normal(size=(QUERIES, 6)), rng.integers(0, WAYS, QUERIES)
    model = SiameseNetwork(MLP((8, 5)), ways=WAYS)
    params = model.init(jax.random.key(0), sx, sy, qx)["params"]
    emb = np.asarray(model.embedding.apply({"params": params["embedding"]}, np.concatenate([sx, qx])))
    support, query = emb[:len(sx)], emb[len(sx):]
    alpha, bias = np.asarray(params["compare"]["kernel"])[:, 0], np.asarray(params["compare"]["bias"])[0]
    logits = np.abs(query[:, None] - support[None]) @ alpha + bias
    scores = np.stack([logits[:, sy == c].max(1) for c in range(WAYS)], axis=1)
    np.testing.assert_allclose(model.apply({"params": params}, sx, sy, qx), scores, rtol=1e-9)
    same = qy[:, None] == sy[None]
    p = 1 / (1 + np.exp(-logits))
    expected = 0.5 * (-np.log(p[same]).mean() - np.log(1 - p[~same]).mean())
    loss, returned = model.apply({"params": params}, sx, sy, qx, qy, method="episode_loss")
    np.testing.assert_allclose(loss, expected, rtol=1e-9)
    np.testing.assert_allclose(returned, scores, rtol=1e-9)
