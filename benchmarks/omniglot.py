"""Few-shot Omniglot with the gradient-based and the metric-based learners.

Gradient-based: MAML, MAML++, FOMAML, ANIL, Meta-SGD, Reptile, and the LSTM
meta-learner of Ravi and Larochelle (``meta-lstm``: the conv-4's parameters
are the cell state of a coordinate-wise LSTM that learns the update rule and
the initialisation). Metric-based (one episode per meta step, no inner
loop): Prototypical networks (``protonet``, ``gaussian-protonet``), Matching
networks (``matching``, ``matching-fce`` with full-context embeddings),
Relation networks (``relation``), Siamese networks
(``siamese``). Model-based: Meta Networks (``metanet``), fast weights from
the support set's gradients read by attention, trained like the metric
learners (one episode per meta step, 15 queries per class, the test setting).

Protocol (Finn et al. 2017 and its official code, as learn2learn reproduces it):
the 1,623 characters split 1,100 / 100 / 423 (train / validation / test,
from ``--split-seed``; ``--split protonet`` trains on 1,200 and ``--split lake``
on the 964 background characters, testing on the 659 evaluation ones, both
without validation); every class of a task rotated by a random multiple of
90 degrees (in all three splits); 28x28 images; the conv-4 with batch norm on
the task's own statistics; 15 query examples per class in training; Adam 1e-3;
60,000 meta-iterations. Defaults by task size (Finn et al., appendix A.1):

* 5-way: 1 inner step at lr 0.4, meta-batch 32;
* 20-way: 5 inner steps at lr 0.1, meta-batch 16.

Metric learners, each with its paper's training episodes (the test episodes
stay ``--ways``-way ``--shots``-shot): ProtoNets train on 60-way episodes with 5
queries per class and Adam 1e-3 halved every 2,000 episodes (Snell et al.);
Relation networks train on the test setting with 19 / 15 / 10 / 5 queries per
class for 5w1s / 5w5s / 20w1s / 20w5s, each module's gradient clipped to norm
0.5 (Sung et al. and their code); Matching and Siamese networks on the test
setting with 15 queries, Matching networks attending by negative squared
distance (``--similarity cosine``: the paper's equation, which trains slowly).
The embedding is the conv-4 (the Relation network's without padding in its
first two blocks and without pooling in its last two, as in its code). All use the
same split, rotations and test tasks as the gradient-based learners, so every
row of the results table is measured on the same kind of episodes.

The LSTM meta-learner takes 5 updates on the support set (``--inner-steps``)
and meta-batches like MAML (32 tasks for 5-way, 16 for 20-way), Adam 1e-3:
these are our choices, since its paper reports miniImageNet only.

Reptile (``reptile``) follows its paper's protocol (Nichol et al. 2018, the
reference code's Omniglot flags): Adam with beta1 = 0 in the inner loop at
lr 0.001 (20-way: 0.0005), training tasks of 10 shots per class, 5 inner
steps (20-way: 10) on mini-batches of 10 (20-way: 20), 5 tasks per meta-step,
the outer step an SGD step of size 1 annealed linearly to 0 over
``--iterations``; its paper's network is an option (``--downsample stride``: stride-2
convolutions, no pooling); the inner Adam's moments carried from task to task, as in
the paper's code (``--inner-state persistent``; ``fresh`` restarts them for
every task); evaluation after 50 inner steps on the whole support set,
with 1 query per class, non-transductive (each query predicted beside the
support set alone; ``--transductive`` for all queries at once, as the other
learners are scored). ``--inner-optimizer sgd`` gives plain SGD instead.

MAML++ (``maml++``, Antoniou et al. 2019) is MAML with learned per-layer,
per-step inner learning rates, the multi-step loss annealed over
``--msl-anneal-steps``, first-order meta-gradients for the first
``--first-order-steps`` meta-steps, and per-step batch-norm weights and
biases; 5 inner steps, evaluated after the same 5 (its per-step values exist
for those only).

The MAML variants of the meta-learning book (their rows go to
``benchmarks/results/maml_variants.{json,md}``, beside MAML at the same budget):
CAVIA (``cavia``: only a 100-entry context, fed to a FiLM layer after the
third block, adapts, 2 steps at lr 1.0, 16 tasks per meta-step; its code's
image settings), TAML (``taml-entropy``, ``taml-theil``: MAML with the
entropy or inequality regulariser, ``--taml-weight``), ADML (``adml``: MAML
on clean and FGSM support sets at ``--epsilon``, each judged on the other
kind of queries) and gradient agreement (``--aggregate gradient-agreement``,
any learner: the task gradients weighted by the agreement of the tasks' inner-loop updates, or of the task
gradients themselves with ``--agreement-vectors task-grad``).
``--test-epsilons`` also scores the trained model on FGSM queries (attacked
against the adapted model) at each epsilon.

Final evaluation: ``--eval-tasks`` (600) test tasks with ``shots`` support and
``--eval-queries`` (15) query examples per class; accuracy mean and 95% CI
after the training number of inner steps and after ``--eval-steps`` (10).

    python benchmarks/omniglot.py --algorithm maml --ways 5 --shots 1 --budget-minutes 30
    python benchmarks/omniglot.py ... --resume      # continue a stopped or killed run

On the CPU the defaults switch to the faster CPU path: ``--conv onednn``
(oneDNN's direct convolutions through XLA's FFI, when ``make onednn`` has
built them), else ``--conv im2col`` (convolutions as matrix products of image
patches); same function and parameters. And ``--task-chunk 1`` (the tasks of a
meta-batch one after the other, so that activations stay in the cache). All
compute the same meta step; the measurements behind them are in
``docs/design/onednn.md``.

Each run lives in ``--run-dir`` (default ``runs/omniglot/<algorithm>-<ways>w<shots>s``):
config, orbax checkpoints, ``metrics.jsonl``, ``learning_curve.png`` and
``result.json``. With ``--record`` the result also becomes a row of
``benchmarks/results/omniglot.{json,md}`` beside the published numbers.
"""

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import maml_variants  # noqa: E402

