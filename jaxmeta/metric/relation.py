r"""Relation networks (Sung et al. 2018): a learned comparison of feature maps.

An embedding module :math:`f_\varphi` maps images to feature maps; a class's
map is the sum of its support maps; the relation module :math:`g_\phi`
scores each (query, class) pair of concatenated maps:

.. math::
    r_{j,c} = g_\phi\Big(\big[f_\varphi(x_j),\ \textstyle\sum_{i \in S_c} f_\varphi(x_i)\big]\Big)
    \in (0, 1), \qquad
    L = \frac{1}{m\,N} \sum_{j, c} \big(r_{j,c} - [y_j = c]\big)^2 .

As in the paper's Omniglot code (Sung et al.'s ``omniglot_train_one_shot.py``):

* the embedding module is four 64-filter conv blocks, the first two
  unpadded and pooled, the last two padded and not pooled (28x28 images ->
  26 -> 13 -> 11 -> 5: 5x5x64 maps; ``ConvEmbedding(pooled_blocks=2,
  unpadded_blocks=2, flatten=False)``);
* the relation module is two padded conv blocks with pooling (5x5 -> 2x2 ->
  1x1), a ReLU layer of 8 units and a sigmoid output;
* initialisation (``init_scheme="relation-net"``): conv kernels
  :math:`\mathcal N(0, 2 / (9 \cdot \text{out}))`, linear kernels
  :math:`\mathcal N(0, 0.01^2)` with biases 1, batch-norm scales 1;
* :func:`relation_optimizer`: each module's gradient clipped to norm 0.5
  separately, Adam at :math:`10^{-3}` halved every 100,000 episodes;
* episodes: 5-way 1-shot with 19 queries per class (``benchmarks/omniglot.py``).

Where we differ from that code, on purpose: batch norm normalises the
support and query images of an episode together (the reference code embeds
them in two calls, each with its own statistics, a 5-image support set at
1-shot); each class of a task is rotated by its own multiple of 90 degrees
(the reference rotates the whole task by one), as for every learner of the
Omniglot benchmark. Predictions are invariant to the support order.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmeta.metric.episode import MetricClassifier
from jaxmeta.models.conv import ConvBlock, initialisation


class RelationModule(nn.Module):
    """``g_phi``: ``[P, h, w, 2C]`` pairs of feature maps -> ``[P]`` relation scores in (0, 1)."""

    features: int = 64
    hidden: int = 8
    conv: str = "xla"
    init_scheme: str = "relation-net"

    @nn.compact
    def __call__(self, pairs: jax.Array) -> jax.Array:
        x = pairs
        for i in range(2):
            x = ConvBlock(self.features, conv=self.conv, init_scheme=self.init_scheme, name=f"block_{i}")(x)
        scheme = initialisation(self.init_scheme)
        dense: dict[str, Any] = dict(kernel_init=scheme.head_kernel, bias_init=scheme.head_bias)
        x = nn.relu(nn.Dense(self.hidden, name="hidden", **dense)(x.reshape(x.shape[0], -1)))
        return jax.nn.sigmoid(nn.Dense(1, name="score", **dense)(x))[:, 0]


class RelationNetwork(MetricClassifier):
    """Relation scores ``[queries, ways]`` (see the module docstring); trained with mean squared error.

    Attributes:
      embedding: maps images to feature maps ``[n, h, w, C]``, e.g.
        ``ConvEmbedding(pooled_blocks=2, flatten=False)``.
      ways: the number of classes of a task.
      relation: the relation module (default :class:`RelationModule`).
    """

    embedding: nn.Module
    ways: int
    relation: nn.Module | None = None

    @nn.compact
    def __call__(self, support_inputs, support_labels, query_inputs):
        n = support_inputs.shape[0]
        maps = self.embedding(jnp.concatenate([support_inputs, query_inputs.astype(support_inputs.dtype)]))
        support, query = maps[:n], maps[n:]
        onehot = jax.nn.one_hot(support_labels, self.ways, dtype=maps.dtype)
        classes = jnp.tensordot(onehot.T, support, axes=1)  # [ways, ...]: the sum of each class's support maps
        m, ways = query.shape[0], self.ways
        pairs = jnp.concatenate([jnp.broadcast_to(query[:, None], (m, ways, *query.shape[1:])),
                                 jnp.broadcast_to(classes[None], (m, ways, *classes.shape[1:]))], axis=-1)
        relation = self.relation if self.relation is not None else RelationModule(name="relation")
        return relation(pairs.reshape(m * ways, *pairs.shape[2:])).reshape(m, ways)

    def episode_loss(self, support_inputs, support_labels, query_inputs, query_labels):
        """Mean squared error of the relation scores to the one-hot match."""
        scores = self(support_inputs, support_labels, query_inputs)
        targets = jax.nn.one_hot(query_labels, self.ways, dtype=scores.dtype)
        return jnp.mean((scores - targets) ** 2), scores


def relation_optimizer(learning_rate: float = 1e-3, *, clip_norm: float = 0.5, halve_every: int = 100_000,
                       modules: tuple[str, ...] = ("embedding", "relation")) -> optax.GradientTransformation:
    r"""Sung et al.'s optimizer: each module's gradient clipped to norm ``clip_norm`` on its own, then Adam.

    .. math::
        g_M \leftarrow g_M \min\Big(1, \frac{c}{\lVert g_M\rVert}\Big)
        \quad \text{for } M \in \text{modules}, \qquad
        \eta_t = \eta_0 \cdot 0.5^{\lfloor t / T \rfloor}

    with :math:`c = 0.5`, :math:`\eta_0 = 10^{-3}`, :math:`T = 100{,}000` episodes in the
    reference code, which clips the encoder's and the relation module's gradients separately.
    ``modules`` are the top-level names of the parameters (a :class:`RelationNetwork`'s).

    Example:
      >>> import jax.numpy as jnp
      >>> params = {"embedding": {"w": jnp.zeros(2)}, "relation": {"w": jnp.zeros(1)}}
      >>> optimizer = relation_optimizer()
      >>> updates, _ = optimizer.update(params, optimizer.init(params), params)
      >>> sorted(updates)
      ['embedding', 'relation']
    """
    schedule = optax.exponential_decay(learning_rate, halve_every, 0.5, staircase=True)
    return optax.chain(clip_each_module(clip_norm, modules), optax.adam(schedule))


def clip_each_module(max_norm: float, modules: tuple[str, ...]) -> optax.GradientTransformation:
    """``optax.clip_by_global_norm(max_norm)`` on each top-level entry ``modules`` of the gradient, separately.

    Example:
      >>> import jax.numpy as jnp
      >>> grads = {"embedding": {"w": jnp.array([3.0, 4.0])}, "relation": {"w": jnp.array([0.1])}}
      >>> clip = clip_each_module(0.5, ("embedding", "relation"))
      >>> clipped, _ = clip.update(grads, clip.init(grads))
      >>> round(float(jnp.linalg.norm(clipped["embedding"]["w"])), 6), round(float(clipped["relation"]["w"][0]), 6)
      (0.5, 0.1)
    """

    def labels(params):
        unknown = sorted(set(params) - set(modules))
        if unknown:
            raise ValueError(f"clip_each_module: the parameters hold {unknown}, not among modules {modules}; "
                             "pass every top-level name in modules.")
        return {name: name for name in params}

    return optax.multi_transform({name: optax.clip_by_global_norm(max_norm) for name in modules}, labels)
