r"""MAML (Finn, Abbeel and Levine, 2017), its first-order approximation FOMAML, and MAML++'s training options.

For a task with support loss :math:`L^s` and query loss :math:`L^q`, MAML
adapts :math:`\phi_0 = \theta`, :math:`\phi_{j+1} = \phi_j - \alpha\nabla L^s(\phi_j)`
and minimises :math:`L^q(\phi_k)` over :math:`\theta`. Its exact meta-gradient is

.. math::
    \nabla_\theta L^q(\phi_k) = \prod_{j=k-1}^{0}\left(I - \alpha \nabla^2 L^s(\phi_j)\right)
    \nabla L^q(\phi_k),

which jaxmeta obtains by differentiating through the inner ``lax.scan``.
FOMAML drops the Hessian terms: :math:`g_{\text{FO}} = \nabla L^q(\phi_k)`.

The inner step may be any optax optimizer (``inner_optimizer=optax.adam(...)``;
the meta-gradient then runs through its state too) or a learned rule
(:mod:`jaxmeta.inner`: LSLR, Meta-Curvature), whose parameters are meta-learned
with :math:`\theta`. MAML++'s options (Antoniou et al. 2019,
:func:`jaxmeta.maml_plus_plus`) are options of :func:`maml`:

* multi-step loss, ``step_weights``: minimise :math:`\sum_{j=1}^{k} w_j(t) L^q(\phi_j)`,
  the weights a function of the meta-step :math:`t` (:func:`~jaxmeta.algorithms.multi_step_loss_weights`);
* derivative-order annealing, ``first_order_steps``: FOMAML's gradient for the
  first meta-steps, the exact one after;
* per-step parameters, ``per_step``: one value of the selected parameters
  (batch norm's weights and biases) for each inner step, meta-learned and not adapted.
"""

from collections.abc import Callable
from typing import Any, Union

import jax
import jax.numpy as jnp
import numpy as np

from jaxmeta.core.adapt import Mask, check_steps, resolve_mask
from jaxmeta.core.learner import (AdaptationScore, MetaLearner, check_inner_rule, exact_task_grad, inner_loop,
                                  query_metrics)
from jaxmeta.core.types import LossFn, Params
from jaxmeta.inner.learned import LearnedInnerParams, LearnedTransform

StepWeights = Union[None, Any, Callable[[jax.Array], jax.Array]]
"""Multi-step loss weights: ``None`` (the last step's loss only), ``k`` weights, or ``t -> [k]`` weights."""


