"""One-shot Omniglot with memory models: MANN (Santoro et al. 2016), NTM and an LSTM baseline.

The task of Santoro et al. 2016: an episode shows ``--instances`` (10) images
of each of ``--ways`` (5) characters in a random order, the labels drawn
afresh per episode and each given one step after its image; the model must
predict every label. Accuracy is reported by presentation (1st, 2nd, 3rd,
5th, 10th), beside the paper's Table 1.

Protocol here: the MAML split of the characters (1,100 / 100 / 423, train /
validation / test), every class rotated by a random multiple of 90 degrees,
28x28 images fed as raw pixels, one-hot labels (the paper used 20x20 images
and, for 15 classes, labels as strings of five characters). MANN: an LSTM
controller of 200 units, a 128 x 40 memory, 4 read heads, usage decay 0.99,
an add vector written apart from the key (``--write-vector add``; the
paper's eq. 8 writes the key, ``--write-vector key``: see
:mod:`jaxmeta.memory.mann`).
Episodes in batches of ``--batch`` (16); Adam ``--lr`` (1e-3; the paper used
RMSProp 1e-4 for 100,000 episodes, far beyond a CPU budget).

    python benchmarks/memory_omniglot.py --model mann --budget-minutes 30 --record
    python benchmarks/memory_omniglot.py --model lstm --budget-minutes 30 --record

Each run lives in ``--run-dir`` (default ``runs/memory/<model>-<ways>way``) with
the training loop's checkpoints, ``metrics.jsonl`` and learning curve;
``--resume`` continues it and ``--evaluate-only`` tests its newest checkpoint
again. With ``--record`` the result becomes a row of
``benchmarks/results/memory_omniglot.{json,md}``, with a picture of the
memory's read and write weights over a test episode.
"""

import argparse
import sys
import time
from pathlib import Path

import jax
import matplotlib
import numpy as np
import optax

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import jaxmeta  # noqa: E402
from jaxmeta import memory, registry  # noqa: E402
from jaxmeta.data.omniglot import load_omniglot, split_characters  # noqa: E402
from jaxmeta.data.paths import data_root  # noqa: E402
from jaxmeta.data.sequences import SequenceSampler, sequence_tasks  # noqa: E402
from jaxmeta.training import restore_run, train  # noqa: E402

