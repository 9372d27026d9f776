"""Second-order MAML on the Omniglot conv-4, side by side: jaxmeta against learn2learn, higher and torch.func.

    make compare-env                            # once: torch, higher, learn2learn into .venv (optional)
    .venv/bin/python benchmarks/maml_speed.py   # ~15 minutes; writes benchmarks/results/maml_speed.{json,md}
    .venv/bin/python benchmarks/maml_speed.py --quick   # smoke test, writes runs/maml-speed-quick/

The settings are those of issue 4 (Finn et al.'s Omniglot protocol):

    5-way   5-way 1-shot, 15 queries per class, meta-batch 32, 1 inner step, inner lr 0.4
    20-way  20-way 1-shot, 5 queries per class, meta-batch 16, 5 inner steps, inner lr 0.1

and the meta step is the same everywhere: adapt to each task with the
inner steps of SGD on the support loss, keeping the graph (second order),
average the gradient of the query loss over the meta-batch, and take one
Adam(1e-3) step. The model is the conv-4 with batch norm on batch
statistics; the data is one meta-batch, drawn once and reused: random
Omniglot-shaped images, or with ``--data omniglot`` real Omniglot training
tasks (``$JAXMETA_DATA/omniglot``).

Implementations:

    jaxmeta              the CPU path, as benchmarks/omniglot.py trains: Conv4(conv="onednn")
                         (oneDNN's direct convolutions, when `make onednn` has built them; else
                         conv="im2col"), make_meta_step(..., task_chunk=1) (tasks one after the
                         other in a lax.map), uint8 [B, n, 28, 28, 1] inputs as the sampler gives them
    jaxmeta-im2col       the CPU path on XLA alone (conv="im2col": convolutions as matrix products
                         of image patches); only with --with-im2col, when jaxmeta runs oneDNN
    jaxmeta-host-devices the CPU path with each meta-batch split over 2 host devices
                         (jaxmeta.distributed.make_sharded_meta_step); only with --with-host-devices
    jaxmeta-accelerator  the library defaults for GPU and TPU: conv="xla", every task at
                         once under vmap; ~1 task/s on a CPU, so only with --with-accelerator-path
    learn2learn, higher, torchfunc
                         benchmarks/torch_maml.py (float32 NCHW inputs); a library that is not
                         installed (exit code 3) is reported as missing and the others still run

Protocol: every measurement is a separate process (``maml_speed.py --worker
jaxmeta ...`` or ``torch_maml.py --impl ...``), so that each framework has
the process and its thread pools to itself. For each setting, ``--rounds``
rounds run every implementation in turn; each process takes ``--warmup``
untimed meta steps (after compilation, for jaxmeta) and then ``--reps`` timed
ones. The median is over all timed steps of all rounds; tasks/s is
meta-batch / median; the headline is the ratio of tasks/s, jaxmeta's CPU
path over each other implementation (goal >= 1.0 against learn2learn,
target 1.5).

FLOPs come from XLA's cost analysis of the jaxmeta step. With
``task_chunk=1`` the step is a while loop, whose body XLA counts once, so
the FLOPs of a whole meta step are taken from the same step compiled with
``task_chunk=None`` (vmap over the tasks; compiled, never run); the loop
body's count is reported beside it. Every implementation computes the same
thing, so GFLOP/s = that count / median seconds for all of them, compared
with the ceiling measured in the same run: the median GFLOP/s of a jitted
float32 [58800 x 576] @ [576 x 64] product (the second conv layer's im2col
product for 300 images), measured in its own process at the start of every
round.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (TORCH_SCRIPT, Job, count, hardware, markdown_table, matmul_ceiling,  # noqa: E402
                    meta_step_flops, pooled_median, setting_arguments, worker_command)

TORCH_IMPLS = ("learn2learn", "higher", "torchfunc")
JAX_IMPLS = ("jaxmeta", "jaxmeta-im2col", "jaxmeta-host-devices", "jaxmeta-accelerator")
META_LR = 1e-3
SETTINGS = {
    "5-way": {"ways": 5, "shots": 1, "queries": 15, "meta_batch": 32, "inner_steps": 1, "inner_lr": 0.4},
    "20-way": {"ways": 20, "shots": 1, "queries": 5, "meta_batch": 16, "inner_steps": 5, "inner_lr": 0.1},
}
LABELS = {
    "jaxmeta": "jaxmeta, CPU path ({conv}, task_chunk=1)",
    "jaxmeta-im2col": "jaxmeta, CPU path on XLA alone (im2col, task_chunk=1)",
    "jaxmeta-host-devices": "jaxmeta, CPU path ({conv}), meta-batch split over 2 host devices",
    "jaxmeta-accelerator": "jaxmeta, accelerator path (xla conv, vmap)",
    "learn2learn": "learn2learn",
    "higher": "higher",
    "torchfunc": "torch.func, loop over tasks",
}
CEILING_SHAPE = (58800, 576, 64)  # [M x K] @ [K x N]
GOAL, TARGET = 1.0, 1.5
HOST_DEVICES = 2
DATA_DESCRIPTIONS = {"random": "random Omniglot-shaped data",
                     "omniglot": "a meta-batch of real Omniglot training tasks (MAML split, random rotations)"}
QUICK = {"meta_batch": 2, "reps": 1, "rounds": 1, "warmup": 0, "ceiling_reps": 3}
DEFAULTS = {"reps": 5, "rounds": 2, "warmup": 1, "ceiling_reps": 20}


# ----------------------------------------------------------------------------------------------
# Workers: one measurement each, one JSON line on stdout.
# ----------------------------------------------------------------------------------------------

def jaxmeta_worker(args) -> dict:
    """Time the jaxmeta meta step on one setting; with ``args.flops`` also count its FLOPs."""
    import jax
    import jax.numpy as jnp
    import optax

    import jaxmeta
    from jaxmeta import distributed
    from jaxmeta.models import Conv4, functional
    # the jaxmeta worker only: the PyTorch workers have no JAX
    from common import compile_and_time, omniglot_meta_batch, random_omniglot_tasks, use_host_devices

    accelerator = args.path == "accelerator"
    conv, task_chunk = ("xla", None) if accelerator else (args.path, 1)
    use_host_devices(args.devices)  # before JAX starts its backend
    ways, shots, queries, meta_batch = args.ways, args.shots, args.queries, args.meta_batch

    def build(conv, task_chunk):
        model = Conv4(num_classes=ways, conv=conv)
        learner = jaxmeta.maml(jaxmeta.classification_loss(functional(model)), inner_lr=args.inner_lr,
                               inner_steps=args.inner_steps)
        optimizer = optax.adam(META_LR)
        params = model.init(jax.random.key(args.seed), jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]
        state = jaxmeta.init_state(learner, optimizer, params)
        if args.devices > 1 and task_chunk is not None:  # jaxmeta.distributed: each device takes a share of tasks
            mesh = distributed.task_mesh(num_devices=args.devices)
            step = distributed.make_sharded_meta_step(learner, optimizer, mesh, task_chunk=task_chunk)
            return distributed.replicate(state, mesh), step
        return state, jaxmeta.make_meta_step(learner, optimizer, task_chunk=task_chunk)

    draw = omniglot_meta_batch if args.data == "omniglot" else random_omniglot_tasks
    tasks = jax.device_put(draw(args.seed, meta_batch, ways=ways, shots=shots, queries=queries))
    key = jax.random.key(args.seed + 1)

    state, step = build(conv, task_chunk)
    compiled, compile_seconds, seconds, state, metrics = compile_and_time(
        step, state, tasks, key, reps=args.reps, warmup=args.warmup)
    median = statistics.median(seconds)
    record = {
        "impl": args.impl,
        "devices": args.devices,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "conv": conv,
        "task_chunk": task_chunk,
        "setting": {
            "meta_batch": meta_batch, "ways": ways, "shots": shots, "queries": queries,
            "inner_steps": args.inner_steps, "inner_lr": args.inner_lr, "first_order": False,
            "meta_optimizer": f"Adam({META_LR})", "dtype": "float32 (uint8 inputs)",
            "warmup": args.warmup, "reps": args.reps,
        },
        "compile_seconds": compile_seconds,
        "seconds_per_step": seconds,
        "median_seconds": median,
        "tasks_per_second": meta_batch / median,
        "last_loss": float(metrics["loss"]),
    }
    if args.flops:
        record["flops"] = meta_step_flops(build, conv, task_chunk, tasks, key, compiled)
    return record


# ----------------------------------------------------------------------------------------------
# The driver: runs the workers, aggregates, writes the JSON and the Markdown.
# ----------------------------------------------------------------------------------------------

def cpu_conv() -> str:
    """The CPU path's convolution, as ``benchmarks/omniglot.py`` picks it: oneDNN when built, else im2col."""
    from jaxmeta.models import onednn_conv

    return "onednn" if onednn_conv.available() else "im2col"


