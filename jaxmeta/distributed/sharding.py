r"""Data parallelism over tasks: the meta step with the task batch sharded over a device mesh.

A meta-batch of :math:`B` tasks is split over the :math:`D` devices of a
one-axis :class:`jax.sharding.Mesh`, :math:`B/D` tasks each. Every device
computes the mean task gradient of its share, and one all-reduce
(``jax.lax.pmean``, a collective that XLA schedules) gives the mean over the
whole batch,

.. math::
    g = \frac{1}{D} \sum_{d=1}^{D} \frac{D}{B} \sum_{i \in \text{share}_d} \nabla_\Theta \mathcal{L}_i(\Theta)
      = \frac{1}{B} \sum_{i=1}^{B} \nabla_\Theta \mathcal{L}_i(\Theta),

the same gradient as the single-device step, up to the order of the
floating-point sums. The meta-parameters and the optimizer state are
replicated: every device applies the same optax update. Task :math:`i` gets
the same random key as in :func:`jaxmeta.make_meta_step` (the keys are split
before the batch is), so the sharded and unsharded steps compute the same
thing. Within a device the tasks run under ``vmap`` or, with ``task_chunk``,
in groups (the CPU path).

The step is a ``jax.jit`` of a ``jax.shard_map``: inputs that are not yet
laid out on the mesh are moved there by XLA (use :func:`shard_tasks` and
:func:`replicate` to place them once, up front). On several hosts the same
code runs in every process after :func:`jax.distributed.initialize`; see
:func:`jaxmeta.distributed.process_share` for the data.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxmeta.core.aggregation import Aggregate, mean_of_tasks
from jaxmeta.core.learner import MetaLearner, learner_at_step
from jaxmeta.core.meta_step import (MetaTrainState, resolve_aggregate, rule_arguments, task_batch_size,
                                   task_gradient_mean, update_function)
from jaxmeta.core.types import Metrics, PRNGKey, Task

TASK_AXIS = "tasks"
"""The name of the mesh axis the task batch is split over (:func:`task_mesh` makes a mesh with this one axis)."""


def task_mesh(devices: Sequence[jax.Device] | None = None, *, num_devices: int | None = None) -> Mesh:
    """A one-axis mesh named ``"tasks"`` over ``devices`` (default: all of ``jax.devices()``).

    ``num_devices`` takes the first that many of them.

    Example:
      >>> mesh = task_mesh(num_devices=1)
      >>> mesh.axis_names, mesh.size
      (('tasks',), 1)
    """
    devices = list(jax.devices() if devices is None else devices)
    if num_devices is not None:
        if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
            raise ValueError(f"num_devices must be a positive int, got {num_devices!r}.")
        if num_devices > len(devices):
            raise ValueError(
                f"num_devices={num_devices} but only {len(devices)} devices are available ({devices[0].platform}). "
                "On the CPU, ask for more host devices before JAX starts: "
                "jax.config.update('jax_num_cpu_devices', N) or XLA_FLAGS=--xla_force_host_platform_device_count=N."
            )
        devices = devices[:num_devices]
    return Mesh(np.array(devices), (TASK_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding of the meta-parameters and optimizer state: a full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def task_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding of a task batch: the leading (task) axis split over the mesh."""
    return NamedSharding(mesh, PartitionSpec(TASK_AXIS))


