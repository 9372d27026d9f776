r"""What second-order gradients cost: exact MAML (with and without remat) against FOMAML, iMAML and Reptile.

    .venv/bin/python benchmarks/hessian_cost.py           # the whole grid; writes benchmarks/results/hessian_cost.*
    .venv/bin/python benchmarks/hessian_cost.py --quick   # sinusoid MLP, 1 and 2 inner steps; runs/hessian-cost-quick/

Exact MAML differentiates through the inner loop: with :math:`k` steps
:math:`\phi_{j+1} = \phi_j - \alpha \nabla L^s(\phi_j)`, the meta-gradient is

.. math::
    g_\text{MAML} = \prod_{j=k-1}^{0} \big(I - \alpha \nabla^2 L^s(\phi_j)\big)\, \nabla L^q(\phi_k),

one Hessian-vector product per step on the way back, and the reverse pass keeps
every step's activations unless they are rematerialised (``remat=True``).
FOMAML drops the product (:math:`g = \nabla L^q(\phi_k)`), Reptile uses
:math:`(\theta - \phi_k)/\alpha`, iMAML solves
:math:`(I + \nabla^2 L^s(\phi_k)/\lambda)\, v = \nabla L^q(\phi_k)` by conjugate
gradient and never differentiates the loop.

For each method, model and number of inner steps, one worker process (so that
its peak RSS is its own) compiles the meta step (Adam 1e-3) and reports:

* the compile time and the median time per meta step after a warm-up step;
* memory: XLA's buffer assignment for the step (arguments, outputs and the
  temporary buffers the step allocates: its peak working set, which the CPU
  backend allocates up front), and the process's peak RSS;
* the XLA FLOP estimate of the step (tasks under ``vmap``, inner loop unrolled;
  see :func:`step_flops`);
* the cosine similarity of the method's meta-gradient with exact MAML's on
  the same batch, and for MAML with remat the relative difference (it must
  be the same gradient), computed in float64.

Models: conv-4 of widths 32 / 64 / 128 on random Omniglot-shaped 5-way 1-shot
tasks (15 queries, meta-batch 8, inner lr 0.1, tasks one after another in a
``lax.map`` as on the CPU path), and the sinusoid MLP (40-40, K=10,
meta-batch 25, inner lr 0.01, tasks under ``vmap``). iMAML uses
:math:`\lambda = 1` and 5 CG steps.
"""

import argparse
import json
import resource
import statistics
import sys
from pathlib import Path
from collections.abc import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (RESULTS_DIR, TORCH_SCRIPT, Job, compile_and_time, cost_flops, count, environment,  # noqa: E402
                    hardware, loop_flops, markdown_table, memory_bytes, random_omniglot_tasks, read_json, run_jobs,
                    scan_unrolled, setting_arguments, worker_command, write_atomically, write_json)

METHODS = ("maml", "maml-remat", "fomaml", "imaml", "reptile")
MODELS = ("conv4-32", "conv4-64", "conv4-128", "sinusoid-mlp")
STEPS = (1, 2, 5, 10, 20, 50)
QUICK = {"models": ["sinusoid-mlp"], "steps": [1, 2], "reps": 2}
GOAL_MODEL = "conv4-64"
TIME_GOAL = 1.5    # exact MAML / FOMAML time per step at 20 inner steps, at most
MEMORY_GOAL = 1.5  # MAML-with-remat step memory at 50 inner steps / at 1 step, at most
TORCH_IMPLS = ("learn2learn", "higher", "torchfunc")  # benchmarks/torch_maml.py
TORCH_METHODS = {"maml": [], "fomaml": ["--first-order"]}  # what torch_maml.py implements
# The conv-4 problem, for jaxmeta and for torch_maml.py alike (the inner steps vary).
CONV_SETTING = {"meta_batch": 8, "ways": 5, "shots": 1, "queries": 15, "inner_lr": 0.1}


# ----------------------------------------------------------------------------------------------
# The problem: a model, its loss, meta-parameters and one fixed batch of tasks.
# ----------------------------------------------------------------------------------------------