def job(impl: str, name: str, setting: dict, round_index: int, reps: int, warmup: int, flops: bool = False,
        data: str = "random") -> Job:
    """One process timing ``impl`` on the setting ``name`` (a missing PyTorch library is skipped after)."""
    common_args = setting_arguments(setting) + ["--reps", str(reps), "--warmup", str(warmup), "--data", data]
    if impl in JAX_IMPLS:
        path = {"jaxmeta-accelerator": "accelerator", "jaxmeta-im2col": "im2col"}.get(impl, cpu_conv())
        devices = HOST_DEVICES if impl == "jaxmeta-host-devices" else 1
        command = worker_command(__file__, "jaxmeta", impl=impl, path=path, devices=devices, flops=flops) + common_args
    else:
        command = [sys.executable, str(TORCH_SCRIPT), "--impl", impl, *common_args]
    return Job("runs", (name, round_index, impl), command, f"{name} round {round_index + 1}: {impl}",
               {"setting_name": name, "round": round_index, "impl": impl}, library=None if impl in JAX_IMPLS else impl,
               required=impl in JAX_IMPLS)


def ceiling_job(name: str, round_index: int, reps: int) -> Job:
    """The matrix-product ceiling, measured in its own process at the start of every round."""
    return Job("ceilings", (name, round_index), worker_command(__file__, "ceiling", reps=reps),
               f"{name} round {round_index + 1}: the matrix-product ceiling", required=True)


