r"""Siamese networks for one-shot classification (Koch, Zemel and Salakhutdinov 2015).

Twin copies of one embedding network, compared by a weighted L1 distance:

.. math::
    p(x_1, x_2) = \sigma\Big(\sum_k \alpha_k \big|h(x_1)_k - h(x_2)_k\big| + b\Big),

the probability that two images show the same class, trained with binary
cross-entropy on same/different pairs. Here the pairs are every (query,
support) pair of an episode, and the loss averages the positive pairs and the
negative pairs separately and weights them equally, as Koch et al. train on
balanced pairs:

.. math::
    L = \tfrac12\, \operatorname{mean}_{y_j = y_i} \big[-\log p_{ji}\big]
      + \tfrac12\, \operatorname{mean}_{y_j \ne y_i} \big[-\log (1 - p_{ji})\big].

One-shot classification takes the class of the support image with the
highest probability; with several shots a class scores its best support image.
The embedding here is the conv-4 of the other learners (28x28 inputs), where
the paper used a larger network on 105x105 images. Predictions are invariant
to the support order.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmeta.metric.episode import MetricClassifier
from jaxmeta.metric.protonet import embed_episode


class SiameseNetwork(MetricClassifier):
    """Per-class logits of "same class" ``[queries, ways]`` (see the module docstring).

    Attributes:
      embedding: the twin encoder ``h``.
      ways: the number of classes of a task.
    """

    embedding: nn.Module
    ways: int

    def setup(self):
        self.compare = nn.Dense(1, name="compare")

    def pair_logits(self, support_inputs, query_inputs) -> jax.Array:
        """``[queries, support]`` logits of ``p(query, support image)``."""
        support, query = embed_episode(self.embedding, support_inputs, query_inputs)
        return self.compare(jnp.abs(query[:, None, :] - support[None, :, :]))[..., 0]

    def class_scores(self, logits: jax.Array, support_labels: jax.Array) -> jax.Array:
        same = support_labels[None, :] == jnp.arange(self.ways)[:, None]  # [ways, n]
        return jnp.max(jnp.where(same[None], logits[:, None, :], -jnp.inf), axis=-1)

    def __call__(self, support_inputs, support_labels, query_inputs):
        return self.class_scores(self.pair_logits(support_inputs, query_inputs), support_labels)

    def episode_loss(self, support_inputs, support_labels, query_inputs, query_labels):
        """Balanced binary cross-entropy over every (query, support) pair."""
        logits = self.pair_logits(support_inputs, query_inputs)
        same = (query_labels[:, None] == support_labels[None, :]).astype(logits.dtype)
        positive = jnp.sum(same * -jax.nn.log_sigmoid(logits)) / jnp.maximum(same.sum(), 1)
        negative = jnp.sum((1 - same) * -jax.nn.log_sigmoid(-logits)) / jnp.maximum((1 - same).sum(), 1)
        return 0.5 * (positive + negative), self.class_scores(logits, support_labels)
