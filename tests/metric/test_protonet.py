"""Prototypical networks and their Gaussian and semi-supervised variants against NumPy formulas."""

import jax
import numpy as np
import pytest

from jaxmeta.metric import GaussianPrototypicalNetwork, PrototypicalNetwork, SemiSupervisedPrototypicalNetwork
from jaxmeta.models import MLP

RNG = np.random.default_rng(1)
WAYS, SHOTS, QUERIES, DIM = 3, 2, 4, 5


def episode(unlabeled=0):
    support_x = RNG.normal(size=(WAYS * SHOTS + unlabeled, 6))
    support_y = np.r_[np.repeat(np.arange(WAYS), SHOTS)[RNG.permutation(WAYS * SHOTS)], -np.ones(unlabeled, int)]
    return support_x, support_y, RNG.normal(size=(QUERIES, 6))


def embed(model, params, x):
    """The encoder's output alone, for the NumPy reference."""
    return np.asarray(model.embedding.apply({"params": params["embedding"]}, x))


def init(model, support_x, support_y, query_x):
    return model.init(jax.random.key(0), support_x, support_y, query_x)["params"]


def test_prototypical_scores_are_negative_squared_distances_to_class_means():
    model = PrototypicalNetwork(MLP((8, DIM)), ways=WAYS)
    sx, sy, qx = episode()
    params = init(model, sx, sy, qx)
    scores = model.apply({"params": params}, sx, sy, qx)
    support, query = np.split(embed(model, params, np.concatenate([sx, qx])), [len(sx)])
    prototypes = np.stack([support[sy == c].mean(0) for c in range(WAYS)])
    expected = -((query[:, None] - prototypes[None]) ** 2).sum(-1)
    assert scores.shape == (QUERIES, WAYS)
    np.testing.assert_allclose(scores, expected, rtol=1e-9)


@pytest.mark.parametrize("covariance", ["radius", "diagonal"])
def test_gaussian_prototypes_are_precision_weighted_with_a_class_metric(covariance):
    outputs = DIM + 1 if covariance == "radius" else 2 * DIM
    model = GaussianPrototypicalNetwork(MLP((8, outputs)), ways=WAYS, covariance=covariance)
    sx, sy, qx = episode()
    params = init(model, sx, sy, qx)
    raw = embed(model, params, np.concatenate([sx, qx]))
    emb, s_raw = (raw[:, :-1], raw[:, -1:]) if covariance == "radius" else (raw[:, :DIM], raw[:, DIM:])
    precision = np.broadcast_to(1 + np.log1p(np.exp(s_raw)), emb.shape)
    support, query, s = emb[:len(sx)], emb[len(sx):], precision[:len(sx)]
    expected = np.zeros((QUERIES, WAYS))
    for c in range(WAYS):
        p_c = (s[sy == c] * support[sy == c]).sum(0) / s[sy == c].sum(0)
        s_c = s[sy == c].sum(0)
        expected[:, c] = -(s_c * (query - p_c) ** 2).sum(-1)
    np.testing.assert_allclose(model.apply({"params": params}, sx, sy, qx), expected, rtol=1e-9)


def test_gaussian_rejects_an_unknown_covariance():
    model = GaussianPrototypicalNetwork(MLP((8, 6)), ways=WAYS, covariance="full")
    with pytest.raises(ValueError, match="radius' or 'diagonal"):
        init(model, *episode())


def soft_kmeans_reference(support, labels, query, steps, log_r=None):
    prototypes = np.stack([support[labels == c].mean(0) for c in range(WAYS)])
    unlabeled = labels < 0
    for _ in range(steps):
        centres = prototypes if log_r is None else np.vstack([prototypes, np.zeros(support.shape[1])])
        scales = np.zeros(WAYS) if log_r is None else np.r_[np.zeros(WAYS), log_r]
        d = ((support[unlabeled][:, None] - centres[None]) ** 2).sum(-1)
        logits = -d / np.exp(2 * scales) - scales
        z = np.exp(logits - logits.max(1, keepdims=True))
        z /= z.sum(1, keepdims=True)
        new = []
        for c in range(WAYS):
            numerator = support[labels == c].sum(0) + (z[:, c, None] * support[unlabeled]).sum(0)
            new.append(numerator / ((labels == c).sum() + z[:, c].sum()))
        prototypes = np.stack(new)
    return -((query[:, None] - prototypes[None]) ** 2).sum(-1)