def describe(record: dict) -> str:
    if "gflops_per_second" in record:
        return f"{record['gflops_per_second']:.0f} GFLOP/s"
    return f"{record['median_seconds']:.3f} s/step, {record['tasks_per_second']:.2f} tasks/s"


def summarize_setting(name: str, setting: dict, runs: dict, flops: dict, ceiling_gflops: float) -> dict:
    """Aggregate the rounds of one setting: medians over every timed step, GFLOP/s, ratios."""
    results = {}
    for impl, records in runs.items():
        median, timed = pooled_median(records)
        gflops = flops["step"] / median / 1e9 if flops else float("nan")
        results[impl] = {
            "label": LABELS[impl].format(conv=records[0].get("conv")),
            "steps_timed": timed,
            "median_seconds": median,
            "tasks_per_second": setting["meta_batch"] / median,
            "gflops_per_second": gflops,
            "fraction_of_ceiling": gflops / ceiling_gflops,
            "seconds_per_step": [s for record in records for s in record["seconds_per_step"]],
            "rounds": records,
        }

    def over_torch(impl):  # impl's tasks/s over each PyTorch implementation's
        if impl not in results:
            return {}
        return {other: results[impl]["tasks_per_second"] / results[other]["tasks_per_second"]
                for other in results if other in TORCH_IMPLS}

    ratios, host_device_ratios = over_torch("jaxmeta"), over_torch("jaxmeta-host-devices")
    headline = "learn2learn" if "learn2learn" in ratios else None
    return {
        "name": name,
        "setting": setting,
        "flops": flops,
        "results": results,
        "ratios_jaxmeta_over": ratios,
        "ratios_host_devices_over": host_device_ratios,
        "headline_against": headline,
        "goal_met": None if headline is None else ratios[headline] >= GOAL,
        "target_met": None if headline is None else ratios[headline] >= TARGET,
    }


def describe_setting(s: dict) -> str:
    return (f"{s['ways']}-way {s['shots']}-shot, {s['queries']} queries per class, meta-batch {s['meta_batch']}, "
            f"{count(s['inner_steps'], 'inner step')} at lr {s['inner_lr']}")