def problem(model_name: str, seed: int = 0):
    """``(loss_fn, params, tasks, inner_lr, task_chunk)`` of ``model_name``."""
    import jax
    import jax.numpy as jnp

    import jaxmeta
    from jaxmeta.models import MLP, Conv4, functional

    if model_name == "sinusoid-mlp":
        model = MLP((40, 40, 1))
        params = model.init(jax.random.key(seed), jnp.zeros((1, 1)))["params"]
        tasks = jaxmeta.sinusoid_tasks(jax.random.key(seed + 1), 25, shots=10)
        return jaxmeta.regression_loss(functional(model)), params, tasks, 0.01, None
    width = int(model_name.split("-")[1])
    setting = CONV_SETTING
    model = Conv4(num_classes=setting["ways"], features=width, conv="im2col")
    params = model.init(jax.random.key(seed), jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]
    tasks = random_omniglot_tasks(seed, setting["meta_batch"], ways=setting["ways"], shots=setting["shots"],
                                  queries=setting["queries"])
    return jaxmeta.classification_loss(functional(model)), params, jax.device_put(tasks), setting["inner_lr"], 1


def learner(method: str, loss_fn, inner_lr: float, steps: int):
    """``method`` from jaxmeta.registry at ``inner_lr`` and ``steps`` (iMAML: lambda 1, 5 CG steps, its defaults)."""
    from jaxmeta import registry

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return registry.make(method, loss_fn, inner_lr=inner_lr, inner_steps=steps)


# ----------------------------------------------------------------------------------------------
# Workers: one process per measurement, one JSON line on stdout.
# ----------------------------------------------------------------------------------------------

def cost_worker(args) -> dict:
    """Compile, time and size the meta step of one (method, model, inner steps)."""
    import jax
    import optax

    import jaxmeta

    loss_fn, params, tasks, inner_lr, task_chunk = problem(args.model, args.seed)
    meta_learner = learner(args.method, loss_fn, inner_lr, args.inner_steps)
    optimizer = optax.adam(1e-3)
    state = jaxmeta.init_state(meta_learner, optimizer, params)
    key = jax.random.key(args.seed + 2)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    step = jaxmeta.make_meta_step(meta_learner, optimizer, task_chunk=task_chunk)
    compiled, compile_seconds, seconds, state, metrics = compile_and_time(step, state, tasks, key, reps=args.reps)
    memory = memory_bytes(compiled)
    record = {
        "method": args.method, "model": args.model, "inner_steps": args.inner_steps, "inner_lr": inner_lr,
        "task_chunk": task_chunk, "compile_seconds": compile_seconds, "seconds_per_step": seconds,
        "median_seconds": statistics.median(seconds), "memory_bytes": memory,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss_before_compile_bytes": rss_before, "last_loss": float(metrics["loss"]),
    }
    if args.flops:
        record.update(step_flops(args.method, loss_fn, params, tasks, inner_lr, args.inner_steps, optimizer, key))
    return record


def step_flops(method, loss_fn, params, tasks, inner_lr, steps, optimizer, key) -> dict:
    """XLA's FLOP estimate of the meta step with ``steps`` inner steps, every task under ``vmap``.

    XLA's cost analysis counts a loop body once, so the inner ``lax.scan`` is
    unrolled here (``jax.lax.scan`` is patched with ``unroll=True`` for these
    compiles, in this worker process only). Every inner step adds the same
    work (its forward step, and for MAML its backward step), so the count at
    :math:`k` steps is :math:`F_1 + (k - 1)(F_2 - F_1)` from fully unrolled
    compiles at 1 and 2 steps (XLA's simplifications make the increments
    differ by up to about 2% on the sinusoid MLP, 0.03% on conv-4; see the
    test). iMAML's conjugate gradient is a ``while_loop``
    with a data-dependent trip count, so one of its iterations is counted.
    """
    return loop_flops(lambda k: unrolled_flops(method, loss_fn, params, tasks, inner_lr, k, optimizer, key), steps)


def unrolled_flops(method, loss_fn, params, tasks, inner_lr, steps, optimizer, key) -> float:
    """XLA's FLOP estimate of the vmapped meta step compiled with every ``lax.scan`` unrolled."""
    import jaxmeta

    with scan_unrolled():
        meta_learner = learner(method, loss_fn, inner_lr, steps)
        state = jaxmeta.init_state(meta_learner, optimizer, params)
        return cost_flops(jaxmeta.make_meta_step(meta_learner, optimizer).lower(state, tasks, key).compile())


