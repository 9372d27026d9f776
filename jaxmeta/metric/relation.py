r"""Relation networks (Sung et al. 2018): a learned comparison of feature maps.

An embedding module :math:`f_\varphi` maps images to feature maps; a class's
map is the sum of its support maps; the relation module :math:`g_\phi`
scores each (query, class) pair of concatenated maps:

.. math::
    r_{j,c} = g_\phi\Big(\big[f_\varphi(x_j),\ \textstyle\sum_{i \in S_c} f_\varphi(x_i)\big]\Big)
    \in (0, 1), \qquad
    L = \frac{1}{m\,N} \sum_{j, c} \big(r_{j,c} - [y_j = c]\big)^2 .

As in the paper's Omniglot network: the embedding module is four 64-filter
conv blocks with pooling after the first two only (28x28 images -> 7x7x64
maps here, with "SAME" padding where the paper used none), and the relation
module two conv blocks with pooling (7x7 -> 3x3 -> 1x1), a ReLU layer of 8
units and a sigmoid output. Predictions are invariant to the support order.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmeta.metric.episode import MetricClassifier
from jaxmeta.models.conv import ConvBlock


class RelationModule(nn.Module):
    """``g_phi``: ``[P, h, w, 2C]`` pairs of feature maps -> ``[P]`` relation scores in (0, 1)."""

    features: int = 64
    hidden: int = 8
    conv: str = "xla"

    @nn.compact
    def __call__(self, pairs: jax.Array) -> jax.Array:
        x = pairs
        for i in range(2):
            x = ConvBlock(self.features, conv=self.conv, name=f"block_{i}")(x)
        x = nn.relu(nn.Dense(self.hidden, name="hidden")(x.reshape(x.shape[0], -1)))
        return jax.nn.sigmoid(nn.Dense(1, name="score")(x))[:, 0]


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
    relation: nn.Module = None

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