def markdown(summary: dict) -> str:
    env, protocol, ceiling = summary["environment"], summary["protocol"], summary["ceiling"]
    lines = ["# Second-order MAML speed on the Omniglot conv-4: jaxmeta vs the PyTorch libraries", ""]
    if summary["quick"]:
        lines += ["**Quick smoke run (`--quick`): meta-batch 2, one timed step; not a measurement to quote.**", ""]
    lines += [
        f"{env['date']}; {hardware(env)} ({env['platform']}); jax {env['jax']} ({env['backend']}), "
        f"flax {env['flax']}, optax {env['optax']}. Generated by `benchmarks/maml_speed.py`.",
        "",
    ]
    rows = []
    for entry in summary["settings"]:
        for impl, r in entry["results"].items():
            ratio = entry["ratios_jaxmeta_over"].get(impl)
            rows.append([entry["name"], r["label"], f"{r['median_seconds']:.3f}", f"{r['tasks_per_second']:.2f}",
                         "" if ratio is None else f"{ratio:.2f}x", f"{r['gflops_per_second']:.1f}",
                         f"{100 * r['fraction_of_ceiling']:.0f}%", r["steps_timed"]])
    lines += markdown_table(["setting", "implementation", "s / meta step (median)", "tasks/s",
                             "jaxmeta CPU path ÷ this", "GFLOP/s", "% of matmul ceiling", "steps timed"], rows)
    lines.append("")
    for entry in summary["settings"]:
        flops = entry["flops"]
        text = f"- **{entry['name']}**: {describe_setting(entry['setting'])}."
        if flops:
            text += (f" {flops['step'] / 1e9:.1f} GFLOP per meta step, {flops['per_task'] / 1e9:.2f} per task "
                     f"(XLA cost analysis of the step under vmap; the lax.map loop body alone counts "
                     f"{flops['loop_body'] / 1e9:.2f} GFLOP).")
        if entry["headline_against"]:
            ratio = entry["ratios_jaxmeta_over"][entry["headline_against"]]
            verdict = "target met" if entry["target_met"] else "goal met, target not" if entry["goal_met"] \
                else "goal not met"
            if summary["quick"]:
                verdict = "no verdict from a quick run"
            text += (f" jaxmeta's CPU path runs **{ratio:.2f}x** learn2learn's tasks/s (goal >= {GOAL}, target "
                     f"{TARGET}: {verdict}).")
            if entry.get("ratios_host_devices_over", {}).get(entry["headline_against"]):
                text += (f" Split over {HOST_DEVICES} host devices (`jaxmeta.distributed`, the same 2 cores): "
                         f"**{entry['ratios_host_devices_over'][entry['headline_against']]:.2f}x**.")
        elif entry["ratios_jaxmeta_over"]:
            listed = ", ".join(f"{v:.2f}x {k}" for k, v in entry["ratios_jaxmeta_over"].items())
            text += f" learn2learn did not run; jaxmeta's CPU path against the others: {listed}."
        lines.append(text)
    lines += [
        f"- Matrix-product ceiling: float32 [{ceiling['shape'][0]} x {ceiling['shape'][1]}] @ "
        f"[{ceiling['shape'][1]} x {ceiling['shape'][2]}] under jit, median {ceiling['median_seconds'] * 1e3:.1f} ms "
        f"= **{ceiling['gflops_per_second']:.0f} GFLOP/s** ({ceiling['count']} products, one process per round).",
    ]
    comparisons = summary["comparisons"]
    ran = ", ".join(f"torch.func (torch {info['torch']})" if impl == "torchfunc"
                    else f"{impl} {info['version']} (torch {info['torch']})"
                    for impl, info in comparisons["ran"].items())
    lines.append(f"- Comparisons that ran: {ran or 'none'}.")
    if comparisons["missing"]:
        missing = "; ".join(f"{impl} ({why})" for impl, why in comparisons["missing"].items())
        lines.append(f"- Not installed, so not compared: {missing}. `make compare-env` installs them.")
    if comparisons["failed"]:
        failed = "; ".join(f"{impl}: {why.splitlines()[0]}" for impl, why in comparisons["failed"].items())
        lines.append(f"- Failed: {failed}.")
    lines.append(f"- jaxmeta's accelerator path (conv=\"xla\", tasks under vmap, the library default for GPU and "
                 f"TPU): {summary['accelerator_path']}.")
    lines += [
        "",
        "Method: every measurement runs in its own process (jaxmeta through `maml_speed.py --worker jaxmeta`, the "
        "PyTorch libraries through `benchmarks/torch_maml.py`), so each framework has the machine's threads to "
        f"itself. For each setting, {protocol['rounds']} round(s) run every implementation in turn; each process "
        f"takes {protocol['warmup']} untimed meta step(s) (after compilation, for jaxmeta) and then "
        f"{protocol['reps']} timed ones, and the median is over all timed steps of all rounds. A meta step is "
        "second-order MAML (inner SGD keeping the graph, the mean query loss over the meta-batch, one "
        "Adam(1e-3) update) on the conv-4 with batch norm on batch statistics, with "
        f"{DATA_DESCRIPTIONS[protocol.get('data', 'random')]} drawn once (uint8 NHWC for jaxmeta, float32 NCHW "
        "for PyTorch). GFLOP/s divides the same XLA "
        "FLOP count by each implementation's median: the step with `task_chunk=1` is a while loop whose body "
        "XLA's cost analysis counts once, so the count comes from the same step compiled with the tasks under "
        "vmap (compiled only, never run).",
        "",
    ]
    return "\n".join(lines)


