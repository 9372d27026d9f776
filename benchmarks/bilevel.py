"""Meta-learning more than an initialisation: DARTS's hypergradients and learning to reweight examples.

Writes ``benchmarks/results/bilevel.{json,md,png}``, one key per part (``--parts``, default all):

* ``darts-toy``: the toy problem of DARTS's Figure 2 (``jaxmeta.bilevel.toy``): where the alternating search
  ends with each hypergradient, from (alpha, w) = (2, -2).
* ``darts-hypergradient-cosine``, ``darts-hypergradient-cost``, ``darts-derived-accuracy``: a DARTS search
  on Omniglot classification (``--classes`` background characters, each character's drawings split 10 / 5 / 5
  into training, validation and test; the search uses the first two), driven by DARTS's second-order
  (finite-difference) hypergradient; every ``--compare-every`` steps each method's hypergradient at the search
  state, on the same batches, is compared with the exact one-step hypergradient (cosine similarity); each
  method's cost per step (median time, XLA's temporary memory) at the initial state; then the derived
  network and a conv-4 of about as many parameters, each trained for ``--train-steps`` on the training and
  validation drawings, scored on the test drawings.
* ``reweight``: Ren et al.'s learned example weights against plain training and inverse class frequency, on
  scikit-learn's digits: a 4-vs-9 training set with the 4s' share up to 0.995 (10 clean validation images),
  and all ten digits with 40% uniform label noise (1 and 10 clean validation images per class); test accuracy
  over ``--seeds`` seeds.

    JAXMETA_DATA=../shared/data python benchmarks/bilevel.py                 # every part
    python benchmarks/bilevel.py --parts toy reweight                        # no Omniglot needed
    python benchmarks/bilevel.py --table-only                                # rewrite the table and figure
"""

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from jaxmeta import confidence_interval  # noqa: E402
from jaxmeta.bilevel import (WEIGHTINGS, DartsNetwork, darts_toy, derive_genotype, finite_difference,  # noqa: E402
                             first_order, implicit, toy_trajectory, train_weighted, unrolled)
from jaxmeta.bilevel.search import (WEIGHT_LR, SplitBatches, classification_problem,  # noqa: E402
                                    compare_hypergradients, init_search, make_search_step, search_optimizers)
from jaxmeta.bilevel.toy import OPTIMUM, START  # noqa: E402
from jaxmeta.data.digits import imbalanced_pair, load_digits, noisy_split  # noqa: E402
from jaxmeta.models import MLP, Conv4, functional  # noqa: E402
from jaxmeta.training import ImageBatches, classify_accuracy, init_classifier, make_classifier_step, train  # noqa: E402

RESULTS = "bilevel"
PARTS = ("toy", "reweight", "darts")
IMBALANCE = (0.9, 0.95, 0.98, 0.99, 0.995)  # the 4s' share of the 4-vs-9 training set
NOISE = 0.4
NOISE_CLEAN_PER_CLASS = (1, 10)  # clean validation images per class in the label-noise setting


# ----------------------------------------------------------------------------------------------
# The toy problem
# ----------------------------------------------------------------------------------------------

def toy_methods():
    problem = darts_toy()
    return {
        "exact (implicit)": implicit(problem, steps=1, lr=0.5, cg_steps=1),
        "unrolled, xi = 0.5": unrolled(problem, steps=1, lr=0.5),
        "finite difference, xi = 0.5": finite_difference(problem, lr=0.5),
        "finite difference, xi = 0.3": finite_difference(problem, lr=0.3),
        "first order (xi = 0)": first_order(problem),
    }