import jaxmeta  # noqa: E402
from jaxmeta import registry  # noqa: E402
from jaxmeta.data.episodes import EpisodeSampler, classification_tasks  # noqa: E402
from jaxmeta.data.omniglot import load_omniglot, split_characters  # noqa: E402
from jaxmeta.data.paths import data_root  # noqa: E402
from jaxmeta import distributed, metric  # noqa: E402
from jaxmeta.algorithms.adml import adversarial_score  # noqa: E402
from jaxmeta.core.aggregation import VECTORS, gradient_agreement  # noqa: E402
from jaxmeta.models import Conv4, functional, one_query_at_a_time, with_support_inputs  # noqa: E402
from jaxmeta.models.context import ContextConv4, functional_with_context  # noqa: E402
from jaxmeta.models import onednn_conv  # noqa: E402
from jaxmeta.models.conv import INITIALISATIONS  # noqa: E402
from jaxmeta.algorithms.reptile import outer_optimizer as reptile_outer_optimizer  # noqa: E402
from jaxmeta.training import restore_run, train  # noqa: E402

VARIANTS = ("cavia", "taml-entropy", "taml-theil", "adml")  # the MAML variants: rows in maml_variants.*
GRADIENT_BASED = ("maml", "maml++", "fomaml", "anil", "metasgd", "reptile", "meta-lstm") + VARIANTS
METRIC_BASED = ("protonet", "gaussian-protonet", "matching", "matching-fce", "relation", "siamese")
MODEL_BASED = ("metanet",)
NO_INNER_LOOP = METRIC_BASED + MODEL_BASED  # trained on the episode loss, scored in one forward pass
ALGORITHMS = GRADIENT_BASED + NO_INNER_LOOP

