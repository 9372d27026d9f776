"""Unsupervised meta-learning (CACTUs) on Omniglot, beside the baselines every meta-learner must beat.

    JAXMETA_DATA=../shared/data .venv/bin/python benchmarks/unsupervised.py --parts embedding
    ... --parts cactus-maml cactus-protonet transfer       # each part resumes its own runs (--resume)
    ... --quick                                            # smoke run into runs/unsupervised-quick/

Protocol (Hsu, Levine and Finn, "Unsupervised Learning via Meta-Learning", ICLR 2019, on Omniglot): the
1,623 characters split 1,100 / 100 / 423 as in benchmarks/omniglot.py (``--split-seed``); the 22,000
meta-training images are used without their labels; test tasks are drawn from the 423 test characters with
a random 90-degree rotation per class and 15 queries per class (600 tasks per setting), as for the
supervised rows.

Parts, each a row group of ``benchmarks/results/unsupervised.{json,md}``:

* ``embedding``: a SimCLR embedding (jaxmeta.unsupervised.ContrastiveEncoder, the conv-4 trunk and a
  projection head; random affine views, NT-Xent at temperature 0.5, Adam 1e-3, ``--encoder-steps``
  batches of 256 images), trained here without labels; then 1-nearest neighbour and logistic regression
  on its 64-dimensional features of each test task's support set (rows ``embedding-1nn``,
  ``embedding-logistic``).
* ``cactus-maml``, ``cactus-protonet``: ``--partitions`` k-means partitions of that embedding into
  ``--clusters`` clusters (the paper: 500), randomly rescaled; tasks of 20 clusters, 1 support and 5 query
  images each (the reference code's training tasks); MAML with inner lr 0.05, 5 inner steps, meta-batch 8,
  Adam 1e-3 (the reference code), and ProtoNets on the same tasks, one per meta-step, Adam 1e-3; each for
  ``--budget-minutes``. MAML's 20-way head is cut to its first ``ways`` outputs for narrower test tasks,
  and it is scored after its 5 training steps; the same trained model serves all four settings.
* ``transfer``: the conv-4 trained as an ordinary classifier on the 4,400 meta-training classes (the
  1,100 characters in four rotations) for ``--budget-minutes`` (Adam 1e-3, batches of 256), then per test
  task a new head fitted on the support features (``transfer``: linear, ``transfer-cosine``: the cosine
  head of Chen et al. 2019), and the same trunk as a MAML initialisation with a zero head adapted for 10
  steps without meta-training (``multitask-init``: lr 0.4 for 5-way, 0.1 for 20-way, Finn et al.'s).

Supervised MAML and ProtoNets at their recorded budgets are read from ``benchmarks/results/omniglot.json``.
"""

import argparse
import functools
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from omniglot import evaluate_accuracy  # noqa: E402

import jaxmeta  # noqa: E402
from jaxmeta import metric, registry  # noqa: E402
from jaxmeta.baselines import (embedding_accuracy, logistic_regression_predict, multitask_init,  # noqa: E402
                               nearest_neighbour, transfer_accuracy, trunk_params)
from jaxmeta.data.episodes import classification_tasks, with_rotations  # noqa: E402
from jaxmeta.data.omniglot import load_omniglot, split_characters  # noqa: E402
from jaxmeta.data.paths import data_root  # noqa: E402
from jaxmeta.models import Conv4, ConvEmbedding, functional, onednn_conv  # noqa: E402
from jaxmeta.training import ImageBatches, init_classifier, make_classifier_step, restore_run, train  # noqa: E402
from jaxmeta.unsupervised import (CactusSampler, ContrastiveEncoder, UnlabelledImages, embed_images,  # noqa: E402
                                  make_contrastive_step, partitions)

