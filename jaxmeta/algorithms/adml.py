r"""ADML, adversarial meta-learning (Yin, Tang, Xu and Wang, 2018), and FGSM adversarial examples.

**FGSM** (Goodfellow, Shlens and Szegedy 2015) moves every input pixel by
:math:`\epsilon` in the direction that increases the loss, and clips to the
valid pixel range :math:`[a, b]`:

.. math::
    x^{\text{adv}} = \operatorname{clip}_{[a, b]}\big(x + \epsilon \operatorname{sign}(\nabla_x L(\theta; x, y))\big).

**ADML** adapts twice per task, on the clean support set :math:`S` and on its
adversarial version :math:`S^{\text{adv}}`, and judges each adapted model on
the *other* kind of query set:

.. math::
    \phi = \theta - \alpha \nabla_\theta L(\theta; S), \qquad
    \phi^{\text{adv}} = \theta - \alpha \nabla_\theta L(\theta; S^{\text{adv}}), \qquad
    \min_\theta\ L(\phi; Q^{\text{adv}}) + L(\phi^{\text{adv}}; Q),

(:math:`k` inner steps in general). The adversarial examples are made with
FGSM against the current initialisation :math:`\theta`, inside the compiled
step, and enter the meta-objective as data (their dependence on
:math:`\theta` is not differentiated, as in the paper). The meta-gradient
through both inner loops is exact (second order) unless ``first_order``.

Input gradients exist for every convolution the library has (``"xla"``,
``"im2col"``, ``"onednn"``: each gives the gradient with respect to its input
in reverse mode), so FGSM runs on all of them.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxmeta.algorithms.maml import maml
from jaxmeta.core.learner import AdaptFn, MetaLearner, check_inner_rule, query_metrics
from jaxmeta.core.types import Batch, LossFn, Params, PRNGKey
from jaxmeta.models.conv import images_as_float


def check_epsilon(epsilon: Any) -> float:
    """``epsilon`` as a float if it is a non-negative number; a clear error otherwise."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon >= 0:
        raise ValueError(f"epsilon must be a non-negative number (the FGSM step in pixel units, e.g. 0.2 for "
                         f"images in [0, 1]), got {epsilon!r}.")
    return float(epsilon)


def fgsm(loss_fn: LossFn, params: Params, batch: Batch, *, epsilon: float, key: PRNGKey,
         pixel_range: tuple[float, float] = (0.0, 1.0)) -> Batch:
    r"""The batch ``(inputs, labels)`` with FGSM adversarial inputs against ``params`` (a constant of the result).

    ``uint8`` images are scaled to [0, 1] first (as the models do), so the result is float.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import regression_loss
      >>> loss_fn = regression_loss(lambda w, x: x * w)
      >>> x, y = fgsm(loss_fn, jnp.array(1.0), (jnp.array([0.5]), jnp.array([0.0])), epsilon=0.1,
      ...             key=jax.random.key(0))
      >>> round(float(x[0]), 4)  # the loss (x w - y)^2 grows with x: x moves up by epsilon
      0.6
    """
    epsilon = check_epsilon(epsilon)
    low, high = pixel_range
    if not low < high:
        raise ValueError(f"pixel_range must be (low, high) with low < high, got {pixel_range!r}.")
    inputs, *rest = batch
    inputs = images_as_float(jax.lax.stop_gradient(inputs))
    params = jax.lax.stop_gradient(params)
    slope = jax.grad(lambda x: loss_fn(params, (x, *rest), key=key)[0])(inputs)
    adversarial = jnp.clip(inputs + epsilon * jnp.sign(slope), low, high)
    return (jax.lax.stop_gradient(adversarial), *rest)


