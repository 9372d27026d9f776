r"""A learned inner-loop rule: an optax transformation whose hyper-parameters are meta-parameters.

A :class:`LearnedTransform` is two pure functions, in the style of optax's
``GradientTransformation``:

* ``init(params) -> rule_params``: the rule's meta-parameters for a model's
  parameter tree (LSLR's rates, Meta-Curvature's matrices), at values that
  make the rule plain gradient descent;
* ``optimizer(rule_params) -> optax.GradientTransformation``: the inner
  optimizer they define. It closes over ``rule_params``, so ``jax.grad``
  through :func:`jaxmeta.adapt` differentiates the query loss with respect to
  them, exactly.

A learner given one (``jaxmeta.maml(..., inner_optimizer=jaxmeta.inner.lslr(...))``)
meta-learns :class:`LearnedInnerParams`: the initialisation and the rule's
parameters together.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import optax

from jaxmeta.core.types import Params


class LearnedTransform(NamedTuple):
    r"""An inner update rule with meta-learned parameters (see the module docstring).

    Attributes:
      init: ``init(params) -> rule_params``.
      optimizer: ``optimizer(rule_params) -> optax.GradientTransformation``.
      steps: the number of inner steps the rule is made for when it has one
        value per step (LSLR), else ``None`` (any number).

    Example: a rule of one's own, gradient descent with one learned (log-)rate,
    :math:`\phi_{j+1} = \phi_j - e^{\rho} \nabla L^s(\phi_j)`:

      >>> import jax, jax.numpy as jnp, optax, jaxmeta
      >>> log_rate = LearnedTransform(
      ...     init=lambda params: jnp.log(0.1),
      ...     optimizer=lambda rho: optax.scale(-jnp.exp(rho)))
      >>> learner = jaxmeta.maml(jaxmeta.regression_loss(lambda w, x: x * w), inner_optimizer=log_rate)
      >>> meta = learner.init(jnp.array(0.0))
      >>> x = jnp.array([1.0, 2.0])
      >>> grads, _ = learner.task_grad(meta, jaxmeta.Task((x, 2 * x), (x, 2 * x)), jax.random.key(0))
      >>> bool(grads.rule < 0)  # a larger rate would lower the query loss
      True
    """

    init: Callable[[Params], Any]
    optimizer: Callable[[Any], optax.GradientTransformation]
    steps: int | None = None


class LearnedInnerParams(NamedTuple):
    """Meta-parameters of a learner with a learned inner rule: the initialisation and the rule's parameters."""

    params: Params
    rule: Any
