r"""MAML (Finn, Abbeel and Levine, 2017) and its first-order approximation FOMAML.

For a task with support loss :math:`L^s` and query loss :math:`L^q`, MAML
adapts :math:`\phi_0 = \theta`, :math:`\phi_{j+1} = \phi_j - \alpha\nabla L^s(\phi_j)`
and minimises :math:`L^q(\phi_k)` over :math:`\theta`. Its exact meta-gradient is

.. math::
    \nabla_\theta L^q(\phi_k) = \prod_{j=k-1}^{0}\left(I - \alpha \nabla^2 L^s(\phi_j)\right)
    \nabla L^q(\phi_k),

which jaxmeta obtains by differentiating through the inner ``lax.scan``.
FOMAML drops the Hessian terms: :math:`g_{\text{FO}} = \nabla L^q(\phi_k)`.
"""

from typing import Any

import jax

from jaxmeta.core.adapt import Mask, check_learning_rate
from jaxmeta.core.learner import MetaLearner, exact_task_grad, query_metrics, sgd_inner_loop
from jaxmeta.core.types import LossFn


def maml(
    loss_fn: LossFn,
    *,
    inner_lr: Any,
    inner_steps: int = 1,
    first_order: bool = False,
    remat: bool = False,
    adapt_mask: Mask = None,
) -> MetaLearner:
    r"""Model-agnostic meta-learning with the exact second-order meta-gradient.

    The meta-parameters are the model parameters :math:`\theta` themselves.

    Args:
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      inner_lr: :math:`\alpha`, a positive scalar or a fixed pytree of rates.
      inner_steps: :math:`k`, the inner gradient steps used in meta-training.
      first_order: use FOMAML's gradient :math:`\nabla L^q(\phi_k)` instead.
      remat: rematerialise each inner step in the backward pass (less memory).
      adapt_mask: adapt only these parameters (see :func:`jaxmeta.anil`).

    Returns:
      A :class:`~jaxmeta.core.learner.MetaLearner`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import regression_loss, Task
      >>> learner = maml(regression_loss(lambda w, x: x * w), inner_lr=0.1, inner_steps=2)
      >>> x = jnp.array([1.0, 2.0])
      >>> task = Task(support=(x, 2 * x), query=(x, 2 * x))
      >>> grads, metrics = learner.task_grad(learner.init(jnp.array(0.0)), task, jax.random.key(0))
      >>> bool(grads < 0)  # increasing w lowers the post-adaptation loss
      True

    References:
      Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast
      Adaptation of Deep Networks", ICML 2017.
    """
    check_learning_rate(inner_lr)
    adapt_fn = sgd_inner_loop(
        loss_fn, lambda theta: (theta, inner_lr), inner_steps=inner_steps,
        first_order=first_order, remat=remat, mask=adapt_mask,
    )

    def init(params):
        return params

    def first_order_task_grad(theta, task, key):
        # d phi / d theta = I: the meta-gradient is the query gradient at phi.
        inner_key, query_key = jax.random.split(key)
        adaptation = adapt_fn(jax.lax.stop_gradient(theta), task.support, key=inner_key)
        query_loss = lambda phi: loss_fn(phi, task.query, key=query_key)  # noqa: E731
        (loss, aux), grads = jax.value_and_grad(query_loss, has_aux=True)(adaptation.params)
        return grads, query_metrics(loss, aux, adaptation.support_losses)

    task_grad = first_order_task_grad if first_order else exact_task_grad(loss_fn, adapt_fn)
    return MetaLearner(init=init, task_grad=task_grad, adapt=adapt_fn)


def fomaml(loss_fn: LossFn, *, inner_lr: Any, inner_steps: int = 1, adapt_mask: Mask = None) -> MetaLearner:
    r"""First-order MAML: the meta-gradient is :math:`\nabla L^q(\phi_k)`, no Hessian.

    Equivalent to ``maml(..., first_order=True)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import regression_loss
      >>> learner = fomaml(regression_loss(lambda w, x: x * w), inner_lr=0.1)
      >>> learner.init(jnp.array(1.0)).shape
      ()
    """
    return maml(loss_fn, inner_lr=inner_lr, inner_steps=inner_steps, first_order=True, adapt_mask=adapt_mask)
