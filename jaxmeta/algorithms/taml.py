r"""TAML, task-agnostic meta-learning (Jamal and Qi, CVPR 2019): two regularisers of a learner's meta-objective.

Both wrap a learner with an inner loop (MAML, FOMAML, ANIL, Meta-SGD, CAVIA)
and keep its inner loop; they change what the outer loop minimises, so that
the initial model does not favour some tasks over others.

**Entropy-based** (:func:`taml_entropy`). The initial model should be
maximally uncertain on a new task and the adapted one confident:

.. math::
    \min_\Theta\ \mathbb{E}_i\Big[ L^q_i(\phi_{i,k}) + \lambda\big(H_i(\phi_{i,k}) - H_i(\phi_{i,0})\big) \Big],
    \qquad
    H_i(\phi) = -\frac{1}{|Q_i|} \sum_{x \in Q_i} \sum_{c} p_\phi(c \mid x) \log p_\phi(c \mid x),

the mean entropy of the predicted classes on task :math:`i`'s query inputs,
before adaptation (:math:`\phi_{i,0}`, the initial model) and after it.

**Inequality-minimisation** (:func:`taml_inequality`). The initial model's
losses :math:`\ell_i = L^s_i(\phi_{i,0})` on the tasks of a meta-batch should
be equal: with an inequality measure :math:`\mathcal{I}` (:data:`INEQUALITY_MEASURES`),

.. math::
    \min_\Theta\ \frac1B \sum_{i=1}^{B} L^q_i(\phi_{i,k}) + \lambda\, \mathcal{I}(\ell_1, \dots, \ell_B).

The penalty couples the tasks of a batch, so its gradient is formed by the
meta step: each task reports its meta-gradient :math:`g_i`, its initial loss
:math:`\ell_i` and that loss's gradient :math:`\nabla_\Theta \ell_i`, and the
learner's ``aggregate`` combines them,

.. math::
    g = \frac1B \sum_i g_i + \lambda \sum_i \frac{\partial \mathcal{I}}{\partial \ell_i}\, \nabla_\Theta \ell_i ,

which is the exact gradient of the objective above (the batch of tasks is one
function of :math:`\Theta`). The measures, with :math:`\mu` the mean loss:

.. math::
    \text{Theil:}\ \frac1B \sum_i \frac{\ell_i}{\mu} \ln\frac{\ell_i}{\mu}, \qquad
    \mathrm{GE}(\alpha):\ \frac{1}{B\,\alpha(\alpha - 1)}
        \sum_i \Big[\Big(\frac{\ell_i}{\mu}\Big)^{\alpha} - 1\Big], \qquad
    \text{variance of logarithms:}\ \frac1B \sum_i \big(\ln \ell_i - \overline{\ln \ell}\big)^2,

:math:`\mathrm{GE}(1)` being Theil's index and :math:`\mathrm{GE}(0) = -\frac1B\sum_i \ln(\ell_i/\mu)`
(the mean log deviation). The losses must be positive (cross-entropies are).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxmeta.core.learner import AdaptationScore, MetaLearner, query_metrics
from jaxmeta.core.types import ApplyFn, LossFn

INEQUALITY_MEASURES = ("theil", "generalized-entropy", "variance-of-logarithms")
"""The inequality measures :func:`inequality` knows."""


def _check_weight(weight: Any, name: str) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
        raise ValueError(f"{name} must be a non-negative number (lambda; 0 gives the wrapped learner's objective), "
                         f"got {weight!r}.")
    return float(weight)


def _check_learner(learner: Any, method: str) -> MetaLearner:
    if not isinstance(learner, MetaLearner):
        raise TypeError(f"{method} wraps a jaxmeta.MetaLearner (e.g. jaxmeta.maml(...)), got {type(learner).__name__}.")
    if learner.at_step is not None:
        raise ValueError(f"{method} differentiates the learner's inner loop itself, so a learner with a schedule over "
                         "meta-steps (MAML++'s multi-step loss or derivative-order annealing) would lose it: wrap a "
                         "learner without one.")
    return learner


def prediction_entropy(logits: jax.Array) -> jax.Array:
    r"""Mean entropy of the softmax distributions of ``logits [..., classes]``: :math:`-\overline{\sum_c p_c \log p_c}`.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(prediction_entropy(jnp.zeros((3, 4)))), 4)  # uniform over 4 classes: log 4
      1.3863
    """
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.sum(jnp.exp(log_p) * log_p, axis=-1))


def taml_entropy(learner: MetaLearner, loss_fn: LossFn, apply_fn: ApplyFn, *, weight: float) -> MetaLearner:
    r"""Entropy-based TAML: the query loss after adaptation plus :math:`\lambda(H(\phi_k) - H(\phi_0))`.

    Args:
      learner: a learner with an inner loop (``jaxmeta.maml(loss_fn, ...)``, ``fomaml``, ``anil``,
        ``metasgd``, ``cavia``): its ``adapt`` gives :math:`\phi_0, \dots, \phi_k`.
      loss_fn: the learner's loss, ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      apply_fn: ``apply_fn(params, inputs) -> logits``, the model inside ``loss_fn``; queries are
        ``(inputs, labels)``.
      weight: :math:`\lambda \ge 0`; 0 gives the learner's own meta-gradient.

    Returns:
      A :class:`~jaxmeta.core.learner.MetaLearner` with the wrapped learner's ``init``, ``adapt`` and ``score``;
      its metrics add ``entropy_before`` and ``entropy_after``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import classification_loss, maml, Task
      >>> apply = lambda w, x: x @ w
      >>> loss_fn = classification_loss(apply)
      >>> learner = taml_entropy(maml(loss_fn, inner_lr=0.5), loss_fn, apply, weight=0.1)
      >>> x, y = jnp.eye(3), jnp.arange(3)
      >>> grads, metrics = learner.task_grad(jnp.zeros((3, 3)), Task((x, y), (x, y)), jax.random.key(0))
      >>> round(float(metrics["entropy_before"]), 4)  # the zero model is uniform: log 3
      1.0986

    References:
      Jamal and Qi, "Task Agnostic Meta-Learning for Few-Shot Learning", CVPR 2019.
    """
    learner = _check_learner(learner, "taml_entropy")
    weight = _check_weight(weight, "weight")

    def task_grad(meta_params, task, key):
        inner_key, query_key = jax.random.split(key)
        inputs = task.query[0]

        def objective(meta_params):
            adaptation = learner.adapt(meta_params, task.support, key=inner_key,
                                       observe=lambda phi: prediction_entropy(apply_fn(phi, inputs)))
            loss, aux = loss_fn(adaptation.params, task.query, key=query_key)
            before, after = adaptation.observed[0], adaptation.observed[-1]
            metrics = {**query_metrics(loss, aux, adaptation.support_losses), "entropy_before": before,
                       "entropy_after": after}
            return loss + weight * (after - before), metrics

        return jax.grad(objective, has_aux=True)(meta_params)

    return learner._replace(task_grad=task_grad, score=learner.score or AdaptationScore(loss_fn, learner.adapt))


def inequality(losses: jax.Array, measure: str = "theil", alpha: float = 2.0) -> jax.Array:
    r"""The inequality of positive ``losses [B]`` by ``measure`` (see the module docstring; ``alpha``: GE's).

    Example:
      >>> import jax.numpy as jnp
      >>> float(inequality(jnp.array([1.0, 1.0, 1.0])))  # equal losses: no inequality
      0.0
      >>> round(float(inequality(jnp.array([1.0, 3.0]), "variance-of-logarithms")), 4)  # (ln 3 / 2)^2
      0.3017
    """
    if measure not in INEQUALITY_MEASURES:
        raise ValueError(f"measure must be one of {INEQUALITY_MEASURES}, got {measure!r}.")
    losses = jnp.maximum(jnp.asarray(losses), jnp.finfo(jnp.result_type(losses, jnp.float32)).tiny)
    if measure == "variance-of-logarithms":
        logs = jnp.log(losses)
        return jnp.mean((logs - jnp.mean(logs)) ** 2)
    ratio = losses / jnp.mean(losses)
    if measure == "theil" or alpha == 1:
        return jnp.mean(ratio * jnp.log(ratio))
    if alpha == 0:
        return -jnp.mean(jnp.log(ratio))
    return jnp.mean(ratio ** alpha - 1) / (alpha * (alpha - 1))


class InequalityTerms(NamedTuple):
    """What one task of :func:`~jaxmeta.taml_inequality` reports to the meta step: :math:`g_i`, :math:`\\ell_i` and
    :math:`\\nabla\\ell_i`."""

    meta_gradient: Any
    initial_loss: jax.Array
    initial_gradient: Any


def taml_inequality(learner: MetaLearner, *, weight: float, measure: str = "theil",
                    alpha: float = 2.0) -> MetaLearner:
    r"""Inequality-minimisation TAML: the mean query loss plus :math:`\lambda\,\mathcal{I}` of the initial losses.

    Args:
      learner: a learner with an inner loop; its ``task_grad`` gives :math:`g_i` and its ``adapt`` the
        initial support loss :math:`\ell_i = L^s_i(\phi_0)` (``support_losses[0]``).
      weight: :math:`\lambda \ge 0`; 0 gives the learner's own step.
      measure: ``"theil"``, ``"generalized-entropy"`` (with ``alpha``) or ``"variance-of-logarithms"``.
      alpha: :math:`\alpha` of the generalised entropy.

    Returns:
      A :class:`~jaxmeta.core.learner.MetaLearner` whose ``task_grad`` returns
      :class:`~jaxmeta.algorithms.InequalityTerms` and whose
      ``aggregate`` turns a batch of them into the gradient (any meta step uses it:
      :func:`jaxmeta.make_meta_step`, the sharded one). The initial losses are the metric ``support_loss``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta import maml, regression_loss, Task, make_meta_step, init_state
      >>> learner = taml_inequality(maml(regression_loss(lambda w, x: x * w), inner_lr=0.1), weight=0.5)
      >>> x = jnp.arange(1.0, 13.0).reshape(4, 3)
      >>> step = make_meta_step(learner, optax.sgd(0.01))
      >>> state, metrics = step(init_state(learner, optax.sgd(0.01), jnp.array(0.5)), Task((x, x), (x, x)),
      ...                       jax.random.key(0))
      >>> int(state.step)
      1

    References:
      Jamal and Qi, "Task Agnostic Meta-Learning for Few-Shot Learning", CVPR 2019.
    """
    learner = _check_learner(learner, "taml_inequality")
    weight = _check_weight(weight, "weight")
    if measure not in INEQUALITY_MEASURES:
        raise ValueError(f"measure must be one of {INEQUALITY_MEASURES}, got {measure!r}.")

    def task_grad(meta_params, task, key):
        grads, metrics = learner.task_grad(meta_params, task, key)
        inner_key, _ = jax.random.split(key)
        initial = lambda m: learner.adapt(m, task.support, key=inner_key).support_losses[0]  # noqa: E731
        loss, loss_grad = jax.value_and_grad(initial)(meta_params)
        return InequalityTerms(grads, loss, loss_grad), metrics

    def aggregate(terms: InequalityTerms):
        penalty_slopes = jax.grad(lambda losses: inequality(losses, measure, alpha))(terms.initial_loss)
        mean = jax.tree.map(lambda g: jnp.mean(g, axis=0), terms.meta_gradient)
        return jax.tree.map(lambda g, d: g + weight * jnp.tensordot(penalty_slopes.astype(d.dtype), d, axes=1),
                            mean, terms.initial_gradient)

    return learner._replace(task_grad=task_grad, aggregate=aggregate)

