"""Sinusoid regression with MAML's protocol: MAML, FOMAML, Meta-SGD, Reptile, ANIL, CAVIA, MAML with inner optimizers.

Protocol (Finn et al. 2017, section 5.1, and the official code): amplitude
U[0.1, 5], phase U[0, pi], inputs U[-5, 5]; K support and K query points per
training task; an MLP 1-40-40-1 with ReLU; inner learning rate 0.01 and one
inner step in meta-training; meta-batch 25; Adam 1e-3; 70,000 meta-iterations.
One model is trained per learner and per K (as in Meta-SGD's Table 1).

``maml-adam`` and ``maml-momentum`` are second-order MAML whose inner loop is
an optax optimizer, differentiated through: Adam (lr 0.01, the default betas, eps_root 1e-8)
and SGD with heavy-ball momentum 0.9 (lr 0.01), both with 5 inner steps in
meta-training (one step of momentum SGD is plain SGD).

``maml-meta-curvature`` (Park and Oliva 2019) is second-order MAML whose 5
inner steps are preconditioned by learned per-layer matrices
(``jaxmeta.inner.meta_curvature``, started at the identity and lr 0.01),
meta-learned with the initialisation. Its meta-gradient is clipped at global
norm 10 before Adam, the registry's setting for it: without a clip one
diverging inner loop can stall Adam for good (notebook 06). ``--clip-norm``
sets the clip of every learner (0: none).

``cavia`` (Zintgraf et al. 2019, its code's sinusoid flags) adapts only 5 context
inputs, appended to x and reset to zero for every task, with one step at lr
1.0; the weights of its 1+5-40-40-1 MLP are meta-learned. With
``--variants-table`` its rows also go to ``maml_variants.{json,md}`` there,
beside MAML's row of the same K (``benchmarks/maml_variants.py``).

Evaluation: 600 held-out tasks, fixed by ``--eval-seed`` and shared by every
learner; each adapts on its K support points and is scored on 100 query
points of the same wave after 0, 1 and 10 steps (mean ± 95% CI).

    python benchmarks/sinusoid.py            # the full protocol, writes benchmarks/results/
    python benchmarks/sinusoid.py --algorithms maml-adam maml-momentum   # these rows only, merged into the table
    python benchmarks/sinusoid.py --algorithms maml-meta-curvature
    python benchmarks/sinusoid.py --algorithms maml-meta-curvature --clip-norm 0   # the same without the clip
    python benchmarks/sinusoid.py --quick    # < 1 minute, writes runs/sinusoid-quick/

Speed: the tasks/s of second-order MAML at meta-batch 25, K = 10, one inner
step is printed and recorded (median over chunks of 1,000 meta steps, after
compilation).
"""

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import jaxmeta  # noqa: E402
from jaxmeta import registry  # noqa: E402
from jaxmeta.data.sinusoid import Sinusoid, sinusoid_examples, sinusoid_tasks  # noqa: E402
from jaxmeta.models import MLP, functional  # noqa: E402
from jaxmeta.models.context import ContextMLP, functional_with_context  # noqa: E402

ALGORITHMS = ("maml", "fomaml", "metasgd", "reptile", "anil", "maml-adam", "maml-momentum", "cavia",
              "maml-meta-curvature")
OPTIMIZER_STEPS = registry.defaults("maml-adam", "sinusoid").learner["inner_steps"]  # in meta-training
EVAL_STEPS = (0, 1, 10)

# Published query MSE on this protocol. Meta-SGD, Table 1: one adaptation step, one
# model per K. MAML (arXiv v3): a model trained at K = 10, evaluated 5-shot.
PUBLISHED = {
    ("maml", 5, 1): ("1.13 ± 0.18", "Li et al. 2017 (Meta-SGD), Table 1"),
    ("maml", 10, 1): ("0.77 ± 0.11", "Li et al. 2017 (Meta-SGD), Table 1"),
    ("maml", 20, 1): ("0.48 ± 0.08", "Li et al. 2017 (Meta-SGD), Table 1"),
    ("metasgd", 5, 1): ("0.90 ± 0.16", "Li et al. 2017 (Meta-SGD), Table 1"),
    ("metasgd", 10, 1): ("0.53 ± 0.09", "Li et al. 2017 (Meta-SGD), Table 1"),
    ("metasgd", 20, 1): ("0.31 ± 0.05", "Li et al. 2017 (Meta-SGD), Table 1"),
    ("maml", 5, 10): ("0.35", "Finn et al. 2017, 5-shot MSE after 10 steps (trained at K=10)"),
}


