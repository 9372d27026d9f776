"""Matching networks: euclidean and cosine attention against NumPy, and the full-context embeddings."""

import jax
import numpy as np
import pytest

from jaxmeta.metric import MatchingNetwork, PrototypicalNetwork
from jaxmeta.models import MLP

RNG = np.random.default_rng(2)
WAYS, SHOTS, QUERIES = 3, 2, 4


def episode():
    sx = RNG.normal(size=(WAYS * SHOTS, 6))
    sy = np.repeat(np.arange(WAYS), SHOTS)[RNG.permutation(WAYS * SHOTS)]
    return sx, sy, RNG.normal(size=(QUERIES, 6))


def numpy_similarities(query, support, similarity):
    if similarity == "euclidean":
        return -((query[:, None, :] - support[None, :, :]) ** 2).sum(-1)
    norm = lambda x: np.linalg.norm(x, axis=1)  # noqa: E731
    return (query @ support.T) / norm(query)[:, None] / norm(support)[None, :]


@pytest.mark.parametrize("similarity", ["euclidean", "cosine"])
def test_scores_are_log_attention_mass_of_each_class(similarity):
    model = MatchingNetwork(MLP((8, 5)), ways=WAYS, similarity=similarity)
    sx, sy, qx = episode()
    params = model.init(jax.random.key(0), sx, sy, qx)["params"]
    emb = np.asarray(model.embedding.apply({"params": params["embedding"]}, np.concatenate([sx, qx])))
    c = numpy_similarities(emb[len(sx):], emb[:len(sx)], similarity)
    attention = np.exp(c) / np.exp(c).sum(1, keepdims=True)
    expected = np.log(np.stack([attention[:, sy == c].sum(1) for c in range(WAYS)], axis=1))
    np.testing.assert_allclose(model.apply({"params": params}, sx, sy, qx), expected, rtol=1e-9)


def test_the_default_similarity_is_the_negative_squared_distance_that_reproduces_the_paper():
    """Cosine attention plateaus far below the paper (README); the default is the euclidean one."""
    assert MatchingNetwork(MLP((8,)), ways=WAYS).similarity == "euclidean"
    sx, sy, qx = episode()
    sx, sy = sx[::SHOTS], np.arange(WAYS)  # one shot per class: attention on one example per class
    embedding = MLP((8, 5))
    params = MatchingNetwork(embedding, ways=WAYS).init(jax.random.key(0), sx, sy, qx)["params"]
    # At one shot the class's attention mass is softmax(-d^2) over the classes: a prototypical network.
    np.testing.assert_allclose(MatchingNetwork(embedding, ways=WAYS).apply({"params": params}, sx, sy, qx),
                               jax.nn.log_softmax(PrototypicalNetwork(embedding, ways=WAYS).apply(
                                   {"params": params}, sx, sy, qx)), rtol=1e-9)


def test_an_unknown_similarity_is_refused_with_the_choices():
    sx, sy, qx = episode()
    with pytest.raises(ValueError, match="Unknown similarity 'dot': choose one of euclidean, cosine"):
        MatchingNetwork(MLP((8,)), ways=WAYS, similarity="dot").init(jax.random.key(0), sx, sy, qx)


def test_full_context_embeddings_give_probabilities_and_read_the_support_in_order():
    model = MatchingNetwork(MLP((8, 5)), ways=WAYS, full_context=True, read_steps=3)
    sx, sy, qx = episode()
    params = model.init(jax.random.key(0), sx, sy, qx)["params"]
    assert {"support_context", "query_context"} <= set(params)
    scores = model.apply({"params": params}, sx, sy, qx)
    assert scores.shape == (QUERIES, WAYS)
    np.testing.assert_allclose(np.exp(scores).sum(1), 1.0, rtol=1e-10)
    # The bidirectional LSTM reads a sequence: reordering the support set changes the embedding
    # (as in Vinyals et al.), unlike the model without full context.
    order = RNG.permutation(len(sx))
    reordered = model.apply({"params": params}, sx[order], sy[order], qx)
    assert not np.allclose(reordered, scores, rtol=1e-6)


def test_full_context_zero_lstms_reduce_to_the_plain_embedding_plus_skip():
    """With every LSTM weight zero the contexts add 0 to g and tanh(0)*... = 0 to f: plain matching."""
    full = MatchingNetwork(MLP((8, 5)), ways=WAYS, full_context=True, read_steps=2)
    sx, sy, qx = episode()
    params = full.init(jax.random.key(0), sx, sy, qx)["params"]
    zeroed = {**params, **{name: jax.tree.map(np.zeros_like, params[name])
                           for name in ("support_context", "query_context")}}
    plain = MatchingNetwork(full.embedding, ways=WAYS)
    # Zero LSTM weights: gates are sigmoid(0) = 1/2, the candidate tanh(0) = 0, so the cell state and
    # the LSTM outputs stay 0, and only the skip connections remain.
    np.testing.assert_allclose(full.apply({"params": zeroed}, sx, sy, qx),
                               plain.apply({"params": {"embedding": params["embedding"]}}, sx, sy, qx), rtol=1e-10)
