r"""ANIL, "Almost No Inner Loop" (Raghu, Raghu, Bengio and Vinyals, 2020).

MAML where only the head adapts in the inner loop; the body :math:`\theta_b`
is shared across tasks and learned in the outer loop only:

.. math::
    \phi^h_{j+1} = \phi^h_j - \alpha \nabla_{h} L^s(\theta_b, \phi^h_j), \qquad
    \text{meta-gradient } \nabla_{(\theta_b, \theta_h)} L^q(\theta_b, \phi^h_k).
"""

from typing import Any

from jaxmeta.algorithms.maml import maml
from jaxmeta.core.adapt import Mask
from jaxmeta.core.learner import MetaLearner
from jaxmeta.core.types import LossFn


def anil(
    loss_fn: LossFn,
    *,
    head: Mask,
    inner_lr: Any = None,
    inner_steps: int = 1,
    inner_optimizer: Any = None,
    first_order: bool = False,
    remat: bool = False,
) -> MetaLearner:
    """MAML that adapts only the ``head`` parameters in the inner loop.

    Args:
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      head: the parameters that adapt: a predicate on the parameter path string
        (e.g. ``lambda path: "Dense_2" in path``) or a pytree of bools.
      inner_lr: the inner learning rate.
      inner_steps: inner steps in meta-training.
      inner_optimizer: an optax optimizer or a learned rule for the head's
        inner loop (as in :func:`jaxmeta.maml`).
      first_order: drop second-order terms.
      remat: rematerialise each inner step.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import regression_loss, Task
      >>> apply = lambda p, x: (x * p["body"]) * p["head"]
      >>> learner = anil(regression_loss(apply), head=lambda path: "head" in path, inner_lr=0.1)
      >>> params = {"body": jnp.array(1.0), "head": jnp.array(0.5)}
      >>> x = jnp.array([1.0, 2.0])
      >>> adapted = learner.adapt(params, (x, 2 * x), key=jax.random.key(0)).params
      >>> float(adapted["body"])  # frozen in the inner loop
      1.0

    References:
      Raghu et al., "Rapid Learning or Feature Reuse? Towards Understanding
      the Effectiveness of MAML", ICLR 2020.
    """
    return maml(
        loss_fn, inner_lr=inner_lr, inner_steps=inner_steps, inner_optimizer=inner_optimizer,
        first_order=first_order, remat=remat, adapt_mask=head,
    )
