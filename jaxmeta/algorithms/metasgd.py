r"""Meta-SGD (Li, Zhou, Chen and Li, 2017): learn the initialisation and a learning rate per parameter.

The inner step uses a learned vector :math:`\alpha` of the parameters' shape,

.. math::
    \phi_{j+1} = \phi_j - \alpha \odot \nabla L^s(\phi_j),

and the outer loop minimises :math:`L^q(\phi_k)` over :math:`(\theta, \alpha)`.
With an inner optimizer the learned rates scale its direction instead of the
gradient, :math:`\phi_{j+1} = \phi_j + \alpha \odot u_j` (for example
``optax.scale_by_adam()``, whose :math:`u_j = -\hat m_j / (\sqrt{\hat v_j} + \epsilon)`
once negated by ``optax.scale(-1.0)``).
For one step,
:math:`\nabla_\alpha L^q(\phi_1) = -\nabla L^s(\theta) \odot \nabla L^q(\phi_1)`.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxmeta.core.adapt import Mask
from jaxmeta.core.learner import AdaptationScore, MetaLearner, check_inner_rule, exact_task_grad, inner_loop
from jaxmeta.core.types import LossFn, Params


class MetaSGDParams(NamedTuple):
    """Meta-SGD's meta-parameters: the initialisation and the per-parameter learning rates."""

    params: Params
    lrs: Params


def metasgd(
    loss_fn: LossFn,
    *,
    lr_init: float = 0.01,
    inner_steps: int = 1,
    inner_optimizer: Any = None,
    first_order: bool = False,
    remat: bool = False,
    adapt_mask: Mask = None,
) -> MetaLearner:
    r"""Meta-SGD: per-parameter learning rates learned jointly with the initialisation.

    Args:
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      lr_init: every learning rate starts at this value (the rates are free to
        change sign afterwards, as in the paper).
      inner_steps: inner steps in meta-training (the paper uses one).
      inner_optimizer: an optional fixed optax transformation giving the
        direction :math:`u_j` that the rates scale (default :math:`-\nabla L^s`);
        it should not include a learning rate of its own sign, e.g.
        ``optax.chain(optax.scale_by_adam(b1=0.0), optax.scale(-1.0))``.
      first_order: drop the Hessian terms (the rates still get their gradient).
      remat: rematerialise each inner step.
      adapt_mask: adapt only these parameters.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import regression_loss, Task
      >>> learner = metasgd(regression_loss(lambda w, x: x * w), lr_init=0.1)
      >>> meta = learner.init(jnp.array(0.0))
      >>> round(float(meta.lrs), 6)
      0.1
      >>> x = jnp.array([1.0, 2.0])
      >>> grads, _ = learner.task_grad(meta, Task((x, 2 * x), (x, 2 * x)), jax.random.key(0))
      >>> bool(grads.lrs < 0)  # a larger rate would lower the query loss
      True

    References:
      Li, Zhou, Chen and Li, "Meta-SGD: Learning to Learn Quickly for
      Few-Shot Learning", arXiv:1707.09835, 2017.
    """
    check_inner_rule(lr_init, inner_optimizer, learner="metasgd",
                     no_learned_rule="its learned rule is the per-parameter rates already.")
    adapt_fn = inner_loop(
        loss_fn, lambda meta: (meta.params, meta.lrs, inner_optimizer), inner_steps=inner_steps,
        first_order=first_order, remat=remat, mask=adapt_mask,
    )

    def init(params):
        return MetaSGDParams(params, jax.tree.map(lambda p: jnp.full_like(p, lr_init), params))

    return MetaLearner(init=init, task_grad=exact_task_grad(loss_fn, adapt_fn), adapt=adapt_fn,
                       score=AdaptationScore(loss_fn, adapt_fn))
