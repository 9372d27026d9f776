r"""CAVIA, fast context adaptation (Zintgraf, Shiarlis, Kurin, Hofmann and Whiteson, 2019).

The network :math:`f_\theta(x, \phi)` takes a context vector :math:`\phi`
besides its input (:mod:`jaxmeta.models.context`). The inner loop adapts
only the context, from zero, for every task; the weights :math:`\theta` are
learned in the outer loop only:

.. math::
    \phi_0 = 0, \qquad
    \phi_{j+1} = \phi_j - \alpha \nabla_\phi L^s(\theta, \phi_j), \qquad
    \min_\theta\ L^q(\theta, \phi_k(\theta)).

The meta-gradient is exact (through the inner loop, second order):

.. math::
    \nabla_\theta L^q(\theta, \phi_k) = \partial_\theta L^q
        + \Big(\frac{d\phi_k}{d\theta}\Big)^{\!\top} \partial_\phi L^q,
    \qquad
    \frac{d\phi_{j+1}}{d\theta} = \Big(I - \alpha \partial^2_{\phi\phi} L^s\Big)\frac{d\phi_j}{d\theta}
        - \alpha\, \partial^2_{\phi\theta} L^s ;

``first_order=True`` drops the second term (:math:`d\phi_k / d\theta = 0`).
Because only the few context entries adapt, the inner loop is cheap and the
meta-gradient's second-order terms are small matrices. The "CAML" of the
meta-learning book is this method.
"""

from typing import Any

import jax
import jax.numpy as jnp

from jaxmeta.core.adapt import check_steps
from jaxmeta.core.learner import AdaptationScore, MetaLearner, check_inner_rule, exact_task_grad, inner_loop
from jaxmeta.core.types import LossFn, Params
from jaxmeta.models.context import ContextParams


def cavia(
    loss_fn: LossFn,
    *,
    context_size: int,
    inner_lr: Any = 1.0,
    inner_steps: int = 1,
    inner_optimizer: Any = None,
    first_order: bool = False,
    remat: bool = False,
) -> MetaLearner:
    r"""CAVIA: adapt a context vector that starts at zero for every task; meta-learn the network's weights.

    The meta-parameters are the network's weights :math:`\theta`; ``loss_fn``
    is called with a :class:`~jaxmeta.models.context.ContextParams`
    ``(network, context)``, e.g. ``classification_loss(functional_with_context(model))``
    for a :class:`~jaxmeta.models.context.ContextConv4`. The context is not a
    meta-parameter: it is reset to zero for every task.

    Args:
      loss_fn: ``loss_fn(ContextParams(network, context), batch, *, key) -> (loss, aux)``.
      context_size: entries of the context vector (the reference code: 5 for sinusoids,
        100 for image classification).
      inner_lr: :math:`\alpha` (the reference code: 1.0).
      inner_steps: :math:`k` in meta-training (the reference code: 1 for sinusoids, 2 for images).
      inner_optimizer: an optax optimizer for the context's inner loop instead of gradient descent.
      first_order: drop the second-order terms (the context's inner gradients are constants).
      remat: rematerialise each inner step in the backward pass.

    Returns:
      A :class:`~jaxmeta.core.learner.MetaLearner` whose ``adapt`` returns
      ``ContextParams(theta, phi_k)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import regression_loss, Task
      >>> apply = lambda p, x: x * p.network + p.context[0]  # the context shifts the output
      >>> learner = cavia(regression_loss(apply), context_size=1, inner_lr=0.5)
      >>> x = jnp.array([1.0, 2.0])
      >>> adapted = learner.adapt(jnp.array(1.0), (x, x + 3.0), key=jax.random.key(0)).params
      >>> float(adapted.network), float(adapted.context[0])  # the weight is kept, the context moves to +3
      (1.0, 3.0)

    References:
      Zintgraf, Shiarlis, Kurin, Hofmann and Whiteson, "Fast Context Adaptation
      via Meta-Learning", ICML 2019.
    """
    if isinstance(context_size, bool) or not isinstance(context_size, int):
        raise TypeError(f"context_size must be a Python int, got {type(context_size).__name__} {context_size!r}.")
    if context_size < 1:
        raise ValueError(
            f"context_size must be at least 1, got {context_size}: CAVIA adapts only the context vector, so "
            "an empty context leaves nothing to adapt. Give the model a context (e.g. 5 entries for "
            "sinusoids, 100 for images), or use jaxmeta.maml to adapt the weights themselves."
        )
    check_inner_rule(inner_lr, inner_optimizer, learner="cavia")
    inner_steps = check_steps(inner_steps, "inner_steps")

    def split(theta: Params):
        dtype = jnp.result_type(*jax.tree.leaves(theta))
        return ContextParams(theta, jnp.zeros(context_size, dtype)), inner_lr, inner_optimizer

    def only_context(theta: Params) -> Any:  # the adaptation mask: the context adapts, no weight does
        return ContextParams(jax.tree.map(lambda _: False, theta), True)  # type: ignore[arg-type]

    def adapt_fn(theta, support, *, key, steps=None, observe=None):
        adapt = inner_loop(loss_fn, split, inner_steps=inner_steps, first_order=first_order, remat=remat,
                           mask=only_context(theta))
        return adapt(theta, support, key=key, steps=steps, observe=observe)

    return MetaLearner(init=lambda params: params, task_grad=exact_task_grad(loss_fn, adapt_fn), adapt=adapt_fn,
                       score=AdaptationScore(loss_fn, adapt_fn))
