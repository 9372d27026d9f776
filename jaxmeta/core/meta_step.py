r"""One jitted meta step that serves every meta-learner and any optax optimizer.

Batched (the default): the task gradients are computed in parallel with
``jax.vmap`` and averaged,

.. math::
    g = \frac{1}{B} \sum_{i=1}^{B} \nabla_{\Theta} \mathcal{L}_i(\Theta), \qquad
    \Theta \leftarrow \Theta + \operatorname{optax\ update}(g).

Another rule than the mean (``aggregate=``, ``jaxmeta.core.aggregation``)
combines the stacked task gradients instead, e.g. gradient agreement's
weighted sum :math:`g = \sum_i w_i g_i`.

Serial (``serial=True``): the tasks are visited in order with one optimizer
update each (``jax.lax.scan``), as in the serial version of Reptile.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.aggregation import Aggregate, mean_of_tasks
from jaxmeta.core.learner import DirectScore, MetaLearner, learner_at_step
from jaxmeta.core.types import MetaParams, Metrics, Params, PRNGKey, Task


class MetaTrainState(NamedTuple):
    """Everything the outer loop carries: a pytree, so it jits, shards and checkpoints."""

    step: jax.Array
    meta_params: MetaParams
    opt_state: optax.OptState


def init_state(learner: MetaLearner, optimizer: optax.GradientTransformation, params: Params) -> MetaTrainState:
    """Build the meta-parameters from model parameters and the optimizer state for them.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from jaxmeta import maml, regression_loss
      >>> learner = maml(regression_loss(lambda w, x: x * w), inner_lr=0.1)
      >>> state = init_state(learner, optax.adam(1e-3), jnp.zeros(()))
      >>> int(state.step)
      0
    """
    meta_params = learner.init(params)
    return MetaTrainState(jnp.zeros((), jnp.int32), meta_params, optimizer.init(meta_params))


def task_batch_size(tasks: Task) -> int:
    """The size of the leading task axis; a clear error when the leaves disagree."""
    if not isinstance(tasks, Task):
        raise TypeError(
            f"Expected a jaxmeta.Task(support=..., query=...) with a leading task axis, got "
            f"{type(tasks).__name__}. Wrap your arrays as Task(support=(x_s, y_s), query=(x_q, y_q))."
        )
    sizes = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tasks)[0]:
        if jnp.ndim(leaf) == 0:
            raise ValueError(
                f"Task leaf {jax.tree_util.keystr(path)} is a scalar; every leaf of a task "
                "batch needs a leading task axis."
            )
        sizes[jax.tree_util.keystr(path)] = jnp.shape(leaf)[0]
    if not sizes:
        raise ValueError("The task batch has no arrays.")
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{name}: {size}" for name, size in sizes.items())
        raise ValueError(
            "Support and query disagree on the number of tasks (the leading axis): "
            f"{listing}. Every leaf of the task batch must have the same leading size B; "
            "stack the same B tasks in support and query."
        )
    return next(iter(sizes.values()))


def meta_gradient(
    learner: MetaLearner, meta_params: MetaParams, tasks: Task, key: PRNGKey, task_chunk: int | None = None,
    aggregate: Aggregate | None = None,
) -> tuple[MetaParams, Metrics]:
    """The mean over a batch of tasks of ``learner.task_grad`` (or ``aggregate`` of them, else the learner's own
    ``aggregate``), and the mean metrics.

    ``task_chunk=None`` computes every task at once (``jax.vmap``); an int
    ``k`` computes ``k`` tasks at a time, one group after another
    (``jax.lax.map(..., batch_size=k)``), with the same result. Groups keep
    the working set small: on the CPU, where a conv-4's activations for a
    whole meta-batch overflow the cache, this is several times faster, and
    anywhere it bounds memory.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import maml, regression_loss, Task
      >>> learner = maml(regression_loss(lambda w, x: x * w), inner_lr=0.1)
      >>> x = jnp.ones((4, 3))
      >>> grads, metrics = meta_gradient(learner, jnp.zeros(()), Task((x, x), (x, x)), jax.random.key(0))
      >>> grads.shape, metrics["loss"].shape
      ((), ())
    """
    keys = jax.random.split(key, task_batch_size(tasks))
    rule = aggregate if aggregate is not None else learner.aggregate
    if rule is None:
        return task_gradient_mean(learner, meta_params, tasks, keys, task_chunk)
    arguments, metrics = rule_arguments(rule, learner, meta_params, tasks, keys, task_chunk)
    return rule(*arguments), mean_of_tasks(metrics)


def needs_inner_updates(rule: Aggregate | None) -> bool:
    """Whether ``rule`` weighs the tasks by their inner-loop updates (gradient agreement's default) and is called
    as ``rule(stacked_grads, stacked_updates)``."""
    return bool(getattr(rule, "needs_inner_updates", False))


def inner_update(learner: MetaLearner, meta_params: MetaParams, task: Task, key: PRNGKey) -> Params:
    r"""How far the task's inner loop moves the model's parameters: :math:`\theta - \phi_k`.

    ``learner.adapt`` on the support set with the learner's own number of steps (and the first half of ``key``,
    as :func:`jaxmeta.core.learner.exact_task_grad` uses for its inner loop).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import maml, regression_loss, Task
      >>> learner = maml(regression_loss(lambda w, x: x * w), inner_lr=0.5)
      >>> x = jnp.ones(3)  # the loss (w - 1)^2 at w = 0: gradient -2, one step of 0.5 moves w to 1
      >>> float(inner_update(learner, jnp.zeros(()), Task((x, x), (x, x)), jax.random.key(0)))
      -1.0
    """
    adaptation = learner.adapt(meta_params, task.support, key=jax.random.split(key)[0], observe=lambda phi: phi)
    start = jax.tree.map(lambda stacked: stacked[0], adaptation.observed)  # phi_0 = theta
    return jax.tree.map(jnp.subtract, start, adaptation.params)


def rule_arguments(rule: Aggregate, learner: MetaLearner, meta_params: MetaParams, tasks: Task, keys: PRNGKey,
                   task_chunk: int | None = None) -> tuple[tuple[Any, ...], Metrics]:
    """What ``rule`` combines, stacked over the tasks (``keys [B]``): ``(task gradients,)``, or ``(task gradients,
    inner-loop updates)`` for a rule that :func:`needs_inner_updates`; and the stacked metrics."""
    if not needs_inner_updates(rule):
        stacked, metrics = task_gradients(learner, meta_params, tasks, keys, task_chunk)
        return (stacked,), metrics

    def gradient_and_update(task, key):
        grads, metrics = learner.task_grad(meta_params, task, key)
        return (grads, inner_update(learner, meta_params, task, key)), metrics

    return map_over_tasks(gradient_and_update, tasks, keys, task_chunk)


def task_gradient_mean(
    learner: MetaLearner, meta_params: MetaParams, tasks: Task, keys: PRNGKey, task_chunk: int | None = None
) -> tuple[MetaParams, Metrics]:
    """:func:`meta_gradient` with one key per task given (``keys [B]``): the mean of ``task_grad`` over the tasks."""
    grads, metrics = task_gradients(learner, meta_params, tasks, keys, task_chunk)
    return mean_of_tasks(grads), mean_of_tasks(metrics)


def task_gradients(
    learner: MetaLearner, meta_params: MetaParams, tasks: Task, keys: PRNGKey, task_chunk: int | None = None
) -> tuple[MetaParams, Metrics]:
    """``learner.task_grad`` of every task (``keys [B]``, one per task), stacked along a leading task axis."""
    return map_over_tasks(lambda task, key: learner.task_grad(meta_params, task, key), tasks, keys, task_chunk)


def map_over_tasks(fn: Callable[[Task, PRNGKey], Any], tasks: Task, keys: PRNGKey,
                   task_chunk: int | None = None) -> Any:
    """``fn(task, key)`` for every task, stacked: all at once (``jax.vmap``) or ``task_chunk`` at a time.

    ``task_chunk=k`` runs ``jax.lax.map(..., batch_size=k)``: groups of ``k``
    tasks under ``vmap``, one group after another (see :func:`meta_gradient`).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import Task
      >>> x = jnp.arange(3.0)
      >>> map_over_tasks(lambda task, key: task.support[0] * 2, Task((x, x), (x, x)),
      ...                jax.random.split(jax.random.key(0), 3), task_chunk=2).tolist()
      [0.0, 2.0, 4.0]
    """
    if task_chunk is None:
        return jax.vmap(fn)(tasks, keys)
    if isinstance(task_chunk, bool) or not isinstance(task_chunk, int) or task_chunk < 1:
        raise ValueError(f"task_chunk must be None or a positive int, got {task_chunk!r}.")
    return jax.lax.map(lambda pair: fn(*pair), (tasks, keys), batch_size=min(task_chunk, task_batch_size(tasks)))


def resolve_aggregate(learner: MetaLearner, aggregate: Aggregate | None, serial: bool = False) -> Aggregate | None:
    """The rule that combines the task gradients: ``aggregate``, the learner's own, or ``None`` (the mean).

    A clear error for a rule that is not callable, for one given to the serial step, and for a rule given to a
    learner that has its own (its task gradients are not plain gradients).
    """
    if aggregate is not None and not callable(aggregate):
        raise TypeError(f"aggregate must be a function stacked_grads -> grads (e.g. jaxmeta.gradient_agreement()), "
                        f"got {type(aggregate).__name__}.")
    if aggregate is not None and learner.aggregate is not None:
        raise ValueError("This learner combines its task gradients itself (learner.aggregate: its task_grad "
                         "returns more than a gradient, as TAML's inequality penalty does), so it cannot take "
                         "another rule: drop aggregate=.")
    rule = aggregate if aggregate is not None else learner.aggregate
    if rule is not None and serial:
        raise ValueError("aggregate combines the task gradients of a batch, but serial=True updates after every "
                         "task: drop aggregate (or use a learner without one), or set serial=False.")
    if needs_inner_updates(rule) and isinstance(learner.score, DirectScore):
        raise ValueError("This rule weighs the tasks by their inner-loop updates, but the learner has no inner "
                         "loop (a metric or memory model): compare the task gradients instead, "
                         "jaxmeta.gradient_agreement(vectors='task_grad').")
    return rule


def update_function(optimizer: optax.GradientTransformation) -> Callable[[MetaTrainState, MetaParams], MetaTrainState]:
    """``apply_update(state, grads) -> state``: one optimizer update of the meta-parameters, step + 1."""

    def apply_update(state: MetaTrainState, grads: MetaParams) -> MetaTrainState:
        updates, opt_state = optimizer.update(grads, state.opt_state, state.meta_params)
        return MetaTrainState(state.step + 1, optax.apply_updates(state.meta_params, updates), opt_state)

    return apply_update


def make_meta_step(
    learner: MetaLearner,
    optimizer: optax.GradientTransformation,
    *,
    serial: bool = False,
    task_chunk: int | None = None,
    jit: bool = True,
    aggregate: Aggregate | None = None,
) -> Callable[[MetaTrainState, Task, PRNGKey], tuple[MetaTrainState, Metrics]]:
    """Build ``meta_step(state, tasks, key) -> (state, metrics)``.

    Args:
      learner: any :class:`~jaxmeta.core.learner.MetaLearner`.
      optimizer: any optax transformation; it receives the (pseudo-)gradient.
      serial: visit the tasks one after the other with an update each instead
        of averaging their gradients.
      task_chunk: compute the task gradients this many at a time instead of
        all at once (see :func:`meta_gradient`). Batched mode only: with
        ``serial=True`` the tasks are visited one at a time already, and the
        combination is refused.
      jit: compile the step with ``jax.jit`` (donating nothing, so the caller's
        state stays valid).
      aggregate: how the task gradients are combined: ``None``, their mean
        (or the learner's own ``aggregate``, as TAML's inequality penalty has);
        or a rule ``stacked_grads -> grads`` such as
        :func:`jaxmeta.gradient_agreement` (``jaxmeta.core.aggregation``).
        Batched mode only.

    Returns:
      The meta step. ``metrics`` are means over the tasks of the batch.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta import maml, regression_loss, Task
      >>> learner = maml(regression_loss(lambda w, x: x * w), inner_lr=0.1)
      >>> optimizer = optax.sgd(0.5)
      >>> step = make_meta_step(learner, optimizer)
      >>> x = jnp.ones((4, 3))
      >>> state, metrics = step(init_state(learner, optimizer, jnp.zeros(())),
      ...                       Task((x, x), (x, x)), jax.random.key(0))
      >>> int(state.step)
      1
    """

    if serial and task_chunk is not None:
        raise ValueError(f"task_chunk={task_chunk} has no effect with serial=True, which visits the tasks one at a "
                         "time already: drop task_chunk, or set serial=False to average chunked task gradients.")
    rule = resolve_aggregate(learner, aggregate, serial)
    apply_update = update_function(optimizer)

    def batched_step(state, tasks, key):
        now = learner_at_step(learner, state.step)
        grads, metrics = meta_gradient(now, state.meta_params, tasks, key, task_chunk, rule)
        return apply_update(state, grads), metrics

    def serial_step(state, tasks, key):
        keys = jax.random.split(key, task_batch_size(tasks))

        now = learner_at_step(learner, state.step)

        def visit(carry, task_and_key):
            task, task_key = task_and_key
            grads, metrics = now.task_grad(carry.meta_params, task, task_key)
            updated = apply_update(carry, grads)
            return updated._replace(step=carry.step), metrics

        new_state, metrics = jax.lax.scan(visit, state, (tasks, keys))
        return new_state._replace(step=state.step + 1), mean_of_tasks(metrics)

    step = serial_step if serial else batched_step
    return jax.jit(step) if jit else step