def adml(
    loss_fn: LossFn,
    *,
    epsilon: float,
    inner_lr: Any = None,
    inner_steps: int = 1,
    inner_optimizer: Any = None,
    first_order: bool = False,
    pixel_range: tuple[float, float] = (0.0, 1.0),
) -> MetaLearner:
    r"""Adversarial meta-learning: clean and FGSM inner loops, each judged on the other kind of queries.

    Args:
      loss_fn: ``loss_fn(params, (inputs, labels), *, key) -> (loss, aux)``.
      epsilon: the FGSM step :math:`\epsilon \ge 0` in pixel units (images in ``pixel_range``).
      inner_lr: :math:`\alpha`.
      inner_steps: :math:`k`.
      inner_optimizer: an optax optimizer for both inner loops instead of gradient descent.
      first_order: drop the second-order terms of both inner loops.
      pixel_range: the valid input range the adversarial examples are clipped to.

    Returns:
      A :class:`~jaxmeta.core.learner.MetaLearner` whose ``adapt`` and ``score`` are MAML's (clean support sets);
      its metrics report both halves: ``loss`` and ``accuracy`` of the clean-adapted model on the adversarial
      queries, ``adversarial_adapted_loss`` and ``..._accuracy`` of the adversarially adapted one on clean queries.
      Score robustness with :func:`adversarial_score`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import classification_loss, Task
      >>> learner = adml(classification_loss(lambda w, x: x @ w), epsilon=0.1, inner_lr=0.5)
      >>> x, y = jnp.eye(3) * 0.5, jnp.arange(3)
      >>> grads, metrics = learner.task_grad(jnp.zeros((3, 3)), Task((x, y), (x, y)), jax.random.key(0))
      >>> grads.shape
      (3, 3)

    References:
      Yin, Tang, Xu and Wang, "Adversarial Meta-Learning", arXiv 1806.03316, 2018.
      Goodfellow, Shlens and Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
    """
    epsilon = check_epsilon(epsilon)
    check_inner_rule(inner_lr, inner_optimizer, learner="adml")
    clean_maml = maml(loss_fn, inner_lr=inner_lr, inner_steps=inner_steps, inner_optimizer=inner_optimizer,
                      first_order=first_order)  # both inner loops are MAML's
    adapt_fn = clean_maml.adapt

    def task_grad(theta, task, key):
        keys = jax.random.split(key, 6)
        attack = lambda batch, k: fgsm(loss_fn, theta, batch, epsilon=epsilon, key=k,  # noqa: E731
                                       pixel_range=pixel_range)
        adversarial_support, adversarial_query = attack(task.support, keys[0]), attack(task.query, keys[1])

        def objective(theta):
            clean = adapt_fn(theta, task.support, key=keys[2])
            robust = adapt_fn(theta, adversarial_support, key=keys[3])
            loss, aux = loss_fn(clean.params, adversarial_query, key=keys[4])
            other_loss, other_aux = loss_fn(robust.params, task.query, key=keys[5])
            metrics = {**query_metrics(loss, aux, clean.support_losses), "adversarial_adapted_loss": other_loss,
                       **{f"adversarial_adapted_{name}": value for name, value in other_aux.items()}}
            return loss + other_loss, metrics

        return jax.grad(objective, has_aux=True)(theta)

    return clean_maml._replace(task_grad=task_grad)


@dataclasses.dataclass(frozen=True)
class AdversarialScore:
    r"""``score`` on FGSM queries: after each inner step :math:`j` on the clean support set, the queries are
    attacked against the adapted :math:`\phi_j` itself (white box) and the loss and metrics are those of the
    attacked queries. Frozen, so equal scores share compiled evaluations."""

    loss_fn: LossFn
    adapt: AdaptFn
    epsilon: float
    pixel_range: tuple[float, float] = (0.0, 1.0)

    def __call__(self, meta_params, task, *, key, steps=None):
        inner_key, attack_key, query_key = jax.random.split(key, 3)

        def observe(phi):
            attacked = fgsm(self.loss_fn, phi, task.query, epsilon=self.epsilon, key=attack_key,
                            pixel_range=self.pixel_range)
            return self.loss_fn(phi, attacked, key=query_key)

        return self.adapt(meta_params, task.support, key=inner_key, steps=steps, observe=observe).observed


def adversarial_score(learner: MetaLearner, loss_fn: LossFn, *, epsilon: float,
                      pixel_range: tuple[float, float] = (0.0, 1.0)) -> MetaLearner:
    """``learner`` scored on FGSM queries (:class:`~jaxmeta.algorithms.AdversarialScore`): pass it to
    :func:`jaxmeta.evaluate`.

    Any learner with an inner loop (MAML, ADML, ...) works; ``epsilon=0`` scores the clean queries.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import classification_loss, evaluate, maml, Task
      >>> loss_fn = classification_loss(lambda w, x: x @ w)
      >>> robust = adversarial_score(maml(loss_fn, inner_lr=0.5), loss_fn, epsilon=0.1)
      >>> x, y = jnp.eye(3)[None] * 0.5, jnp.arange(3)[None]
      >>> evaluate(robust, jnp.zeros((3, 3)), Task((x, y), (x, y)), key=jax.random.key(0)).losses.shape
      (1, 2)
    """
    epsilon = check_epsilon(epsilon)
    low, high = pixel_range
    return learner._replace(score=AdversarialScore(loss_fn, learner.adapt, epsilon, (float(low), float(high))))
