"""What an inner optimizer costs: the second-order MAML meta step on the Omniglot conv-4 with each inner rule.

    .venv/bin/python benchmarks/inner_optimizer_cost.py          # ~6 minutes; writes benchmarks/results/
    .venv/bin/python benchmarks/inner_optimizer_cost.py --quick  # smoke test, writes runs/inner-optimizer-cost-quick/

Setting: 5-way 1-shot, 15 queries per class, real Omniglot training tasks
(one meta-batch, drawn once), meta-batch 16, 5 inner steps, second order,
Adam(1e-3) outside; the CPU path of ``benchmarks/omniglot.py`` (oneDNN's
convolutions when built, else im2col; tasks one after the other). The inner
rules: SGD (``inner_lr``), SGD with momentum 0.9, Adam (beta1 = 0.9 and 0,
Reptile's), LSLR and Meta-Curvature (learned). The optimizer's work is
element-wise (Adam: two moments, a square root and a division per parameter
and step; Meta-Curvature: a 64 x 64 matrix product per mode and layer), small
beside the convolutions; what it adds to the backward pass is what this
measures.

Protocol: every rule's step is compiled first; then ``--rounds`` rounds time
each rule in turn (``--reps`` steps each, after one untimed step), so that
the machine's drift hits all rules alike. Reported: the median seconds per
meta step over all rounds, and its ratio to SGD's (the goal: Adam at most
1.3x SGD).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import jaxmeta  # noqa: E402
from jaxmeta.models import Conv4, functional, onednn_conv  # noqa: E402

RULES = {
    "sgd": lambda steps: dict(inner_lr=0.4),
    "momentum": lambda steps: dict(inner_optimizer=optax.sgd(0.4, momentum=0.9)),
    "adam": lambda steps: dict(inner_optimizer=optax.adam(1e-3, eps_root=1e-8)),  # eps_root: jaxmeta.adapt
    "adam-b1=0": lambda steps: dict(inner_optimizer=optax.adam(1e-3, b1=0.0, eps_root=1e-8)),
    "lslr": lambda steps: dict(inner_optimizer=jaxmeta.inner.lslr(steps, lr_init=0.4)),
    "meta-curvature": lambda steps: dict(inner_optimizer=jaxmeta.inner.meta_curvature(lr=0.4)),
}
GOAL = ("adam", 1.3)  # Adam's meta step at most 1.3x SGD's


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", nargs="+", choices=sorted(RULES), default=list(RULES))
    parser.add_argument("--meta-batch", type=int, default=16)
    parser.add_argument("--inner-steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--width", type=int, default=64, help="filters per conv layer")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--quick", action="store_true", help="width 8, meta-batch 2, 1 round: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.meta_batch, args.rounds, args.reps = 8, 2, 1, 1
    if args.out is None:
        args.out = Path("runs/inner-optimizer-cost-quick") if args.quick else common.RESULTS_DIR
    for name in ("meta_batch", "inner_steps", "rounds", "reps", "width"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if "sgd" not in args.rules:
        parser.error("--rules must include sgd: every ratio is to its step time.")
    return args


def build_steps(args, tasks):
    """Each rule's compiled meta step and initial state, on the CPU path of benchmarks/omniglot.py."""
    conv = "onednn" if onednn_conv.available() and not jax.config.jax_enable_x64 else "im2col"
    model = Conv4(num_classes=5, features=args.width, conv=conv, init_scheme="pytorch")
    loss_fn = jaxmeta.classification_loss(functional(model))
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]
    optimizer = optax.adam(1e-3)
    steps = {}
    for name in args.rules:
        learner = jaxmeta.maml(loss_fn, inner_steps=args.inner_steps, **RULES[name](args.inner_steps))
        state = jaxmeta.init_state(learner, optimizer, params)
        step = jaxmeta.make_meta_step(learner, optimizer, task_chunk=1)
        start = time.perf_counter()
        compiled = step.lower(state, tasks, jax.random.key(1)).compile()
        steps[name] = (compiled, state, time.perf_counter() - start)
        print(f"compiled {name} in {steps[name][2]:.1f} s", flush=True)
    return conv, steps


def main(argv=None) -> dict:
    args = parse_args(argv)
    tasks = jax.device_put(common.omniglot_meta_batch(0, args.meta_batch, ways=5, shots=1, queries=15))
    conv, steps = build_steps(args, tasks)
    seconds = {name: [] for name in steps}
    for round_index in range(args.rounds):
        for name, (compiled, state, _) in steps.items():
            timed, _, _ = common.time_compiled(compiled, state, tasks, jax.random.key(1), reps=args.reps)
            seconds[name] += timed
        print(f"round {round_index + 1}/{args.rounds}: "
              + ", ".join(f"{n} {statistics.median(s):.3f} s" for n, s in seconds.items()), flush=True)
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    summary = {
        "setting": {"ways": 5, "shots": 1, "queries": 15, "meta_batch": args.meta_batch,
                    "inner_steps": args.inner_steps, "width": args.width, "conv": conv, "task_chunk": 1,
                    "rounds": args.rounds, "reps": args.reps, "data": "one meta-batch of real Omniglot tasks"},
        "environment": common.environment(),
        "compile_seconds": {name: steps[name][2] for name in steps},
        "seconds_per_step": seconds,
        "median_seconds": medians,
        "ratio_to_sgd": {name: medians[name] / medians["sgd"] for name in medians},
        "command": "python benchmarks/inner_optimizer_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    name, limit = GOAL
    if name in medians:
        summary["goal"] = {"rule": name, "at_most": limit, "ratio": summary["ratio_to_sgd"][name],
                           "met": summary["ratio_to_sgd"][name] <= limit}
    args.out.mkdir(parents=True, exist_ok=True)
    common.write_json(args.out / "inner_optimizer_cost.json", summary)
    common.write_atomically(args.out / "inner_optimizer_cost.md", markdown(summary))
    print(markdown(summary))
    return summary


def markdown(summary: dict) -> str:
    s = summary["setting"]
    lines = [
        "# What an inner optimizer costs: second-order MAML on the Omniglot conv-4",
        "",
        f"Meta step of 5-way 1-shot MAML ({s['queries']} queries per class, meta-batch {s['meta_batch']}, "
        f"{s['inner_steps']} inner steps, second order, conv-4 of width {s['width']}, conv={s['conv']}, tasks one "
        f"at a time) with each inner rule; median over {s['rounds']} interleaved rounds of {s['reps']} steps, on "
        f"{common.hardware(summary['environment'])}. Regenerate with `{summary['command'].strip()}`.",
        "",
        "| inner rule | median s / meta step | ratio to SGD | compile (s) |",
        "|---|---|---|---|",
    ]
    for name, median in summary["median_seconds"].items():
        lines.append(f"| {name} | {median:.3f} | {summary['ratio_to_sgd'][name]:.2f}x | "
                     f"{summary['compile_seconds'][name]:.0f} |")
    if "goal" in summary:
        goal = summary["goal"]
        lines += ["", f"Goal: {goal['rule']} at most {goal['at_most']}x SGD: **{goal['ratio']:.2f}x, "
                      f"{'met' if goal['met'] else 'not met'}**."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
