"""The one interface every meta-learner implements.

A :class:`MetaLearner` is a NamedTuple of three pure functions, built by a
factory that closes over the hyper-parameters (``jaxmeta.maml(...)``,
``jaxmeta.reptile(...)``), in the style of optax's ``GradientTransformation``:

* ``init(params) -> meta_params``: what the outer loop learns. For MAML this is
  the initialisation itself; Meta-SGD adds per-parameter learning rates.
* ``task_grad(meta_params, task, key) -> (grads, metrics)``: the meta-gradient
  (or, for Reptile, the pseudo-gradient) of *one* task, a pytree shaped like
  ``meta_params``, and scalar metrics (at least ``"loss"``, the query loss
  after adaptation, and ``"support_loss"``, the support loss before it).
* ``adapt(meta_params, support, *, key, steps=None, observe=None) -> Adaptation``:
  the learner's inner loop on one support set, for evaluation and prediction.
* ``at_step`` (optional): ``at_step(t) -> MetaLearner``, the learner at
  meta-step ``t`` (a traced int), for learners whose objective follows a
  schedule over meta-training (MAML++'s multi-step loss weights and
  derivative-order annealing). The meta step calls it with its step counter;
  ``None`` for the rest.
* ``score`` (set by every factory): ``score(meta_params, task, *, key, steps=None)
  -> (losses, metrics)``, the query loss and metrics of one task after
  0, 1, ..., n inner steps (arrays of ``n + 1``; one entry for learners
  without an inner loop). :func:`jaxmeta.evaluate` scores any learner with it.
* ``aggregate`` (optional): ``aggregate(stacked) -> grads``, how the meta step
  combines this learner's task gradients (``task_grad``'s first output, stacked
  over the batch) into one update, for learners whose objective couples the
  tasks of a batch (TAML's inequality penalty). ``None``: their mean.

Batching over tasks (``jax.vmap``), averaging, the optax update and ``jax.jit``
live in :mod:`jaxmeta.core.meta_step` and serve every learner.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from jaxmeta.core.adapt import Adaptation, Mask, adapt, check_learning_rate, check_optimizer, check_steps
from jaxmeta.core.types import LossFn, MetaParams, Metrics, Params, PRNGKey, Task


class AdaptFn(Protocol):
    """The signature of ``MetaLearner.adapt``: the inner loop on one support set.

    ``steps`` overrides the learner's number of inner steps (evaluation after
    more steps than training used); ``observe(params, step)`` is called after
    each step and its results are stacked in ``Adaptation.observed``.
    """

    def __call__(self, meta_params: MetaParams, support: Any, *, key: PRNGKey, steps: int | None = None,
                 observe: Callable[..., Any] | None = None) -> Adaptation: ...


class ScoreFn(Protocol):
    """The signature of ``MetaLearner.score``: one task's query loss and metrics by inner step.

    Returns ``(losses [n + 1], {name: [n + 1]})`` after 0..n inner steps (``n``:
    ``steps``, or the learner's own number when ``None``); learners without an
    inner loop return one entry and accept only ``steps`` ``None`` or 0.
    """

    def __call__(self, meta_params: MetaParams, task: Task, *, key: PRNGKey,
                 steps: int | None = None) -> tuple[jax.Array, Metrics]: ...


class MetaLearner(NamedTuple):
    """A meta-learning algorithm as pure functions (see the module docstring)."""

    init: Callable[[Params], MetaParams]
    task_grad: Callable[[MetaParams, Task, PRNGKey], tuple[MetaParams, Metrics]]
    adapt: AdaptFn
    at_step: Callable[[jax.Array], "MetaLearner"] | None = None
    score: ScoreFn | None = None
    aggregate: Callable[[Any], Any] | None = None


@dataclasses.dataclass(frozen=True)
class AdaptationScore:
    r"""``score`` of a learner with an inner loop: the query loss at :math:`\phi_0 = \theta, \phi_1, \dots, \phi_n`.

    The support set is adapted on with ``adapt`` and ``loss_fn(phi_j, query)``
    observed after each step. A frozen dataclass, so that equal scores (the
    same loss and inner loop) hit the same compiled evaluation.
    """

    loss_fn: LossFn
    adapt: AdaptFn

    def __call__(self, meta_params, task, *, key, steps=None):
        inner_key, query_key = jax.random.split(key)
        observe = lambda phi: self.loss_fn(phi, task.query, key=query_key)  # noqa: E731
        return self.adapt(meta_params, task.support, key=inner_key, steps=steps, observe=observe).observed


@dataclasses.dataclass(frozen=True)
class DirectScore:
    """``score`` of a learner without an inner loop: ``task_metrics(params, task) -> (loss, metrics)`` once."""

    task_metrics: Callable[[Params, Task], tuple[jax.Array, Metrics]]

    def __call__(self, meta_params, task, *, key, steps=None):
        del key
        if steps:
            raise ValueError(f"This learner has no inner loop, so it cannot be scored after steps={steps} inner "
                             "steps: leave steps out (or pass 0).")
        loss, metrics = self.task_metrics(meta_params, task)
        return loss[None], {name: value[None] for name, value in metrics.items() if name != "loss"}


@dataclasses.dataclass(frozen=True)
class ModelMetrics:
    """``metrics(model, params, task)`` with ``model`` bound: a hashable ``task_metrics`` for :func:`direct_learner`
    (two learners of equal models share compiled evaluations, which ``functools.partial`` would not)."""

    metrics: Callable[[Any, Params, Task], tuple[jax.Array, Metrics]]
    model: Any

    def __call__(self, params, task):
        return self.metrics(self.model, params, task)


def learner_at_step(learner: MetaLearner, step: jax.Array) -> MetaLearner:
    """The learner as it trains at meta-step ``step``: ``learner.at_step(step)``, or the learner itself."""
    return learner if learner.at_step is None else learner.at_step(step)


def query_metrics(loss: jax.Array, aux: Metrics, support_losses: jax.Array) -> Metrics:
    """The metrics a learner reports for one task."""
    return {"loss": loss, "support_loss": support_losses[0], **aux}


def direct_learner(task_metrics: Callable[[Params, Task], tuple[jax.Array, Metrics]], *,
                   no_inner_loop: str) -> MetaLearner:
    r"""A learner without an inner loop, trained on a per-task loss of the model's own parameters.

    .. math::
        g = \nabla_\theta\, L_{\text{task}}(\theta)

    Metric learners (the loss of an episode given its support set) and
    memory models (the loss of a sequence) are of this kind. ``init`` is the
    identity, ``task_grad`` the gradient of ``task_metrics(params, task) ->
    (loss, metrics)``, ``score`` those metrics (one entry, no inner step), and
    ``adapt`` raises a ``TypeError`` with the message ``no_inner_loop``.
    """

    def task_grad(meta_params, task, key):
        del key
        return jax.grad(lambda p: task_metrics(p, task), has_aux=True)(meta_params)

    def adapt_fn(meta_params, support, *, key, steps=None, observe=None):
        raise TypeError(no_inner_loop)

    return MetaLearner(init=lambda params: params, task_grad=task_grad, adapt=adapt_fn,
                       score=DirectScore(task_metrics))


def inner_loop(
    loss_fn: LossFn,
    split: Callable[[MetaParams], tuple[Params, Any, Any]],
    *,
    inner_steps: int,
    first_order: bool = False,
    remat: bool = False,
    mask: Mask = None,
    per_step: Mask = None,
    step_count: int | None = None,
) -> AdaptFn:
    """``learner.adapt`` for learners whose inner loop is :func:`jaxmeta.adapt`.

    ``split(meta_params) -> (params, lr, optimizer)`` says where the inner loop
    starts, with which learning rate(s) and which optax optimizer (``None``:
    gradient descent with ``lr``); everything else is :func:`jaxmeta.adapt`.
    ``step_count``: the only number of steps the inner rule is made for (LSLR's
    per-step rates); asking for another is an error.
    """
    inner_steps = check_steps(inner_steps, "inner_steps")

    def adapt_fn(meta_params, support, *, key, steps=None, observe=None):
        steps = inner_steps if steps is None else steps
        if step_count is not None and steps != step_count:
            raise ValueError(
                f"This learner's inner rule has learned values for {step_count} inner steps (one per step), so "
                f"it cannot run {steps}. Evaluate with steps={step_count}, or train a learner for {steps} steps."
            )
        params, lr, optimizer = split(meta_params)
        return adapt(
            loss_fn, params, support, lr=lr, optimizer=optimizer, steps=steps, key=key,
            first_order=first_order, remat=remat, mask=mask, per_step=per_step, observe=observe,
        )

    return adapt_fn


def check_inner_rule(inner_lr: Any, inner_optimizer: Any, *, learner: str,
                     no_learned_rule: str | None = None) -> None:
    """Check a learner's inner-loop settings: ``inner_lr`` and/or ``inner_optimizer`` (a clear error naming the fix).

    Without an optimizer the inner loop is gradient descent and needs a positive
    ``inner_lr``; with one, ``inner_lr`` (optional) scales its update. ``learned``:
    whether the learner can meta-learn a :class:`jaxmeta.inner.LearnedTransform`.
    """
    from jaxmeta.inner.learned import LearnedTransform  # jaxmeta.inner builds on this module

    if inner_optimizer is None:
        if inner_lr is None:
            raise TypeError(f"{learner} needs inner_lr= (gradient descent) or inner_optimizer= (an optax "
                            "GradientTransformation, e.g. optax.adam(1e-3, b1=0.0)).")
    elif isinstance(inner_optimizer, LearnedTransform):
        if no_learned_rule is not None:
            raise TypeError(
                f"{learner} cannot meta-learn an inner rule ({type(inner_optimizer).__name__}): {no_learned_rule} "
                "Use jaxmeta.maml (or fomaml / anil) for learned rules, or pass a fixed optax optimizer here."
            )
    else:
        check_optimizer(inner_optimizer)
    if inner_lr is not None:
        check_learning_rate(inner_lr)


def exact_task_grad(loss_fn: LossFn, adapt_fn: AdaptFn, step_weights: Any = None):
    r"""``task_grad`` that differentiates the query loss after adaptation through the inner loop.

    .. math::
        g = \nabla_{\Theta}\, L^q\big(\phi_k(\Theta)\big), \qquad \phi_k = \texttt{adapt\_fn}(\Theta, \text{support})

    the exact meta-gradient with respect to every meta-parameter (the
    initialisation, Meta-SGD's learning rates, a learned inner rule's
    parameters). With ``step_weights`` :math:`w_1, \dots, w_k` the objective
    is the multi-step loss :math:`\sum_{j=1}^{k} w_j L^q(\phi_j)` (MAML++);
    the reported ``loss`` stays :math:`L^q(\phi_k)`.
    """

    def task_grad(meta_params, task, key):
        inner_key, query_key = jax.random.split(key)

        def meta_loss(meta_params):
            if step_weights is None:
                adaptation = adapt_fn(meta_params, task.support, key=inner_key)
                loss, aux = loss_fn(adaptation.params, task.query, key=query_key)
                objective = loss
            else:
                adaptation = adapt_fn(meta_params, task.support, key=inner_key,
                                      observe=lambda phi: loss_fn(phi, task.query, key=query_key))
                losses, auxes = adaptation.observed  # after 0..k steps
                objective = jnp.dot(jnp.asarray(step_weights, losses.dtype), losses[1:])
                loss, aux = losses[-1], jax.tree.map(lambda a: a[-1], auxes)
            return objective, query_metrics(loss, aux, adaptation.support_losses)

        return jax.grad(meta_loss, has_aux=True)(meta_params)

    return task_grad
