r"""Inner-loop adaptation: k update steps as one pure, differentiable function.

Starting from :math:`\phi_0 = \theta`, each inner step is

.. math::
    \phi_{j+1} = \phi_j - \alpha \odot \nabla_\phi L_{\text{support}}(\phi_j),
    \qquad j = 0, \dots, k - 1,

where :math:`\alpha` is a scalar or a pytree of per-parameter learning rates
(Meta-SGD). With an optax ``optimizer`` the step is the optimizer's,

.. math::
    (u_j, s_{j+1}) = \operatorname{update}\big(\nabla_\phi L_{\text{support}}(\phi_j), s_j, \phi_j\big),
    \qquad \phi_{j+1} = \phi_j + \alpha \odot u_j, \qquad s_0 = \operatorname{init}(\theta),

(:math:`\alpha = 1` unless ``lr`` is given too: then ``lr`` scales the
optimizer's direction, e.g. Meta-SGD's learned rates times Adam's
:math:`\hat m / (\sqrt{\hat v} + \epsilon)` from ``optax.scale_by_adam()``).
The optimizer state :math:`s_j` is part of the loop's carry. The loop is a
``jax.lax.scan``, so ``jax.grad`` of any function of :math:`\phi_k` with
respect to :math:`\theta` (and :math:`\alpha`, and anything the optimizer
closes over) is the exact meta-gradient, at every order. For gradient descent

.. math::
    \frac{d\phi_k}{d\theta} = \prod_{j=k-1}^{0}
        \left(I - \alpha \nabla^2 L_{\text{support}}(\phi_j)\right);

for an optimizer with state the Jacobian also runs through :math:`s_j`
(Adam's moments are functions of every earlier gradient).

Differentiating through Adam (or any optimizer dividing by
:math:`\sqrt{v}`) needs ``eps_root > 0`` (``optax.adam(lr, eps_root=1e-8)``)
wherever a gradient entry can be exactly zero, as for the weights of a dead
ReLU unit: :math:`d\sqrt{v}/dv` is infinite at :math:`v = 0`, and the
meta-gradient comes out NaN. First-order uses (FOMAML, Reptile) do not
differentiate through it and need nothing.

Options:

* ``first_order=True`` stops the gradient through :math:`\nabla L`, so that
  :math:`d\phi_{j+1}/d\phi_j = I` (FOMAML); the optimizer state is then a
  constant too. Gradients with respect to :math:`\alpha` still flow.
* ``remat=True`` wraps each step in ``jax.checkpoint``: the backward pass
  recomputes the step's activations instead of storing them.
* ``mask`` selects the parameters that adapt (ANIL: the head only); the
  others keep their value :math:`\theta` and no inner gradient is computed
  for them (an optimizer sees a zero gradient there, and its update of them
  is discarded).
* ``per_step`` marks parameters that hold one value per inner step (MAML++'s
  per-step batch-norm weights and biases): each such leaf has a leading axis
  of size :math:`k + 1`, the loss at step :math:`j` sees its slice :math:`j`,
  and it does not adapt.
* ``unroll``: loops of at most :data:`UNROLL_STEPS` steps are unrolled by
  default (``lax.scan(..., unroll=True)``); longer ones stay a loop. Unrolled,
  XLA fuses across steps and keeps no stacked per-step residuals (written and
  read with dynamic slices in a loop): 20-way 1-shot MAML with 5 inner steps ran
  20% faster on the CPU (the measurements in the docs, ``docs/design/onednn.md``), for a longer
  compile that grows with the number of steps.
"""

from collections.abc import Callable
from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.types import Batch, LossFn, Params, PRNGKey

UNROLL_STEPS = 5
"""Inner loops of at most this many steps are unrolled unless ``adapt(..., unroll=...)`` says otherwise."""

Mask = Union[None, Any, Callable[[str], bool]]
"""Which parameters adapt: ``None`` (all), a pytree of bools shaped like the
parameters, or a predicate on the parameter's path string such as
``lambda path: "head" in path``."""


