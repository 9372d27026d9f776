"""Relation networks: the pairing of feature maps, the relation module and the MSE objective."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmeta.metric import RelationNetwork, relation_optimizer
from jaxmeta.metric.relation import RelationModule
from jaxmeta.models import ConvEmbedding

WAYS, SHOTS, QUERIES = 3, 2, 4


def episode(rng):
    sx = rng.uniform(size=(WAYS * SHOTS, 28, 28, 1))
    sy = np.repeat(np.arange(WAYS), SHOTS)[rng.permutation(WAYS * SHOTS)]
    qy = rng.integers(0, WAYS, QUERIES)
    return sx, sy, rng.uniform(size=(QUERIES, 28, 28, 1)), qy


def test_relation_scores_pair_each_query_with_each_class_sum():
    rng = np.random.default_rng(3)
    model = RelationNetwork(ConvEmbedding(features=4, pooled_blocks=2, unpadded_blocks=2, flatten=False,
                                          conv="im2col"), ways=WAYS)
    sx, sy, qx, qy = episode(rng)
    params = model.init(jax.random.key(0), sx, sy, qx)["params"]
    scores = model.apply({"params": params}, sx, sy, qx)
    assert scores.shape == (QUERIES, WAYS) and np.all((scores > 0) & (scores < 1))
    maps = np.asarray(model.embedding.apply({"params": params["embedding"]}, np.concatenate([sx, qx])))
    assert maps.shape[1:] == (5, 5, 4)  # 28 -> 26 -> 13 -> 11 -> 5 unpadded and pooled, then two padded blocks
    support, query = maps[:len(sx)], maps[len(sx):]
    classes = np.stack([support[sy == c].sum(0) for c in range(WAYS)])
    pairs = np.concatenate([np.repeat(query, WAYS, 0), np.tile(classes, (QUERIES, 1, 1, 1))], axis=-1)
    direct = RelationModule().apply({"params": params["relation"]}, pairs).reshape(QUERIES, WAYS)
    np.testing.assert_allclose(scores, direct, rtol=1e-9)
    loss, _ = model.apply({"params": params}, sx, sy, qx, qy, method="episode_loss")
    np.testing.assert_allclose(loss, np.mean((direct - np.eye(WAYS)[qy]) ** 2), rtol=1e-10)


def test_the_relation_module_starts_as_the_papers_code_initialises_it():
    """Sung et al.'s weights_init: conv N(0, 2 / (9 out)), linear N(0, 0.01^2) with biases 1."""
    params = RelationModule(features=64).init(jax.random.key(0), jnp.zeros((2, 5, 5, 128)))["params"]
    assert params["hidden"]["kernel"].shape == (64, 8)  # 5x5 -> 2x2 -> 1x1 maps of 64 features
    for layer in ("hidden", "score"):
        np.testing.assert_array_equal(params[layer]["bias"], 1.0)
    np.testing.assert_allclose(np.std(params["hidden"]["kernel"]), 0.01, rtol=0.15)
    kernel = params["block_0"]["conv"]["kernel"]  # [3, 3, 128, 64]: 73,728 draws
    np.testing.assert_allclose(np.var(kernel), 2 / (9 * 64), rtol=0.03)
    np.testing.assert_array_equal(params["block_0"]["conv"]["bias"], 0.0)


def test_the_optimizer_clips_each_module_on_its_own_before_adam():
    grads = {"embedding": {"w": jnp.array([3.0, 4.0]), "b": jnp.array([0.0])}, "relation": {"w": jnp.array([0.3])}}
    params = jax.tree.map(jnp.zeros_like, grads)
    optimizer = relation_optimizer(1e-3, halve_every=2)
    state = optimizer.init(params)
    reference = optax.adam(optax.exponential_decay(1e-3, 2, 0.5, staircase=True))
    reference_state = reference.init(params)
    # The embedding's norm 5 is clipped to 0.5 alone; the relation module's 0.3 is left as it is (a joint
    # clip would scale both by 0.5 / 5.01).
    clipped = {"embedding": {"w": jnp.array([0.3, 0.4]), "b": jnp.array([0.0])}, "relation": {"w": jnp.array([0.3])}}
    for _ in range(3):  # through the halving of the learning rate
        updates, state = optimizer.update(grads, state, params)
        expected, reference_state = reference.update(clipped, reference_state, params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), updates, expected)
