r"""Prototypical networks (Snell, Swersky and Zemel 2017) and two variants.

* :class:`PrototypicalNetwork`: a class is the mean of its support embeddings,

  .. math::
      p_c = \frac{1}{|S_c|} \sum_{(x_i, y_i) \in S_c} f_\theta(x_i), \qquad
      p(y = c \mid x) = \operatorname{softmax}_c\big(-\lVert f_\theta(x) - p_c \rVert^2\big).

* :class:`GaussianPrototypicalNetwork` (Fort 2017): the encoder also outputs a
  raw covariance part :math:`s^{\text{raw}}` per example (one radius, or one
  value per embedding dimension), turned into an inverse variance
  :math:`s = 1 + \operatorname{softplus}(s^{\text{raw}})`. Prototypes are
  inverse-variance weighted and each class gets its own diagonal metric:

  .. math::
      p_c = \frac{\sum_{i \in S_c} s_i \odot x_i}{\sum_{i \in S_c} s_i}, \quad
      S_c = \operatorname{diag}\Big(\sum_{i \in S_c} s_i\Big), \quad
      d_c(x)^2 = (x - p_c)^\top S_c\, (x - p_c),

  and :math:`p(y = c \mid x) = \operatorname{softmax}_c(-d_c(x)^2)`.

* :class:`SemiSupervisedPrototypicalNetwork` (Ren et al. 2018): support
  examples labelled ``-1`` are unlabeled; the prototypes are refined by soft
  k-means steps over them,

  .. math::
      \tilde z_{j,c} = \operatorname{softmax}_c\Big(-\frac{\lVert \tilde h_j - p_c\rVert^2}{r_c^2}
          - \log r_c\Big), \qquad
      \tilde p_c = \frac{\sum_i h_i [y_i = c] + \sum_j \tilde h_j \tilde z_{j,c}}
                        {\sum_i [y_i = c] + \sum_j \tilde z_{j,c}},

  with :math:`r_c = 1` for the ``ways`` classes. With ``distractor=True`` an
  extra cluster centred at the origin, with a learned length scale
  :math:`r`, absorbs unlabeled examples of classes outside the task (Ren et
  al.'s "soft k-means with a distractor cluster"); queries are classified
  among the ``ways`` refined prototypes.

The support and query images go through the encoder as one batch, so the
conv-4's batch norm (statistics of the batch, see :mod:`jaxmeta.models.conv`)
sees the whole episode. Every prediction is invariant to the order of the
support set, which the tests check.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmeta.metric.distances import class_means, squared_distances
from jaxmeta.metric.episode import MetricClassifier


def embed_episode(embedding: nn.Module, support_inputs: jax.Array, query_inputs: jax.Array):
    """Embed support and query images in one batch: ``(support [n, D], query [m, D])``."""
    n = support_inputs.shape[0]
    embedded = embedding(jnp.concatenate([support_inputs, query_inputs.astype(support_inputs.dtype)]))
    return embedded[:n], embedded[n:]


class PrototypicalNetwork(MetricClassifier):
    """Scores ``-||f(x) - p_c||^2`` (see the module docstring); trained with softmax cross-entropy.

    Attributes:
      embedding: the encoder ``f``, e.g. :class:`jaxmeta.models.ConvEmbedding`.
      ways: the number of classes of a task (labels ``0..ways-1``).
    """

    embedding: nn.Module
    ways: int

    @nn.compact
    def __call__(self, support_inputs, support_labels, query_inputs):
        support, query = embed_episode(self.embedding, support_inputs, query_inputs)
        return -squared_distances(query, class_means(support, support_labels, self.ways))


class GaussianPrototypicalNetwork(MetricClassifier):
    """Scores ``-d_c(x)^2`` with inverse-variance weighted prototypes (see the module docstring).

    Attributes:
      embedding: an encoder whose last ``1`` (``covariance="radius"``) or last
        ``D`` (``"diagonal"``, output ``2D``) output components are the raw
        covariance part; e.g. ``ConvEmbedding(last_features=65)`` for a 64-dimensional
        embedding and a radius.
      ways: the number of classes of a task.
      covariance: ``"radius"`` or ``"diagonal"``.
    """

    embedding: nn.Module
    ways: int
    covariance: str = "radius"

    def split(self, outputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Encoder outputs -> (embeddings ``[n, D]``, inverse variances ``[n, 1 or D]``)."""
        if self.covariance == "radius":
            embeddings, raw = outputs[:, :-1], outputs[:, -1:]
        elif self.covariance == "diagonal":
            if outputs.shape[-1] % 2:
                raise ValueError(f"The diagonal covariance needs an even encoder output (2D), got {outputs.shape[-1]}.")
            embeddings, raw = jnp.split(outputs, 2, axis=-1)
        else:
            raise ValueError(f"covariance must be 'radius' or 'diagonal', got {self.covariance!r}.")
        return embeddings, 1.0 + jax.nn.softplus(raw)

    @nn.compact
    def __call__(self, support_inputs, support_labels, query_inputs):
        support, query = embed_episode(self.embedding, support_inputs, query_inputs)
        support, precision = self.split(support)
        query, _ = self.split(query)
        precision = jnp.broadcast_to(precision, support.shape)
        prototypes = class_means(support, support_labels, self.ways, weights=precision)
        onehot = jax.nn.one_hot(support_labels, self.ways, dtype=support.dtype)
        class_precision = onehot.T @ precision  # [ways, D]: the diagonal of S_c
        differences = query[:, None, :] - prototypes[None, :, :]  # [m, ways, D]
        return -jnp.sum(class_precision[None] * differences ** 2, axis=-1)


class SemiSupervisedPrototypicalNetwork(MetricClassifier):
    """Prototypes refined by soft k-means over the unlabeled support examples (label ``-1``).

    Attributes:
      embedding: the encoder.
      ways: the number of classes of a task.
      refinement_steps: soft k-means steps (Ren et al. use 1).
      distractor: add a distractor cluster at the origin with a learned length scale.
    """

    embedding: nn.Module
    ways: int
    refinement_steps: int = 1
    distractor: bool = False

    @nn.compact
    def __call__(self, support_inputs, support_labels, query_inputs):
        support, query = embed_episode(self.embedding, support_inputs, query_inputs)
        prototypes = class_means(support, support_labels, self.ways)
        labeled = jax.nn.one_hot(support_labels, self.ways, dtype=support.dtype)  # [n, ways], zero rows unlabeled
        unlabeled = (support_labels < 0).astype(support.dtype)[:, None]
        log_scales = jnp.zeros((self.ways,), support.dtype)  # log r_c = 0 for the task's classes
        if self.distractor:
            log_r = self.param("distractor_log_scale", nn.initializers.zeros, ())
            log_scales = jnp.concatenate([log_scales, log_r.astype(support.dtype)[None]])
            labeled = jnp.pad(labeled, ((0, 0), (0, 1)))
        for _ in range(self.refinement_steps):
            centres = jnp.pad(prototypes, ((0, 1), (0, 0))) if self.distractor else prototypes
            logits = -squared_distances(support, centres) * jnp.exp(-2 * log_scales) - log_scales
            weights = labeled + unlabeled * jax.nn.softmax(logits, axis=-1)  # [n, clusters]
            refined = (weights.T @ support) / weights.sum(0)[:, None]
            prototypes = refined[: self.ways]  # the distractor stays at the origin
        return -squared_distances(query, prototypes)