MODELS = registry.MEMORY_NAMES
PUBLISHED = {  # Santoro et al. 2016, Table 1, 5 classes: accuracy (%) at the 1st, 2nd, 3rd, 5th, 10th presentation
    "mann": (36.4, 82.8, 91.0, 94.9, 98.1),
    "lstm": (24.4, 49.5, 55.3, 63.6, 62.5),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, default="mann")
    parser.add_argument("--ways", type=int, default=5, help="classes per episode")
    parser.add_argument("--instances", type=int, default=10, help="images per class in an episode")
    parser.add_argument("--batch", type=int, default=16, help="episodes per meta step")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--controller", type=int, default=200, help="LSTM units")
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--width", type=int, default=40)
    parser.add_argument("--heads", type=int, default=4, help="read heads")
    parser.add_argument("--write-vector", choices=memory.mann.WRITE_VECTORS, default="add",
                        help="MANN: what a write stores, an add vector of its own (default) or the key, as the "
                             "paper's eq. 8 (jaxmeta.memory.mann)")
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--budget-minutes", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validate-every", type=int, default=500)
    parser.add_argument("--validation-episodes", type=int, default=200)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--steps-per-call", type=int, default=10)
    parser.add_argument("--eval-episodes", type=int, default=1000)
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="test the newest checkpoint in --run-dir (same settings) without training")
    parser.add_argument("--record", action="store_true", help="add the result to benchmarks/results/memory_omniglot.*")
    parser.add_argument("--results-dir", type=Path, default=common.RESULTS_DIR)
    parser.add_argument("--root", type=Path, default=None, help="default: $JAXMETA_DATA/omniglot")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not args.lr > 0:
        parser.error(f"--lr must be positive, got {args.lr}.")
    for name in ("ways", "instances", "batch", "controller", "rows", "width", "heads", "iterations",
                 "validate_every", "validation_episodes", "checkpoint_every", "steps_per_call", "eval_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        parser.error(f"--budget-minutes must be positive, got {args.budget_minutes}.")
    if args.heads > args.rows:
        parser.error(f"--heads ({args.heads}) cannot exceed --rows ({args.rows}).")
    if args.run_dir is None:
        args.run_dir = Path("runs/memory") / f"{args.model}-{args.ways}way"
    return args


def build_model(args) -> memory.SequenceClassifier:
    """The memory model named by ``--model`` (jaxmeta.registry), at the command line's sizes."""
    return registry.memory_model(args.model, num_classes=args.ways, controller=args.controller, rows=args.rows,
                                 width=args.width, heads=args.heads, write_vector=args.write_vector)


def run_config(args) -> dict:
    keys = ("model", "ways", "instances", "batch", "lr", "controller", "rows", "width", "heads", "iterations",
            "seed", "steps_per_call") + (("write_vector",) if args.model == "mann" else ())
    return {key: getattr(args, key) for key in keys}


def score(learner, params, images, *, count, args, key) -> dict:
    """``{metric: (mean, 95% CI)}`` over ``count`` episodes drawn from ``images`` (jaxmeta.evaluate)."""
    episodes = sequence_tasks(key, images, count, ways=args.ways, instances=args.instances, rotate=True,
                              dtype="uint8")
    evaluation = jaxmeta.evaluate(learner, params, episodes, key=key, chunk_size=100)
    metrics = {"loss": evaluation.losses[:, 0], **{name: values[:, 0] for name, values in evaluation.metrics.items()}}
    reached = {f"presentation_{k}" for k in presented(args)}
    return {name: tuple(float(v) for v in jaxmeta.confidence_interval(np.asarray(values)))
            for name, values in metrics.items() if not name.startswith("presentation_") or name in reached}


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    data = load_omniglot(args.root or data_root() / "omniglot")
    split = split_characters(data, "maml", seed=0)
    val_images, test_images = (jax.device_put(data.images[s]) for s in (split.validation, split.test))
    for images in (val_images, test_images):
        jaxmeta.data.episodes.check_episode(images.shape[0], images.shape[1], ways=args.ways, shots=args.instances,
                                            queries=0)
    sampler = SequenceSampler.create(data.images[split.train], args.batch, ways=args.ways, instances=args.instances,
                                     rotate=True)
    init_key, train_key, val_key, test_key = jax.random.split(jax.random.key(args.seed), 4)
    model = build_model(args)
    example = jax.tree.map(lambda x: x[0], sampler(jax.random.key(0)).query)
    params = model.init(init_key, *example)["params"]
    learner, optimizer = memory.memory_learner(model), optax.adam(args.lr)
    state = jaxmeta.init_state(learner, optimizer, params)

    def validate(meta_params):
        metrics = score(learner, meta_params, val_images, count=args.validation_episodes, args=args, key=val_key)
        return {name: mean for name, (mean, _) in metrics.items() if name != "loss"}

    if args.evaluate_only:
        result = restore_run(args.run_dir, run_config(args), state)
    else:
        result = train(jaxmeta.make_meta_step(learner, optimizer), state, sampler, key=train_key,
                       num_steps=args.iterations, run_dir=args.run_dir, config=run_config(args), resume=args.resume,
                       checkpoint_every=args.checkpoint_every, validate=validate, validate_every=args.validate_every,
                       steps_per_call=args.steps_per_call,
                       budget_seconds=None if args.budget_minutes is None else 60 * args.budget_minutes,
                       progress=not args.no_progress, description=f"{args.model} {args.ways}-way")
    train_seconds = [r["elapsed_seconds"] for r in result.records if r["kind"] == "train"][-1]
    test = score(learner, result.state.meta_params, test_images, count=args.eval_episodes, args=args, key=test_key)
    summary = {
        "config": run_config(args),
        "episodes": int(result.state.step) * args.batch,
        "meta_steps": int(result.state.step),
        "stopped": result.stopped,
        "budget_minutes": args.budget_minutes,
        "train_seconds": train_seconds,
        "test_episodes": args.eval_episodes,
        "test": test,
        "wall_seconds": time.perf_counter() - started,
        "environment": common.environment(),
    }
    common.write_json(Path(args.run_dir) / "result.json", summary)
    by_presentation = ", ".join(f"{k}: {100 * test[f'presentation_{k}'][0]:.1f}%" for k in presented(args))
    print(f"{args.model} {args.ways}-way: {summary['episodes']:,} episodes ({result.stopped}, "
          f"{train_seconds / 60:.1f} min); test accuracy by presentation over {args.eval_episodes} episodes: "
          f"{by_presentation}")
    if args.record:
        Path(args.results_dir).mkdir(parents=True, exist_ok=True)
        plot_episode(model, result.state.meta_params, test_images, args,
                     Path(args.results_dir) / f"memory_omniglot_{args.model}_{args.ways}way_episode.png")
        record_result(Path(args.results_dir), summary)
    return summary


def presented(args) -> list[int]:
    return [k for k in memory.PRESENTATIONS if k <= args.instances]


def plot_episode(model, params, images, args, path: Path) -> None:
    """One test episode: the labels, whether each prediction was right, and the read and write weights."""
    x, y = jax.tree.map(lambda a: a[0], sequence_tasks(jax.random.key(7), images, 1, ways=args.ways,
                                                       instances=args.instances, rotate=True).query)
    trace = memory.trace_episode(model, params, x, y)
    correct = np.asarray(np.argmax(trace.logits, -1) == y)
    has_memory = trace.read_weights.size > 0
    fig, axes = plt.subplots(3 if has_memory else 1, 1, figsize=(10, 7 if has_memory else 2.2), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 3, 3] if has_memory else [1]})
    steps = np.arange(len(y))
    axes[0, 0].scatter(steps, np.asarray(y), c=np.where(correct, "tab:green", "tab:red"), s=18)
    axes[0, 0].set(ylabel="label", title=f"{args.model}: a test episode (green: predicted right, red: wrong)")
    if has_memory:
        for ax, weights, name in ((axes[1, 0], trace.read_weights, "read"), (axes[2, 0], trace.write_weights, "write")):
            ax.imshow(np.asarray(weights).sum(1).T, aspect="auto", cmap="viridis", interpolation="nearest")
            ax.set(ylabel="memory row", title=f"{name} weights, summed over heads")
        axes[2, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def record_result(results_dir: Path, summary: dict) -> None:
    """Add (or replace) this run's row in ``memory_omniglot.json`` and rewrite ``memory_omniglot.md``."""
    path = results_dir / "memory_omniglot.json"
    rows = common.read_json(path, default={})
    config = summary["config"]
    rows[f"{config['model']}-{config['ways']}way"] = summary
    common.write_json(path, rows)
    lines = [
        "# One-shot Omniglot with memory models: test accuracy (%) by presentation",
        "",
        "The task of Santoro et al. 2016 (labels one step late, shuffled per episode); mean ± 95% CI over "
        "the test episodes (MAML split, 423 test characters, 90-degree class rotations, 28x28), trained on "
        "the hardware named in each row within the stated budget (sessions ran on different hosts, so "
        "budgets buy different numbers of episodes). "
        "Published: Santoro et al. 2016, Table 1 (5 classes).",
        "",
        "| model | classes | 1st | 2nd | 3rd | 5th | 10th | training episodes | budget | hardware | "
        "published (1st/2nd/3rd/5th/10th) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(rows):
        row, config = rows[key], rows[key]["config"]
        cells = [common.mean_ci(100 * row["test"][f"presentation_{k}"][0], 100 * row["test"][f"presentation_{k}"][1], 1)
                 if f"presentation_{k}" in row["test"] else "-" for k in memory.PRESENTATIONS]
        published = PUBLISHED.get(config["model"]) if config["ways"] == 5 else None
        budget = f"{row['budget_minutes']:g} min" if row["budget_minutes"] else "none"
        model = config["model"]
        if model == "mann":  # rows before the write_vector option wrote the key
            model += f" ({config.get('write_vector', 'key')} vector written)"
        lines.append(
            f"| {model} | {config['ways']} | {' | '.join(cells)} | {row['episodes']:,} | "
            f"{budget} ({row['train_seconds'] / 60:.1f} min used) | {common.hardware(row['environment'])} | "
            f"{' / '.join(map(str, published)) if published else '-'} |"
        )
    common.write_atomically(results_dir / "memory_omniglot.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