def build_learner(name: str, loss_fn, inner_lr: float):
    """The learner ``name`` at the registry's sinusoid setting, every inner rate scaled by ``inner_lr / 0.01``
    (Reptile: 5 inner steps at 2x the rate; maml-adam and maml-momentum: 5 steps)."""
    hyper = registry.defaults(name, "sinusoid").learner
    scale = inner_lr / registry.defaults("maml", "sinusoid").learner["inner_lr"]
    rates = {key: value * scale for key, value in hyper.items() if key in ("inner_lr", "lr_init")}
    head = {"head": lambda path: "Dense_2" in path} if name == "anil" else {}
    return registry.make(name, loss_fn, setting="sinusoid", **rates, **head)


def clip_norm_of(name: str, args: argparse.Namespace) -> float | None:
    """The global norm learner ``name``'s meta-gradient is clipped to: ``--clip-norm`` (0: none), else the
    registry's sinusoid setting."""
    if args.clip_norm is None:
        return registry.defaults(name, "sinusoid").clip_norm
    return args.clip_norm or None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--shots", nargs="+", type=int, default=[5, 10, 20], help="K: support (= query) points")
    parser.add_argument("--iterations", type=int, default=70_000, help="meta-iterations per run")
    parser.add_argument("--meta-batch", type=int, default=25)
    parser.add_argument("--inner-lr", type=float, default=0.01)
    parser.add_argument("--outer-lr", type=float, default=1e-3)
    parser.add_argument("--clip-norm", type=float, default=None,
                        help="clip the meta-gradient to this global norm before Adam, for every learner (0: no "
                             "clip); default: the registry's setting of each (10 for maml-meta-curvature, else none)")
    parser.add_argument("--eval-tasks", type=int, default=600)
    parser.add_argument("--eval-query", type=int, default=100, help="query points per evaluation task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-seed", type=int, default=12345)
    parser.add_argument("--steps-per-call", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--quick", action="store_true", help="K=10, 1,500 iterations, 200 eval tasks: < 1 minute")
    parser.add_argument("--variants-table", type=Path, default=None,
                        help="also record cavia's rows in maml_variants.{json,md} in this folder, beside MAML's")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.shots, args.iterations, args.eval_tasks, args.steps_per_call = [10], 1500, 200, 500
    if args.out is None:
        args.out = Path("runs/sinusoid-quick") if args.quick else common.RESULTS_DIR
    for name in ("iterations", "meta_batch", "eval_tasks", "eval_query", "steps_per_call"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if min(args.shots) < 1:
        parser.error(f"--shots must be positive, got {args.shots}")
    if not args.inner_lr > 0 or not args.outer_lr > 0:
        parser.error("--inner-lr and --outer-lr must be positive")
    if args.clip_norm is not None and args.clip_norm < 0:
        parser.error(f"--clip-norm must be positive, or 0 for no clip; got {args.clip_norm}")
    return args


def build_model(name: str, seed: int):
    """The network of learner ``name``: ``(apply(params, x), initial parameters)``; MAML's 1-40-40-1 MLP, or for
    CAVIA the same MLP with the registry's context entries appended to its input."""
    if name == "cavia":
        context = registry.defaults("cavia", "sinusoid").learner["context_size"]
        model = ContextMLP((40, 40, 1), context_size=context)
        params = model.init(jax.random.key(seed), jnp.zeros((1, 1)), jnp.zeros(context))["params"]
        return functional_with_context(model), params
    model = MLP((40, 40, 1))
    return functional(model), model.init(jax.random.key(seed), jnp.zeros((1, 1)))["params"]


def run_one(name, shots, args, eval_tasks):
    """Train one learner at one K and evaluate it: its record, learner, meta-parameters, training losses and model
    apply. A training run whose meta-loss turns non-finite is recorded where it stopped (``training_stopped``, no
    losses), scored with its last finite state."""
    apply, init_params = build_model(name, args.seed)
    loss_fn = jaxmeta.regression_loss(apply)
    learner = build_learner(name, loss_fn, args.inner_lr)
    clip_norm = clip_norm_of(name, args)
    optimizer = optax.adam(args.outer_lr)
    if clip_norm is not None:
        optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
    state = jaxmeta.init_state(learner, optimizer, init_params)
    step = jaxmeta.make_meta_step(learner, optimizer)
    timer = common.ChunkTimer()
    stopped, history = None, None
    try:
        result = jaxmeta.fit(
            step, state, lambda key: sinusoid_tasks(key, args.meta_batch, shots=shots),
            key=jax.random.key(args.seed + 1), num_steps=args.iterations, steps_per_call=args.steps_per_call,
            progress=not args.no_progress, description=f"{name:8s} K={shots:<2d}", callback=timer,
        )
        meta_params, history = result.state.meta_params, result.history["loss"]
    except jaxmeta.NonFiniteLossError as error:  # a row of its own: where training stopped, the last finite state
        meta_params, stopped = error.state.meta_params, {"meta_step": error.step, "loss": error.value}
    train_seconds = time.perf_counter() - timer.start
    evaluation = jaxmeta.evaluate(
        learner, meta_params, eval_tasks, key=jax.random.key(args.eval_seed + 1),
        steps=max(EVAL_STEPS), chunk_size=200,
    )
    record = {
        "algorithm": name,
        "shots": shots,
        "clip_norm": clip_norm,
        "mse": {str(s): mse_summary(np.asarray(evaluation.losses[:, s])) for s in EVAL_STEPS},
        "train_seconds": train_seconds,
        "first_chunk_seconds": finite_or_none(timer.first_chunk_seconds()),
        # the rate needs two chunks of meta-steps (the first compiles): none for a run stopped in its first
        "meta_steps_per_second": finite_or_none(timer.steps_per_second()),
        "tasks_per_second": finite_or_none(timer.steps_per_second() * args.meta_batch),
        "final_train_loss_last_1000": None if history is None else float(np.mean(history[-1000:])),
        "training_stopped": stopped,
    }
    return record, learner, meta_params, history, apply


def finite_or_none(value: float) -> float | None:
    """``value``, or ``None`` for NaN (JSON has no NaN)."""
    return value if np.isfinite(value) else None


def format_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def mse_summary(losses: np.ndarray) -> dict:
    """Mean ± 95% CI over tasks; a learner that diverges on some tasks is reported as such."""
    bad = int(np.sum(~np.isfinite(losses)))
    if bad:
        return {"mean": None, "ci95": None, "nonfinite_tasks": bad, "tasks": len(losses)}
    mean, ci = jaxmeta.confidence_interval(losses)
    return {"mean": float(mean), "ci95": float(ci), "nonfinite_tasks": 0, "tasks": len(losses)}


def format_mse(entry: dict) -> str:
    """Mean ± 95% CI to three decimals, or to three significant digits below 0.01.

    >>> format_mse({"mean": 0.5349, "ci95": 0.0521}), format_mse({"mean": 0.000658, "ci95": 0.000066})
    ('0.535 ± 0.052', '0.000658 ± 0.000066')
    """
    if entry["mean"] is None:
        return f"diverged on {entry['nonfinite_tasks']}/{entry['tasks']} tasks"
    digits = 2 - math.floor(math.log10(entry["mean"])) if 0 < entry["mean"] < 0.01 else 3
    return common.mean_ci(entry["mean"], entry["ci95"], digits)


def markdown(records, args, environment, speed=None) -> str:
    """The results table, its notes, and the speed of second-order MAML (``speed``: its K=10 record)."""
    lines = [
        "# Sinusoid regression (MAML protocol)",
        "",
        f"Query MSE on {args.eval_tasks} held-out tasks ({args.eval_query} query points each) after 0, 1 "
        "and 10 adaptation steps on K support points, mean ± 95% CI. One model per learner and K, "
        f"{args.iterations:,} meta-iterations, meta-batch {args.meta_batch}, inner lr {args.inner_lr} "
        f"(Reptile: {2 * args.inner_lr}, 5 inner steps; maml-adam / maml-momentum / maml-meta-curvature: inner Adam / "
        f"momentum-0.9 SGD / learned preconditioner at {args.inner_lr}, {OPTIMIZER_STEPS} inner steps), Adam "
        f"{args.outer_lr} (after a clip of the meta-gradient's global norm where the learner says so). "
        f"JAX {environment['jax']} on "
        f"{environment['backend']}; each row names the machine it ran on (rows of later runs merge into the table, "
        "so times compare only between rows of the same machine).",
        "",
        "| learner | K | MSE, 0 steps | MSE, 1 step | MSE, 10 steps | published (1 step unless noted) | "
        "train time (s) | meta-steps/s | hardware |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        published = []
        for steps in (1, 10):
            if (r["algorithm"], r["shots"], steps) in PUBLISHED:
                value, source = PUBLISHED[(r["algorithm"], r["shots"], steps)]
                verdict = _compare(r["mse"][str(steps)]["mean"], value)
                published.append(f"{value} ({'after 10 steps, ' if steps == 10 else ''}{source}; ours {verdict})")
        mse = [format_mse(r["mse"][str(s)]) for s in EVAL_STEPS]
        lines.append(
            f"| {learner_label(r)} | {r['shots']} | {' | '.join(mse)} | {'; '.join(published) or '-'} | "
            f"{r['train_seconds']:.0f} | {format_rate(r['meta_steps_per_second'])} | "
            f"{common.hardware(r['environment'])} |"
        )
    lines += ["", "## Notes", ""] + [f"- {note}" for note in notes(records)]
    if speed:
        lines += ["", f"Speed, second-order MAML, meta-batch {args.meta_batch}, K=10, one inner step, on "
                  f"{common.hardware(speed['environment'])}: **{speed['tasks_per_second']:,.0f} tasks/s** "
                  f"({speed['meta_steps_per_second']:.0f} meta-steps/s, median over chunks of {args.steps_per_call} "
                  f"steps after compilation); the whole {args.iterations:,}-iteration run took "
                  f"{speed['train_seconds']:.0f} s including compilation."]
    return "\n".join(lines) + "\n"


def learner_label(record: dict) -> str:
    """The learner's name, with the clip of its meta-gradient where it has one or goes without its registry's,
    and the meta-step where its training stopped if it did."""
    clip, default = record.get("clip_norm"), registry.defaults(record["algorithm"], "sinusoid").clip_norm
    notes = [f"clip {clip:g}"] if clip is not None else ["no clip"] if default is not None else []
    if record.get("training_stopped"):
        notes.append(f"stopped at meta-step {record['training_stopped']['meta_step']:,}")
    return f"{record['algorithm']} ({', '.join(notes)})" if notes else record["algorithm"]


def notes(records) -> list[str]:
    """How to read the table, and what in this run deserves a second look."""
    found = [
        "Published numbers: Meta-SGD's Table 1 (Li et al. 2017) reports MAML and Meta-SGD after one "
        "adaptation step, one model per K; the MAML paper (Finn et al. 2017, arXiv v3) reports 5-shot "
        "MSE after 10 steps for a model trained at K = 10. The other learners have no published "
        "number on this exact protocol. The Meta-SGD Table 1 values were entered from the paper; "
        "this project's tools could not show its text again to re-check them.",
        f"Evaluation uses {records[0]['mse']['1']['tasks']} held-out tasks with 100 query points each "
        "(an estimate of the same task MSE as K query points, with less variance); every learner "
        "adapts with its own inner rate (Meta-SGD: its learned rates).",
    ]
    diverged = [f"{learner_label(r)} K={r['shots']}" for r in records if r["mse"]["10"]["mean"] is None]
    if diverged:
        found.append(
            f"Diverged after 10 steps: {', '.join(diverged)}."
            + (" Meta-SGD learns per-parameter rates for one step (as in its paper); applied ten times they "
               "overshoot on part of the tasks." if any(name.startswith("metasgd ") for name in diverged) else "")
        )
    worse = [f"{r['algorithm']} K={r['shots']}" for r in records
             if r["mse"]["10"]["mean"] is not None and r["mse"]["10"]["mean"] > r["mse"]["1"]["mean"]]
    if worse:
        found.append(f"Ten steps are worse than one for: {', '.join(worse)} (unstable on a few tasks).")
    drift = [f"{r['algorithm']} K={r['shots']} ({r['mse']['0']['mean']:.0f})" for r in records
             if r["mse"]["0"]["mean"] is not None and r["mse"]["0"]["mean"] > 20]
    if drift:
        found.append(
            f"Pre-update MSE far above the variance of the task distribution: {', '.join(drift)}. The "
            "initialisation drifted to outputs that only the inner steps bring back: the meta-objective "
            "scores the adapted model alone."
        )
    stopped = [f"{r['algorithm']} K={r['shots']} at meta-step {r['training_stopped']['meta_step']:,} "
               f"({r['training_stopped']['loss']})" for r in records if r.get("training_stopped")]
    if stopped:
        found.append(f"Training stopped on a non-finite meta-loss: {', '.join(stopped)}; the row scores the last "
                     "state before the chunk of meta-steps in which it happened.")
    spikes = [f"{r['algorithm']} K={r['shots']}" for r in records
              if r["final_train_loss_last_1000"] is not None and r["final_train_loss_last_1000"] > 100]
    if spikes:
        found.append(f"Training-loss spikes near the end of training (inner loop diverging on some "
                     f"training tasks): {', '.join(spikes)}; see sinusoid_training*.png.")
    return found


def merged(previous: list[dict], new: list[dict]) -> list[dict]:
    """The records of an earlier run of this folder with this run's replacing those of the same learner, K and clip.

    >>> merged([{"algorithm": "maml", "shots": 5, "v": 1}, {"algorithm": "anil", "shots": 5, "v": 2}],
    ...        [{"algorithm": "maml", "shots": 5, "v": 3}])
    [{'algorithm': 'maml', 'shots': 5, 'v': 3}, {'algorithm': 'anil', 'shots': 5, 'v': 2}]
    """
    def key(r):
        return r["algorithm"], r["shots"], r.get("clip_norm")

    rows = {key(r): r for r in previous}
    rows.update({key(r): r for r in new})
    return sorted(rows.values(), key=lambda r: (r["shots"], ALGORITHMS.index(r["algorithm"]), r.get("clip_norm") or 0))


def _compare(ours, published: str) -> str:
    value = float(published.split()[0])
    if ours is None:
        return "diverged"
    return "no worse" if ours <= value else f"WORSE by {ours - value:.3f}"


def plot_adaptation(learners, shots, args, path):
    """Figure 2 of MAML: the true wave, the prediction before adaptation and after 1 and 10 steps
    (``learners``: name -> (learner, meta-parameters, the model's apply))."""
    wave = Sinusoid(jnp.float32(3.2), jnp.float32(1.1))
    support = sinusoid_examples(jax.random.key(args.eval_seed + 7), wave, shots)
    grid = jnp.linspace(-5, 5, 200).reshape(-1, 1)
    fig, axes = plt.subplots(1, len(learners), figsize=(4 * len(learners), 3.4), sharey=True, squeeze=False)
    for ax, (name, (learner, meta_params, apply)) in zip(axes[0], learners.items()):
        curves = learner.adapt(meta_params, support, key=jax.random.key(0), steps=10,
                               observe=lambda phi, apply=apply: apply(phi, grid)).observed
        ax.plot(grid, wave(grid), color="red", label="ground truth")
        ax.plot(grid, curves[0], ":", color="tab:green", label="pre-update")
        ax.plot(grid, curves[1], "--", color="tab:green", label="1 grad step")
        ax.plot(grid, curves[10], "-.", color="tab:green", label="10 grad steps")
        ax.scatter(support[0][:, 0], support[1][:, 0], marker="^", color="purple", zorder=3,
                   label=f"{shots} support points")
        ax.set_title(f"{name}, K={shots}")
        ax.set_xlabel("x")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(histories, path):
    """Smoothed meta-training loss of every run."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, losses in histories.items():
        width = max(1, len(losses) // 100)
        smooth = np.convolve(losses, np.ones(width) / width, mode="valid")
        ax.plot(np.arange(len(smooth)) + width, smooth, label=label)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("query MSE after adaptation (training tasks)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def record_variants(records, args) -> None:
    """CAVIA's rows of this run in ``maml_variants.{json,md}``, each with MAML's row of the same K and host."""
    import maml_variants

    for row in records:
        if row["algorithm"] != "cavia":
            continue
        baseline = next((r for r in records if r["algorithm"] == "maml" and r["shots"] == row["shots"]
                         and common.hardware(r["environment"]) == common.hardware(row["environment"])), None)
        maml_variants.record(args.variants_table, f"cavia-sinusoid-{row['shots']}shot",
                             {**row, "iterations": args.iterations, "baseline": baseline})


def main(argv=None) -> dict:
    args = parse_args(argv)
    environment = common.environment()
    started = time.perf_counter()
    records, histories, figures = [], {}, {}
    for shots in args.shots:
        eval_tasks = sinusoid_tasks(jax.random.key(args.eval_seed), args.eval_tasks, shots=shots,
                                    query_shots=args.eval_query)
        learners = {}
        for name in args.algorithms:
            record, learner, meta_params, history, apply = run_one(name, shots, args, eval_tasks)
            records.append({**record, "environment": environment})  # rows of several runs name their hosts
            learners[name] = (learner, meta_params, apply)
            if history is not None:
                histories[f"{name} K={shots}"] = history
            mse = record["mse"]
            print(f"{name:8s} K={shots:<2d} MSE after 0/1/10 steps: "
                  + " / ".join(format_mse(mse[str(s)]) for s in EVAL_STEPS)
                  + f"   {record['train_seconds']:.1f} s, {format_rate(record['meta_steps_per_second'])} meta-steps/s, "
                  f"{format_rate(record['tasks_per_second'])} tasks/s", flush=True)
        if shots == 10 or len(args.shots) == 1:
            figures[shots] = learners
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = common.read_json(args.out / "sinusoid.json", default={})
    # rows written before each row named its host ran on the host of that file's run
    previous = [{"environment": earlier.get("environment"), **r} for r in earlier.get("results", [])]
    # Rows merged into a table of other learners get figures of their own, so that the table's stay.
    others = {r["algorithm"] for r in previous} - set(args.algorithms)
    clip = "" if args.clip_norm is None else f"_clip{args.clip_norm:g}"
    suffix = "_" + "_".join(args.algorithms) + clip if others else ""
    for shots, learners in figures.items():
        plot_adaptation(learners, shots, args, args.out / f"sinusoid{suffix}.png")
    if histories:
        plot_training(histories, args.out / f"sinusoid_training{suffix}.png")
    records = merged(previous, records)
    speed = next((r for r in records if r["algorithm"] == "maml" and r["shots"] == 10), None)
    summary = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": environment,
        "total_seconds": time.perf_counter() - started,
        "speed_maml_k10_batch25_tasks_per_second": speed and speed["tasks_per_second"],
        "results": records,
    }
    common.write_json(args.out / "sinusoid.json", summary)
    common.write_atomically(args.out / "sinusoid.md", markdown(records, args, environment, speed))
    if args.variants_table is not None:
        record_variants(records, args)
    figures_written = f"sinusoid{suffix}.png" + (f", sinusoid_training{suffix}.png" if histories else "")
    print(f"\nwrote {args.out}/sinusoid.json, sinusoid.md, {figures_written} in {summary['total_seconds']:.0f} s")
    if speed:
        caveat = " -- quick mode times only a few chunks; the full run gives the figure to quote" if args.quick else ""
        print(f"speed: {speed['tasks_per_second']:,.0f} tasks/s (MAML, second order, meta-batch "
              f"{args.meta_batch}, K=10, 1 inner step){caveat}")
    return summary


if __name__ == "__main__":
    main()
