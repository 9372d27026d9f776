r"""Implicit MAML (Rajeswaran, Finn, Kakade and Levine, 2019).

The inner loop solves a proximal problem around the meta-parameters,

.. math::
    \phi^\star(\theta) = \arg\min_\phi\; L^s(\phi) + \frac{\lambda}{2}\lVert \phi - \theta \rVert^2,

approximately, with ``inner_steps`` gradient steps from :math:`\theta`. At the
optimum :math:`\nabla L^s(\phi^\star) + \lambda(\phi^\star - \theta) = 0`, so by
the implicit function theorem

.. math::
    \frac{d\phi^\star}{d\theta} = \Big(I + \tfrac{1}{\lambda}\nabla^2 L^s(\phi^\star)\Big)^{-1},
    \qquad
    g = \Big(I + \tfrac{1}{\lambda}\nabla^2 L^s(\phi^\star)\Big)^{-1} \nabla L^q(\phi^\star).

:math:`g` is found by conjugate gradient (``jax.scipy.sparse.linalg.cg``) on
:math:`(I + H/\lambda)\,v = \nabla L^q(\phi^\star)` with Hessian-vector products
of :math:`L^s` at :math:`\phi^\star`. Nothing is differentiated through the inner
loop, so memory does not grow with ``inner_steps``.
"""

from typing import Any

import jax
import jax.numpy as jnp

from jaxmeta.core.adapt import adapt, check_steps
from jaxmeta.core.hessian import hvp
from jaxmeta.core.learner import AdaptationScore, MetaLearner, check_inner_rule, query_metrics
from jaxmeta.core.types import LossFn


def imaml(
    loss_fn: LossFn,
    *,
    inner_lr: Any = None,
    inner_steps: int = 10,
    lam: float = 1.0,
    cg_steps: int = 5,
    inner_optimizer: Any = None,
) -> MetaLearner:
    r"""Implicit MAML: the meta-gradient of the proximal inner problem by conjugate gradient.

    Args:
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      inner_lr: the step size of the inner gradient descent on the proximal objective.
      inner_steps: gradient steps that approximate :math:`\phi^\star`.
      lam: :math:`\lambda > 0`, the strength of the pull towards :math:`\theta`.
      cg_steps: conjugate-gradient iterations (the error of :math:`g` shrinks with them).
      inner_optimizer: a fixed optax optimizer for the proximal inner problem
        (e.g. ``optax.adam(...)``, or SGD with momentum, which reach
        :math:`\phi^\star` in fewer steps); the implicit gradient needs only
        :math:`\phi^\star`, not how it was found.

    Returns:
      A :class:`~jaxmeta.core.learner.MetaLearner`; ``adapt`` runs the proximal inner loop.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import regression_loss, Task
      >>> learner = imaml(regression_loss(lambda w, x: x * w), inner_lr=0.1, lam=2.0)
      >>> x = jnp.array([1.0, 2.0])
      >>> task = Task(support=(x, 2 * x), query=(x, 2 * x))
      >>> grads, metrics = learner.task_grad(jnp.array(0.0), task, jax.random.key(0))
      >>> bool(grads < 0)
      True

    References:
      Rajeswaran, Finn, Kakade and Levine, "Meta-Learning with Implicit
      Gradients", NeurIPS 2019.
    """
    check_inner_rule(inner_lr, inner_optimizer, learner="imaml",
                     no_learned_rule="its implicit gradient depends only on the inner solution, not on the path "
                                     "to it, so the rule's parameters would get no gradient.")
    inner_steps = check_steps(inner_steps, "inner_steps")
    cg_steps = check_steps(cg_steps, "cg_steps")
    if not (isinstance(lam, (int, float)) and lam > 0):
        raise ValueError(f"lam must be a positive number, got {lam!r}.")

    def proximal_loss(theta):
        def loss(phi, batch, *, key):
            value, aux = loss_fn(phi, batch, key=key)
            distance = sum(jnp.sum(jnp.square(p - t)) for p, t in zip(jax.tree.leaves(phi), jax.tree.leaves(theta)))
            return value + 0.5 * lam * distance, aux
        return loss

    def adapt_fn(theta, support, *, key, steps=None, observe=None):
        theta = jax.lax.stop_gradient(theta)
        result = adapt(proximal_loss(theta), theta, support, lr=inner_lr, optimizer=inner_optimizer,
                       steps=inner_steps if steps is None else steps, key=key, first_order=True,
                       observe=observe)
        return result._replace(params=jax.lax.stop_gradient(result.params))

    def task_grad(theta, task, key):
        inner_key, support_key, query_key = jax.random.split(key, 3)
        adaptation = adapt_fn(theta, task.support, key=inner_key)
        phi = adaptation.params
        (loss, aux), query_grad = jax.value_and_grad(
            lambda p: loss_fn(p, task.query, key=query_key), has_aux=True)(phi)
        support_loss = lambda p: loss_fn(p, task.support, key=support_key)[0]  # noqa: E731

        def operator(v):  # (I + H / lambda) v
            return jax.tree.map(lambda a, b: a + b / lam, v, hvp(support_loss, phi, v))

        grads, _ = jax.scipy.sparse.linalg.cg(operator, query_grad, x0=query_grad, maxiter=cg_steps, tol=0.0)
        return grads, query_metrics(loss, aux, adaptation.support_losses)

    return MetaLearner(init=lambda params: params, task_grad=task_grad, adapt=adapt_fn,
                       score=AdaptationScore(loss_fn, adapt_fn))
