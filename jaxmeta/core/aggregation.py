r"""How the meta step combines the task gradients of a batch: the mean, or gradient agreement.

The meta step computes one (pseudo-)gradient :math:`g_i` per task, stacked
along a leading task axis, and an *aggregation rule* turns them into the
update direction. The default is the mean, :math:`g = \frac1B \sum_i g_i`.

**Gradient agreement** (Eshratifar, Eigen and Pedram 2018) weights each task
by how well its update agrees with the batch's:

.. math::
    s_i = \sum_{j=1}^{B} \langle u_i, u_j \rangle, \qquad
    w_i = \frac{s_i}{Z}, \qquad g = \sum_{i=1}^{B} w_i\, g_i,

with the inner products taken over every entry of the pytrees (flattened).
Two normalisers :math:`Z` are in use:

* ``"paper"`` (the default), the paper's :math:`Z = \sum_k |s_k|` (its equation 13): the
  weights' magnitudes sum to one whatever the batch, so the step keeps the
  scale of the mean gradient (equal vectors give :math:`w_i = 1/B`, the
  mean exactly), and a task whose update opposes the others' gets a
  negative weight;
* ``"book"``, the meta-learning book's code, :math:`Z = \sum_k \sum_j |\langle u_k, u_j\rangle|`,
  the sum of the absolute pairwise products: never smaller than the paper's,
  so disagreement in a batch also shortens the step.

The default is the paper's because it is the method's definition and the
one whose step size does not depend on how much the tasks disagree.

Which vectors :math:`u_i` are compared (``vectors``):

* ``"update"`` (the default), the paper's (its Algorithm 1, lines 7-9) and the
  book's: :math:`u_i = \theta - \phi_i`, how far the task's inner loop moves
  the model's parameters; the weights then weigh the learner's task gradients
  :math:`g_i` (MAML's meta-gradients). The meta step runs each task's inner
  loop once more, through ``learner.adapt``, to measure :math:`u_i` (for an
  inner loop that draws random numbers, such as mini-batches, that is another
  draw of it);
* ``"task_grad"``: the agreement of the task gradients themselves,
  :math:`u_i = g_i`, with no second inner loop. It is the only choice for
  learners without an inner loop (metric and memory models), and for
  Reptile, whose task gradient *is* its update :math:`\theta - \phi_i`, it is
  the paper's rule exactly.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Aggregate = Callable[..., Any]
r"""``aggregate(stacked_grads) -> grads``: task gradients with a leading task axis ``[B, ...]`` to one update.
A rule whose ``needs_inner_updates`` is true is called as ``aggregate(stacked_grads, stacked_updates)``, with
each task's inner-loop update :math:`\theta - \phi_i` stacked the same way."""

NORMALISERS = ("paper", "book")
"""The gradient-agreement normalisers :func:`agreement_weights` knows."""

VECTORS = ("update", "task_grad")
"""What gradient agreement compares: the tasks' inner-loop updates, or their task gradients."""


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
    """The gradient-agreement rule as an ``Aggregate`` (hashable, so equal rules share compiled steps).

    ``rule(stacked_grads)`` with ``vectors="task_grad"``; ``rule(stacked_grads, stacked_updates)`` with
    ``vectors="update"`` (the meta step passes both, see :attr:`needs_inner_updates`).
    """

    normaliser: str = "paper"
    vectors: str = "update"

    def __post_init__(self):
        if self.normaliser not in NORMALISERS:
            raise ValueError(f"normaliser must be one of {NORMALISERS} (gradient agreement's Z), "
                             f"got {self.normaliser!r}.")
        if self.vectors not in VECTORS:
            raise ValueError(f"vectors must be one of {VECTORS} (what gradient agreement compares: the tasks' "
                             f"inner-loop updates, or their task gradients), got {self.vectors!r}.")

    @property
    def needs_inner_updates(self) -> bool:
        r"""Whether the meta step must pass each task's inner-loop update :math:`\theta - \phi_i` as well."""
        return self.vectors == "update"

    def __call__(self, stacked_grads: Any, stacked_updates: Any = None) -> Any:
        if self.needs_inner_updates and stacked_updates is None:
            raise ValueError("gradient_agreement(vectors='update') weighs the tasks by their inner-loop updates: "
                             "call it as rule(stacked_grads, stacked_updates) (make_meta_step does), or build it "
                             "with vectors='task_grad' to compare the task gradients themselves.")
        weights = agreement_weights(stacked_updates if self.needs_inner_updates else stacked_grads, self.normaliser)
        return jax.tree.map(lambda g: jnp.tensordot(weights.astype(g.dtype), g, axes=1), stacked_grads)


def gradient_agreement(normaliser: str = "paper", vectors: str = "update") -> GradientAgreement:
    r"""Gradient agreement (Eshratifar et al. 2018) for ``make_meta_step(..., aggregate=...)``.

    .. math::
        g = \sum_i w_i g_i, \qquad w_i = \frac{\sum_j \langle u_i, u_j\rangle}{Z}

    with :math:`g_i` the task gradients, :math:`u_i` the tasks' inner-loop updates :math:`\theta - \phi_i`
    (``vectors="update"``, the paper's Algorithm 1, the default) or the task gradients themselves
    (``vectors="task_grad"``), and ``normaliser`` ``"paper"`` (:math:`Z = \sum_k |\sum_j \langle u_k,
    u_j\rangle|`, the default) or ``"book"`` (:math:`Z = \sum_{k, j} |\langle u_k, u_j\rangle|`); see the
    module docstring.

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
    return GradientAgreement(normaliser, vectors)