def agreement_worker(args) -> dict:
    """Cosine similarity of every method's meta-gradient with exact MAML's, on one batch."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    import jaxmeta

    # In float64, so that remat's difference from plain MAML is the algorithm's and not float32 rounding
    # accumulated over many inner steps (7e-5 relative at 50 steps of conv4-64 in float32).
    jax.config.update("jax_enable_x64", True)
    loss_fn, params, tasks, inner_lr, task_chunk = problem(args.model, args.seed)
    as_float64 = lambda tree: jax.tree.map(  # noqa: E731
        lambda x: jnp.asarray(x, jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)
    params, tasks = as_float64(params), as_float64(tasks)
    key = jax.random.key(args.seed + 2)

    def gradient(method):
        meta_learner = learner(method, loss_fn, inner_lr, args.inner_steps)
        grads = jax.jit(lambda p: jaxmeta.meta_gradient(meta_learner, p, tasks, key, task_chunk=task_chunk)[0])
        return ravel_pytree(grads(params))[0]

    exact = gradient("maml")
    record = {"model": args.model, "inner_steps": args.inner_steps, "dtype": "float64", "cosine": {},
              "remat_relative_difference": None}
    for method in args.methods:
        g = exact if method == "maml" else gradient(method)
        record["cosine"][method] = float(jnp.vdot(g, exact) / (jnp.linalg.norm(g) * jnp.linalg.norm(exact)))
        if method == "maml-remat":
            record["remat_relative_difference"] = float(jnp.linalg.norm(g - exact) / jnp.linalg.norm(exact))
    return record


# ----------------------------------------------------------------------------------------------
# The grid, the summary and the report.
# ----------------------------------------------------------------------------------------------

def _key(record: dict) -> tuple:
    if "impl" in record:  # a PyTorch measurement
        return record["impl"], record["method"], record["model"], record["inner_steps"]
    return record.get("method", "agreement"), record["model"], record["inner_steps"]


def _torch_command(impl: str, method: str, model: str, steps: int, reps: int, seed: int) -> list:
    """benchmarks/torch_maml.py on the conv-4 problem of :func:`problem`: the same setting in PyTorch."""
    setting = {**CONV_SETTING, "inner_steps": steps}
    return [sys.executable, str(TORCH_SCRIPT), "--impl", impl, *setting_arguments(setting),
            "--width", model.split("-")[1], "--reps", str(reps), "--warmup", "1", "--seed", str(seed),
            *TORCH_METHODS[method]]


def jobs(args) -> list[Job]:
    """Every (model, inner steps): each method's cost, the methods' gradient agreement with exact MAML, and
    on the conv-4 models the PyTorch libraries' MAML and FOMAML."""
    out = []
    for model in args.models:
        for steps in args.steps:
            labels = {"model": model, "inner_steps": steps}
            out += [Job("costs", (method, model, steps),
                        worker_command(__file__, "cost", method=method, model=model, inner_steps=steps,
                                       reps=args.reps, seed=args.seed, flops=True),
                        f"{method} on {model} with {count(steps, 'step')}", {**labels, "method": method})
                    for method in args.methods]
            out.append(Job("agreement", ("agreement", model, steps),
                           worker_command(__file__, "agreement", model=model, inner_steps=steps, seed=args.seed,
                                          methods=args.methods),
                           f"gradient agreement on {model} with {count(steps, 'step')}", labels))
            if model.startswith("conv4"):
                out += [Job("torch", (impl, method, model, steps),
                            _torch_command(impl, method, model, steps, args.reps, args.seed),
                            f"{impl} {method} on {model} with {count(steps, 'step')}",
                            {**labels, "impl": impl, "method": method}, library=impl)
                        for impl in args.torch for method in TORCH_METHODS if method in args.methods]
    return out


def run_grid(args, previous: dict | None = None, save: Callable[[dict], None] = lambda grid: None) -> dict:
    """Every job of :func:`jobs` in its own worker process (:func:`common.run_jobs`).

    ``previous``: a grid from an earlier run of the same protocol; its measurements are kept, also
    those of models, steps or methods this run leaves out, and not repeated (``--resume``).
    ``save(grid)`` is called after every worker with everything known so far, so a run that is
    killed loses at most the configuration it was measuring.
    """
    kept = {(kind, *_key(record)): record for kind in ("costs", "agreement", "torch")
            for record in (previous or {}).get(kind, [])}
    return run_jobs(jobs(args), previous=kept, save=save, desc="hessian cost", progress=args.progress)


