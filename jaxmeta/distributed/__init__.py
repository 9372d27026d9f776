"""Many devices and hosts: the meta step with the task batch sharded over a mesh (JAX's own sharding)."""

from jaxmeta.distributed.hosts import global_task_batch, process_share
from jaxmeta.distributed.sharding import (TASK_AXIS, check_divides, make_sharded_meta_step, replicate, replicated,
                                          shard_tasks, task_mesh, task_sharding)

__all__ = ["TASK_AXIS", "check_divides", "global_task_batch", "make_sharded_meta_step", "process_share", "replicate",
           "replicated", "shard_tasks", "task_mesh", "task_sharding"]
