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

Batching over tasks (``jax.vmap``), averaging, the optax update and ``jax.jit``
live in :mod:`jaxmeta.core.meta_step` and serve every learner.
"""

from typing import Any, Callable, NamedTuple

import jax

from jaxmeta.core.adapt import Adaptation, Mask, adapt, check_steps
from jaxmeta.core.types import LossFn, MetaParams, Metrics, Params, PRNGKey, Task


class MetaLearner(NamedTuple):
    """A meta-learning algorithm as three pure functions (see the module docstring)."""

    init: Callable[[Params], MetaParams]
    task_grad: Callable[[MetaParams, Task, PRNGKey], tuple[MetaParams, Metrics]]
    adapt: Callable[..., Adaptation]


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
    (loss, metrics)``, and ``adapt`` raises a ``TypeError`` with the message
    ``no_inner_loop``, which says how such a model is scored instead.
    """

    def task_grad(meta_params, task, key):
        del key
        return jax.grad(lambda p: task_metrics(p, task), has_aux=True)(meta_params)

    def adapt_fn(meta_params, support, *, key, steps=None, observe=None):
        raise TypeError(no_inner_loop)

    return MetaLearner(init=lambda params: params, task_grad=task_grad, adapt=adapt_fn)


def sgd_inner_loop(
    loss_fn: LossFn,
    split: Callable[[MetaParams], tuple[Params, Any]],
    *,
    inner_steps: int,
    first_order: bool = False,
    remat: bool = False,
    mask: Mask = None,
) -> Callable[..., Adaptation]:
    """``learner.adapt`` for learners whose inner loop is gradient descent.

    ``split(meta_params) -> (params, lr)`` says where the inner loop starts and
    with which learning rate(s); everything else is :func:`jaxmeta.adapt`.
    """
    inner_steps = check_steps(inner_steps, "inner_steps")

    def adapt_fn(meta_params, support, *, key, steps=None, observe=None):
        params, lr = split(meta_params)
        return adapt(
            loss_fn, params, support, lr=lr, steps=inner_steps if steps is None else steps, key=key,
            first_order=first_order, remat=remat, mask=mask, observe=observe,
        )

    return adapt_fn


def exact_task_grad(loss_fn: LossFn, adapt_fn: Callable[..., Adaptation]):
    r"""``task_grad`` that differentiates the query loss after adaptation through the inner loop.

    .. math::
        g = \nabla_{\Theta}\, L^q\big(\phi_k(\Theta)\big), \qquad \phi_k = \texttt{adapt\_fn}(\Theta, \text{support})

    the exact meta-gradient with respect to every meta-parameter (the
    initialisation, and Meta-SGD's learning rates).
    """

    def task_grad(meta_params, task, key):
        inner_key, query_key = jax.random.split(key)

        def meta_loss(meta_params):
            adaptation = adapt_fn(meta_params, task.support, key=inner_key)
            loss, aux = loss_fn(adaptation.params, task.query, key=query_key)
            return loss, query_metrics(loss, aux, adaptation.support_losses)

        return jax.grad(meta_loss, has_aux=True)(meta_params)

    return task_grad
