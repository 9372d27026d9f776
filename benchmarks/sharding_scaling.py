r"""Tasks per second of the sharded meta step on 1, 2 and 4 devices (second-order MAML, conv-4).

    .venv/bin/python benchmarks/sharding_scaling.py            # 1, 2, 4 CPU devices; benchmarks/results/
    .venv/bin/python benchmarks/sharding_scaling.py --quick    # 1 and 2 devices, tiny model; runs/

Each device count runs in its own process, since JAX fixes the number of CPU
devices when it starts (``jax_num_cpu_devices``; on GPUs and TPUs pass
``--platform gpu`` and the real devices are used). The process compiles
:func:`jaxmeta.distributed.make_sharded_meta_step` for 5-way 1-shot
second-order MAML (15 queries, 1 inner step at lr 0.4, Adam 1e-3) on random
Omniglot-shaped tasks, warms up, and reports the median seconds per meta
step over ``--reps`` steps. The report gives tasks/s and the speed-up over
one device.

CPU devices of one machine share its cores. On the 2-core development
machine one device already runs XLA's kernels on both cores; two devices
run two task groups side by side and gained 11% (benchmarks/results/
sharding_scaling.md), and four devices split the same two cores. On
several GPUs each device is a separate processor.
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (RESULTS_DIR, Job, compile_and_time, environment, random_omniglot_tasks, run_jobs,  # noqa: E402
                    write_atomically, write_json)


def worker(args) -> dict:
    import jax

    if args.platform == "cpu":
        jax.config.update("jax_num_cpu_devices", args.devices)
    import jax.numpy as jnp
    import optax

    import jaxmeta
    from jaxmeta.distributed import make_sharded_meta_step, replicate, shard_tasks, task_mesh
    from jaxmeta.models import Conv4, functional

    ways, shots, queries = 5, 1, 15
    model = Conv4(num_classes=ways, features=args.width, conv="im2col" if args.platform == "cpu" else "xla")
    learner = jaxmeta.maml(jaxmeta.classification_loss(functional(model)), inner_lr=0.4)
    optimizer = optax.adam(1e-3)
    mesh = task_mesh(num_devices=args.devices)
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    state = replicate(jaxmeta.init_state(learner, optimizer, params), mesh)
    tasks = shard_tasks(random_omniglot_tasks(0, args.meta_batch, ways=ways, shots=shots, queries=queries), mesh)
    step = make_sharded_meta_step(learner, optimizer, mesh, task_chunk=args.task_chunk)
    _, compile_seconds, seconds, state, metrics = compile_and_time(step, state, tasks, jax.random.key(1),
                                                                   reps=args.reps)
    median = statistics.median(seconds)
    return {"devices": args.devices, "platform": jax.default_backend(), "meta_batch": args.meta_batch,
            "width": args.width, "task_chunk": args.task_chunk, "compile_seconds": compile_seconds,
            "seconds_per_step": seconds, "median_seconds": median, "tasks_per_second": args.meta_batch / median,
            "last_loss": float(metrics["loss"])}


def markdown(summary: dict) -> str:
    rows = summary["runs"]
    base = next((r for r in rows if r["devices"] == 1), None)
    lines = ["# The sharded meta step on several devices", "",
             f"Second-order MAML, conv-4 width {summary['width']}, 5-way 1-shot, 15 queries, meta-batch "
             f"{summary['meta_batch']}; median over {summary['reps']} steps after a warm-up, one process per device "
             f"count. Machine: {summary['environment']['processor']}, {summary['environment']['cpu_count']} cores, "
             f"jax {summary['environment']['jax']}.", "",
             "| devices | s / step | tasks / s | speed-up over 1 device | compile s |", "|---|---|---|---|---|"]
    for r in rows:
        speedup = f"{base['median_seconds'] / r['median_seconds']:.2f}" if base else "-"
        lines.append(f"| {r['devices']} | {r['median_seconds']:.3f} | {r['tasks_per_second']:.2f} | {speedup} | "
                     f"{r['compile_seconds']:.1f} |")
    for failure in summary["failures"]:
        lines.append(f"\n{failure['devices']} devices failed: {failure['error'].splitlines()[0]}")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--meta-batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--task-chunk", type=int, default=1, help="tasks at a time on each device (CPU path)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--platform", choices=("cpu", "gpu", "tpu"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="1 and 2 devices, width 8, meta-batch 4, 2 reps")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results (runs/ with --quick)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.meta_batch, args.width, args.reps = [1, 2], 4, 8, 2
    if args.out is None:
        args.out = Path("runs/sharding-scaling-quick") if args.quick else RESULTS_DIR
    for name in ("meta_batch", "width", "task_chunk", "reps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if args.worker:
        args.devices = args.devices[0]
        return args
    for devices in args.devices:
        if devices < 1 or args.meta_batch % devices:
            parser.error(f"--meta-batch {args.meta_batch} must be a positive multiple of every device count "
                         f"(got {devices}).")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        import json

        print(json.dumps(worker(args)), flush=True)
        return {}
    jobs = [Job("runs", (devices,), [sys.executable, str(Path(__file__).resolve()), "--worker", "--devices",
                                     str(devices), "--meta-batch", str(args.meta_batch), "--width", str(args.width),
                                     "--task-chunk", str(args.task_chunk), "--reps", str(args.reps), "--platform",
                                     args.platform], f"{devices} device(s)", {"devices": devices})
            for devices in args.devices]
    measured = run_jobs(jobs, desc="sharding scaling", describe=lambda r: f"{r['median_seconds']:.3f} s/step")
    runs, failures = measured["runs"], measured["failures"]
    summary = {"runs": runs, "failures": failures, "meta_batch": args.meta_batch, "width": args.width,
               "reps": args.reps, "environment": environment()}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "sharding_scaling.json", summary)
    write_atomically(args.out / "sharding_scaling.md", markdown(summary))
    print(markdown(summary))
    return summary


if __name__ == "__main__":
    main()