# Published test accuracy (%), 5w1s / 5w5s / 20w1s / 20w5s.
PUBLISHED = {
    "maml": ((98.7, 99.9, 95.8, 98.9), "Finn et al. 2017, Table 1"),
    "maml++": ((99.47, 99.85, 97.65, 99.33), "Antoniou et al. 2019, Table 1, as listed by Papers with Code"),
    "fomaml": ((98.3, 99.2, 89.4, 97.9), "Nichol et al. 2018, Table 1 (first-order MAML)"),
    "reptile": ((95.39, 98.90, 88.14, 96.65), "Nichol et al. 2018, Table 2 (non-transductive; transductive "
                "97.68 / 99.48 / 89.43 / 97.12)"),
    "metasgd": ((99.53, 99.93, 95.93, 98.97), "Li et al. 2017, Table 2"),
    "anil": ((None, None, None, None), "Raghu et al. 2020 report no Omniglot numbers"),
    "meta-lstm": ((None, None, None, None), "Ravi and Larochelle 2017 report miniImageNet only (43.44 / 60.60, "
                  "5-way 1 / 5-shot)"),
    "protonet": ((98.8, 99.7, 96.0, 98.9), "Snell et al. 2017, Table 1"),
    "gaussian-protonet": ((None, None, None, None), "Fort 2017 (numbers not re-checked here)"),
    "matching": ((98.1, 98.9, 93.8, 98.5), "Vinyals et al. 2016, Table 1"),
    "matching-fce": ((98.1, 98.9, 93.8, 98.5), "Vinyals et al. 2016, Table 1 (Omniglot rows without FCE)"),
    "relation": ((99.6, 99.8, 97.6, 99.1), "Sung et al. 2018, Table 1"),
    "siamese": ((96.7, 98.4, 88.0, 96.5), "Koch et al. 2015 as re-evaluated by Vinyals et al. 2016, Table 1"),
    "metanet": ((98.95, None, 97.0, None), "Munkhdalai and Yu 2017, Table 1 (1-shot only)"),
}
# The variants' published numbers live with their table (benchmarks/maml_variants.py).
RELATION_QUERIES = {(5, 1): 19, (5, 5): 15, (20, 1): 10, (20, 5): 5}
SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))
SPLIT_PARTS = {  # what each --split trains and tests on, for messages and the results table
    "maml": "1,100 / 100 / 423 characters (train / validation / test) shuffled from all 1,623",
    "protonet": "it trains on 1,200 characters and tests on 423, shuffled from all 1,623",
    "lake": "it trains on the 964 background characters (30 alphabets) and tests on the 659 evaluation "
            "characters (20 alphabets)",
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="maml")
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=None,
                        help="query examples per class in training; default 15 (ProtoNets 5, Relation 19/15/10/5)")
    parser.add_argument("--train-ways", type=int, default=None,
                        help="classes per training episode; default --ways (ProtoNets 60)")
    parser.add_argument("--train-shots", type=int, default=None,
                        help="support examples per class in training tasks; default --shots (Reptile 10)")
    parser.add_argument("--inner-steps", type=int, default=None,
                        help="default: 1 (5-way), 5 (20-way, MAML++, meta-lstm), Reptile 5 (20-way: 10)")
    parser.add_argument("--inner-lr", type=float, default=None,
                        help="default: 0.4 (5-way), 0.1 (20-way; MAML++'s initial rates), Reptile's Adam 0.001 "
                             "(20-way: 0.0005); meta-lstm learns its own")
    parser.add_argument("--inner-optimizer", choices=("sgd", "adam"), default=None,
                        help="the inner loop's optimizer; default sgd (Reptile: adam, with --inner-beta1)")
    parser.add_argument("--inner-beta1", type=float, default=0.0, help="the inner Adam's beta1 (Reptile's paper: 0)")
    parser.add_argument("--inner-state", choices=("fresh", "persistent"), default=None,
                        help="Reptile: the inner optimizer's state restarts for every task, or runs on across tasks "
                             "and meta-steps as in the paper's code (default persistent)")
    parser.add_argument("--inner-batch", type=int, default=None,
                        help="Reptile: support examples per inner step in training; default 10 (20-way: 20)")
    parser.add_argument("--transductive", action=argparse.BooleanOptionalAction, default=None,
                        help="gradient-based learners: score all queries of a test task at once (batch-norm "
                             "statistics over all of them) or each beside the support set alone; default "
                             "transductive, Reptile not (its paper's default)")
    parser.add_argument("--similarity", choices=("euclidean", "cosine"), default=None,
                        help="Matching networks' attention: negative squared distance (default; reproduces the "
                             "paper's numbers) or the paper's cosine (jaxmeta.metric.matching)")
    parser.add_argument("--msl-anneal-steps", type=int, default=500,
                        help="MAML++: meta-steps over which the multi-step loss anneals to the last step's loss")
    parser.add_argument("--first-order-steps", type=int, default=250,
                        help="MAML++: meta-steps with first-order meta-gradients before the exact ones")
    parser.add_argument("--aggregate", choices=("mean", "gradient-agreement"), default="mean",
                        help="how a meta-batch's task gradients combine: their mean, or weighted by their agreement "
                             "(Eshratifar et al. 2018; jaxmeta.gradient_agreement)")
    parser.add_argument("--agreement-normaliser", choices=("paper", "book"), default=None,
                        help="gradient agreement's normaliser (jaxmeta.core.aggregation); default paper")
    parser.add_argument("--agreement-vectors", choices=[v.replace("_", "-") for v in VECTORS], default=None,
                        help="what gradient agreement compares: the tasks' inner-loop updates (the paper's "
                             "Algorithm 1; the default for learners with an inner loop) or their task gradients "
                             "(the only choice for learners without one)")
    parser.add_argument("--context-size", type=int, default=None, help="CAVIA: context entries; default 100")
    parser.add_argument("--taml-weight", type=float, default=None,
                        help="TAML's lambda; default 0.1 (entropy), 1 (Theil)")
    parser.add_argument("--epsilon", type=float, default=None,
                        help="ADML: the FGSM step of its adversarial training examples (images in [0, 1]); "
                             "default 0.1")
    parser.add_argument("--test-epsilons", type=float, nargs="*", default=[],
                        help="also score the trained model on FGSM queries at these epsilons (gradient-based "
                             "learners; the attack targets the adapted model)")
    parser.add_argument("--meta-batch", type=int, default=None, help="default: 32 (5-way), 16 (20-way), Reptile 5")
    parser.add_argument("--meta-lr", type=float, default=None, help="default: Adam 1e-3; Reptile SGD 1.0 -> 0")
    parser.add_argument("--iterations", type=int, default=60_000)
    parser.add_argument("--budget-minutes", type=float, default=None, help="stop training after this wall time")
    parser.add_argument("--width", type=int, default=64, help="filters per conv layer")
    parser.add_argument("--downsample", choices=("pool", "stride"), default=None,
                        help="the gradient-based learners' conv-4: 2x2 max-pooling after stride-1 convolutions (Finn "
                             "et al.; the default), or stride-2 convolutions without pooling (Nichol et al.'s network, "
                             "Reptile's default: 2x the meta-steps per second)")
    parser.add_argument("--init", choices=sorted(INITIALISATIONS), default=None,
                        help="the gradient-based learners' conv-4 initialisation (jaxmeta.models.conv.INITIALISATIONS);"
                             " default pytorch, which learns faster per meta-step than lecun (README); Reptile lecun")
    parser.add_argument("--conv", choices=("auto", "xla", "im2col", "onednn"), default="auto",
                        help="convolution implementation; auto: onednn on the CPU when built (make onednn) and "
                             "computing in float32, else im2col; xla elsewhere")
    parser.add_argument("--task-chunk", type=int, default=None,
                        help="tasks computed at once in a meta step; default: 1 on the CPU, all elsewhere")
    parser.add_argument("--devices", type=int, default=1,
                        help="split each meta-batch over this many devices (jaxmeta.distributed); the meta-batch "
                             "must be a multiple of it. A run may resume on another device count. On the CPU "
                             "this many host devices are made (2 on 2 cores: about 10%% more tasks/s than 1 with "
                             "--conv im2col, none with onednn, whose threads already use both cores).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("maml", "protonet", "lake"), default="maml",
                        help="the character split (jaxmeta.data.omniglot.split_characters): maml 1,100 / 100 / 423 "
                             "(train / validation / test, shuffled from --split-seed); protonet 1,200 / 0 / 423; "
                             "lake the 964 background characters (30 alphabets) / 0 / the 659 evaluation ones "
                             "(20 alphabets). The last two have no validation characters: no validation runs")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--validate-every", type=int, default=None,
                        help="meta-steps between validations; default 500 (none with --split protonet or lake)")
    parser.add_argument("--validation-tasks", type=int, default=200)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--steps-per-call", type=int, default=10)
    parser.add_argument("--eval-tasks", type=int, default=600)
    parser.add_argument("--eval-queries", type=int, default=None, help="default 15 (Reptile 1)")
    parser.add_argument("--eval-steps", type=int, default=None,
                        help="inner steps in the final evaluation; default 10 (Reptile 50, MAML++ its training steps)")
    parser.add_argument("--extra-test-ways", type=int, nargs="*", default=[],
                        help="metric learners: also test the trained model on episodes of these many ways "
                             "(ProtoNets train one model on 60-way episodes for 5- and 20-way tests)")
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="test the newest checkpoint in --run-dir (same settings) without training")
    parser.add_argument("--record", action="store_true",
                        help="add the result to benchmarks/results/omniglot.* (the MAML variants, gradient agreement "
                             "and --table maml-variants: maml_variants.*)")
    parser.add_argument("--table", choices=("omniglot", "maml-variants"), default=None,
                        help="the results table --record writes; default maml-variants for the variants and "
                             "--aggregate gradient-agreement, omniglot otherwise")
    parser.add_argument("--results-dir", type=Path, default=common.RESULTS_DIR)
    parser.add_argument("--root", type=Path, default=None, help="default: $JAXMETA_DATA/omniglot")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    twenty = args.ways >= 20
    metric_based = args.algorithm in NO_INNER_LOOP
    reptile = args.algorithm == "reptile"
    setting = "omniglot-20way" if twenty else "omniglot-5way"
    paper = None if metric_based else registry.defaults(args.algorithm, setting)
    hyper = {} if paper is None else paper.learner
    if args.train_shots is None:
        args.train_shots = 10 if reptile else args.shots
    if args.inner_optimizer is None and not metric_based:
        args.inner_optimizer = hyper.get("inner_optimizer", "sgd")
    if args.inner_batch is None and reptile:
        args.inner_batch = hyper["inner_batch"]
    if args.downsample is None and not metric_based:
        args.downsample = "pool"  # Reptile too: its paper's stride-2 network measured worse at 30 min (README)
    if args.inner_state is None and reptile:
        args.inner_state = "persistent" if args.inner_optimizer == "adam" else "fresh"
    if args.transductive is None and not metric_based:
        args.transductive = not reptile
    if args.train_ways is None:
        args.train_ways = 60 if args.algorithm.endswith("protonet") else args.ways
    if args.queries is None:
        args.queries = {"protonet": 5, "gaussian-protonet": 5}.get(
            args.algorithm, RELATION_QUERIES.get((args.ways, args.shots), 15) if args.algorithm == "relation"
            else 1 if reptile else 15)  # Reptile's training queries only report the post-adaptation loss
    if args.inner_steps is None:
        args.inner_steps = hyper.get("inner_steps", 1)
    if args.inner_lr is None:  # meta-lstm learns its rule and records MAML's rate unused
        maml_rate = registry.defaults("maml", setting).learner["inner_lr"]
        args.inner_lr = hyper.get("inner_lr", hyper.get("lr_init", maml_rate))
    if args.meta_batch is None:
        args.meta_batch = 1 if paper is None else paper.meta_batch
    if args.eval_queries is None:
        args.eval_queries = 1 if reptile else 15
    if args.eval_steps is None:
        args.eval_steps = 50 if reptile else args.inner_steps if args.algorithm == "maml++" else 10
    if args.validate_every is None:
        args.validate_every = 500 if args.split == "maml" else 0
    if args.similarity is None and args.algorithm.startswith("matching"):
        args.similarity = "euclidean"
    if args.meta_lr is None:
        args.meta_lr = 1e-3 if paper is None else paper.meta_lr
    variant_options = {"cavia": ("context_size", "context_size"), "adml": ("epsilon", "epsilon"),
                       "taml-entropy": ("taml_weight", "weight"), "taml-theil": ("taml_weight", "weight")}
    if args.algorithm in variant_options:
        option, name = variant_options[args.algorithm]
        if getattr(args, option) is None:
            setattr(args, option, hyper[name])
    if args.aggregate == "gradient-agreement" and args.agreement_normaliser is None:
        args.agreement_normaliser = "paper"
    if args.aggregate == "gradient-agreement" and args.agreement_vectors is None:
        args.agreement_vectors = "task-grad" if args.algorithm in NO_INNER_LOOP else "update"
    if args.table is None:
        args.table = "maml-variants" if args.algorithm in VARIANTS or args.aggregate != "mean" else "omniglot"
    if args.init is None and not metric_based:  # Reptile's TensorFlow code: Glorot-uniform kernels, whose variance
        args.init = "lecun" if reptile else "pytorch"  # 2 / (fan_in + fan_out) is lecun's 1 / fan_in for 64 -> 64
    common.use_host_devices(args.devices)  # on the CPU, as many host devices as asked for
    on_cpu = jax.default_backend() == "cpu"
    if args.conv == "auto":  # XLA:CPU runs the kernel gradient of its direct convolution slowly
        onednn = onednn_conv.available() and not jax.config.jax_enable_x64  # oneDNN computes in float32
        args.conv = ("onednn" if onednn else "im2col") if on_cpu else "xla"
    if args.task_chunk is None and on_cpu:  # a whole meta-batch's activations overflow the CPU's cache
        args.task_chunk = 1
    if args.run_dir is None:
        args.run_dir = Path("runs/omniglot") / f"{args.algorithm}-{args.ways}w{args.shots}s"
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject impossible settings before anything is loaded or compiled."""
    for name in ("inner_lr", "meta_lr"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}.")
    for name in ("ways", "train_ways", "shots", "train_shots", "inner_batch", "msl_anneal_steps", "inner_steps",
                 "meta_batch", "iterations", "width", "validation_tasks", "checkpoint_every", "steps_per_call",
                 "eval_tasks", "eval_queries", "eval_steps", "task_chunk", "devices"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if args.validate_every < 0:
        parser.error(f"--validate-every must be non-negative (0: no validation), got {args.validate_every}.")
    if args.validate_every and args.split != "maml":
        parser.error(f"--split {args.split} has no validation characters: {SPLIT_PARTS[args.split]}. Drop "
                     "--validate-every (or pass 0) to train without validation, or use --split maml, which "
                     "validates on 100 characters held out of the pooled 1,623.")
    if args.queries < 0:
        parser.error(f"--queries must be non-negative, got {args.queries}.")
    if args.meta_batch % args.devices:
        parser.error(f"--meta-batch {args.meta_batch} does not split evenly over --devices {args.devices}; "
                     f"use a meta-batch that is a multiple of {args.devices}.")
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        parser.error(f"--budget-minutes must be positive, got {args.budget_minutes}.")
    if args.extra_test_ways and args.algorithm not in METRIC_BASED:
        parser.error("--extra-test-ways needs a metric learner: the output layer of a gradient-based learner or "
                     "of MetaNet has --ways units; train a separate run for each number of ways.")
    if args.downsample is not None and args.algorithm in NO_INNER_LOOP:
        parser.error("--downsample sets the conv-4 of the gradient-based learners; the metric learners and MetaNet "
                     "keep their modules' pooling.")
    if args.init is not None and args.algorithm in NO_INNER_LOOP:
        parser.error("--init sets the conv-4 of the gradient-based learners; the metric learners and MetaNet keep "
                     "their modules' initialisation.")
    if args.similarity is not None and not args.algorithm.startswith("matching"):
        parser.error(f"--similarity sets the Matching network's attention; {args.algorithm} has none: drop it.")
    if args.algorithm == "metanet" and args.train_ways != args.ways:
        parser.error("MetaNet's output layer has --ways units: --train-ways must equal --ways.")
    if args.transductive is not None and args.algorithm in NO_INNER_LOOP:
        parser.error(f"--transductive / --no-transductive choose how a gradient-based learner's batch norm sees the "
                     f"test queries; {args.algorithm} scores whole episodes: drop the flag.")
    for option, owner in (("context_size", "cavia"), ("epsilon", "adml")):
        if getattr(args, option) is not None and args.algorithm != owner:
            parser.error(f"--{option.replace('_', '-')} is an option of {owner}: drop it for {args.algorithm}.")
    if args.taml_weight is not None and not args.algorithm.startswith("taml"):
        parser.error(f"--taml-weight is TAML's lambda: drop it for {args.algorithm}.")
    if args.context_size is not None and args.context_size < 1:
        parser.error(f"--context-size must be at least 1 (CAVIA adapts only the context), got {args.context_size}.")
    for name, value in (("--epsilon", args.epsilon), ("--taml-weight", args.taml_weight),
                        *(("--test-epsilons", e) for e in args.test_epsilons)):
        if value is not None and not value >= 0:
            parser.error(f"{name} must be non-negative, got {value}.")
    for option in ("normaliser", "vectors"):
        if getattr(args, f"agreement_{option}") is not None and args.aggregate != "gradient-agreement":
            parser.error(f"--agreement-{option} configures --aggregate gradient-agreement: add that, or drop it.")
    if args.agreement_vectors == "update" and args.algorithm in NO_INNER_LOOP:
        parser.error(f"{args.algorithm} has no inner loop, so gradient agreement cannot compare inner-loop updates: "
                     "use --agreement-vectors task-grad.")
    if args.aggregate != "mean" and args.algorithm == "taml-theil":
        parser.error("taml-theil combines its task gradients itself (its penalty couples the tasks of a batch): "
                     "drop --aggregate.")
    if args.table == "omniglot" and (args.algorithm in VARIANTS or args.aggregate != "mean"):
        parser.error("The MAML variants and gradient agreement are recorded beside MAML in maml_variants.*: drop "
                     "--table omniglot.")
    if args.algorithm == "cavia" and args.downsample != "pool":
        parser.error("CAVIA's network is the pooled conv-4 with a FiLM layer: drop --downsample.")
    if args.test_epsilons and args.algorithm in NO_INNER_LOOP:
        parser.error(f"--test-epsilons attacks the queries of a learner with an inner loop; {args.algorithm} has none.")
    if args.inner_state is not None and args.algorithm != "reptile":
        parser.error("--inner-state applies to Reptile, whose pseudo-gradient does not differentiate the inner loop; "
                     "the other learners start every task's inner optimizer afresh.")
    if args.inner_state == "persistent" and args.inner_optimizer != "adam":
        parser.error("--inner-state persistent carries an inner optimizer's state, and plain SGD has none: use "
                     "--inner-optimizer adam, or --inner-state fresh.")
    if args.inner_batch is not None and args.algorithm != "reptile":
        parser.error("--inner-batch sets Reptile's inner mini-batches; the other learners adapt on the whole support "
                     "set.")
    if args.algorithm == "maml++" and args.eval_steps != args.inner_steps:
        parser.error(f"MAML++ learns per-step rates and batch norms for its {args.inner_steps} inner steps, so it is "
                     f"evaluated after those only: drop --eval-steps or set it to {args.inner_steps}.")
    if args.inner_optimizer is not None and args.algorithm in ("maml++", "meta-lstm") and \
            args.inner_optimizer != "sgd":
        parser.error(f"{args.algorithm} learns its own inner update rule; --inner-optimizer applies to maml, fomaml, "
                     "anil, metasgd and reptile.")
    if not 0 <= args.inner_beta1 < 1:
        parser.error(f"--inner-beta1 must be in [0, 1), got {args.inner_beta1}.")
    if args.first_order_steps < 0:
        parser.error(f"--first-order-steps must be non-negative, got {args.first_order_steps}.")
    if any(ways < 2 for ways in args.extra_test_ways):
        parser.error(f"--extra-test-ways must be at least 2, got {args.extra_test_ways}.")
    if args.conv == "onednn":
        if jax.default_backend() != "cpu":
            parser.error(f"--conv onednn runs oneDNN's CPU kernels; on {jax.default_backend()} use --conv xla.")
        if not onednn_conv.available():
            parser.error(f"--conv onednn needs the oneDNN extension {onednn_conv.EXTENSION}, which is not built: "
                         "run `make onednn`, or use --conv im2col.")
        if jax.config.jax_enable_x64:
            parser.error("--conv onednn computes in float32 only, and float64 is switched on (JAX_ENABLE_X64): "
                         "use --conv im2col, or switch float64 off.")


def build_learner(args, loss_fn, key, apply_fn=None):
    """The gradient-based learner named by ``--algorithm`` (jaxmeta.registry); ``key`` initialises meta-lstm's LSTM,
    ``apply_fn`` (the model's logits) is TAML-entropy's."""
    steps = dict(inner_steps=args.inner_steps)
    if args.algorithm == "maml++":
        return registry.make("maml++", loss_fn, lr_init=args.inner_lr, anneal_steps=args.msl_anneal_steps,
                             first_order_steps=args.first_order_steps, **steps)
    if args.algorithm == "meta-lstm":
        return registry.make("meta-lstm", loss_fn, key=key, **steps)
    variant = {"cavia": {"context_size": args.context_size}, "adml": {"epsilon": args.epsilon},
               "taml-entropy": {"weight": args.taml_weight, "apply_fn": apply_fn},
               "taml-theil": {"weight": args.taml_weight}}
    if args.algorithm in variant:
        return registry.make(args.algorithm, loss_fn, inner_lr=args.inner_lr, **steps, **variant[args.algorithm])
    # Adam's learning rate is the inner rate; nothing scales its update (Meta-SGD: its rates scale Adam's direction)
    rule = dict(inner_optimizer="adam", inner_beta1=args.inner_beta1) if args.inner_optimizer == "adam" else {}
    rate = {"lr_init" if args.algorithm == "metasgd" else "inner_lr": args.inner_lr}
    extra = {"anil": {"head": lambda path: "head" in path},
             "reptile": {"inner_batch": args.inner_batch,
                         "persistent_inner_state": args.inner_state == "persistent"}}.get(args.algorithm, {})
    return registry.make(args.algorithm, loss_fn, **steps, **rule, **rate, **extra)


def build_metric_model(args, ways: int):
    """The metric learner's Flax module for ``ways``-way episodes (jaxmeta.registry; the parameters do not
    depend on the ways)."""
    return registry.metric_model(args.algorithm, ways=ways, features=args.width, conv=args.conv,
                                 similarity=args.similarity)


def build_optimizer(args):
    if args.algorithm.endswith("protonet"):  # Snell et al.: Adam, learning rate halved every 2,000 episodes
        return optax.adam(optax.exponential_decay(args.meta_lr, 2000, 0.5, staircase=True))
    if args.algorithm == "relation":  # Sung et al.: each module's gradient clipped to norm 0.5, Adam
        return metric.relation_optimizer(args.meta_lr)
    if args.algorithm == "reptile":
        step_size = optax.linear_schedule(args.meta_lr, 0.0, args.iterations)
        return reptile_outer_optimizer(step_size) if args.inner_state == "persistent" else optax.sgd(step_size)
    return optax.adam(args.meta_lr)


def run_config(args) -> dict:
    """What must match for ``--resume`` (everything that changes the training trajectory)."""
    keys = ("algorithm", "ways", "train_ways", "shots", "train_shots", "queries", "inner_steps", "inner_lr",
            "inner_optimizer", "inner_beta1", "inner_state", "inner_batch", "meta_batch", "meta_lr", "iterations",
            "width", "init", "conv", "task_chunk", "seed", "split_seed", "steps_per_call")
    config = {key: getattr(args, key) for key in keys}
    if args.split != "maml":  # recorded when it differs from the split of every earlier run
        config["split"] = args.split
    if args.downsample == "stride":  # recorded when it differs from the network of every earlier run
        config["downsample"] = args.downsample
    if args.similarity is not None:
        config["similarity"] = args.similarity
    if args.algorithm == "maml++":
        config.update(msl_anneal_steps=args.msl_anneal_steps, first_order_steps=args.first_order_steps)
    if args.aggregate != "mean":
        config.update(aggregate=args.aggregate, agreement_normaliser=args.agreement_normaliser,
                      agreement_vectors=args.agreement_vectors)
    for option in ("context_size", "taml_weight", "epsilon"):
        if getattr(args, option) is not None:
            config[option] = getattr(args, option)
    return config


def evaluate_accuracy(learner, meta_params, images, *, count, ways, shots, queries, steps, key, chunk_size=None,
                      task_chunk=None, progress=False, query_by_query=None, pairs=False):
    """Accuracy mean and 95% CI after 0..steps inner steps on ``count`` tasks from ``images`` (jaxmeta.evaluate).

    Learners without an inner loop (``steps=None``) have one entry. ``task_chunk`` as in training
    (tasks adapted a group at a time; the CPU path), ``progress`` shows a bar.
    ``query_by_query``: the loss that scores each query beside the support set alone
    (non-transductive, :func:`non_transductive_loss`); ``None``: the learner's own, all queries at once.
    ``pairs``: the learner scores every (query, class) pair (Relation networks), so fewer tasks fit a chunk.
    """
    if chunk_size is None:  # about 4,000 images at once (50 tasks of 5-way 1-shot 15-query): bounded memory
        per_task = ways * (shots + queries) * (ways if pairs else 1)
        chunk_size = max(1, 4000 // per_task)
    tasks = classification_tasks(key, images, count, ways=ways, shots=shots, queries=queries, rotate=True,
                                 dtype="uint8")
    if query_by_query is not None:
        tasks = with_support_inputs(tasks)
    evaluation = jaxmeta.evaluate(learner, meta_params, tasks, key=jax.random.fold_in(key, 1), steps=steps,
                                  loss_fn=query_by_query, chunk_size=chunk_size, task_chunk=task_chunk,
                                  progress=progress)
    mean, ci = jaxmeta.confidence_interval(np.asarray(evaluation.metrics["accuracy"]))
    return mean, ci


def non_transductive_loss(model):
    """The query loss that scores each query beside the support set alone (``one_query_at_a_time``).

    Built once per run: the evaluation is compiled for its loss function, so a new one at every validation
    would compile it again.
    """
    return jaxmeta.classification_loss(one_query_at_a_time(model, np.zeros((1, 28, 28, 1), np.uint8)))


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    data = load_omniglot(args.root or data_root() / "omniglot")
    split = split_characters(data, args.split, seed=args.split_seed)
    val_images, test_images = (jax.device_put(data.images[s]) for s in (split.validation, split.test))
    sampler = EpisodeSampler.create(data.images[split.train], args.meta_batch, ways=args.train_ways,
                                    shots=args.train_shots, queries=args.queries, rotate=True, dtype="uint8")
    for images in (val_images, test_images) if args.validate_every else (test_images,):
        for ways in (args.ways, *args.extra_test_ways):
            jaxmeta.data.episodes.check_episode(images.shape[0], images.shape[1], ways=ways, shots=args.shots,
                                                queries=args.eval_queries)

    key = jax.random.key(args.seed)
    init_key, train_key, val_key, test_key = jax.random.split(key, 4)
    optimizer = build_optimizer(args)
    if args.algorithm in NO_INNER_LOOP:
        model = build_metric_model(args, args.train_ways)
        learner, scorer = metric.metric_learner(model), metric.metric_learner(build_metric_model(args, args.ways))
        loss_fn = None
        example = jax.tree.map(lambda x: x[0], sampler(jax.random.key(0)))
        params = model.init(init_key, example.support[0], example.support[1], example.query[0])["params"]
    elif args.algorithm == "cavia":  # the conv-4 with a FiLM layer of the context after its third block
        model = ContextConv4(num_classes=args.ways, context_size=args.context_size, features=args.width,
                             conv=args.conv, init_scheme=args.init)
        loss_fn = jaxmeta.classification_loss(functional_with_context(model))
        learner = scorer = build_learner(args, loss_fn, None)
        params = model.init(init_key, np.zeros((1, 28, 28, 1), np.uint8), np.zeros(args.context_size))["params"]
    else:
        model = Conv4(num_classes=args.ways, features=args.width, conv=args.conv, init_scheme=args.init,
                      downsample=args.downsample)
        loss_fn = jaxmeta.classification_loss(functional(model))
        learner = scorer = build_learner(args, loss_fn, jax.random.fold_in(init_key, 1), functional(model))
        params = model.init(init_key, np.zeros((1, 28, 28, 1), np.uint8))["params"]
    state = jaxmeta.init_state(learner, optimizer, params)
    aggregate = None if args.aggregate == "mean" else gradient_agreement(args.agreement_normaliser,
                                                                         args.agreement_vectors.replace("-", "_"))
    if args.devices > 1:  # the same step with the task batch split over a mesh; the state replicated
        mesh = distributed.task_mesh(num_devices=args.devices)
        meta_step = distributed.make_sharded_meta_step(learner, optimizer, mesh, task_chunk=args.task_chunk,
                                                       aggregate=aggregate)
        state = distributed.replicate(state, mesh)
    else:
        meta_step = jaxmeta.make_meta_step(learner, optimizer, task_chunk=args.task_chunk, aggregate=aggregate)
    episode = dict(ways=args.ways, shots=args.shots, queries=args.eval_queries, task_chunk=args.task_chunk,
                   query_by_query=None if args.transductive in (None, True) else non_transductive_loss(model),
                   pairs=args.algorithm == "relation")
    validation_steps = None if args.algorithm in NO_INNER_LOOP else \
        args.eval_steps if args.algorithm == "reptile" else args.inner_steps

    def validate(meta_params):
        mean, _ = evaluate_accuracy(scorer, meta_params, val_images, count=args.validation_tasks,
                                    steps=validation_steps, key=val_key, **episode)
        return {"accuracy": float(mean[-1])}

    name = f"{args.algorithm} {args.ways}-way {args.shots}-shot"
    if args.evaluate_only:
        result = restore_run(args.run_dir, run_config(args), state)
    else:
        result = train(meta_step, state, sampler, key=train_key, num_steps=args.iterations, run_dir=args.run_dir,
                       config=run_config(args), resume=args.resume, checkpoint_every=args.checkpoint_every,
                       validate=validate if args.validate_every else None,
                       validate_every=args.validate_every or None, steps_per_call=args.steps_per_call,
                       budget_seconds=None if args.budget_minutes is None else 60 * args.budget_minutes,
                       progress=not args.no_progress, description=name)
    train_seconds = [r["elapsed_seconds"] for r in result.records if r["kind"] == "train"][-1]
    attacked = {epsilon: adversarial_score(scorer, loss_fn, epsilon=epsilon) for epsilon in args.test_epsilons}
    summaries = [test_and_report(args, scorer, result, test_images, test_key, train_seconds, started,
                                 query_by_query=episode["query_by_query"], attacked=attacked)]
    for ways in args.extra_test_ways:  # the same trained parameters, scored on wider (or narrower) episodes
        summaries.append(test_and_report(args, metric.metric_learner(build_metric_model(args, ways)), result,
                                         test_images, test_key, train_seconds, started, ways=ways))
    return summaries[0]


def test_and_report(args, scorer, result, test_images, key, train_seconds, started, ways=None,
                    query_by_query=None, attacked=None) -> dict:
    """Score the trained meta-parameters on ``args.eval_tasks`` test tasks; print, save and record the result.

    ``attacked``: ``{epsilon: learner}`` scored on FGSM queries (:func:`jaxmeta.adversarial_score`), on the same
    test tasks after the training number of inner steps."""
    ways = args.ways if ways is None else ways
    metric_based = args.algorithm in NO_INNER_LOOP
    mean, ci = evaluate_accuracy(scorer, result.state.meta_params, test_images, count=args.eval_tasks,
                                 steps=None if metric_based else max(args.eval_steps, args.inner_steps), key=key,
                                 ways=ways, shots=args.shots, queries=args.eval_queries, task_chunk=args.task_chunk,
                                 progress=not args.no_progress, query_by_query=query_by_query,
                                 pairs=args.algorithm == "relation")
    trained = 0 if metric_based else args.inner_steps  # metric learners have no inner steps: one number
    summary = {
        "config": {**run_config(args), "split": args.split, "ways": ways},
        "transductive": args.transductive,
        "eval_queries": args.eval_queries,
        "meta_steps": int(result.state.step),
        "stopped": result.stopped,
        "budget_minutes": args.budget_minutes,
        "train_seconds": train_seconds,
        "test_tasks": args.eval_tasks,
        "accuracy_after_training_steps": [float(mean[trained]), float(ci[trained])],
        # None where there is no second number: no inner loop, or scored after the training steps only (MAML++)
        "accuracy_after_eval_steps": None if metric_based or args.eval_steps == args.inner_steps
        else [float(mean[args.eval_steps]), float(ci[args.eval_steps])],
        "eval_steps": args.eval_steps,
        "accuracy_by_steps": [[float(m), float(c)] for m, c in zip(mean, ci)],
        "adversarial": {},  # FGSM epsilon -> [mean, ci] after the training steps, the queries attacked
        "wall_seconds": time.perf_counter() - started,
        "environment": common.environment(),
    }
    for epsilon, learner in (attacked or {}).items():
        robust, robust_ci = evaluate_accuracy(learner, result.state.meta_params, test_images, count=args.eval_tasks,
                                              steps=args.inner_steps, key=key, ways=ways, shots=args.shots,
                                              queries=args.eval_queries, task_chunk=args.task_chunk,
                                              progress=not args.no_progress)
        summary["adversarial"][f"{epsilon:g}"] = [float(robust[-1]), float(robust_ci[-1])]
        print(f"FGSM epsilon {epsilon:g}: {percent(summary['adversarial'][f'{epsilon:g}'])}%")
    summary["wall_seconds"] = time.perf_counter() - started
    suffix = "" if ways == args.ways else f"-{ways}way"
    common.write_json(Path(args.run_dir) / f"result{suffix}.json", summary)
    after, later = summary["accuracy_after_training_steps"], summary["accuracy_after_eval_steps"]
    name = f"{args.algorithm} {ways}-way {args.shots}-shot"
    line = (f"{name}: {summary['meta_steps']} meta-steps ({result.stopped}, {train_seconds / 60:.1f} min); "
            f"test accuracy over {args.eval_tasks} tasks: {percent(after)}%")
    if later is not None:
        line += f" after {args.inner_steps} step(s), {percent(later)}% after {args.eval_steps}"
    print(line)
    if args.record:
        if args.table == "maml-variants":
            maml_variants.record(args.results_dir,
                                 maml_variants.omniglot_key(summary["config"], summary.get("budget_minutes")), summary)
        else:
            record_result(args.results_dir, summary)
    return summary


def percent(accuracy) -> str:
    """``[mean, ci]`` as fractions -> ``"98.78 ± 0.15"`` (percent)."""
    return common.mean_ci(100 * accuracy[0], 100 * accuracy[1])


def record_result(results_dir: Path, summary: dict) -> None:
    """Add (or replace) this configuration's row in ``omniglot.json`` and rewrite ``omniglot.md``."""
    path = Path(results_dir) / "omniglot.json"
    rows = common.read_json(path, default={})
    config = summary["config"]
    split = config.get("split", "maml")  # rows recorded before --split existed used the MAML split
    rows[f"{config['algorithm']}-{config['ways']}w{config['shots']}s" + ("" if split == "maml" else f"-{split}")] = \
        summary
    common.write_json(path, rows)
    write_table(results_dir)


