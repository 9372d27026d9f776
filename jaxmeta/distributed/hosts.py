r"""Several hosts: which tasks each process draws, and the global task batch made of their shares.

With :math:`P` processes (one per host, after
``jax.distributed.initialize``) and a global meta-batch of :math:`B` tasks,
process :math:`p` draws the tasks :math:`[pB/P, (p+1)B/P)` of each batch
and feeds them to its own devices; :func:`global_task_batch` makes one
global array of the shares without moving data between hosts. The mesh of
:func:`jaxmeta.distributed.task_mesh` lists devices in process order, so a
process's tasks land on its own devices, and the sharded meta step then
sees the same batch as a single process drawing all :math:`B` tasks.

Launch: run the same script on every host, e.g. ``examples/multihost_maml.py``::

    # host 0 (the coordinator)            # host 1
    python examples/multihost_maml.py \\    python examples/multihost_maml.py \\
        --coordinator host0:1234 \\             --coordinator host0:1234 \\
        --num-processes 2 --process-id 0         --num-processes 2 --process-id 1
"""


import jax
import numpy as np
from jax.sharding import Mesh

from jaxmeta.core.types import Task
from jaxmeta.distributed.sharding import check_divides, task_sharding


def process_share(meta_batch: int, process_index: int | None = None, process_count: int | None = None) -> slice:
    """The task indices this process draws out of a global meta-batch: ``slice(p*B/P, (p+1)*B/P)``.

    Example:
      >>> process_share(8, process_index=1, process_count=4)
      slice(2, 4, None)
    """
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    if meta_batch % count:
        raise ValueError(
            f"A meta-batch of {meta_batch} tasks does not split evenly over {count} processes; use a multiple "
            f"of {count}."
        )
    if not 0 <= index < count:
        raise ValueError(f"process_index must be in [0, {count}), got {index}.")
    size = meta_batch // count
    return slice(index * size, (index + 1) * size)


def global_task_batch(local_tasks: Task, mesh: Mesh) -> Task:
    """The global task batch, sharded over ``mesh``, from this process's share (``[B/P, ...]`` leaves)."""
    global_size = jax.tree.leaves(local_tasks)[0].shape[0] * jax.process_count()
    check_divides(global_size, mesh)
    sharding = task_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_tasks)
