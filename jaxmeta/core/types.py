"""The few types every part of jaxmeta agrees on.

One loss signature serves the whole library::

    loss_fn(params, batch, *, key) -> (loss, aux)

``params`` is any pytree of arrays (a Flax ``params`` dict, a tuple of
arrays, ...), ``batch`` is any pytree of arrays holding the examples of one
task (for supervised learning ``(inputs, targets)``), ``key`` is a
``jax.random`` key for stochastic losses (dropout, sampling), and ``aux`` is
a dict of scalar metrics (empty, or e.g. ``{"accuracy": ...}``).

A :class:`Task` pairs the support set (what the inner loop adapts on) with
the query set (what the adapted parameters are judged on). Functions in
jaxmeta take *one* task; batches of tasks are the same pytree with a leading
task axis, produced by ``jax.vmap``.
"""

from collections.abc import Callable, Collection
from typing import Any, NamedTuple, Protocol

import jax
import numpy as np

Params = Any
"""A pytree of arrays: the parameters of a model."""

MetaParams = Any
"""A pytree of arrays: what the outer loop learns (parameters, learning rates, ...)."""

Batch = Any
"""A pytree of arrays holding the examples of one task, e.g. ``(inputs, targets)``."""

Metrics = dict[str, jax.Array]
"""Named scalar metrics."""

PRNGKey = jax.Array


class LossFn(Protocol):
    """``loss_fn(params, batch, *, key) -> (loss, aux)``: the library's one loss signature."""

    def __call__(self, params: Params, batch: Batch, *, key: PRNGKey) -> tuple[jax.Array, Metrics]:
        ...


ApplyFn = Callable[[Params, Any], jax.Array]
"""``apply(params, inputs) -> outputs``: any pure model, e.g. a Flax module's ``apply``."""


class Task(NamedTuple):
    """One few-shot task: a support set to adapt on and a query set to evaluate on.

    Both fields are batches in the sense of ``jaxmeta.core.types.Batch``. A batch of tasks is
    a ``Task`` whose leaves carry a leading task axis of the same size.

    Example:
      >>> import jax.numpy as jnp
      >>> task = Task(support=(jnp.zeros((5, 1)), jnp.zeros((5, 1))),
      ...             query=(jnp.zeros((10, 1)), jnp.zeros((10, 1))))
      >>> task.support[0].shape
      (5, 1)
    """

    support: Batch
    query: Batch


def example_count(batch: Batch, name: str = "training") -> int:
    """The number of examples of ``batch``: the leading axis its array leaves share (scalar leaves are ignored).

    A clear error names the ``name`` set when the leaves disagree on that axis
    or when it is 0, so that an empty set is refused before anything is
    compiled or averaged over it.

    Example:
      >>> import numpy as np
      >>> example_count((np.zeros((5, 28, 28, 1)), np.arange(5)))
      5
      >>> example_count((np.zeros((0, 3)), np.zeros(0)), "validation")
      Traceback (most recent call last):
      ...
      ValueError: The validation set is empty (leaf [0] has shape (0, 3)); it needs at least one example.
    """
    leaves = [(path, np.shape(leaf)) for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]
              if np.ndim(leaf)]
    sizes = sorted({shape[0] for _, shape in leaves})
    if len(sizes) > 1:
        raise ValueError(f"The {name} set's arrays must share one leading (example) axis, got sizes {sizes}: give "
                         "one label (or target) per input.")
    if not sizes:
        raise ValueError(f"The {name} set holds no arrays with an example axis; it needs at least one example.")
    if sizes[0] == 0:
        path, shape = leaves[0]
        raise ValueError(f"The {name} set is empty (leaf {jax.tree_util.keystr(path)} has shape {shape}); it needs at "
                         "least one example.")
    return sizes[0]


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` if it is a positive Python int (not a bool); a ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return value


def check_choice(value: Any, choices: Collection[str], what: str, hint: str = "") -> Any:
    """Return ``value`` if it is one of ``choices``; a ``ValueError`` naming ``what`` and the choices otherwise.

    ``hint``, when given, follows the list (what each choice is for).

    Example:
      >>> check_choice("dice", ("naive", "dice"), "estimator")
      'dice'
      >>> check_choice("reinforce", ("naive", "dice"), "estimator")
      Traceback (most recent call last):
      ...
      ValueError: Unknown estimator 'reinforce': choose one of naive, dice.
    """
    if value not in choices:
        raise ValueError(f"Unknown {what} {value!r}: choose one of {', '.join(map(str, choices))}."
                         + (f" {hint}" if hint else ""))
    return value