def write_table(results_dir: Path) -> None:
    """``omniglot.md`` from ``omniglot.json``."""
    rows = common.read_json(Path(results_dir) / "omniglot.json", default={})
    lines = [
        "# Omniglot few-shot classification: test accuracy (%)",
        "",
        "Ours: mean ± 95% CI over the test tasks, conv-4, MAML split (1,100 / 100 / 423 characters) unless the "
        "row names another (`--split`), "
        "random 90-degree rotation per class, within the stated budget on the hardware named in each row "
        "(sessions ran on different hosts, so budgets buy different numbers of meta-steps). "
        "Published numbers from the cited tables.",
        "",
        "Gradient-based learners are scored after their training number of inner steps and after "
        "more; metric learners (no inner loop) once. Training episodes: ways-shots, queries per class, "
        "tasks per meta-step, and the conv-4's initialisation (`--init`) for the gradient-based learners.",
        "",
        "| algorithm | setting | ours, after training steps | ours, after more steps | training episodes | "
        "meta-steps | budget | hardware | published | source |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(rows):
        row = rows[key]
        config = row["config"]
        published, source = PUBLISHED[config["algorithm"]]
        setting = (config["ways"], config["shots"])
        value = published[SETTINGS.index(setting)] if setting in SETTINGS else None
        after, later = row["accuracy_after_training_steps"], row["accuracy_after_eval_steps"]
        budget = f"{row['budget_minutes']:g} min" if row["budget_minutes"] else "none"
        metric_based = config["algorithm"] in NO_INNER_LOOP
        first = percent(after) + ("" if metric_based else f" ({common.count(config['inner_steps'], 'step')})")
        second = "-" if later is None else f"{percent(later)} ({common.count(row['eval_steps'], 'step')})"
        episodes = (f"{config.get('train_ways', config['ways'])}w{config.get('train_shots', config['shots'])}s, "
                    f"{config['queries']} q, {config['meta_batch']}")
        if config.get("split", "maml") != "maml":
            episodes += f", {config['split']} split"
        if config["algorithm"].startswith("matching"):  # rows recorded before --similarity used cosine
            episodes += f", {config.get('similarity', 'cosine')} attention"
        if not metric_based:  # rows recorded before --init existed used Flax's defaults
            episodes += f", init {config.get('init', 'lecun')}"
            if config.get("inner_optimizer") == "adam":
                episodes += f", inner Adam(b1={config['inner_beta1']:g}) {config['inner_lr']:g}"
                if config.get("inner_state") == "persistent":
                    episodes += " (state carried across tasks)"
            if config.get("downsample") == "stride":
                episodes += ", stride-2 conv-4 (no pooling)"
            if row.get("transductive") is False:
                episodes += f", non-transductive test ({row['eval_queries']} q)"
        lines.append(
            f"| {config['algorithm']} | {config['ways']}-way {config['shots']}-shot | {first} | {second} | "
            f"{episodes} | {row['meta_steps']:,} | "
            f"{budget} ({row['train_seconds'] / 60:.1f} min used) | {common.hardware(row['environment'])} | "
            f"{value if value is not None else '-'} | {source} |"
        )
    common.write_atomically(Path(results_dir) / "omniglot.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
