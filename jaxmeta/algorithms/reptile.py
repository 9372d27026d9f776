r"""Reptile (Nichol, Achiam and Schulman, 2018) as a pseudo-gradient for any optax optimizer.

For each task, run :math:`k` steps of SGD on its support set from
:math:`\theta` to :math:`\phi_k`, and move :math:`\theta` towards :math:`\phi_k`:

.. math::
    \theta \leftarrow \theta + \epsilon \, \frac{1}{B}\sum_{i=1}^{B} (\phi^{(i)}_k - \theta).

jaxmeta returns the pseudo-gradient :math:`g = \theta - \phi_k` from
``task_grad``, so that ``optax.sgd(epsilon)`` reproduces the update above
exactly, and any other optax optimizer (Adam, as in the paper's
experiments) applies to it. The batched version averages :math:`g` over
tasks (``make_meta_step``); the serial version updates after every task
(``make_meta_step(..., serial=True)``).
"""

from typing import Any

import jax

from jaxmeta.core.adapt import Mask, check_learning_rate
from jaxmeta.core.learner import MetaLearner, query_metrics, sgd_inner_loop
from jaxmeta.core.types import LossFn


def reptile(loss_fn: LossFn, *, inner_lr: Any, inner_steps: int = 5, adapt_mask: Mask = None) -> MetaLearner:
    r"""Reptile: the meta-"gradient" of a task is :math:`\theta - \phi_k`.

    Args:
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      inner_lr: the inner SGD learning rate.
      inner_steps: :math:`k`; with :math:`k = 1` Reptile reduces to joint
        training on the expected loss, so use several steps.
      adapt_mask: adapt only these parameters.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import regression_loss, Task
      >>> learner = reptile(regression_loss(lambda w, x: x * w), inner_lr=0.1, inner_steps=3)
      >>> x = jnp.array([1.0, 2.0])
      >>> g, _ = learner.task_grad(jnp.array(0.0), Task((x, 2 * x), (x, 2 * x)), jax.random.key(0))
      >>> round(float(g), 4)  # theta - phi_3
      -1.75

    References:
      Nichol, Achiam and Schulman, "On First-Order Meta-Learning
      Algorithms", arXiv:1803.02999, 2018.
    """
    check_learning_rate(inner_lr)
    adapt_fn = sgd_inner_loop(loss_fn, lambda theta: (theta, inner_lr), inner_steps=inner_steps, mask=adapt_mask)

    def init(params):
        return params

    def task_grad(theta, task, key):
        inner_key, query_key = jax.random.split(key)
        adaptation = adapt_fn(jax.lax.stop_gradient(theta), task.support, key=inner_key)
        pseudo_grad = jax.tree.map(lambda t, p: t - p, theta, adaptation.params)
        loss, aux = loss_fn(adaptation.params, task.query, key=query_key)
        return pseudo_grad, query_metrics(loss, aux, adaptation.support_losses)

    return MetaLearner(init=init, task_grad=task_grad, adapt=adapt_fn)