def _find(costs, model, method, steps):
    return next((c for c in costs if (c["model"], c["method"], c["inner_steps"]) == (model, method, steps)), None)


def goals(costs: list) -> dict:
    """The issue's two requirements on the conv-4 of width 64, where measured."""
    out = {}
    maml20, fomaml20 = _find(costs, GOAL_MODEL, "maml", 20), _find(costs, GOAL_MODEL, "fomaml", 20)
    if maml20 and fomaml20:
        ratio = maml20["median_seconds"] / fomaml20["median_seconds"]
        out["time_maml_over_fomaml_at_20_steps"] = {"ratio": ratio, "goal": TIME_GOAL, "met": ratio <= TIME_GOAL}
        if maml20.get("flops") and fomaml20.get("flops"):  # the same ratio of the arithmetic itself
            out["time_maml_over_fomaml_at_20_steps"]["flop_ratio"] = maml20["flops"] / fomaml20["flops"]
    one, fifty = _find(costs, GOAL_MODEL, "maml-remat", 1), _find(costs, GOAL_MODEL, "maml-remat", 50)
    if one and fifty and one["memory_bytes"] and fifty["memory_bytes"]:
        ratio = fifty["memory_bytes"]["step"] / one["memory_bytes"]["step"]
        out["remat_memory_50_over_1_step"] = {"ratio": ratio, "goal": MEMORY_GOAL, "met": ratio <= MEMORY_GOAL}
    return out


def markdown(summary: dict) -> str:
    mib = lambda b: f"{b / 2**20:,.1f}"  # noqa: E731
    lines = [
        "# What second-order gradients cost",
        "",
        f"Median seconds per meta step (Adam 1e-3) after compilation, over {summary['protocol']['reps']} "
        "timed steps; step memory is XLA's buffer assignment for the step (arguments + outputs + temporaries); "
        "peak RSS is the worker process's. FLOPs: XLA's estimate with every task under vmap and the inner loop "
        "unrolled (iMAML: one CG iteration counted). Cosine: the method's meta-gradient against exact MAML's on "
        "the same batch, in float64 (so that MAML with remat is compared with MAML without rounding noise). "
        f"Host: {hardware(summary['environment'])}, jax {summary['environment']['jax']} on "
        f"{summary['environment']['backend']}.",
    ]
    cosines = {(a["model"], a["inner_steps"]): a["cosine"] for a in summary["agreement"]}
    rows = []
    for c in summary["costs"]:
        cosine = cosines.get((c["model"], c["inner_steps"]), {}).get(c["method"])
        rows.append([c["model"], c["inner_steps"], c["method"], f"{c['median_seconds']:.4f}",
                     f"{c['compile_seconds']:.1f}", mib(c["memory_bytes"].get("step", 0)), mib(c["peak_rss_bytes"]),
                     f"{c.get('flops', float('nan')) / 1e9:.3f}", "-" if cosine is None else f"{cosine:.4f}"])
    lines += ["", *markdown_table(["model", "inner steps", "method", "s / step", "compile s", "step memory MiB",
                                   "peak RSS MiB", "GFLOP", "cosine with MAML"], rows)]
    lines += ["", "## Requirements (conv-4, width 64)", ""]
    names = {"time_maml_over_fomaml_at_20_steps": "exact MAML / FOMAML time per step at 20 inner steps",
             "remat_memory_50_over_1_step": "MAML with remat: step memory at 50 inner steps / at 1"}
    for name, goal in summary["goals"].items():
        lines.append(f"- {names[name]}: {goal['ratio']:.2f} (goal at most {goal['goal']}): "
                     f"{'met' if goal['met'] else 'NOT met'}")
        if "flop_ratio" in goal:
            lines.append(f"  - the same ratio in XLA FLOPs: {goal['flop_ratio']:.2f}. Exact MAML does this many "
                         "times FOMAML's arithmetic (each inner step adds a Hessian-vector product on the way "
                         "back), so a time ratio below it needs MAML to run faster per FLOP than FOMAML.")
    if not summary["goals"]:
        lines.append("- not measured in this run (it needs conv4-64 at 1, 20 and 50 inner steps)")
    remat = [a for a in summary["agreement"] if a["remat_relative_difference"] is not None]
    if remat:
        worst = max(a["remat_relative_difference"] for a in remat)
        lines.append(f"- MAML with remat is the same gradient: largest relative difference {worst:.1e}")
    for failure in summary["failures"]:
        lines.append(f"- FAILED: {failure['what']}: {failure['error'].splitlines()[-1]}")
    lines += torch_section(summary)
    spans = {}  # model -> when its records were measured
    for kind in ("costs", "agreement", "torch"):
        for r in summary.get(kind, []):
            if "measured_at" in r:
                spans.setdefault(r["model"], []).append(r["measured_at"])
    times = sorted(t for model_times in spans.values() for t in model_times)
    if times:
        lines += ["", f"Measured from {times[0]} to {times[-1]} (each configuration's time is in the JSON)."]
    if len({t[:10] for t in times}) > 1:  # a resumed grid: say which parts come from which run
        lines += ["Per model: " + "; ".join(f"{m} {min(v)} to {max(v)}" for m, v in spans.items())
                  + ". The host's speed changes between days, so compare times within a model's column."]
    if summary["quick"]:
        lines += ["", "Quick smoke run (--quick): not a measurement to quote."]
    return "\n".join(lines) + "\n"


