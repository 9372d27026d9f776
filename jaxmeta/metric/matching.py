r"""Matching networks (Vinyals et al. 2016), with and without full-context embeddings.

A query :math:`\hat x` attends over the support set with a softmax of
similarities, and the attention mass of each class is its probability:

.. math::
    a(\hat x, x_i) = \frac{e^{c(f(\hat x), g(x_i))}}{\sum_j e^{c(f(\hat x), g(x_j))}}, \qquad
    P(y = c \mid \hat x, S) = \sum_{i:\, y_i = c} a(\hat x, x_i).

The scores returned are :math:`\log P(y = c \mid \hat x, S)` (a normalised
log-probability, so the softmax cross-entropy on them is :math:`-\log P`).

The similarity :math:`c` (``similarity``):

* ``"euclidean"`` (the default): :math:`c(u, v) = -\lVert u - v\rVert^2`, the
  choice that reproduces the paper's Omniglot numbers;
* ``"cosine"``: :math:`c(u, v) = u \cdot v / (\lVert u\rVert \lVert v\rVert)`, the
  paper's equation. Bounded in :math:`[-1, 1]` (in :math:`[0, 1]` after the
  conv-4's final ReLU), it caps the attention a softmax can give one example
  (5-way 1-shot: :math:`e / (e + 4) = 0.40` at best), so the cross-entropy never
  saturates and training is slow: 87.56% at 5-way 1-shot after 30 CPU
  minutes against 98.1 in the paper (``benchmarks/results/omniglot.md``), as
  reimplementations also find (92.0 with cosine, 98.3 with squared
  Euclidean distance after 10,000 episodes, oscarknagg/few-shot).

At one shot per class, the euclidean Matching network scores exactly as a
prototypical network (each prototype is the one support example); they differ
with more shots (attention over examples against distance to class means) and
with the full-context embeddings.

Without full-context embeddings, :math:`f = g = f'` (the encoder). With them
(``full_context=True``):

* the support set is read by a bidirectional LSTM in the order given, with a
  skip connection: :math:`g(x_i) = \vec h_i + \overleftarrow h_i + g'(x_i)`;
* each query is embedded by an LSTM that attends over :math:`g(S)` for
  ``read_steps`` (:math:`K`) steps, starting from zero state:

  .. math::
      \hat h_k, c_k = \operatorname{LSTM}\big(f'(\hat x), [h_{k-1}, r_{k-1}], c_{k-1}\big), \quad
      h_k = \hat h_k + f'(\hat x), \quad
      r_{k} = \sum_i \operatorname{softmax}_i\big(h_{k}^\top g(x_i)\big)\, g(x_i),

  and :math:`f(\hat x) = h_K`. Feeding :math:`[f'(\hat x), r_{k-1}]` as the
  LSTM's input with hidden state :math:`h_{k-1}` computes the same gates as
  the paper's hidden state :math:`[h_{k-1}, r_{k-1}]`.

Without full-context embeddings the predictions are invariant to the order of
the support set; with them they are not (the bidirectional LSTM reads a
sequence), exactly as in the paper.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmeta.core.types import check_choice
from jaxmeta.metric.distances import cosine_similarities, squared_distances
from jaxmeta.metric.episode import MetricClassifier
from jaxmeta.metric.protonet import embed_episode


SIMILARITIES = {  # c(f(x), g(x_i)) for all query-support pairs, [m, D] x [n, D] -> [m, n]
    "euclidean": lambda query, support: -squared_distances(query, support),
    "cosine": cosine_similarities,
}


class SupportContext(nn.Module):
    """:math:`g(x_i) = \\vec h_i + \\overleftarrow h_i + g'(x_i)`: a bidirectional LSTM over ``[n, D]``."""

    @nn.compact
    def __call__(self, support: jax.Array) -> jax.Array:
        features = support.shape[-1]
        bidirectional = nn.Bidirectional(nn.RNN(nn.OptimizedLSTMCell(features), name="forward"),
                                         nn.RNN(nn.OptimizedLSTMCell(features), name="backward"),
                                         merge_fn=lambda a, b: a + b)
        zeros = jnp.zeros((1, features), support.dtype)  # zero initial state, in the input's dtype
        return support + bidirectional(support[None], initial_carry=((zeros, zeros), (zeros, zeros)))[0]


class QueryContext(nn.Module):
    """:math:`f(\\hat x) = h_K`: the attention LSTM over the embedded support set ``g`` (``[n, D]``)."""

    read_steps: int

    @nn.compact
    def __call__(self, query: jax.Array, support: jax.Array) -> jax.Array:
        cell = nn.OptimizedLSTMCell(query.shape[-1], name="cell")
        carry = (jnp.zeros_like(query), jnp.zeros_like(query))  # (c_0, h_0)
        hidden = carry[1]
        for _ in range(self.read_steps):
            read = jax.nn.softmax(hidden @ support.T, axis=-1) @ support  # r_{k-1}
            carry, output = cell(carry, jnp.concatenate([query, read], axis=-1))
            hidden = output + query  # h_k = \hat h_k + f'(x)
            carry = (carry[0], hidden)
        return hidden


class MatchingNetwork(MetricClassifier):
    """Log class probabilities from attention over the support set (see the module docstring).

    Attributes:
      embedding: the encoder :math:`f' = g'`.
      ways: the number of classes of a task.
      full_context: use the full-context embeddings.
      read_steps: the attention LSTM's number of steps :math:`K`.
      similarity: ``"euclidean"`` (negative squared distance, the default) or
        ``"cosine"`` (the paper's equation); see the module docstring.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta.models import MLP
      >>> model = MatchingNetwork(MLP((8,)), ways=2)
      >>> x, y = jnp.eye(4, 3), jnp.array([0, 1, 0, 1])
      >>> params = model.init(jax.random.key(0), x, y, x)["params"]
      >>> jnp.exp(model.apply({"params": params}, x, y, x)).sum(-1).round(6).tolist()  # probabilities
      [1.0, 1.0, 1.0, 1.0]
    """

    embedding: nn.Module
    ways: int
    full_context: bool = False
    read_steps: int = 5
    similarity: str = "euclidean"

    @nn.compact
    def __call__(self, support_inputs, support_labels, query_inputs):
        check_choice(self.similarity, SIMILARITIES, "similarity")  # before any embedding is computed
        support, query = embed_episode(self.embedding, support_inputs, query_inputs)
        if self.full_context:
            support = SupportContext(name="support_context")(support)
            query = QueryContext(self.read_steps, name="query_context")(query, support)
        attention = jax.nn.log_softmax(SIMILARITIES[self.similarity](query, support), axis=-1)  # [m, n]
        onehot = jax.nn.one_hot(support_labels, self.ways, dtype=attention.dtype)  # [n, ways]
        return jax.nn.logsumexp(attention[:, :, None], axis=1, b=onehot[None])  # log sum_{i in c} a_i