def print_table(summary: dict) -> None:
    print(markdown(summary))


def run_benchmark(args) -> dict:
    import common  # the driver only; the workers stay free of it

    impls = (["jaxmeta"] + (["jaxmeta-im2col"] if args.with_im2col and cpu_conv() != "im2col" else [])
             + (["jaxmeta-host-devices"] if args.with_host_devices else [])
             + (["jaxmeta-accelerator"] if args.with_accelerator_path else []) + list(args.impls))
    settings = {name: {**SETTINGS[name], **({} if args.meta_batch is None else {"meta_batch": args.meta_batch})}
                for name in args.settings}
    jobs = []
    for name, setting in settings.items():
        for round_index in range(args.rounds):
            jobs.append(ceiling_job(name, round_index, args.ceiling_reps))
            jobs += [job(impl, name, setting, round_index, args.reps, args.warmup, data=args.data,
                         flops=impl == "jaxmeta" and round_index == 0) for impl in impls]
    measured = common.run_jobs(jobs, describe=describe, desc="maml speed")

    ceiling_records = measured["ceilings"]
    ceiling_median, count = pooled_median(ceiling_records, "seconds")
    flop = ceiling_records[0]["flop"]
    ceiling = {"shape": list(CEILING_SHAPE), "flop": flop, "count": count,
               "seconds": [s for record in ceiling_records for s in record["seconds"]],
               "median_seconds": ceiling_median, "gflops_per_second": flop / ceiling_median / 1e9}
    runs = measured["runs"]
    versions = {r["impl"]: {"version": r["library_version"], "torch": r["torch"]}
                for r in runs if r["impl"] in TORCH_IMPLS}
    failed = {}
    for failure in measured["failures"]:
        failed.setdefault(failure["impl"], failure["error"])
    summary = {
        "benchmark": "maml_speed",
        "quick": args.quick,
        "environment": common.environment(),
        "protocol": {"rounds": args.rounds, "reps": args.reps, "warmup": args.warmup,
                     "ceiling_reps_per_round": args.ceiling_reps, "meta_optimizer": f"Adam({META_LR})",
                     "second_order": True, "implementations": impls, "data": args.data},
        "ceiling": ceiling,
        "comparisons": {"ran": versions, "missing": measured["missing"], "failed": failed},
        "accelerator_path": ("measured" if args.with_accelerator_path
                             else "not measured; pass --with-accelerator-path (slow on the CPU: ~1 task/s)"),
        "settings": [
            summarize_setting(name, setting,
                              {impl: [r for r in runs if (r["setting_name"], r["impl"]) == (name, impl)]
                               for impl in impls if any((r["setting_name"], r["impl"]) == (name, impl) for r in runs)},
                              next((r["flops"] for r in runs if r["setting_name"] == name and "flops" in r), None),
                              ceiling["gflops_per_second"])
            for name, setting in settings.items()
        ],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    common.write_json(args.out / "maml_speed.json", summary)
    common.write_atomically(args.out / "maml_speed.md", markdown(summary))
    return summary


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:2]))
    parser.add_argument("--settings", nargs="+", choices=tuple(SETTINGS), default=list(SETTINGS),
                        help="which settings to measure (default: both)")
    parser.add_argument("--impls", nargs="*", choices=TORCH_IMPLS, default=list(TORCH_IMPLS),
                        help="PyTorch implementations to compare with (default: all three; jaxmeta always runs)")
    parser.add_argument("--with-host-devices", action="store_true",
                        help=f"also time jaxmeta's CPU path with the meta-batch split over {HOST_DEVICES} host "
                             "devices (make_sharded_meta_step), as omniglot.py --devices 2 trains")
    parser.add_argument("--with-im2col", action="store_true",
                        help="also time jaxmeta's CPU path on XLA alone (conv='im2col'), when the CPU path runs oneDNN")
    parser.add_argument("--with-accelerator-path", action="store_true",
                        help="also time jaxmeta's accelerator path (conv='xla', vmap over tasks): ~1 task/s here")
    parser.add_argument("--rounds", type=int, default=None, help=f"rounds over the implementations (default "
                        f"{DEFAULTS['rounds']})")
    parser.add_argument("--reps", type=int, default=None, help=f"timed meta steps per process (default "
                        f"{DEFAULTS['reps']})")
    parser.add_argument("--warmup", type=int, default=None, help=f"untimed meta steps per process first (default "
                        f"{DEFAULTS['warmup']})")
    parser.add_argument("--ceiling-reps", type=int, default=None, help=f"timed matrix products per round (default "
                        f"{DEFAULTS['ceiling_reps']})")
    parser.add_argument("--data", choices=tuple(DATA_DESCRIPTIONS), default="omniglot",
                        help="the timed meta-batch: real Omniglot training tasks ($JAXMETA_DATA/omniglot; the "
                             "default, since PyTorch's CPU kernels run faster on them than on random images) "
                             "or random images")
    parser.add_argument("--meta-batch", type=int, default=None,
                        help="override the meta-batch of every setting (smoke tests; not the protocol)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default benchmarks/results; runs/maml-speed-quick with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: meta-batch 2, 1 round of 1 timed step, no warm-up")
    worker = parser.add_argument_group("worker mode (one measurement in this process; used by the driver)")
    worker.add_argument("--worker", choices=("jaxmeta", "ceiling"), default=None)
    worker.add_argument("--path", choices=("onednn", "im2col", "accelerator"), default="im2col",
                        help="jaxmeta worker: the CPU path (task_chunk=1) with oneDNN's or im2col convolutions, "
                             "or the library defaults for accelerators")
    worker.add_argument("--impl", choices=JAX_IMPLS, default="jaxmeta", help="jaxmeta worker: the name it records")
    worker.add_argument("--ways", type=int, default=None)
    worker.add_argument("--shots", type=int, default=None)
    worker.add_argument("--queries", type=int, default=None, help="query examples per class")
    worker.add_argument("--inner-steps", type=int, default=None)
    worker.add_argument("--inner-lr", type=float, default=None)
    worker.add_argument("--devices", type=int, default=1, help="jaxmeta worker: host devices (CPU path only)")
    worker.add_argument("--flops", action="store_true", help="jaxmeta worker: also count the step's FLOPs")
    worker.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    worker_only = {"--ways": args.ways, "--shots": args.shots, "--queries": args.queries,
                   "--inner-steps": args.inner_steps, "--inner-lr": args.inner_lr}
    if args.worker is None:
        given = [flag for flag, value in worker_only.items() if value is not None]
        if given:
            parser.error(f"{', '.join(given)} only go with --worker; the benchmark's settings are fixed "
                         f"(choose them with --settings, shrink them with --meta-batch or --quick)")
    elif args.worker == "jaxmeta":
        absent = [flag for flag, value in worker_only.items() if value is None] + \
            (["--meta-batch"] if args.meta_batch is None else [])
        if absent:
            parser.error(f"--worker jaxmeta needs {', '.join(absent)}")
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, QUICK[name] if args.quick else default)
    if args.quick and args.meta_batch is None:
        args.meta_batch = QUICK["meta_batch"]
    if args.out is None:
        args.out = Path("runs/maml-speed-quick") if args.quick else HERE / "results"

    positive = {"--rounds": args.rounds, "--reps": args.reps, "--ceiling-reps": args.ceiling_reps,
                "--meta-batch": args.meta_batch, **worker_only}
    bad = [flag for flag, value in positive.items()
           if value is not None and flag != "--inner-lr" and value < 1]
    if bad:
        parser.error(f"{', '.join(bad)} must be at least 1")
    if args.inner_lr is not None and not args.inner_lr > 0:
        parser.error("--inner-lr must be positive")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if len(set(args.settings)) != len(args.settings) or len(set(args.impls)) != len(args.impls):
        parser.error("--settings and --impls take each name at most once")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker == "jaxmeta":
        print(json.dumps(jaxmeta_worker(args)), flush=True)
        return None
    if args.worker == "ceiling":
        print(json.dumps(matmul_ceiling(CEILING_SHAPE, args.reps)), flush=True)
        return None
    summary = run_benchmark(args)
    print_table(summary)
    print(f"Wrote {args.out / 'maml_speed.json'} and {args.out / 'maml_speed.md'}", file=sys.stderr)
    if summary["comparisons"]["failed"]:
        sys.exit(1)
    return summary


if __name__ == "__main__":
    main()