PARTS = ("embedding", "cactus-maml", "cactus-protonet", "transfer")
SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))
PUBLISHED = {  # Hsu et al. 2019, Table 1, Omniglot, ACAI embedding: 5w1s, 5w5s, 20w1s, 20w5s
    "cactus-maml": (68.84, 87.78, 48.09, 73.36),
    "cactus-protonet": (68.12, 83.58, 47.75, 66.27),
}
SUPERVISED = ("maml", "protonet")  # rows read from omniglot.json
TRAIN_TASKS = {"ways": 20, "shots": 1, "queries": 5}
CACTUS_MAML = {"inner_lr": 0.05, "inner_steps": 5, "meta_batch": 8}
MULTITASK_STEPS, MULTITASK_LR = 10, {5: 0.4, 20: 0.1}
QUICK = {"encoder_steps": 4, "encoder_batch": 32, "partitions": 2, "clusters": 40, "budget_minutes": 0.2,
         "eval_tasks": 4, "iterations": 3}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--encoder-steps", type=int, default=2000, help="contrastive training steps")
    parser.add_argument("--encoder-batch", type=int, default=256, help="images per contrastive batch")
    parser.add_argument("--partitions", type=int, default=100, help="k-means partitions (the paper: 100)")
    parser.add_argument("--clusters", type=int, default=500, help="clusters per partition (the paper: 500)")
    parser.add_argument("--budget-minutes", type=float, default=30.0,
                        help="training time of CACTUs-MAML, CACTUs-ProtoNets and the pretrained classifier each")
    parser.add_argument("--iterations", type=int, default=60000, help="meta-steps at most (the budget ends first)")
    parser.add_argument("--eval-tasks", type=int, default=600)
    parser.add_argument("--settings", nargs="+", choices=[f"{w}w{s}s" for w, s in SETTINGS],
                        default=[f"{w}w{s}s" for w, s in SETTINGS], help="the test settings to score")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="continue the parts' training from their checkpoints (without it, a part whose run "
                             "exists is restored and only evaluated)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of every part into runs/unsupervised-quick")
    parser.add_argument("--run-dir", type=Path, default=None, help="default runs/unsupervised(-quick)")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="default benchmarks/results (runs/unsupervised-quick with --quick)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    for name in ("encoder_steps", "encoder_batch", "partitions", "clusters", "iterations", "eval_tasks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.budget_minutes > 0:
        parser.error("--budget-minutes must be positive")
    args.settings = [setting for setting in SETTINGS if f"{setting[0]}w{setting[1]}s" in args.settings]
    root = Path("runs") / ("unsupervised-quick" if args.quick else "unsupervised")
    args.run_dir = args.run_dir or root
    args.results_dir = args.results_dir or (root if args.quick else common.RESULTS_DIR)
    return args


def conv() -> str:
    """oneDNN's convolutions where built and float32 is the default (they compute in float32 only), else im2col."""
    return "onednn" if onednn_conv.available() and not jax.config.jax_enable_x64 else "im2col"


def row(name, ways, shots, accuracies, **extra) -> tuple[str, dict]:
    """A result row from per-task accuracies: mean and 95% CI (percent), printed as it is made."""
    mean, ci = jaxmeta.confidence_interval(np.asarray(accuracies))
    return summary_row(name, ways, shots, mean, ci, int(np.asarray(accuracies).shape[0]), **extra)


def summary_row(name, ways, shots, mean, ci, tasks, **extra) -> tuple[str, dict]:
    """A result row from a mean and a 95% CI (fractions), printed as it is made."""
    key = f"{name}-{ways}w{shots}s"
    value = {"method": name, "ways": ways, "shots": shots, "accuracy": 100 * float(mean), "ci": 100 * float(ci),
             "tasks": tasks, **extra}
    print(f"{key}: {common.mean_ci(value['accuracy'], value['ci'])}", flush=True)
    return key, value


def test_key(args, ways, shots):
    """The key of a setting's test tasks: every method (and evaluate_accuracy) draws the same tasks from it."""
    return jax.random.fold_in(jax.random.key(args.seed + 1), 100 * ways + shots)


def test_tasks(args, test_images, ways, shots):
    return classification_tasks(test_key(args, ways, shots), test_images, args.eval_tasks, ways=ways, shots=shots,
                                queries=15, rotate=True, dtype="uint8")