class Adaptation(NamedTuple):
    """What :func:`adapt` returns.

    Attributes:
      params: the adapted parameters :math:`\\phi_k`.
      support_losses: ``[k]`` support loss at :math:`\\phi_0, \\dots, \\phi_{k-1}`.
      observed: ``observe(phi_j)`` stacked over ``j = 0..k`` (``None`` without ``observe``).
      opt_state: the inner optimizer's state after the last step (``None`` without ``optimizer``).
    """

    params: Params
    support_losses: jax.Array
    observed: Any = None
    opt_state: Any = None


def check_steps(steps: Any, name: str = "steps") -> int:
    """Return ``steps`` if it is a positive Python int; raise a clear error otherwise."""
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(
            f"{name} must be a Python int (a static number of inner steps), got "
            f"{type(steps).__name__} {steps!r}."
        )
    if steps < 1:
        raise ValueError(
            f"{name} must be at least 1, got {steps}. Use one or more inner gradient steps; "
            "to evaluate the unadapted parameters, read the step-0 entry of `evaluate`."
        )
    return steps


def resolve_mask(mask: Mask, params: Params, what: str = "adaptation mask") -> list[bool]:
    """The adaptation mask (or another selection of leaves) as one Python bool per leaf of ``params``."""
    treedef: Any  # tree_flatten_with_path's PyTreeDef, which mypy cannot see through jax.tree_util
    paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    if mask is None:
        flags = [True] * len(paths_and_leaves)
    elif callable(mask):
        flags = [bool(mask(jax.tree_util.keystr(path))) for path, _ in paths_and_leaves]
    else:
        try:
            flags = [bool(m) for m in treedef.flatten_up_to(mask)]
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"The {what} does not match the parameters: expected a pytree of "
                f"bools with structure {treedef}, got {jax.tree.structure(mask)}. Pass a "
                "tree of the same structure, or a predicate on parameter paths such as "
                "`lambda path: 'head' in path`."
            ) from error
    if not any(flags):
        names = [jax.tree_util.keystr(path) for path, _ in paths_and_leaves]
        raise ValueError(
            f"The {what} selects none of the parameters {names}; "
            + ("at least one parameter must adapt in the inner loop." if what == "adaptation mask" else
               "select at least one, or pass None.")
        )
    return flags


def resolve_learning_rates(lr: Any, params: Params) -> list[Any]:
    """One learning rate per leaf of ``params``: a shared scalar or the leaves of a matching tree."""
    treedef = jax.tree.structure(params)
    if _is_scalar(lr):
        return [check_learning_rate(lr)] * treedef.num_leaves
    try:
        leaves = treedef.flatten_up_to(lr)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "The learning-rate tree does not match the parameters: expected structure "
            f"{treedef}, got {jax.tree.structure(lr)}. Pass a scalar, or a tree with the "
            "parameters' structure, e.g. jax.tree.map(lambda p: jnp.full_like(p, 0.01), params)."
        ) from error
    for (path, p), a in zip(jax.tree_util.tree_flatten_with_path(params)[0], leaves):
        if jnp.ndim(a) and jnp.shape(a) != jnp.shape(p):
            raise ValueError(
                f"The learning rate for parameter {jax.tree_util.keystr(path)} has shape "
                f"{jnp.shape(a)}, but the parameter has shape {jnp.shape(p)}. Give each "
                "parameter a scalar rate or one of its own shape."
            )
    return leaves


def check_learning_rate(lr: Any) -> Any:
    """Return ``lr``; a Python number must be positive (arrays, e.g. learned rates, pass as they are)."""
    if isinstance(lr, (int, float)) and not lr > 0:
        raise ValueError(
            f"The inner learning rate must be positive, got {lr}. Use e.g. lr=0.01; "
            "learned per-parameter rates (Meta-SGD) may change sign during training."
        )
    return lr


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (int, float)) or (hasattr(x, "shape") and jnp.ndim(x) == 0)


def check_optimizer(optimizer: Any) -> optax.GradientTransformation:
    """Return ``optimizer`` if it is an optax ``GradientTransformation``; a clear error otherwise."""
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    name = getattr(optimizer, "__qualname__", type(optimizer).__name__)
    hint = (f" `{name}` looks like an optimizer factory: call it with its hyper-parameters, e.g. "
            f"optimizer={name}(1e-3)." if callable(optimizer) else "")
    raise TypeError(
        f"The inner optimizer must be an optax.GradientTransformation (init and update functions), got "
        f"{type(optimizer).__name__} {optimizer!r}.{hint} For example optimizer=optax.adam(1e-3, b1=0.0), or "
        "optax.chain(...) of transformations."
    )


