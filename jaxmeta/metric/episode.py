r"""Metric learners in the library's one interface, :class:`jaxmeta.MetaLearner`.

A metric learner has no inner loop: it classifies the query set of a task by
comparing query embeddings with the support set, in one forward pass. Every
model of :mod:`jaxmeta.metric` is a Flax module

* ``model.apply(variables, support_inputs, support_labels, query_inputs) -> scores``
  ``[queries, ways]``, the higher the more likely (the prediction is the argmax);
* with an ``episode_loss(support_inputs, support_labels, query_inputs, query_labels)
  -> (loss, scores)`` method, the objective of its paper.

:func:`metric_learner` turns such a model into a :class:`~jaxmeta.MetaLearner`
whose ``task_grad`` is the gradient of the episode loss, so the meta step
(``jax.vmap`` over tasks, optax, ``jax.jit``), the training loop and the
checkpoints of the gradient-based learners serve these too; a meta-batch of
``B`` tasks averages ``B`` episode gradients, and :func:`jaxmeta.evaluate`
scores many tasks.
"""

from typing import cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.learner import MetaLearner, ModelMetrics, direct_learner
from jaxmeta.core.types import Params, Task


class MetricClassifier(nn.Module):
    """Base of the metric learners: softmax cross-entropy on the scores as logits, as ProtoNets use.

    Subclasses implement ``__call__(support_inputs, support_labels, query_inputs) -> scores``
    and override :meth:`episode_loss` when their paper trains with another objective.
    """

    def episode_loss(self, support_inputs, support_labels, query_inputs, query_labels):
        r""":math:`-\frac{1}{m}\sum_j \log \operatorname{softmax}(s_j)_{y_j}` over the ``m`` queries."""
        scores = self(support_inputs, support_labels, query_inputs)
        return optax.softmax_cross_entropy_with_integer_labels(scores, query_labels).mean(), scores


def episode_metrics(model: nn.Module, params: Params, task: Task) -> tuple[jax.Array, dict]:
    """The episode loss of ``model`` on one task, and ``{"loss", "accuracy"}``."""
    (support_inputs, support_labels), (query_inputs, query_labels) = task
    loss, scores = cast(tuple[jax.Array, jax.Array], model.apply(
        {"params": params}, support_inputs, support_labels, query_inputs, query_labels, method="episode_loss"))
    accuracy = jnp.mean(jnp.argmax(scores, axis=-1) == query_labels)
    return loss, {"loss": loss, "accuracy": accuracy}


def metric_learner(model: nn.Module) -> MetaLearner:
    r"""A :class:`~jaxmeta.MetaLearner` that trains ``model``'s parameters on its episode loss.

    .. math::
        g = \nabla_\theta\, L_{\text{episode}}(\theta; S, Q)

    ``init`` is the identity (the meta-parameters are the model's parameters)
    and the metrics are the episode loss and the query accuracy. ``adapt``
    raises: there is no inner loop; :func:`jaxmeta.evaluate` scores the
    learner once per task (``n = 0``).

    Example:
      >>> import jax, jax.numpy as jnp, optax, jaxmeta
      >>> from jaxmeta.metric import PrototypicalNetwork
      >>> model = PrototypicalNetwork(jaxmeta.models.MLP((8,)), ways=2)
      >>> x, y = jnp.ones((1, 4, 3)), jnp.array([[0, 1, 0, 1]])
      >>> params = model.init(jax.random.key(0), x[0], y[0], x[0])["params"]
      >>> learner = metric_learner(model)
      >>> step = jaxmeta.make_meta_step(learner, optax.adam(1e-3))
      >>> state = jaxmeta.init_state(learner, optax.adam(1e-3), params)
      >>> state, metrics = step(state, jaxmeta.Task((x, y), (x, y)), jax.random.key(1))
      >>> sorted(metrics)
      ['accuracy', 'loss']
    """

    return direct_learner(
        ModelMetrics(episode_metrics, model),
        no_inner_loop="A metric learner has no inner loop to run: it classifies the query set from the support set "
                      "in one forward pass. Score tasks with jaxmeta.evaluate(learner, params, tasks, key=...), "
                      "without steps or loss_fn.",
    )
