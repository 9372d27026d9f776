"""Learning to learn by gradient descent by gradient descent (Andrychowicz et al. 2016), against SGD, RMSProp and Adam.

A coordinate-wise two-layer LSTM optimizer (20 units per layer, the paper's
gradient preprocessing) is meta-trained by truncated backpropagation through
``--horizon`` optimisation steps in truncations of ``--unroll``, separately on
two problem families:

* ``quadratic``: the paper's random functions ``||W theta - y||^2`` in 10
  dimensions, everything standard normal;
* ``classifier``: the paper's MNIST optimizee (one hidden layer of 20 sigmoid
  units) on 10-way classification of Omniglot characters (14x14, every
  instance of 10 random characters, full batch), trained on the characters of
  the MAML training split.

Each trained optimizer then minimises ``--test-problems`` functions it has not
seen: new random quadratics, and classifiers of characters from the held-out
test split, for ``--steps`` steps. The baselines run on the same functions
from the same starting points, each with the learning rate (from a grid)
that gives the lowest mean loss over the steps on separate validation
problems (new quadratics; validation-split characters), as the paper tuned
its baselines.

Writes ``learned_optimizer.{json,md,png}`` to ``--results-dir`` (the PNG: mean
loss curves, log scale). ``--quick`` runs a small version (11 minutes on a 2-core Zen 1 CPU, nearly all of it
meta-training the classifier's optimizer); ``--budget-minutes`` caps each family's meta-training.
"""

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from jaxmeta.data.omniglot import load_omniglot, split_characters  # noqa: E402
from jaxmeta.data.paths import data_root  # noqa: E402
from jaxmeta.optimizers import (CoordinatewiseLSTM, classification_problems, learned_optimizer, meta_train,  # noqa: E402
                                mlp_classifier_loss, optimize, quadratic_loss, quadratic_problems)