def chunk(ways, shots) -> int:
    return max(1, 4000 // (ways * (shots + 15)))  # about 4,000 images per call


def run_training(args, name, step, state, source, config, *, num_steps, budget_minutes=None, seed_offset=0):
    """Train in ``run_dir/name`` (progress bar, checkpoints, ``--resume`` continues), or restore the finished
    run there when it exists and ``--resume`` is not given (so a rerun evaluates without training again)."""
    run_dir = args.run_dir / name
    config = {"part": name, "seed": args.seed, "split_seed": args.split_seed, **config}
    if (run_dir / "config.json").exists() and not args.resume:
        return restore_run(run_dir, config, state)
    return train(step, state, source, key=jax.random.key(args.seed + 100 + seed_offset), num_steps=num_steps,
                 run_dir=run_dir, config=config, resume=args.resume, checkpoint_every=200, steps_per_call=10,
                 budget_seconds=None if budget_minutes is None else 60 * budget_minutes,
                 progress=not args.no_progress, description=name)


def train_encoder(args, train_images):
    """The SimCLR encoder, trained (or restored) in ``run_dir/encoder``: ``(module, params, seconds)``."""
    encoder = ContrastiveEncoder(conv=conv())
    optimizer = optax.adam(1e-3)
    params = encoder.init(jax.random.key(args.seed), jnp.zeros((2, 28, 28, 1)))["params"]
    step = make_contrastive_step(lambda p, x: encoder.apply({"params": p}, x), optimizer)
    result = run_training(args, "encoder", step, init_classifier(params, optimizer),
                          UnlabelledImages.create(train_images, batch_size=args.encoder_batch),
                          {"steps": args.encoder_steps, "batch": args.encoder_batch, "temperature": 0.5},
                          num_steps=args.encoder_steps)
    return encoder, result.state.meta_params, trained(result)["train_seconds"] or float("nan")


def embedding_part(args, encoder, params, test_images, encoder_seconds) -> dict:
    embed = lambda p, x: encoder.apply({"params": p}, x, project=False)  # noqa: E731
    rows = {}
    for ways, shots in args.settings:
        tasks = test_tasks(args, test_images, ways, shots)
        logistic = functools.partial(logistic_regression_predict, num_classes=ways)
        for name, predict in (("embedding-1nn", nearest_neighbour), ("embedding-logistic", logistic)):
            key, rows[key] = row(name, ways, shots, embedding_accuracy(embed, params, tasks, predict,
                                                                       chunk_size=chunk(ways, shots)),
                                 encoder_steps=args.encoder_steps, encoder_seconds=encoder_seconds)
    return rows


def cactus_sampler(args, encoder, params, train_images, meta_batch):
    embedding = embed_images(lambda p, x: encoder.apply({"params": p}, x, project=False), params, train_images)
    started = time.perf_counter()
    clusters = partitions(jax.random.key(args.seed + 3), embedding, k=args.clusters, count=args.partitions,
                          progress=not args.no_progress)
    sampler = CactusSampler.create(train_images, clusters, meta_batch, **TRAIN_TASKS, dtype="uint8")
    print(sampler.summary(), flush=True)
    return sampler, {"partition_seconds": time.perf_counter() - started, "partitions": args.partitions,
                     "clusters": args.clusters, "usable_clusters_median": float(np.median(sampler.usable_clusters())),
                     "sampler": sampler.summary()}


def train_learner(args, name, learner, optimizer, params, sampler, task_chunk=None):
    config = {"budget_minutes": args.budget_minutes, "iterations": args.iterations, "partitions": args.partitions,
              "clusters": args.clusters, "encoder_steps": args.encoder_steps, **TRAIN_TASKS}
    return run_training(args, name, jaxmeta.make_meta_step(learner, optimizer, task_chunk=task_chunk),
                        jaxmeta.init_state(learner, optimizer, params), sampler, config, num_steps=args.iterations,
                        budget_minutes=args.budget_minutes, seed_offset=len(name))


def trained(result) -> dict:
    seconds = [r["elapsed_seconds"] for r in result.records if r["kind"] == "train"]
    return {"meta_steps": int(result.state.step), "train_seconds": seconds[-1] if seconds else None,
            "stopped": result.stopped}


def cactus_maml_part(args, sampler, details, test_images) -> dict:
    model = Conv4(num_classes=TRAIN_TASKS["ways"], conv=conv())
    learner = jaxmeta.maml(jaxmeta.classification_loss(functional(model)), inner_lr=CACTUS_MAML["inner_lr"],
                           inner_steps=CACTUS_MAML["inner_steps"])
    params = model.init(jax.random.key(args.seed + 5), np.zeros((1, 28, 28, 1), np.uint8))["params"]
    result = train_learner(args, "cactus-maml", learner, optax.adam(1e-3), params, sampler, task_chunk=1)
    rows = {}
    for ways, shots in args.settings:  # the 20-way head cut to the test task's ways
        narrow = Conv4(num_classes=ways, conv=conv())
        scorer = jaxmeta.maml(jaxmeta.classification_loss(functional(narrow)), inner_lr=CACTUS_MAML["inner_lr"],
                              inner_steps=CACTUS_MAML["inner_steps"])
        head = result.state.meta_params["head"]
        cut = {**result.state.meta_params, "head": {"kernel": head["kernel"][:, :ways], "bias": head["bias"][:ways]}}
        mean, ci = evaluate_accuracy(scorer, cut, test_images, count=args.eval_tasks, ways=ways, shots=shots,
                                     queries=15, steps=CACTUS_MAML["inner_steps"],
                                     key=test_key(args, ways, shots),
                                     task_chunk=1)
        key, rows[key] = summary_row("cactus-maml", ways, shots, mean[-1], ci[-1], args.eval_tasks, **trained(result),
                                     **details)
    return rows


def cactus_protonet_part(args, sampler, details, test_images) -> dict:
    model = registry.metric_model("protonet", ways=TRAIN_TASKS["ways"], conv=conv())
    example = jax.tree.map(lambda x: x[0], sampler(jax.random.key(0)))
    params = model.init(jax.random.key(args.seed + 6), example.support[0], example.support[1],
                        example.query[0])["params"]
    result = train_learner(args, "cactus-protonet", metric.metric_learner(model), optax.adam(1e-3), params,
                           sampler.replace(batch_size=1))
    rows = {}
    for ways, shots in args.settings:
        scorer = metric.metric_learner(registry.metric_model("protonet", ways=ways, conv=conv()))
        mean, ci = evaluate_accuracy(scorer, result.state.meta_params, test_images, count=args.eval_tasks, ways=ways,
                                     shots=shots, queries=15, steps=None,
                                     key=test_key(args, ways, shots))
        key, rows[key] = summary_row("cactus-protonet", ways, shots, mean[-1], ci[-1], args.eval_tasks,
                                     **trained(result), **details)
    return rows


def transfer_part(args, train_classes, test_images) -> dict:
    rotated = with_rotations(train_classes)  # [1100, 4, 20, 28, 28]: every rotation a class of its own
    images = rotated.reshape(-1, 28, 28, 1)
    labels = np.repeat(np.arange(rotated.shape[0] * 4), rotated.shape[2])
    model = Conv4(num_classes=rotated.shape[0] * 4, conv=conv())
    optimizer = optax.adam(1e-3)
    params = model.init(jax.random.key(args.seed + 7), np.zeros((1, 28, 28, 1), np.uint8))["params"]
    result = run_training(args, "pretrained", make_classifier_step(functional(model), optimizer),
                          init_classifier(params, optimizer), ImageBatches.create(images, labels, batch_size=256),
                          {"budget_minutes": args.budget_minutes, "iterations": args.iterations, "batch": 256},
                          num_steps=args.iterations, budget_minutes=args.budget_minutes, seed_offset=1)
    trunk = trunk_params(result.state.meta_params)
    embed = lambda p, x: ConvEmbedding(conv=conv()).apply({"params": p}, x)  # noqa: E731
    rows = {}
    for ways, shots in args.settings:
        tasks = test_tasks(args, test_images, ways, shots)
        for name, kind in (("transfer", "linear"), ("transfer-cosine", "cosine")):
            key, rows[key] = row(name, ways, shots, transfer_accuracy(
                embed, trunk, tasks, ways=ways, key=jax.random.key(args.seed + 9), kind=kind,
                chunk_size=chunk(ways, shots)), **trained(result))
        narrow = Conv4(num_classes=ways, conv=conv())
        learner = jaxmeta.maml(jaxmeta.classification_loss(functional(narrow)), inner_lr=MULTITASK_LR[ways],
                               inner_steps=MULTITASK_STEPS)
        mean, ci = evaluate_accuracy(learner, multitask_init(result.state.meta_params, ways), test_images,
                                     count=args.eval_tasks, ways=ways, shots=shots, queries=15, steps=MULTITASK_STEPS,
                                     key=test_key(args, ways, shots),
                                     task_chunk=1)
        key, rows[key] = summary_row("multitask-init", ways, shots, mean[-1], ci[-1], args.eval_tasks,
                                     inner_lr=MULTITASK_LR[ways], inner_steps=MULTITASK_STEPS, **trained(result))
    return rows


def supervised_rows() -> dict:
    """Supervised MAML and ProtoNets from benchmarks/results/omniglot.json, where recorded."""
    recorded = common.read_json(common.RESULTS_DIR / "omniglot.json", default={})
    rows = {}
    for name in SUPERVISED:
        for ways, shots in SETTINGS:
            found = recorded.get(f"{name}-{ways}w{shots}s")
            if found:
                mean, ci = found["accuracy_after_training_steps"]
                rows[f"supervised-{name}-{ways}w{shots}s"] = {
                    "method": f"supervised-{name}", "ways": ways, "shots": shots, "accuracy": 100 * mean,
                    "ci": 100 * ci, "tasks": found["test_tasks"], "meta_steps": found["meta_steps"],
                    "budget_minutes": found["budget_minutes"], "source": "omniglot.json",
                    "host": common.hardware(found["environment"]) if "environment" in found else "not recorded"}
    return rows


METHODS = ("embedding-1nn", "embedding-logistic", "cactus-maml", "cactus-protonet", "transfer", "transfer-cosine",
           "multitask-init", "supervised-maml", "supervised-protonet")


def markdown(rows: dict, environment: dict) -> str:
    table = []
    for method in METHODS:
        cells = [rows.get(f"{method}-{w}w{s}s") for w, s in SETTINGS]
        if not any(cells):
            continue
        published = PUBLISHED.get(method)
        table.append([method, *("-" if c is None else common.mean_ci(c["accuracy"], c["ci"]) for c in cells),
                      "-" if published is None else " / ".join(f"{p:.2f}" for p in published)])
    lines = ["# Unsupervised meta-learning (CACTUs) and the baselines on Omniglot: test accuracy (%)", "",
             f"Host: {common.hardware(environment)}. Mean ± 95% CI over the test tasks (423 test characters, "
             "random 90-degree rotation per class, 15 queries per class). Generated by "
             "`benchmarks/unsupervised.py`; the protocol is in its docstring.", "",
             *common.markdown_table(["method", *(f"{w}-way {s}-shot" for w, s in SETTINGS),
                                     "published (Hsu et al. 2019, ACAI)"], table), ""]
    for method in METHODS:
        example = next((r for r in rows.values() if r["method"] == method), None)
        if example and "source" in example:  # a supervised row: each setting has its own run and host
            runs = [f"{r['ways']}w{r['shots']}s {r['meta_steps']} steps on {r['host']}" for r in rows.values()
                    if r["method"] == method]
            lines.append(f"- {method} (from {example['source']}, {example['budget_minutes']:g} min each): "
                         + "; ".join(runs))
        elif example and "meta_steps" in example:
            budget = example.get("budget_minutes")
            lines.append(f"- {method}: {example['meta_steps']} steps" + (
                f" in {example['train_seconds'] / 60:.1f} min" if example.get("train_seconds") else "") + (
                f" (budget {budget:g} min)" if budget else "") + (f"; {example['sampler']}" if "sampler" in example
                                                                   else ""))
        if example and "encoder_steps" in example:
            lines.append(f"- {method}: on the contrastive embedding after {example['encoder_steps']} steps "
                         f"({example['encoder_seconds'] / 60:.1f} min)")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    data = load_omniglot(data_root() / "omniglot")
    split = split_characters(data, "maml", seed=args.split_seed)
    train_classes = data.images[split.train]
    train_images = train_classes.reshape(-1, 28, 28)
    test_images = jax.device_put(data.images[split.test])
    environment = common.environment()
    path = args.results_dir / "unsupervised.json"
    rows = common.read_json(path, default={})

    def record(new_rows):
        for value in new_rows.values():
            value["environment"] = environment
        rows.update(new_rows)
        rows.update(supervised_rows())
        args.results_dir.mkdir(parents=True, exist_ok=True)
        common.write_json(path, rows)
        common.write_atomically(args.results_dir / "unsupervised.md", markdown(rows, environment))

    needs_encoder = {"embedding", "cactus-maml", "cactus-protonet"} & set(args.parts)
    if needs_encoder:
        encoder, params, encoder_seconds = train_encoder(args, train_images)
    if "embedding" in args.parts:
        record(embedding_part(args, encoder, params, test_images, encoder_seconds))
    if {"cactus-maml", "cactus-protonet"} & set(args.parts):
        sampler, details = cactus_sampler(args, encoder, params, train_images, CACTUS_MAML["meta_batch"])
        details = {**details, "encoder_steps": args.encoder_steps, "encoder_seconds": encoder_seconds,
                   "budget_minutes": args.budget_minutes}
        if "cactus-maml" in args.parts:
            record(cactus_maml_part(args, sampler, details, test_images))
        if "cactus-protonet" in args.parts:
            record(cactus_protonet_part(args, sampler, details, test_images))
    if "transfer" in args.parts:
        record(dict((k, {**v, "budget_minutes": args.budget_minutes})
                    for k, v in transfer_part(args, train_classes, test_images).items()))
    print(markdown(rows, environment))
    return rows


if __name__ == "__main__":
    main()