@pytest.mark.parametrize("distractor", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
def test_semi_supervised_prototypes_follow_soft_k_means(distractor, steps):
    model = SemiSupervisedPrototypicalNetwork(MLP((8, DIM)), ways=WAYS, refinement_steps=steps,
                                              distractor=distractor)
    sx, sy, qx = episode(unlabeled=5)
    params = init(model, sx, sy, qx)
    log_r = None
    if distractor:
        params = {**params, "distractor_log_scale": np.float64(0.3)}
        log_r = 0.3
    support, query = np.split(embed(model, params, np.concatenate([sx, qx])), [len(sx)])
    np.testing.assert_allclose(model.apply({"params": params}, sx, sy, qx),
                               soft_kmeans_reference(support, sy, query, steps, log_r), rtol=1e-8)


def test_semi_supervised_without_unlabeled_examples_is_the_prototypical_network():
    embedding = MLP((8, DIM))
    sx, sy, qx = episode()
    plain = PrototypicalNetwork(embedding, ways=WAYS)
    params = init(plain, sx, sy, qx)
    semi = SemiSupervisedPrototypicalNetwork(embedding, ways=WAYS, refinement_steps=2)
    np.testing.assert_allclose(semi.apply({"params": params}, sx, sy, qx), plain.apply({"params": params}, sx, sy, qx),
                               rtol=1e-10)


@pytest.mark.long
def test_a_short_semi_supervised_training_run_learns_with_distractors():
    """Meta-training on semi-supervised episodes (unlabelled examples and distractor classes) of noisy class
    patterns lifts the query accuracy of held-out episodes, and learns the distractor cluster's scale."""
    import flax.linen as nn
    import jax.numpy as jnp
    import optax

    import jaxmeta
    from jaxmeta.data.episodes import semi_supervised_tasks
    from jaxmeta.metric import metric_learner

    class Encoder(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(8)(nn.relu(nn.Dense(32)(x.reshape(x.shape[0], -1))))

    rng = np.random.default_rng(0)
    patterns = rng.uniform(0, 255, size=(20, 1, 6, 6))
    images = jnp.asarray(np.clip(patterns + rng.normal(0, 90, size=(20, 20, 6, 6)), 0, 255).astype(np.uint8))
    sizes = dict(ways=3, shots=1, queries=5, unlabeled=3, distractors=2)
    tasks = lambda key, count=8: semi_supervised_tasks(key, images, count, **sizes)  # noqa: E731
    model = SemiSupervisedPrototypicalNetwork(Encoder(), ways=3, refinement_steps=1, distractor=True)
    first = jax.tree.map(lambda x: x[0], tasks(jax.random.key(0)))
    params = model.init(jax.random.key(1), *first.support, first.query[0])["params"]
    learner, optimizer = metric_learner(model), optax.adam(3e-3)
    state = jaxmeta.init_state(learner, optimizer, params)
    trained, _ = jaxmeta.fit(jaxmeta.make_meta_step(learner, optimizer), state, tasks, key=jax.random.key(2),
                             num_steps=150, steps_per_call=150, progress=False)
    held_out = tasks(jax.random.key(9), 100)
    accuracy = lambda p: float(jaxmeta.evaluate(learner, p, held_out, key=jax.random.key(3))  # noqa: E731
                               .metrics["accuracy"].mean())
    before, after = accuracy(params), accuracy(trained.meta_params)
    assert after > 0.85 and after > before + 0.2, (before, after)
    assert abs(float(trained.meta_params["distractor_log_scale"])) > 0.05