def maml(
    loss_fn: LossFn,
    *,
    inner_lr: Any = None,
    inner_steps: int = 1,
    inner_optimizer: Any = None,
    first_order: bool = False,
    remat: bool = False,
    adapt_mask: Mask = None,
    step_weights: StepWeights = None,
    first_order_steps: int = 0,
    per_step: Mask = None,
) -> MetaLearner:
    r"""Model-agnostic meta-learning with the exact second-order meta-gradient.

    The meta-parameters are the model parameters :math:`\theta` themselves, or
    :class:`~jaxmeta.inner.LearnedInnerParams` ``(params, rule)`` with a learned inner rule.

    Args:
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      inner_lr: :math:`\alpha`, a positive scalar or a fixed pytree of rates;
        with ``inner_optimizer`` optional, and then it scales the optimizer's update.
      inner_steps: :math:`k`, the inner steps used in meta-training.
      inner_optimizer: ``None`` (gradient descent with ``inner_lr``), any optax
        ``GradientTransformation`` (``optax.adam(1e-3, b1=0.0)``, ``optax.sgd(0.1, momentum=0.9)``),
        or a :class:`~jaxmeta.inner.LearnedTransform` (``jaxmeta.inner.lslr(...)``,
        ``jaxmeta.inner.meta_curvature(...)``) whose parameters are meta-learned.
      first_order: use FOMAML's gradient (no second-order terms) throughout.
      remat: rematerialise each inner step in the backward pass (less memory).
      adapt_mask: adapt only these parameters (see :func:`jaxmeta.anil`).
      step_weights: the multi-step loss's weights :math:`w_1..w_k` on the query
        loss after each inner step: a sequence, or a schedule ``t -> weights``
        of the meta-step (:func:`~jaxmeta.algorithms.multi_step_loss_weights`). ``None``: :math:`L^q(\phi_k)` only.
      first_order_steps: derivative-order annealing: meta-steps
        :math:`t <` ``first_order_steps`` use the first-order gradient, later
        ones the exact one (one compiled step: a ``lax.cond`` on :math:`t`).
      per_step: parameters with one value per inner step (MAML++'s per-step
        batch-norm weights and biases, ``lambda path: "norm" in path``):
        ``init`` stacks ``inner_steps + 1`` copies; step :math:`j` uses copy
        :math:`j`; they are meta-learned and not adapted.

    Returns:
      A :class:`~jaxmeta.core.learner.MetaLearner`. With a schedule
      (``step_weights`` callable, ``first_order_steps``) its ``at_step(t)`` is the
      learner at meta-step ``t`` (which :func:`jaxmeta.make_meta_step` uses),
      and ``task_grad`` itself is the end of the schedule (the last weights,
      exact gradient).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta import regression_loss, Task
      >>> learner = maml(regression_loss(lambda w, x: x * w), inner_lr=0.1, inner_steps=2)
      >>> x = jnp.array([1.0, 2.0])
      >>> task = Task(support=(x, 2 * x), query=(x, 2 * x))
      >>> grads, metrics = learner.task_grad(learner.init(jnp.array(0.0)), task, jax.random.key(0))
      >>> bool(grads < 0)  # increasing w lowers the post-adaptation loss
      True
      >>> adam = maml(regression_loss(lambda w, x: x * w), inner_optimizer=optax.adam(0.1, b1=0.0), inner_steps=2)
      >>> bool(adam.task_grad(jnp.array(0.0), task, jax.random.key(0))[0] < 0)
      True

    References:
      Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast
      Adaptation of Deep Networks", ICML 2017. Antoniou, Edwards and Storkey,
      "How to train your MAML", ICLR 2019 (the multi-step loss, derivative-order
      annealing and per-step batch norm).
    """
    check_inner_rule(inner_lr, inner_optimizer, learner="maml")
    inner_steps = check_steps(inner_steps, "inner_steps")
    weights_at = _step_weights(step_weights, inner_steps)
    if isinstance(first_order_steps, bool) or not isinstance(first_order_steps, int) or first_order_steps < 0:
        raise ValueError(f"first_order_steps must be a non-negative int (meta-steps), got {first_order_steps!r}.")
    learned = isinstance(inner_optimizer, LearnedTransform)
    if learned and inner_optimizer.steps is not None and inner_optimizer.steps != inner_steps:
        raise ValueError(
            f"The learned inner rule has values for {inner_optimizer.steps} inner steps, but inner_steps is "
            f"{inner_steps}: build it for the same number, e.g. jaxmeta.inner.lslr(steps={inner_steps})."
        )

    def split(meta):
        if learned:
            return meta.params, inner_lr, inner_optimizer.optimizer(meta.rule)
        return meta, inner_lr, inner_optimizer

    options: dict[str, Any] = dict(inner_steps=inner_steps, remat=remat, mask=adapt_mask, per_step=per_step,
                   step_count=inner_optimizer.steps if learned else None)
    adapt_fn = inner_loop(loss_fn, split, first_order=first_order, **options)
    first_order_adapt = inner_loop(loss_fn, split, first_order=True, **options)

    def init(params):
        if per_step is not None:
            params = stack_per_step(params, per_step, inner_steps + 1)
        return LearnedInnerParams(params, inner_optimizer.init(params)) if learned else params

    def query_gradient_at_adapted(theta, task, key):
        # FOMAML for a plain initialisation: d phi / d theta = I, so the meta-gradient is the query gradient at phi.
        inner_key, query_key = jax.random.split(key)
        adaptation = adapt_fn(jax.lax.stop_gradient(theta), task.support, key=inner_key)
        query_loss = lambda phi: loss_fn(phi, task.query, key=query_key)  # noqa: E731
        (loss, aux), grads = jax.value_and_grad(query_loss, has_aux=True)(adaptation.params)
        return grads, query_metrics(loss, aux, adaptation.support_losses)

    def task_grad_at(step):
        weights = weights_at(step)
        if first_order and weights is None and not learned and per_step is None:
            return query_gradient_at_adapted  # the cheap path: no backward pass through the inner loop
        exact = exact_task_grad(loss_fn, adapt_fn, weights)
        if first_order or first_order_steps == 0 or step is None:
            return exact
        approximate = exact_task_grad(loss_fn, first_order_adapt, weights)
        return lambda meta, task, key: jax.lax.cond(step < first_order_steps, approximate, exact, meta, task, key)

    scheduled = callable(step_weights) or first_order_steps > 0
    score = AdaptationScore(loss_fn, adapt_fn)
    at_step = (lambda step: MetaLearner(init, task_grad_at(step), adapt_fn, score=score)) if scheduled else None
    return MetaLearner(init=init, task_grad=task_grad_at(None), adapt=adapt_fn, at_step=at_step, score=score)


