"""Second-order MAML data-parallel over several processes (one per host): the launch example.

Run the same command on every host, changing only ``--process-id``::

    python examples/multihost_maml.py --coordinator HOST0:1234 --num-processes 2 --process-id 0
    python examples/multihost_maml.py --coordinator HOST0:1234 --num-processes 2 --process-id 1

Each process calls ``jax.distributed.initialize``, draws only its share of
every meta-batch (``process_share``: tasks [pB/P, (p+1)B/P)), assembles the
global batch from the shares (``global_task_batch``; no data crosses hosts)
and runs the sharded meta step, whose mean meta-gradient is one XLA
all-reduce over every device of every host. With ``--num-processes 1`` it
runs in one process. On a single CPU machine two local processes stand in
for two hosts (``--cpu-devices`` each; collectives over gloo), which is how
tests/distributed/test_multihost.py checks that two processes train exactly
as one. The data are random 12x12 "characters", so nothing needs downloading.

With ``--run-dir DIR`` every process writes its shards of the state to an
orbax checkpoint after each meta step, and a run started on the same
directory resumes from the newest checkpoint, on any number of processes and
devices (the test resumes a two-process run in one process).
"""

import argparse
import json


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coordinator", default="localhost:1234", help="host:port of process 0")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--cpu-devices", type=int, default=None,
                        help="CPU devices per process (to try it on one machine); leave out on GPUs/TPUs")
    parser.add_argument("--meta-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None, help="checkpoint after every step here; resume if it has one")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import jax

    if args.cpu_devices:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.num_processes > 1:
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)

    import jax.numpy as jnp
    import numpy as np
    import optax

    import jaxmeta
    from jaxmeta.data.episodes import HostTaskIterator
    from jaxmeta.distributed import (global_task_batch, make_sharded_meta_step, process_share, replicate,
                                     task_mesh)
    from jaxmeta.models import Conv4, functional
    from jaxmeta.training.checkpoint import RunDirectory

    images = np.random.default_rng(args.seed).integers(0, 256, (30, 20, 12, 12), dtype=np.uint8)
    tasks = HostTaskIterator(images, args.meta_batch, ways=5, shots=1, queries=3, seed=args.seed,
                             share=process_share(args.meta_batch))
    model = Conv4(num_classes=5, features=8, blocks=2, conv="im2col")
    learner = jaxmeta.maml(jaxmeta.classification_loss(functional(model)), inner_lr=0.1)
    # SGD, not Adam, so that runs compare exactly: Adam scales the rounding noise of gradients that
    # are zero in exact arithmetic (the conv biases before batch norm) up to full-size steps.
    optimizer = optax.sgd(0.1)
    mesh = task_mesh()
    params = model.init(jax.random.key(args.seed), jnp.zeros((1, 12, 12, 1)))["params"]
    state = replicate(jaxmeta.init_state(learner, optimizer, params), mesh)
    step = make_sharded_meta_step(learner, optimizer, mesh)
    run = RunDirectory(args.run_dir, {"meta_batch": args.meta_batch, "seed": args.seed},
                       resume=True) if args.run_dir else None
    start = 0
    if run is not None and run.latest_step() is not None:
        start, state, _ = run.restore_latest(state)  # onto this run's mesh, whatever saved it
        for _ in range(start):  # the task stream continues where the saved run stopped
            next(tasks)
    losses = []
    for i in range(start, args.steps):
        state, metrics = step(state, global_task_batch(next(tasks), mesh), jax.random.key(1000 + i))
        losses.append(float(metrics["loss"]))
        if run is not None:
            run.save(i + 1, state, {})
    if run is not None:
        run.close()
    flat = np.concatenate([np.asarray(x).ravel() for x in jax.tree.leaves(state.meta_params)])
    result = {"process": jax.process_index(), "processes": jax.process_count(), "devices": jax.device_count(),
              "first_step": start, "losses": losses, "parameters": flat.tolist()}
    print(json.dumps(result), flush=True)
    if args.num_processes > 1:
        jax.distributed.shutdown()
    return result


if __name__ == "__main__":
    main()
