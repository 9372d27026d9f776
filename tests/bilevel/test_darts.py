"""DARTS's search space: the derived genotype against a NumPy statement of the paper's rule, and the search
network with one-hot architecture weights against the derived network on the same parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.bilevel.darts import (DartsNetwork, Genotype, derive_genotype, edge_count, edge_index,
                                   init_architecture)
from jaxmeta.bilevel.operations import OPERATIONS

NODES = 2


def numpy_rule(alpha, nodes):
    """For each node: the two sources whose best non-zero softmax weight is largest; on each, that operation."""
    w = np.exp(alpha - alpha.max(axis=1, keepdims=True))
    w = w / w.sum(axis=1, keepdims=True)
    edges, start = [], 0
    for node in range(nodes):
        rows = w[start:start + node + 2, 1:]  # "none" is operation 0
        best = rows.max(axis=1)
        top = sorted(np.argsort(-best, kind="stable")[:2])
        edges += [(OPERATIONS[1 + int(rows[j].argmax())], int(j)) for j in top]
        start += node + 2
    return tuple(edges)


def test_the_derived_cell_keeps_the_two_strongest_edges_and_their_argmax_operation_excluding_zero():
    rng = np.random.default_rng(0)
    alpha = {kind: rng.normal(size=(edge_count(4), len(OPERATIONS))) for kind in ("normal", "reduce")}
    alpha["normal"][:, 0] = 5.0  # "none" dominates every edge of the normal cell and is still never kept
    genotype = derive_genotype(alpha)
    assert genotype == Genotype(numpy_rule(alpha["normal"], 4), numpy_rule(alpha["reduce"], 4))
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce)


def one_hot_architecture(genotype, nodes):
    """Logits whose softmax is one-hot: the kept operation on kept edges, "none" on the others."""
    alpha = {}
    for kind in ("normal", "reduce"):
        logits = np.full((edge_count(nodes), len(OPERATIONS)), -np.inf)
        logits[:, 0] = 0.0
        for position, (op, source) in enumerate(getattr(genotype, kind)):
            index = edge_index(position // 2, source)
            logits[index] = -np.inf
            logits[index, OPERATIONS.index(op)] = 0.0
        alpha[kind] = jnp.asarray(logits)
    return alpha


def test_the_search_network_with_one_hot_weights_is_the_derived_network():
    genotype = derive_genotype(init_architecture(jax.random.key(2), nodes=NODES, scale=1.0), nodes=NODES)
    alpha = one_hot_architecture(genotype, NODES)
    assert derive_genotype(alpha, nodes=NODES) == genotype
    x = jax.random.uniform(jax.random.key(3), (4, 12, 12, 1))
    search = DartsNetwork(num_classes=3, features=4, layers=3, nodes=NODES)
    search_params = search.init(jax.random.key(4), x, init_architecture(jax.random.key(0), nodes=NODES))["params"]
    derived = DartsNetwork(num_classes=3, features=4, layers=3, nodes=NODES, genotype=genotype)
    shapes = derived.init(jax.random.key(5), x)["params"]
    lookup = dict(jax.tree_util.tree_flatten_with_path(search_params)[0])
    params = jax.tree_util.tree_map_with_path(lambda path, _: lookup[path], shapes)  # a subtree of the search's
    np.testing.assert_allclose(derived.apply({"params": params}, x), search.apply({"params": search_params}, x, alpha),
                               rtol=1e-10, atol=1e-12)


def test_bad_input_is_refused():
    x = jnp.zeros((2, 12, 12, 1))
    alpha = init_architecture(jax.random.key(0), nodes=NODES)
    with pytest.raises(ValueError, match="Unknown operation"):
        init_architecture(jax.random.key(0), operations=("none", "conv_7x7"))
    with pytest.raises(ValueError, match="alpha has shape"):
        DartsNetwork(num_classes=3, features=4, nodes=3).init(jax.random.key(0), x, alpha)
    with pytest.raises(ValueError, match="needs the architecture"):
        DartsNetwork(num_classes=3, features=4, nodes=NODES).init(jax.random.key(0), x)
    bad = Genotype(normal=(("skip_connect", 0), ("skip_connect", 5), ("skip_connect", 0), ("skip_connect", 1)),
                   reduce=(("skip_connect", 0),) * 4)
    with pytest.raises(ValueError, match="input from nodes"):
        DartsNetwork(num_classes=3, features=4, nodes=NODES, genotype=bad).init(jax.random.key(0), x)