def replicate(tree, mesh: Mesh):
    """Put every array of ``tree`` (e.g. a :class:`~jaxmeta.MetaTrainState`) on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def shard_tasks(tasks: Task, mesh: Mesh) -> Task:
    """Split a task batch over ``mesh`` along its task axis (a clear error if it does not divide)."""
    check_divides(task_batch_size(tasks), mesh)
    return jax.device_put(tasks, task_sharding(mesh))


def check_divides(meta_batch: int, mesh: Mesh) -> None:
    """A clear error when ``meta_batch`` tasks cannot be split evenly over the mesh's devices."""
    devices = mesh.shape[TASK_AXIS]
    if meta_batch % devices:
        lower, upper = (meta_batch // devices) * devices, -(-meta_batch // devices) * devices
        raise ValueError(
            f"A meta-batch of {meta_batch} tasks does not split evenly over {devices} devices. Use a multiple "
            f"of {devices} (e.g. {lower or devices} or {upper}), or a mesh with a device count that divides "
            f"{meta_batch}. Tasks are not padded: a padded task would change the mean meta-gradient."
        )


def make_sharded_meta_step(
    learner: MetaLearner,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    *,
    task_chunk: int | None = None,
    aggregate: Aggregate | None = None,
) -> Callable[[MetaTrainState, Task, PRNGKey], tuple[MetaTrainState, Metrics]]:
    """:func:`jaxmeta.make_meta_step` with the task batch split over ``mesh``.

    Args:
      learner: any :class:`~jaxmeta.core.learner.MetaLearner` (gradient-based,
        metric, memory).
      optimizer: any optax transformation.
      mesh: a mesh with a ``"tasks"`` axis (:func:`task_mesh`).
      task_chunk: on each device, compute this many task gradients at a time
        (see :func:`jaxmeta.meta_gradient`).
      aggregate: a rule for combining the task gradients instead of their mean
        (:func:`jaxmeta.gradient_agreement`; or the learner's own ``aggregate``):
        the devices gather every task's gradient and each applies the rule to the
        whole batch, so the step is the unsharded one.

    Returns:
      A jitted ``meta_step(state, tasks, key) -> (state, metrics)``. The
      meta-batch must be a multiple of the number of devices. The state and
      metrics come back replicated.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta import init_state, maml, regression_loss, Task
      >>> learner, optimizer = maml(regression_loss(lambda w, x: x * w), inner_lr=0.1), optax.sgd(0.5)
      >>> mesh = task_mesh()
      >>> step = make_sharded_meta_step(learner, optimizer, mesh)
      >>> x = jnp.ones((mesh.size * 2, 3))
      >>> state, metrics = step(init_state(learner, optimizer, jnp.zeros(())), Task((x, x), (x, x)),
      ...                       jax.random.key(0))
      >>> int(state.step), state.meta_params.sharding.is_fully_replicated
      (1, True)
    """
    if TASK_AXIS not in mesh.axis_names:
        raise ValueError(f"The mesh needs an axis named {TASK_AXIS!r} (see task_mesh), got axes {mesh.axis_names}.")
    rule = resolve_aggregate(learner, aggregate)
    apply_update = update_function(optimizer)

    def share_gradient(meta_params, step, tasks, keys):
        # Device-varying from here on: each device differentiates its own tasks. Left replicated,
        # shard_map would all-reduce every gradient taken with respect to them, inner steps included.
        meta_params = jax.lax.pcast(meta_params, TASK_AXIS, to="varying")
        now = learner_at_step(learner, step)
        if rule is None:
            grads, metrics = task_gradient_mean(now, meta_params, tasks, keys, task_chunk)
            return jax.lax.pmean((grads, metrics), TASK_AXIS)
        # Every device gathers the whole batch's task gradients (and inner-loop updates, for a rule that weighs
        # by them) and applies the rule; the results are equal, and device 0's, summed with zeros from the
        # others, is the replicated step (exactly).
        arguments, metrics = rule_arguments(rule, now, meta_params, tasks, keys, task_chunk)
        combined = rule(*jax.lax.all_gather(arguments, TASK_AXIS, tiled=True))
        first = jax.lax.axis_index(TASK_AXIS) == 0
        combined = jax.lax.psum(jax.tree.map(lambda g: jnp.where(first, g, jnp.zeros_like(g)), combined), TASK_AXIS)
        return combined, jax.lax.pmean(mean_of_tasks(metrics), TASK_AXIS)

    sharded_gradient = jax.shard_map(
        share_gradient, mesh=mesh,
        in_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec(TASK_AXIS), PartitionSpec(TASK_AXIS)),
        out_specs=PartitionSpec())

    def step(state: MetaTrainState, tasks: Task, key: PRNGKey):
        size = task_batch_size(tasks)
        check_divides(size, mesh)
        keys = jax.random.split(key, size)
        grads, metrics = sharded_gradient(state.meta_params, state.step, tasks, keys)
        return apply_update(state, grads), metrics

    return jax.jit(step, out_shardings=replicated(mesh))