def init_optimizer_state(optimizer: optax.GradientTransformation, params: Params, opt_state: Any = None) -> Any:
    """The inner optimizer's initial state for ``params``, checked (or ``opt_state``, checked against it).

    Raises a ``ValueError`` that names the mismatch when the optimizer cannot be
    initialised for these parameters, when its ``update`` returns a state of
    another structure than ``init`` (it could not be a loop's carry), or when a
    given ``opt_state`` does not have the structure, shapes and dtypes of
    ``optimizer.init(params)``.
    """
    try:
        expected = jax.eval_shape(optimizer.init, params)
    except Exception as error:  # an optimizer built for other parameters (optax.masked, multi_transform, ...)
        raise ValueError(
            f"The inner optimizer cannot initialise its state for these parameters ({type(error).__name__}: "
            f"{error}). Build the optimizer for this parameter tree (structure {jax.tree.structure(params)}): "
            "masks and labels of optax.masked / optax.multi_transform must match it."
        ) from error
    zeros = jax.tree.map(lambda p: jax.ShapeDtypeStruct(jnp.shape(p), jnp.result_type(p)), params)
    try:
        _, after = jax.eval_shape(optimizer.update, zeros, expected, zeros)
    except Exception as error:
        raise ValueError(
            f"The inner optimizer's update fails on these parameters ({type(error).__name__}: {error})."
        ) from error
    if not _same_shapes(after, expected):
        raise ValueError(
            "The inner optimizer's update returns a state that differs from its init's "
            f"({describe_tree(after)} vs {describe_tree(expected)}); the state is the inner loop's carry, so every "
            "step must keep its structure, shapes and dtypes."
        )
    if opt_state is None:
        return optimizer.init(params)
    if not _same_shapes(opt_state, expected):
        raise ValueError(
            "The inner optimizer state does not match the parameters: expected "
            f"{describe_tree(expected)}, got {describe_tree(opt_state)}. Pass opt_state=optimizer.init(params) for "
            "these parameters (the same tree, shapes and dtypes), or leave opt_state out."
        )
    return opt_state


