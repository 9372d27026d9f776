r"""DARTS's cell search space and the discrete cells derived from it (Liu, Simonyan and Yang, ICLR 2019).

A cell is a directed acyclic graph of ``nodes`` intermediate nodes. Its two
inputs are the outputs of the two cells before it; node :math:`i` sums one
edge from each earlier node (the two inputs included),

.. math::
    x_i = \sum_{j < i} \bar o^{(j, i)}(x_j),

where :math:`\bar o^{(j, i)}` is a :class:`~jaxmeta.bilevel.operations.MixedOperation`
weighted by :math:`\operatorname{softmax}(\alpha^{(j, i)})`; the cell's output
concatenates its intermediate nodes. With 4 nodes a cell has 2 + 3 + 4 + 5 = 14
edges. All normal cells share one :math:`\alpha` (``[edges, operations]``), all
reduction cells (whose edges from the inputs have stride 2) another.

The discrete cell (:func:`derive_genotype`) keeps, for each node, the two
incoming edges whose strongest non-zero operation weighs most, and on each the
operation of largest weight, zero excluded: the paper's rule (section 2.4).

:class:`DartsNetwork` stacks ``layers`` cells after a 3x3 stem, with
reduction cells at a third and two thirds of the depth (channels doubling
there), global average pooling and a linear head; it is the search network
without a genotype and the derived network with one.
"""

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxmeta.bilevel.operations import (OPERATIONS, CandidateOperation, FactorizedReduce, MixedOperation,
                                        ReLUConvNorm, check_operations)
from jaxmeta.models.conv import TaskBatchNorm, images_as_float

Edge = tuple[str, int]
"""A kept edge of a discrete cell: ``(operation, input node)``; nodes 0 and 1 are the cell's inputs."""


class Genotype(NamedTuple):
    """A discrete architecture: for each cell type, two :data:`Edge` per intermediate node, node by node."""

    normal: tuple[Edge, ...]
    reduce: tuple[Edge, ...]


def edge_count(nodes: int) -> int:
    """Edges of a cell with ``nodes`` intermediate nodes: :math:`\\sum_{i < n} (2 + i)`."""
    return sum(2 + i for i in range(nodes))


def edge_index(node: int, source: int) -> int:
    """The position of edge ``source -> node`` among a cell's edges (node by node, source by source)."""
    return edge_count(node) + source


def init_architecture(key: jax.Array, *, nodes: int = 4, operations: tuple[str, ...] = OPERATIONS,
                      scale: float = 1e-3) -> dict[str, jax.Array]:
    r"""DARTS's initial :math:`\alpha`: ``{"normal", "reduce"}``, each ``[edges, operations]``, ``scale`` N(0, 1)."""
    shape = (edge_count(_check_nodes(nodes)), len(check_operations(operations)))
    normal_key, reduce_key = jax.random.split(key)
    return {"normal": scale * jax.random.normal(normal_key, shape),
            "reduce": scale * jax.random.normal(reduce_key, shape)}


def derive_genotype(architecture: dict[str, jax.Array], *, nodes: int = 4, operations: tuple[str, ...] = OPERATIONS,
                    keep: int = 2) -> Genotype:
    r"""The discrete cells of :math:`\alpha`: per node, the ``keep`` strongest edges, each with its argmax operation.

    An edge's strength is its largest softmax weight over the non-zero
    operations; the operation kept on it is that argmax. Ties go to the
    earlier edge and the earlier operation.

    Example:
      >>> import jax.numpy as jnp
      >>> alpha = jnp.zeros((edge_count(1), len(OPERATIONS))).at[0, 4].set(3.0).at[1, 0].set(9.0).at[1, 3].set(1.0)
      >>> derive_genotype({"normal": alpha, "reduce": alpha}, nodes=1).normal  # "none" never wins an edge
      (('sep_conv_3x3', 0), ('skip_connect', 1))
    """
    operations = check_operations(operations)
    if "none" not in operations:
        raise ValueError("derive_genotype excludes the 'none' operation, so it must be among the operations.")
    _check_nodes(nodes)
    cells = {}
    for kind in ("normal", "reduce"):
        weights = np.array(jax.nn.softmax(jnp.asarray(architecture[kind]), axis=-1))  # a writable copy
        _check_architecture(weights.shape, nodes, operations, kind)
        weights[:, operations.index("none")] = -np.inf
        edges: list[Edge] = []
        for node in range(nodes):
            sources = range(node + 2)
            strength = [weights[edge_index(node, j)].max() for j in sources]
            chosen = sorted(sorted(sources, key=lambda j: -strength[j])[:keep])
            edges += [(operations[int(np.argmax(weights[edge_index(node, j)]))], j) for j in chosen]
        cells[kind] = tuple(edges)
    return Genotype(**cells)