def run_toy(steps: int = 300) -> dict:
    out = {}
    for name, fn in toy_methods().items():
        path = np.asarray(toy_trajectory(fn, steps=steps))
        alpha, w = path[-1]
        out[name] = {"end": [float(alpha), float(w)], "val_loss_at_end": float(alpha * w - 2 * alpha + 1),
                     "path": path[:: max(1, steps // 100)].round(5).tolist()}
    return {"steps": steps, "outer_lr": 0.1, "inner_lr": 0.1, "start": list(START), "optimum": list(OPTIMUM),
            "methods": out}


# ----------------------------------------------------------------------------------------------
# Learning to reweight examples
# ----------------------------------------------------------------------------------------------

def reweight_scores(train_set, validation, test, *, hidden: int, classes: int, seed: int, steps: int) -> dict:
    model = MLP((hidden, classes))
    apply = functional(model)
    params = model.init(jax.random.key(seed), train_set.images[:1])["params"]
    scores = {}
    for weighting in WEIGHTINGS:
        trained = train_weighted(apply, params, tuple(train_set), tuple(validation), weighting=weighting,
                                 steps=steps, lr=0.1, batch_size=50, key=jax.random.key(1000 + seed),
                                 num_classes=classes)
        scores[weighting] = classify_accuracy(apply, trained, *test)
    return scores


def summarise(per_seed: list[dict]) -> dict:
    return {w: dict(zip(("mean", "ci95"), map(float, confidence_interval([s[w] for s in per_seed]))))
            for w in WEIGHTINGS}


def run_reweight(seeds: int, steps: int) -> dict:
    digits = load_digits()
    imbalance = {}
    for ratio in IMBALANCE:
        per_seed = []
        for seed in range(seeds):
            split = imbalanced_pair(digits, ratio=ratio, train_size=150, test_per_class=25, seed=seed)
            per_seed.append(reweight_scores(split.train, split.validation, split.test, hidden=32, classes=2,
                                            seed=seed, steps=steps))
        imbalance[str(ratio)] = summarise(per_seed)
        print(f"reweight imbalance {ratio}: {imbalance[str(ratio)]}", flush=True)
    noise = {}
    for per_class in NOISE_CLEAN_PER_CLASS:
        per_seed = []
        for seed in range(seeds):
            split = noisy_split(digits, fraction=NOISE, clean_per_class=per_class, test_size=500, seed=seed)
            per_seed.append(reweight_scores(split.train, split.validation, split.test, hidden=64, classes=10,
                                            seed=seed, steps=steps))
        noise[str(per_class)] = summarise(per_seed)
        print(f"reweight noise {NOISE}, {per_class} clean per class: {noise[str(per_class)]}", flush=True)
    return {"seeds": seeds, "steps": steps, "imbalance": {"train_size": 150, "validation": 10, "test": 50,
                                                          "by_ratio": imbalance},
            "noise": {"fraction": NOISE, "test": 500, "by_clean_per_class": noise}}


# ----------------------------------------------------------------------------------------------
# The DARTS search on Omniglot
# ----------------------------------------------------------------------------------------------

def comparison_methods(problem, xi: float) -> dict:
    """The hypergradients compared at each search state; ``exact`` is the one-step hypergradient DARTS approximates."""
    return {
        "exact": unrolled(problem, steps=1, lr=xi),
        "finite-difference": finite_difference(problem, lr=xi),
        "first-order": first_order(problem),
        "implicit": implicit(problem, steps=1, lr=xi, cg_steps=10, damping=1.0),
    }


def omniglot_split(classes: int, seed: int):
    from jaxmeta.data.omniglot import load_omniglot, split_drawings

    data = load_omniglot(subsets=("background",))
    chosen = np.sort(np.random.default_rng(seed).permutation(data.num_characters)[:classes])
    return split_drawings(data.images[chosen], (10, 5, 5), seed=seed)


def compile_methods(methods: dict, state, batches, key) -> dict:
    """Each hypergradient compiled once for the search's shapes (used for the costs and every comparison)."""
    outer, inner = state.meta_params["outer"], state.meta_params["inner"]
    return {name: jax.jit(fn).lower(outer, inner, *batches, key).compile() for name, fn in methods.items()}


def cost_per_step(compiled: dict, state, batches, key, reps: int = 5) -> dict:
    """Median seconds of each compiled hypergradient (after one warm-up call) and XLA's temporary memory."""
    out = {}
    outer, inner = state.meta_params["outer"], state.meta_params["inner"]
    for name, fn in compiled.items():
        seconds = common.call_seconds(fn, outer, inner, *batches, key, reps=reps)
        out[name] = {"median_seconds": float(np.median(seconds)),
                     "temp_bytes": common.memory_bytes(fn).get("temp")}
        print(f"cost {name}: {out[name]}", flush=True)
    return out


def parameter_count(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def train_and_score(model, example, data, *, steps: int, batch_size: int, key, run_dir: Path, progress: bool,
                    what: str) -> dict:
    params = jax.jit(model.init)(key, example)["params"]
    optimizer = search_optimizers(steps)[1]
    source = ImageBatches.create(np.concatenate([data.train.images, data.validation.images]),
                                 np.concatenate([data.train.labels, data.validation.labels]), batch_size=batch_size)
    start = time.perf_counter()
    result = train(make_classifier_step(functional(model), optimizer), init_classifier(params, optimizer), source,
                   key=key, num_steps=steps, run_dir=run_dir, config={"what": what, "steps": steps}, resume=True,
                   checkpoint_every=max(1, steps // 4), progress=progress, description=what)
    return {"test_accuracy": classify_accuracy(functional(model), result.state.meta_params, *data.test),
            "parameters": parameter_count(params), "train_seconds": time.perf_counter() - start, "steps": steps}


def run_darts(args) -> dict:
    setting = {"classes": args.classes, "drawings": [10, 5, 5], "features": args.features, "layers": args.layers,
               "nodes": args.nodes, "batch_size": args.batch_size, "search_steps": args.search_steps,
               "compare_every": args.compare_every, "xi": WEIGHT_LR, "seed": args.seed}
    data = omniglot_split(args.classes, args.seed)
    network = DartsNetwork(num_classes=args.classes, features=args.features, layers=args.layers, nodes=args.nodes)
    source = SplitBatches.create(tuple(data.train), tuple(data.validation), batch_size=args.batch_size)
    key = jax.random.key(args.seed)
    state = init_search(network, data.train.images[:2], key, steps=args.search_steps)
    problem = classification_problem(network)
    methods = comparison_methods(problem, WEIGHT_LR)
    batches = source(jax.random.key(1))
    compiled = compile_methods(methods, state, batches, jax.random.key(2))
    costs = cost_per_step(compiled, state, batches, jax.random.key(2))
    calls = iter(range(10**9))

    def validate(meta_params):  # every method at the search's state, on one fresh pair of batches
        key = jax.random.key(10_000 + next(calls))
        return compare_hypergradients(compiled, "exact", state._replace(meta_params=meta_params), source(key), key)

    run_dir = Path(args.run_dir)
    result = train(make_search_step(network, finite_difference(problem, lr=WEIGHT_LR), steps=args.search_steps),
                   state, source, key=key, num_steps=args.search_steps, run_dir=run_dir / "search",
                   config=setting, resume=True,
                   checkpoint_every=args.compare_every, validate=validate, validate_every=args.compare_every,
                   steps_per_call=args.compare_every, progress=not args.no_progress, description="DARTS search")
    comparisons = [r for r in result.records if r["kind"] == "validation"]
    cosine = {name: {"steps": [r["step"] for r in comparisons], "cosine": [r[f"cosine/{name}"] for r in comparisons],
                     "median": float(np.median([r[f"cosine/{name}"] for r in comparisons]))}
              for name in methods if name != "exact"}
    genotype = derive_genotype(result.state.meta_params["outer"], nodes=args.nodes)
    derived = DartsNetwork(num_classes=args.classes, features=args.features, layers=args.layers, nodes=args.nodes,
                           genotype=genotype)
    example = jnp.asarray(data.train.images[:2])
    derived_size = parameter_count(jax.eval_shape(derived.init, key, example)["params"])
    width = min(range(2, 129, 2), key=lambda f: abs(parameter_count(
        jax.eval_shape(Conv4(num_classes=args.classes, features=f).init, key, example)["params"]) - derived_size))
    networks = {"derived": derived, "conv4": Conv4(num_classes=args.classes, features=width)}
    accuracy = {}
    for name, model in networks.items():
        runs = [train_and_score(model, example, data, steps=args.train_steps, batch_size=args.batch_size,
                                key=jax.random.key(seed), run_dir=run_dir / name / f"seed-{seed}",
                                progress=not args.no_progress, what=f"{name}, seed {seed}")
                for seed in range(args.train_seeds)]
        mean, ci = confidence_interval([r["test_accuracy"] for r in runs])
        accuracy[name] = {"test_accuracy": float(mean), "ci95": float(ci),
                          "by_seed": [r["test_accuracy"] for r in runs], "parameters": runs[0]["parameters"],
                          "train_seconds": float(np.median([r["train_seconds"] for r in runs])),
                          "steps": args.train_steps}
    accuracy["derived"]["genotype"] = genotype._asdict()
    accuracy["conv4"]["features"] = width
    return {"darts-hypergradient-cosine": {"setting": setting, "reference": "exact (unrolled, 1 step of xi)",
                                           "methods": cosine},
            "darts-hypergradient-cost": {"setting": setting, "methods": costs},
            "darts-derived-accuracy": {"setting": setting, "train_steps": args.train_steps,
                                       "train_seeds": args.train_seeds, **accuracy}}


# ----------------------------------------------------------------------------------------------
# Records, table, figure
# ----------------------------------------------------------------------------------------------

def record(results_dir: Path, rows: dict) -> None:
    path = Path(results_dir) / f"{RESULTS}.json"
    recorded = common.read_json(path, default={})
    environment = common.environment()
    for key, row in rows.items():
        recorded[key] = {**row, "environment": environment}
    common.write_json(path, recorded)
    write_table(results_dir)
    plot(results_dir)


def write_table(results_dir: Path) -> None:
    rows = common.read_json(Path(results_dir) / f"{RESULTS}.json", default={})
    lines = ["# Meta-learning more than an initialisation", "",
             "Written by `benchmarks/bilevel.py` (see its docstring for the protocols).", ""]
    if "darts-toy" in rows:
        toy = rows["darts-toy"]
        lines += [f"## DARTS's toy problem (from (alpha, w) = (2, -2); bilevel optimum (1, 1)) "
                  f"- {common.hardware(toy['environment'])}", "",
                  "| hypergradient | ends at (alpha, w) | L_val there |", "|---|---|---|"]
        lines += [f"| {name} | ({m['end'][0]:.3f}, {m['end'][1]:.3f}) | {m['val_loss_at_end']:.3f} |"
                  for name, m in toy["methods"].items()]
        lines.append("")
    if "darts-hypergradient-cosine" in rows:
        cos, cost = rows["darts-hypergradient-cosine"], rows.get("darts-hypergradient-cost", {"methods": {}})
        lines += [f"## DARTS on Omniglot: each hypergradient against the exact one-step hypergradient "
                  f"- {common.hardware(cos['environment'])}", "", f"Setting: `{cos['setting']}`.", "",
                  "| method | median cosine over the search | min | time per hypergradient (s) "
                  "| XLA temp memory (MB) |",
                  "|---|---|---|---|---|"]
        for name, m in {"exact": None, **cos["methods"]}.items():
            c = cost["methods"].get(name, {})
            cosine = "1 (reference)" if m is None else f"{m['median']:.3f}"
            lowest = "-" if m is None else f"{min(m['cosine']):.3f}"
            memory = c.get("temp_bytes")
            lines.append(f"| {name} | {cosine} | {lowest} | {c.get('median_seconds', float('nan')):.3f} | "
                         f"{'-' if memory is None else f'{memory / 2**20:.1f}'} |")
        lines.append("")
    if "darts-derived-accuracy" in rows:
        acc = rows["darts-derived-accuracy"]
        lines += [f"Derived network against a conv-4 of about as many parameters, each trained "
                  f"{acc['train_steps']:,} steps on the training and validation drawings and scored on the test "
                  f"drawings ({acc.get('train_seeds', 1)} trainings each; mean ± 95% CI):", "",
                  "| network | parameters | test accuracy (%) | median training time (s) |", "|---|---|---|---|"]
        for name in ("derived", "conv4"):
            m = acc[name]
            score = (common.mean_ci(100 * m["test_accuracy"], 100 * m["ci95"]) if "ci95" in m
                     else f"{100 * m['test_accuracy']:.2f}")
            what = f"conv-4, {m['features']} features" if name == "conv4" else "derived"
            lines.append(f"| {what} | {m['parameters']:,} | {score} | {m['train_seconds']:.0f} |")
        genotype = acc["derived"]["genotype"]
        lines += ["", "Derived cells ((operation, input node) per intermediate node; nodes 0 and 1 are the cell's "
                  f"inputs): normal {[tuple(e) for e in genotype['normal']]}, "
                  f"reduction {[tuple(e) for e in genotype['reduce']]}."]
        lines.append("")
    if "reweight" in rows:
        rw = rows["reweight"]
        lines += [f"## Learning to reweight examples (digits; {rw['seeds']} seeds, mean ± 95% CI test accuracy %) "
                  f"- {common.hardware(rw['environment'])}", "",
                  "| setting | " + " | ".join(WEIGHTINGS) + " |", "|---|" + "---|" * len(WEIGHTINGS)]
        for ratio, scores in rw["imbalance"]["by_ratio"].items():
            lines.append(f"| 4 vs 9, 4s' share {ratio} | " + " | ".join(
                common.mean_ci(100 * scores[w]["mean"], 100 * scores[w]["ci95"]) for w in WEIGHTINGS) + " |")
        for per_class, scores in rw["noise"]["by_clean_per_class"].items():
            lines.append(f"| ten digits, {int(100 * rw['noise']['fraction'])}% uniform label noise, {per_class} clean "
                         f"validation image(s) per class | " + " | ".join(
                             common.mean_ci(100 * scores[w]["mean"], 100 * scores[w]["ci95"]) for w in WEIGHTINGS)
                         + " |")
        lines.append("")
    common.write_atomically(Path(results_dir) / f"{RESULTS}.md", "\n".join(lines))


def plot(results_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = common.read_json(Path(results_dir) / f"{RESULTS}.json", default={})
    panels = [key for key in ("darts-toy", "darts-hypergradient-cosine", "reweight") if key in rows]
    panels += ["reweight-noise"] if "reweight" in rows else []
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for ax, key in zip(axes[0], panels):
        if key == "darts-toy":
            alpha, w = np.meshgrid(np.linspace(-0.5, 3, 200), np.linspace(-3, 3, 200))
            ax.contour(alpha, w, alpha * w - 2 * alpha + 1, levels=15, cmap="Greys", linewidths=0.6)
            ax.plot([-0.5, 3], [-0.5, 3], "r--", lw=1, label="w = w*(alpha)")
            for name, m in rows[key]["methods"].items():
                path = np.asarray(m["path"])
                ax.plot(path[:, 0], path[:, 1], lw=1.5, label=name)
            ax.plot(*OPTIMUM, "ro", mfc="none", ms=12)
            ax.set(xlabel="alpha", ylabel="w", title="DARTS's toy problem (its Figure 2)")
            ax.legend(fontsize=7)
        elif key == "darts-hypergradient-cosine":
            for name, m in rows[key]["methods"].items():
                ax.plot(m["steps"], m["cosine"], marker=".", label=name)
            ax.set(xlabel="search step", ylabel="cosine with the exact hypergradient", ylim=(-1.05, 1.05),
                   title="Hypergradients during a DARTS search")
            ax.legend(fontsize=7)
        elif key == "reweight-noise":
            noise = rows["reweight"]["noise"]
            settings = list(noise["by_clean_per_class"])
            for k, w in enumerate(WEIGHTINGS):
                mean = [100 * noise["by_clean_per_class"][c][w]["mean"] for c in settings]
                ci = [100 * noise["by_clean_per_class"][c][w]["ci95"] for c in settings]
                ax.bar(np.arange(len(settings)) + 0.27 * (k - 1), mean, 0.27, yerr=ci, capsize=3, label=w)
            ax.set_xticks(range(len(settings)), [f"{c} per class" for c in settings])
            ax.set(xlabel="clean validation images", ylabel="test accuracy (%)",
                   title=f"Reweighting: ten digits, {int(100 * noise['fraction'])}% label noise")
            ax.legend(fontsize=7)
        else:
            ratios = list(rows[key]["imbalance"]["by_ratio"])
            for w in WEIGHTINGS:
                mean = [100 * rows[key]["imbalance"]["by_ratio"][r][w]["mean"] for r in ratios]
                ci = [100 * rows[key]["imbalance"]["by_ratio"][r][w]["ci95"] for r in ratios]
                ax.errorbar([float(r) for r in ratios], mean, yerr=ci, marker="o", capsize=3, label=w)
            ax.set(xlabel="majority share of the training set", ylabel="test accuracy (%)",
                   title="Reweighting: 4 vs 9 digits")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(Path(results_dir) / f"{RESULTS}.png", dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--seeds", type=int, default=10, help="reweighting: seeds per setting")
    parser.add_argument("--reweight-steps", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=50, help="DARTS: background characters classified")
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--layers", type=int, default=3)
    # 2 intermediate nodes per cell (the paper's cells have 4): with 4, XLA:CPU compiled the exact hypergradient
    # in 2.5 min and was still compiling the finite-difference one after 18 min (AMD EPYC, 2 cores)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--search-steps", type=int, default=200)
    parser.add_argument("--compare-every", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=2000)
    parser.add_argument("--train-seeds", type=int, default=5, help="DARTS: trainings of each network scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bilevel"))
    parser.add_argument("--results-dir", type=Path, default=common.RESULTS_DIR)
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.table_only:
        write_table(args.results_dir)
        plot(args.results_dir)
        return
    if "toy" in args.parts:
        record(args.results_dir, {"darts-toy": run_toy()})
    if "reweight" in args.parts:
        record(args.results_dir, {"reweight": run_reweight(args.seeds, args.reweight_steps)})
    if "darts" in args.parts:
        record(args.results_dir, run_darts(args))


if __name__ == "__main__":
    main()