BASELINES = {"SGD": optax.sgd, "RMSProp": optax.rmsprop, "Adam": optax.adam}
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
PROBLEMS = ("quadratic", "classifier")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
    parser.add_argument("--iterations", type=int, default=300, help="batches of problems in meta-training")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="stop each family's meta-training after this wall time (and at most --iterations)")
    parser.add_argument("--batch", type=int, default=16, help="problems per meta-training batch")
    parser.add_argument("--horizon", type=int, default=100, help="optimisation steps per problem in meta-training")
    parser.add_argument("--unroll", type=int, default=20, help="steps per truncation (one meta-update each)")
    parser.add_argument("--meta-lr", type=float, default=1e-3, help="Adam learning rate of the LSTM's parameters")
    parser.add_argument("--steps", type=int, default=100, help="optimisation steps on the held-out problems")
    parser.add_argument("--test-problems", type=int, default=100)
    parser.add_argument("--validation-problems", type=int, default=32, help="for tuning the baselines' rates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a small run: 30 iterations, 20 test problems")
    parser.add_argument("--root", type=Path, default=None, help="default: $JAXMETA_DATA/omniglot")
    parser.add_argument("--results-dir", type=Path, default=common.RESULTS_DIR)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.test_problems, args.validation_problems = 30, 20, 8
    for name in ("iterations", "batch", "horizon", "unroll", "steps", "test_problems", "validation_problems"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if args.horizon % args.unroll:
        parser.error(f"--horizon ({args.horizon}) must be a multiple of --unroll ({args.unroll}).")
    if not args.meta_lr > 0:
        parser.error(f"--meta-lr must be positive, got {args.meta_lr}.")
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        parser.error(f"--budget-minutes must be positive, got {args.budget_minutes}.")
    return args


def problem_family(name: str, args):
    """``(loss_fn, {"train", "validation", "test"}: sample(key, batch))`` of one family."""
    if name == "quadratic":
        return quadratic_loss, {split: quadratic_problems for split in ("train", "validation", "test")}
    data = load_omniglot(args.root or data_root() / "omniglot")
    split = split_characters(data, "maml", seed=0)
    return mlp_classifier_loss, {name: classification_problems(data.images[getattr(split, name)], ways=10)
                                 for name in ("train", "validation", "test")}


def mean_curve(tx: optax.GradientTransformation, loss_fn, problems, steps: int, key) -> np.ndarray:
    """``[steps + 1]``: the loss after each step, averaged over a batch of problems (problem ``i``'s loss keys
    from ``split(key)[i]``)."""
    params, data = problems
    keys = jax.random.split(key, jax.tree.leaves(params)[0].shape[0])
    run = jax.jit(jax.vmap(lambda p, d, k: optimize(tx, loss_fn, p, d, steps, key=k)))
    return np.asarray(run(params, data, keys).mean(axis=0))


def curves_by_rate(make, loss_fn, problems, steps: int, key) -> np.ndarray:
    """``[rates, problems, steps + 1]``: the losses of ``make(lr)`` for every rate of the grid, in one compiled call
    (every rate with the same loss keys)."""
    params, data = problems
    keys = jax.random.split(key, jax.tree.leaves(params)[0].shape[0])

    def one_rate(lr):
        return jax.vmap(lambda p, d, k: optimize(make(lr), loss_fn, p, d, steps, key=k))(params, data, keys)

    return np.asarray(jax.jit(jax.vmap(one_rate))(jnp.asarray(LEARNING_RATES)))


def score(curve: np.ndarray) -> float:
    """The mean loss over the steps; a diverging rate scores infinitely badly."""
    return float(np.mean(curve)) if np.all(np.isfinite(curve)) else np.inf


def run_family(name: str, args, key) -> dict:
    loss_fn, samplers = problem_family(name, args)
    train_key, val_key, test_key = jax.random.split(key, 3)
    network = CoordinatewiseLSTM()
    started = time.perf_counter()
    result = meta_train(loss_fn, samplers["train"], key=train_key, iterations=args.iterations, network=network,
                        batch=args.batch, horizon=args.horizon, unroll=args.unroll,
                        meta_optimizer=optax.adam(args.meta_lr), progress=not args.no_progress,
                        budget_seconds=None if args.budget_minutes is None else 60 * args.budget_minutes)
    train_seconds = time.perf_counter() - started
    validation = samplers["validation"](val_key, args.validation_problems)
    test = samplers["test"](test_key, args.test_problems)
    loss_key = jax.random.fold_in(test_key, 1)  # the losses' randomness (the two families' losses use none)
    curves = {"LSTM (learned)": mean_curve(learned_optimizer(result.optimizer_params, network), loss_fn, test,
                                           args.steps, loss_key)}
    both = jax.tree.map(lambda v, t: jnp.concatenate([v, t]), validation, test)  # one compilation per baseline
    rates, validation_scores = {}, {}
    for baseline, make in BASELINES.items():
        losses = curves_by_rate(make, loss_fn, both, args.steps, loss_key)
        scores = [score(curve) for curve in losses[:, : args.validation_problems].mean(axis=1)]
        best = int(np.argmin(scores))
        rates[baseline], validation_scores[baseline] = LEARNING_RATES[best], scores
        curves[f"{baseline} (lr {LEARNING_RATES[best]:g})"] = losses[best, args.validation_problems:].mean(axis=0)
    return {"meta_training_seconds": train_seconds, "meta_training_iterations": result.iterations,
            "meta_training_losses": result.losses.tolist(),
            "baseline_learning_rates": rates, "validation_mean_loss_by_rate": validation_scores,
            "curves": {k: v.tolist() for k, v in curves.items()}}


def write_results(args, results: dict) -> None:
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    common.write_json(results_dir / "learned_optimizer.json", results)
    lines = ["# Learned optimizer (Andrychowicz et al. 2016) against tuned SGD, RMSProp and Adam", "",
             "Mean loss over the held-out problems after 0 / 20 / 50 / final steps (lower is better). The "
             "baselines' learning rates are the best of a grid on validation problems.", ""]
    for family, result in results["families"].items():
        steps = len(next(iter(result["curves"].values()))) - 1
        marks = sorted({0, min(20, steps), min(50, steps), steps})
        lines += [f"## {family}", "",
                  f"Meta-trained {result['meta_training_iterations']} batches of {results['config']['batch']} "
                  f"problems in {result['meta_training_seconds'] / 60:.1f} min"
                  + (f" (budget {budget:g} min)." if (budget := results["config"]["budget_minutes"]) else "."), "",
                  "| optimizer | " + " | ".join(f"step {m}" for m in marks) + " | mean over steps |",
                  "|---|" + "---|" * (len(marks) + 1)]
        for name, curve in result["curves"].items():
            lines.append(f"| {name} | " + " | ".join(f"{curve[m]:.4g}" for m in marks) + f" | {np.mean(curve):.4g} |")
        lines.append("")
    lines += ["Run: `python benchmarks/learned_optimizer.py` " + " ".join(results["argv"]), "",
              f"Environment: {results['environment']['platform']}, jax {results['environment']['jax']}, "
              f"{results['environment']['date']}.", ""]
    common.write_atomically(results_dir / "learned_optimizer.md", "\n".join(lines))
    plot(results, results_dir / "learned_optimizer.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = results["families"]
    fig, axes = plt.subplots(1, len(families), figsize=(5.5 * len(families), 4), squeeze=False)
    for ax, (family, result) in zip(axes[0], families.items()):
        for name, curve in result["curves"].items():
            ax.plot(curve, label=name, linewidth=2.5 if name.startswith("LSTM") else 1.2)
        ax.set_yscale("log")
        ax.set_xlabel("optimisation step")
        ax.set_ylabel("mean loss (held-out problems)")
        ax.set_title({"quadratic": "random quadratics (10-d)",
                      "classifier": "Omniglot 10-way MLP classifier"}.get(family, family))
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    args = parse_args(argv)
    key = jax.random.key(args.seed)
    families = {name: run_family(name, args, jax.random.fold_in(key, i)) for i, name in enumerate(args.problems)}
    config = {k: getattr(args, k) for k in ("iterations", "budget_minutes", "batch", "horizon", "unroll", "meta_lr",
                                            "steps", "test_problems", "validation_problems", "seed")}
    results = {"config": config, "families": families, "argv": sys.argv[1:] if argv is None else list(argv),
               "environment": common.environment()}
    write_results(args, results)
    for family, result in families.items():
        print(family, {name: round(curve[-1], 4) for name, curve in result["curves"].items()})
    return results


if __name__ == "__main__":
    main()