def torch_section(summary: dict) -> list:
    """The PyTorch libraries beside jaxmeta on the same setting, with jaxmeta's time and RSS as ratios."""
    lines = []
    if summary.get("torch"):
        lines += ["", "## PyTorch side by side (same conv-4 setting, benchmarks/torch_maml.py)", "",
                  "Ratios: jaxmeta over the library, measured in this run (below 1: jaxmeta is faster or smaller).",
                  ""]
        rows = []
        for t in summary["torch"]:
            ours = _find(summary["costs"], t["model"], t["method"], t["inner_steps"])
            rows.append([t["model"], t["inner_steps"], t["method"], f"{t['impl']} {t['library_version']}",
                         f"{t['median_seconds']:.4f}", f"{t['peak_rss_bytes'] / 2**20:,.1f}",
                         f"{ours['median_seconds'] / t['median_seconds']:.2f}" if ours else "-",
                         f"{ours['peak_rss_bytes'] / t['peak_rss_bytes']:.2f}" if ours else "-"])
        lines += markdown_table(["model", "inner steps", "method", "library", "s / step", "peak RSS MiB",
                                 "jaxmeta time ratio", "jaxmeta RSS ratio"], rows)
        lines += ["", "Peak RSS growth from the fewest to the most inner steps measured (jaxmeta's RSS also holds "
                  "XLA's compiler, so its level is not the step's memory; the growth is):", ""]
        for model in sorted({t["model"] for t in summary["torch"]}, key=MODELS.index):
            for method in TORCH_METHODS:
                rows = {"jaxmeta": [c for c in summary["costs"] if (c["model"], c["method"]) == (model, method)]}
                if method == "maml":
                    rows["jaxmeta with remat"] = [c for c in summary["costs"]
                                                  if (c["model"], c["method"]) == (model, "maml-remat")]
                rows.update({impl: [t for t in summary["torch"] if (t["model"], t["method"], t["impl"]) == (
                    model, method, impl)] for impl in TORCH_IMPLS})
                growth = []
                for name, measured in rows.items():
                    if len(measured) > 1:
                        low, high = (min(measured, key=lambda r: r["inner_steps"]),
                                     max(measured, key=lambda r: r["inner_steps"]))
                        growth.append(f"{name} {(high['peak_rss_bytes'] - low['peak_rss_bytes']) / 2**20:+,.0f} MiB "
                                      f"({low['inner_steps']} to {high['inner_steps']} steps)")
                if growth:
                    lines.append(f"- {model} {method}: " + ", ".join(growth))
    for impl, error in summary.get("missing", {}).items():
        lines.append(f"- {impl} is not installed ({error}); `make compare-env` installs the PyTorch libraries.")
    return lines