class Cell(nn.Module):
    """A searched cell (``edges`` is ``None``: every edge mixed by ``weights``) or a discrete one.

    ``edges``: a cell type of a :class:`Genotype`. Edge ``source -> node``'s
    module is named ``edge_<edge_index>`` in both, and a discrete edge's
    operation is the same :class:`~jaxmeta.bilevel.operations.CandidateOperation`,
    under its name, that the mixed edge holds: the discrete network's
    parameters are a subtree of the search network's.
    """

    features: int
    reduction: bool
    reduction_prev: bool
    nodes: int = 4
    operations: tuple[str, ...] = OPERATIONS
    edges: tuple[Edge, ...] | None = None

    @nn.compact
    def __call__(self, s0: jax.Array, s1: jax.Array, weights: jax.Array | None = None) -> jax.Array:
        s0 = (FactorizedReduce(self.features, name="preprocess_0")(s0) if self.reduction_prev
              else ReLUConvNorm(self.features, name="preprocess_0")(s0))
        states = [s0, ReLUConvNorm(self.features, name="preprocess_1")(s1)]
        kept = _kept_edges(self.edges, self.nodes)
        for node in range(self.nodes):
            terms = []
            for source in range(node + 2):
                index = edge_index(node, source)
                stride = 2 if self.reduction and source < 2 else 1
                if kept is None:
                    if weights is None:
                        raise ValueError("A searched cell (no edges given) needs the softmax weights of its alpha.")
                    terms.append(MixedOperation(self.features, stride, self.operations,
                                                name=f"edge_{index}")(states[source], weights[index]))
                elif (node, source) in kept:
                    terms.append(_DiscreteEdge(kept[(node, source)], self.features, stride,
                                               name=f"edge_{index}")(states[source]))
            states.append(functools.reduce(jnp.add, terms))
        return jnp.concatenate(states[2:], axis=-1)


class _DiscreteEdge(nn.Module):
    """One kept edge: its operation under the operation's name, as in a :class:`MixedOperation`."""

    kind: str
    features: int
    stride: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return CandidateOperation(self.kind, self.features, self.stride, name=self.kind)(x)


class DartsNetwork(nn.Module):
    r"""The DARTS network: stem, ``layers`` cells, global average pooling, linear ``head``.

    Without ``genotype`` it is the search network and ``__call__(x, architecture)``
    takes :math:`\alpha` (:func:`init_architecture`); with one it is the
    derived network and takes no architecture. The stem has
    ``stem_multiplier * features`` channels; cells at depth ``layers // 3`` and
    ``2 * layers // 3`` reduce (stride 2, channels doubled).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> net = DartsNetwork(num_classes=5, features=4, layers=3, nodes=2)
      >>> alpha = init_architecture(jax.random.key(0), nodes=2)
      >>> x = jnp.zeros((3, 28, 28, 1))
      >>> params = net.init(jax.random.key(1), x, alpha)["params"]
      >>> net.apply({"params": params}, x, alpha).shape
      (3, 5)
      >>> derived = DartsNetwork(num_classes=5, features=4, layers=3, nodes=2, genotype=derive_genotype(alpha, nodes=2))
      >>> derived.apply(derived.init(jax.random.key(1), x), x).shape
      (3, 5)
    """

    num_classes: int
    features: int = 8
    layers: int = 3
    nodes: int = 4
    stem_multiplier: int = 3
    operations: tuple[str, ...] = OPERATIONS
    genotype: Genotype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, architecture: dict[str, jax.Array] | None = None) -> jax.Array:
        if (architecture is None) == (self.genotype is None):
            raise ValueError("A search network (no genotype) needs the architecture alpha; a derived network "
                             "(with a genotype) takes none.")
        if architecture is not None:
            for kind in ("normal", "reduce"):
                _check_architecture(jnp.shape(architecture[kind]), self.nodes, self.operations, kind)
        x = nn.Conv(self.stem_multiplier * self.features, (3, 3), padding="SAME", use_bias=False,
                    name="stem")(images_as_float(x))
        s0 = s1 = TaskBatchNorm(name="stem_norm")(x)
        features, reduction_prev = self.features, False
        for layer in range(self.layers):
            reduction = layer in (self.layers // 3, 2 * self.layers // 3)
            features = features * 2 if reduction else features
            kind = "reduce" if reduction else "normal"
            cell = Cell(features, reduction, reduction_prev, self.nodes, self.operations,
                        None if self.genotype is None else getattr(self.genotype, kind), name=f"cell_{layer}")
            weights = None if architecture is None else jax.nn.softmax(architecture[kind], axis=-1)
            s0, s1 = s1, cell(s0, s1, weights)
            reduction_prev = reduction
        return nn.Dense(self.num_classes, name="head")(jnp.mean(s1, axis=(-3, -2)))


def _kept_edges(edges: tuple[Edge, ...] | None, nodes: int) -> dict[tuple[int, int], str] | None:
    """``{(node, source): operation}`` of a discrete cell type (``None`` for a searched cell), checked."""
    if edges is None:
        return None
    if len(edges) % nodes:
        raise ValueError(f"A genotype cell lists the same number of edges for each of its {nodes} nodes; got "
                         f"{len(edges)} edges.")
    per_node = len(edges) // nodes
    kept = {}
    for position, (kind, source) in enumerate(edges):
        node = position // per_node
        check_operations([kind])
        if not 0 <= source < node + 2:
            raise ValueError(f"Node {node} of a cell can take input from nodes 0..{node + 1}; the genotype gives "
                             f"{source}.")
        kept[(node, source)] = kind
    return kept


def _check_nodes(nodes: int) -> int:
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ValueError(f"nodes must be a positive int, got {nodes!r}.")
    return nodes


def _check_architecture(shape: tuple[int, ...], nodes: int, operations: tuple[str, ...], kind: str) -> None:
    expected = (edge_count(nodes), len(operations))
    if tuple(shape) != expected:
        raise ValueError(f"The {kind} cells' alpha has shape {tuple(shape)}; a cell of {nodes} nodes over "
                         f"{len(operations)} operations needs {expected} (init_architecture makes one).")