def _step_weights(step_weights: StepWeights, inner_steps: int) -> Callable[[jax.Array | None], Any]:
    """``weights_at(t)``: the multi-step loss weights at meta-step ``t`` (``None``: the end of the schedule)."""
    if step_weights is None:
        return lambda step: None
    if callable(step_weights):
        shape = jax.eval_shape(step_weights, jnp.zeros((), jnp.int32)).shape
        fixed = None
    else:
        fixed = np.asarray(step_weights, dtype=np.float64)
        shape = fixed.shape
    if shape != (inner_steps,):
        raise ValueError(f"step_weights must give one weight per inner step, {inner_steps} in all (shape "
                         f"({inner_steps},)), got shape {shape}.")
    if fixed is not None:
        return lambda step: fixed
    return lambda step: step_weights(jnp.asarray(jnp.iinfo(jnp.int32).max if step is None else step))


def multi_step_loss_weights(inner_steps: int, anneal_steps: int,
                            floor: float = 0.03) -> Callable[[jax.Array], jax.Array]:
    r"""MAML++'s multi-step loss weights at meta-step :math:`t`, annealed from uniform to the last step.

    With :math:`k` inner steps and :math:`\tau = \min(t / T, 1)` over ``anneal_steps`` :math:`T`,

    .. math::
        w_j(t) = \max\big(\tfrac{1}{k}(1 - \tau),\ \tfrac{f}{k}\big) \quad (j < k), \qquad
        w_k(t) = \min\big(\tfrac{1}{k} + \tfrac{k - 1}{k}\tau,\ 1 - (k - 1)\tfrac{f}{k}\big),

    so the weights start equal, the earlier steps' decay linearly to the floor
    :math:`f / k` (``floor`` :math:`= 0.03`, as in the paper's code) and the
    last step's grows; from :math:`t \ge T` on only the last step's loss
    counts (:math:`w = (0, \dots, 0, 1)`), as MAML++ stops using the
    multi-step loss after its annealing epochs.

    Example:
      >>> schedule = multi_step_loss_weights(inner_steps=4, anneal_steps=100)
      >>> [round(float(w), 4) for w in schedule(0)]
      [0.25, 0.25, 0.25, 0.25]
      >>> [round(float(w), 4) for w in schedule(50)]
      [0.125, 0.125, 0.125, 0.625]
      >>> [float(w) for w in schedule(100)]
      [0.0, 0.0, 0.0, 1.0]
    """
    k = check_steps(inner_steps, "inner_steps")
    check_steps(anneal_steps, "anneal_steps")
    if not 0 <= floor <= 1:
        raise ValueError(f"floor must be in [0, 1], got {floor}.")

    def weights(step):
        progress = jnp.minimum(jnp.asarray(step, jnp.float32) / anneal_steps, 1.0)
        early = jnp.maximum((1 - progress) / k, floor / k)
        last = jnp.minimum(1 / k + (k - 1) / k * progress, 1 - (k - 1) * floor / k)
        annealing = jnp.concatenate([jnp.full((k - 1,), early), last[None]])
        return jnp.where(step >= anneal_steps, jnp.zeros(k).at[-1].set(1.0), annealing)

    return weights


def stack_per_step(params: Params, per_step: Mask, copies: int) -> Params:
    """``params`` with each leaf selected by ``per_step`` replaced by ``copies`` stacked copies of itself.

    Example:
      >>> import jax.numpy as jnp
      >>> stacked = stack_per_step({"norm": jnp.ones(3), "w": jnp.ones(2)}, lambda path: "norm" in path, 4)
      >>> stacked["norm"].shape, stacked["w"].shape
      ((4, 3), (2,))
    """
    flags = resolve_mask(per_step, params, what="per-step selection")
    leaves, treedef = jax.tree.flatten(params)
    return jax.tree.unflatten(treedef, [jnp.stack([leaf] * copies) if flag else leaf
                                        for leaf, flag in zip(leaves, flags)])


def fomaml(loss_fn: LossFn, *, inner_lr: Any = None, inner_steps: int = 1, inner_optimizer: Any = None,
           adapt_mask: Mask = None) -> MetaLearner:
    r"""First-order MAML: the meta-gradient is :math:`\nabla L^q(\phi_k)`, no Hessian.

    Equivalent to ``maml(..., first_order=True)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import regression_loss
      >>> learner = fomaml(regression_loss(lambda w, x: x * w), inner_lr=0.1)
      >>> learner.init(jnp.array(1.0)).shape
      ()
    """
    return maml(loss_fn, inner_lr=inner_lr, inner_steps=inner_steps, inner_optimizer=inner_optimizer,
                first_order=True, adapt_mask=adapt_mask)