def plot(summary: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({c["model"] for c in summary["costs"]}, key=MODELS.index)
    fig, axes = plt.subplots(3, len(models), figsize=(4.2 * len(models), 10), squeeze=False)
    for column, model in enumerate(models):
        for method in METHODS:
            rows = sorted((c for c in summary["costs"] if c["model"] == model and c["method"] == method),
                          key=lambda c: c["inner_steps"])
            if not rows:
                continue
            steps = [c["inner_steps"] for c in rows]
            axes[0, column].plot(steps, [c["median_seconds"] for c in rows], "o-", label=method)
            axes[1, column].plot(steps, [c["memory_bytes"].get("step", 0) / 2**20 for c in rows], "o-", label=method)
            agree = sorted((a for a in summary["agreement"] if a["model"] == model and method in a["cosine"]),
                           key=lambda a: a["inner_steps"])
            axes[2, column].plot([a["inner_steps"] for a in agree], [a["cosine"][method] for a in agree], "o-",
                                 label=method)
        for impl in TORCH_IMPLS:  # the PyTorch libraries, dashed, in the time panel
            for method in TORCH_METHODS:
                rows = sorted((t for t in summary.get("torch", []) if (t["model"], t["impl"], t["method"]) == (
                    model, impl, method)), key=lambda t: t["inner_steps"])
                if rows:
                    axes[0, column].plot([t["inner_steps"] for t in rows], [t["median_seconds"] for t in rows],
                                         "x--", alpha=0.7, label=f"{impl} {method}")
        axes[0, column].set_title(model)
        for row, label in enumerate(("seconds per meta step", "step memory (MiB)", "cosine with exact MAML")):
            axes[row, column].set_xscale("log")
            axes[row, column].set_xlabel("inner steps")
            axes[row, column].set_ylabel(label)
        axes[0, column].set_yscale("log")
    axes[0, 0].legend(fontsize=7, loc="upper left", ncol=2 if summary.get("torch") else 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--steps", nargs="+", type=int, default=list(STEPS), help="inner-step counts")
    parser.add_argument("--reps", type=int, default=3, help="timed meta steps per configuration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: sinusoid MLP, 1 and 2 inner steps, 2 reps; into runs/hessian-cost-quick/")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results/)")
    parser.add_argument("--torch", nargs="*", default=list(TORCH_IMPLS), choices=TORCH_IMPLS,
                        help="PyTorch libraries to run side by side on the conv-4 models (MAML and FOMAML, through "
                             "benchmarks/torch_maml.py; `make compare-env` installs them); those not installed are "
                             "reported and skipped. `--torch` alone runs none.")
    parser.add_argument("--resume", action="store_true",
                        help="keep the configurations already in the output's hessian_cost.json (same reps and "
                             "seed) and measure only the others; the JSON is rewritten after every worker")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    # worker mode
    parser.add_argument("--worker", choices=("cost", "agreement"), help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--inner-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--flops", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    if args.reps < 1:
        parser.error(f"--reps must be at least 1, got {args.reps}")
    if any(s < 1 for s in args.steps):
        parser.error(f"--steps must all be at least 1, got {args.steps}")
    if "maml" not in args.methods and args.worker is None:
        args.methods = ["maml", *args.methods]  # the reference of the gradient agreement
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker == "cost":
        print(json.dumps(cost_worker(args)), flush=True)
        return {}
    if args.worker == "agreement":
        print(json.dumps(agreement_worker(args)), flush=True)
        return {}
    import jax

    out = args.out or (RESULTS_DIR.parent.parent / "runs" / "hessian-cost-quick" if args.quick else RESULTS_DIR)
    previous = read_json(out / "hessian_cost.json") if args.resume else None
    measured_with = previous and (previous["protocol"]["reps"], previous["protocol"].get("seed"))
    if previous is not None and measured_with != (args.reps, args.seed):
        raise SystemExit(f"{out / 'hessian_cost.json'} was measured with --reps {previous['protocol']['reps']} "
                         f"--seed {previous['protocol'].get('seed')}; resume with those, or leave out --resume "
                         "to measure everything again.")
    protocol = {"reps": args.reps, "seed": args.seed, "warmup": 1, "methods": args.methods, "models": args.models,
                "steps": args.steps, "torch": args.torch, "jax": jax.__version__}

    def summarise(grid):
        return {"quick": args.quick, "environment": environment(), "protocol": protocol, **grid,
                "goals": goals(grid["costs"])}

    def save(grid) -> dict:
        summary = summarise(grid)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "hessian_cost.json", summary)
        write_atomically(out / "hessian_cost.md", markdown(summary))
        return summary

    summary = save(run_grid(args, previous, save))
    plot(summary, out / "hessian_cost.png")
    print(markdown(summary))
    return summary


if __name__ == "__main__":
    main()
