r"""How the meta step combines the task gradients of a batch: the mean, or gradient agreement.

The meta step computes one (pseudo-)gradient :math:`g_i` per task, stacked
along a leading task axis, and an *aggregation rule* turns them into the
update direction. The default is the mean, :math:`g = \frac1B \sum_i g_i`.

**Gradient agreement** (Eshratifar, Eigen and Pedram 2018) weights each task
by how well its gradient agrees with the batch's:

.. math::
    s_i = \sum_{j=1}^{B} \langle g_i, g_j \rangle, \qquad
    w_i = \frac{s_i}{Z}, \qquad g = \sum_{i=1}^{B} w_i\, g_i,

with the inner products taken over every meta-parameter (the whole pytree
flattened). Two normalisers :math:`Z` are in use:

* ``"paper"`` (the default), the paper's :math:`Z = \sum_k |s_k|` (its equation 13): the
  weights' magnitudes sum to one whatever the batch, so the step keeps the
  scale of the mean gradient (equal gradients give :math:`w_i = 1/B`, the
  mean exactly), and a task whose gradient opposes the others' gets a
  negative weight;
* ``"book"``, the meta-learning book's code, :math:`Z = \sum_k \sum_j |\langle g_k, g_j\rangle|`,
  the sum of the absolute pairwise products: never smaller than the paper's,
  so disagreement in a batch also shortens the step.

The default is the paper's because it is the method's definition and the
one whose step size does not depend on how much the tasks disagree.

The paper computes the agreement from each task's update vector. Here
:math:`g_i` is whatever the learner's ``task_grad`` returns, which makes the
rule available to every learner: for Reptile that is exactly its update
:math:`\theta - \phi_i`, for MAML the task's meta-gradient, for a metric
learner its episode gradient.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Aggregate = Callable[[Any], Any]
"""``aggregate(stacked_grads) -> grads``: task gradients with a leading task axis ``[B, ...]`` to one update."""

NORMALISERS = ("paper", "book")
"""The gradient-agreement normalisers :func:`agreement_weights` knows."""


def mean_of_tasks(stacked_grads: Any) -> Any:
    """The default rule: the mean over the task axis."""
    return jax.tree.map(lambda g: jnp.mean(g, axis=0), stacked_grads)


def pairwise_inner_products(stacked_grads: Any) -> jax.Array:
    r"""``[B, B]``: :math:`G_{ij} = \langle g_i, g_j \rangle` over every leaf of the stacked task gradients."""
    leaves = jax.tree.leaves(stacked_grads)
    if not leaves:
        raise ValueError("The task gradients are empty: there is nothing to aggregate.")
    flat = [leaf.reshape(leaf.shape[0], -1) for leaf in leaves]
    return sum(f @ f.T for f in flat)


def agreement_weights(stacked_grads: Any, normaliser: str = "paper") -> jax.Array:
    r"""Gradient agreement's task weights :math:`w_i = s_i / Z` (see the module docstring), shape ``[B]``.

    Example:
      >>> import jax.numpy as jnp
      >>> g = jnp.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])  # the third task opposes the others
      >>> [round(w, 4) for w in agreement_weights(g).tolist()]
      [0.3333, 0.3333, -0.3333]
      >>> [round(w, 4) for w in agreement_weights(g, "book").tolist()]
      [0.1111, 0.1111, -0.1111]
    """
    if normaliser not in NORMALISERS:
        raise ValueError(f"normaliser must be one of {NORMALISERS} (gradient agreement's Z), got {normaliser!r}.")
    products = pairwise_inner_products(stacked_grads)
    agreement = products.sum(axis=1)
    total = jnp.abs(agreement).sum() if normaliser == "paper" else jnp.abs(products).sum()
    tiny = jnp.finfo(products.dtype).tiny  # all-zero gradients: zero weights, not NaN
    return agreement / jnp.maximum(total, tiny)


@dataclasses.dataclass(frozen=True)
class GradientAgreement:
    """The gradient-agreement rule as an ``Aggregate`` (hashable, so equal rules share compiled steps)."""

    normaliser: str = "paper"

    def __post_init__(self):
        if self.normaliser not in NORMALISERS:
            raise ValueError(f"normaliser must be one of {NORMALISERS} (gradient agreement's Z), "
                             f"got {self.normaliser!r}.")

    def __call__(self, stacked_grads: Any) -> Any:
        weights = agreement_weights(stacked_grads, self.normaliser)
        return jax.tree.map(lambda g: jnp.tensordot(weights.astype(g.dtype), g, axes=1), stacked_grads)


def gradient_agreement(normaliser: str = "paper") -> GradientAgreement:
    r"""Gradient agreement (Eshratifar et al. 2018) for ``make_meta_step(..., aggregate=...)``.

    .. math::
        g = \sum_i w_i g_i, \qquad w_i = \frac{\sum_j \langle g_i, g_j\rangle}{Z}

    with ``normaliser`` ``"paper"`` (:math:`Z = \sum_k |\sum_j \langle g_k, g_j\rangle|`, the default) or
    ``"book"`` (:math:`Z = \sum_{k, j} |\langle g_k, g_j\rangle|`); see the module docstring.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta import maml, make_meta_step, init_state, regression_loss, Task
      >>> learner = maml(regression_loss(lambda w, x: x * w), inner_lr=0.1)
      >>> step = make_meta_step(learner, optax.sgd(0.1), aggregate=gradient_agreement())
      >>> x = jnp.ones((4, 3))
      >>> state, metrics = step(init_state(learner, optax.sgd(0.1), jnp.zeros(())), Task((x, x), (x, x)),
      ...                       jax.random.key(0))
      >>> int(state.step)
      1

    References:
      Eshratifar, Eigen and Pedram, "Gradient Agreement as an Optimization
      Objective for Meta-Learning", NeurIPS 2018 Meta-Learning workshop;
      arXiv 1810.08178, 2018.
    """
    return GradientAgreement(normaliser)