def _same_shapes(a: Any, b: Any) -> bool:
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(jnp.shape(x) == jnp.shape(y) and jnp.result_type(x) == jnp.result_type(y)
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def describe_tree(tree: Any) -> str:
    """A pytree's structure and its leaves' dtypes and shapes, for error messages."""
    shapes = [f"{jnp.result_type(x)}{list(jnp.shape(x))}" for x in jax.tree.leaves(tree)]
    return f"{jax.tree.structure(tree)} with leaves {shapes}"


def resolve_per_step(per_step: Mask, params: Params, steps: int) -> list[bool]:
    """One bool per leaf: does it hold one value per inner step (leading axis ``steps + 1``)? Checked."""
    if per_step is None:
        return [False] * len(jax.tree.leaves(params))
    paths_and_leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    flags = resolve_mask(per_step, params, what="per-step selection")
    for (path, leaf), flag in zip(paths_and_leaves, flags):
        if flag and (jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != steps + 1):
            have = "no leading axis" if jnp.ndim(leaf) == 0 else f"{jnp.shape(leaf)[0]} values"
            raise ValueError(
                f"The per-step parameter {jax.tree_util.keystr(path)} has {have}; running {steps} inner steps "
                f"needs {steps + 1} (one for each of steps 0..{steps}) along its first axis. Run as many inner "
                "steps as it was built for, or stack it for this many (jaxmeta.algorithms.maml.stack_per_step)."
            )
    return flags


def gradient_step(
    loss_fn: LossFn,
    params: Params,
    batch: Batch,
    *,
    lr: Any,
    key: PRNGKey,
    first_order: bool = False,
    mask: Mask = None,
) -> tuple[Params, jax.Array]:
    r"""One inner step :math:`\phi' = \phi - \alpha \odot \nabla L(\phi)` on the masked parameters.

    Args:
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      params: the current parameters :math:`\phi`.
      batch: the support examples.
      lr: a scalar or a pytree of learning rates matching ``params``.
      key: passed to ``loss_fn``.
      first_order: stop the gradient through :math:`\nabla L` (FOMAML).
      mask: which parameters adapt (see ``jaxmeta.core.adapt.Mask``).

    Returns:
      ``(new_params, loss)`` where ``loss`` is :math:`L(\phi)` before the step.
    """
    result = adapt(loss_fn, params, batch, lr=lr, steps=1, key=key, first_order=first_order, mask=mask,
                   split_key=False)
    return result.params, result.support_losses[0]


def _merge(adapted: list, leaves: list, flags: list[bool]) -> list:
    """The leaves with the adapted ones (in order) in the places ``flags`` marks."""
    it = iter(adapted)
    return [next(it) if flag else leaf for leaf, flag in zip(leaves, flags)]


def adapt(
    loss_fn: LossFn,
    params: Params,
    batch: Batch,
    *,
    steps: int,
    key: PRNGKey,
    lr: Any = None,
    optimizer: optax.GradientTransformation | None = None,
    opt_state: Any = None,
    first_order: bool = False,
    remat: bool = False,
    mask: Mask = None,
    per_step: Mask = None,
    observe: Callable[[Params], Any] | None = None,
    unroll: bool | int | None = None,
    split_key: bool = True,
    minibatches: bool = False,
) -> Adaptation:
    r"""Run ``steps`` inner update steps on ``batch`` from ``params``.

    .. math::
        \phi_0 = \theta, \qquad
        \phi_{j+1} = \phi_j - \alpha \odot \nabla L_{\text{batch}}(\phi_j)
        \quad\text{or}\quad \phi_{j+1} = \phi_j + \alpha \odot u_j
        \text{ with } (u_j, s_{j+1}) = \operatorname{optimizer.update}(\nabla L_{\text{batch}}(\phi_j), s_j, \phi_j)

    A pure function: differentiate through it with ``jax.grad`` for the exact
    meta-gradient, ``jax.vmap`` it over tasks, ``jax.jit`` it.

    Args:
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      params: the starting point :math:`\theta`.
      batch: the support examples of one task.
      steps: the number of inner steps ``k >= 1`` (a static Python int).
      key: split into one key per step for ``loss_fn``.
      lr: :math:`\alpha`, a scalar or a pytree of per-parameter rates matching
        ``params``. Without ``optimizer`` the step is gradient descent with it
        (required then); with one, it scales the optimizer's update (default 1).
      optimizer: any optax ``GradientTransformation`` (``optax.adam(1e-3, b1=0.0)``,
        ``optax.sgd(0.1, momentum=0.9)``, a chain, or a learned rule's
        transformation); its state is carried from step to step and
        differentiated through. ``optax.sgd(a)`` gives the same steps as ``lr=a``.
      opt_state: the optimizer's initial state (default ``optimizer.init(params)``,
        fresh for each call); it must match that in structure, shapes and dtypes.
      first_order: treat :math:`\nabla L` as a constant (FOMAML).
      remat: rematerialise each step in the backward pass (``jax.checkpoint``),
        trading compute for memory.
      mask: which parameters adapt (ANIL: the head); see ``jaxmeta.core.adapt.Mask``.
      per_step: parameters with one value per step (leading axis ``steps + 1``):
        step ``j``, its observation and the returned parameters use slice
        ``j`` (``k`` for the result); they do not adapt. A mask as ``jaxmeta.core.adapt.Mask``.
      observe: optional function of the parameters evaluated at
        :math:`\phi_0, \dots, \phi_k` (for adaptation curves).
      unroll: passed to ``jax.lax.scan`` (``True``: a straight-line program;
        an int ``u``: ``u`` steps per loop iteration). Default: ``True`` for
        ``steps <= UNROLL_STEPS``, else ``1``. The result is the same.
      split_key: give step ``j`` the ``j``-th of ``jax.random.split(key, steps)``
        (default), or ``key`` itself (one step: :func:`gradient_step`).
      minibatches: ``batch`` holds one batch per step, stacked along a leading
        axis of size ``steps`` (a stochastic inner loop, as Reptile's); step
        ``j`` uses ``batch[j]``.

    Returns:
      An :class:`Adaptation` with :math:`\phi_k`, the support losses, the
      observations and the optimizer's final state.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta.core.losses import regression_loss
      >>> loss_fn = regression_loss(lambda w, x: x * w)
      >>> batch = (jnp.array([1.0, 2.0]), jnp.array([2.0, 4.0]))
      >>> result = adapt(loss_fn, jnp.array(0.0), batch, lr=0.1, steps=3, key=jax.random.key(0))
      >>> round(float(result.params), 4)  # moves towards w = 2
      1.75
      >>> adam = adapt(loss_fn, jnp.array(0.0), batch, optimizer=optax.adam(0.5), steps=3, key=jax.random.key(0))
      >>> round(float(adam.params), 2)  # Adam's steps have a length of about its learning rate
      1.46
    """
    steps = check_steps(steps)
    if optimizer is None:
        if lr is None:
            raise TypeError("adapt needs lr= (gradient descent) or optimizer= (an optax GradientTransformation).")
        if opt_state is not None:
            raise TypeError("opt_state is the state of an inner optimizer: pass optimizer= too, or drop opt_state.")
    else:
        optimizer = check_optimizer(optimizer)
    leaves, treedef = jax.tree.flatten(params)
    mask_flags = resolve_mask(mask, params)
    stepwise = resolve_per_step(per_step, params, steps)
    flags = [m and not s for m, s in zip(mask_flags, stepwise)]
    if not any(flags):
        raise ValueError("Every parameter selected by the mask is a per-step parameter, and those do not adapt: "
                         "at least one parameter must adapt in the inner loop.")
    rates = None if lr is None else [a for a, flag in zip(resolve_learning_rates(lr, params), flags) if flag]
    state = None if optimizer is None else init_optimizer_state(optimizer, params, opt_state)

    def view(leaves, j):  # what the model sees at step j: slice j of each per-step leaf
        return [jax.lax.dynamic_index_in_dim(leaf, j, keepdims=False) if s else leaf
                for leaf, s in zip(leaves, stepwise)]

    if minibatches:
        for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
            if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != steps:
                raise ValueError(
                    f"With minibatches=True every leaf of the batch needs a leading axis of {steps} (one batch per "
                    f"step); leaf {jax.tree_util.keystr(path)} has shape {jnp.shape(leaf)}."
                )

    def step(carry, inputs):
        leaves, state = carry
        step_key, j, step_batch = inputs
        seen_leaves = view(leaves, j)
        adapted = [leaf for leaf, flag in zip(leaves, flags) if flag]

        def loss_of_adapted(adapted):
            return loss_fn(treedef.unflatten(_merge(adapted, seen_leaves, flags)), step_batch, key=step_key)[0]

        loss, grads = jax.value_and_grad(loss_of_adapted)(adapted)
        if first_order:
            grads = jax.lax.stop_gradient(grads)
        if optimizer is None:
            new_adapted = [p - a * g for p, a, g in zip(adapted, rates, grads)]
        else:
            full_grads = _merge(grads, [jnp.zeros_like(leaf) for leaf in leaves], flags)
            updates, state = optimizer.update(treedef.unflatten(full_grads), state, treedef.unflatten(leaves))
            directions = [u for u, flag in zip(treedef.flatten_up_to(updates), flags) if flag]
            if rates is not None:
                directions = [a * u for a, u in zip(rates, directions)]
            new_adapted = [(p + u).astype(jnp.result_type(p)) for p, u in zip(adapted, directions)]
        seen = observe(treedef.unflatten(seen_leaves)) if observe is not None else None
        return (_merge(new_adapted, leaves, flags), state), (loss, seen)

    if remat:
        step = jax.checkpoint(step)
    if unroll is None:
        unroll = steps <= UNROLL_STEPS
    keys = jax.random.split(key, steps) if split_key else jnp.stack([key] * steps)
    if not minibatches:  # every step sees the same batch: close over it
        inner_step = step
        step = lambda carry, inputs: inner_step(carry, (*inputs, batch))  # noqa: E731
    xs = (keys, jnp.arange(steps)) + ((batch,) if minibatches else ())
    (final, state), (losses, seen) = jax.lax.scan(step, (leaves, state), xs, unroll=unroll)
    final = treedef.unflatten(view(final, steps))
    if observe is not None:
        last = observe(final)
        seen = jax.tree.map(lambda s, x: jnp.concatenate([s, x[None]]), seen, last)
    return Adaptation(final, losses, seen, state)
