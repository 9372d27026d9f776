"""The MAML variants of the meta-learning book beside MAML at the same budget: CAVIA, gradient agreement, TAML, ADML.

The rows of ``benchmarks/results/maml_variants.{json,md}``, each made by one of the drivers (this script runs
them one after the other, then writes the table):

* ``cavia-sinusoid-5shot``: ``benchmarks/sinusoid.py --algorithms cavia maml --shots 5`` (MAML's full
  sinusoid protocol, 70,000 meta-iterations; MAML's K = 5 row is the baseline);
* ``cavia-5w1s``, ``gradient-agreement-5w1s``, ``taml-entropy-5w1s``, ``taml-theil-5w1s``, ``adml-5w1s``:
  ``benchmarks/omniglot.py`` with ``--algorithm cavia / taml-entropy / taml-theil / adml`` or
  ``--aggregate gradient-agreement``, each for ``--budget-minutes`` (30) on the CPU;
* ``maml-5w1s``: MAML for the same budget, the column every Omniglot row is compared with, scored on FGSM
  queries too (``--test-epsilons``), as ADML is;
* ``maml-5w1s-680steps``: MAML stopped at ADML's 680 meta-steps (the same run up to there), for ADML's
  comparison at equal steps;
* ``gradient-agreement-5w1s-task-grad``: gradient agreement with the weights taken from the tasks'
  meta-gradients instead of their inner-loop updates (``--agreement-vectors task-grad``), beside the paper's rule.

    python benchmarks/maml_variants.py                        # every row (about 4.5 hours on a 2-core CPU)
    python benchmarks/maml_variants.py --only maml adml       # some rows; the others stay as recorded
    python benchmarks/maml_variants.py --table-only           # rewrite the Markdown table from the JSON

A row's baseline is the MAML row of the same setting recorded on the same kind of host (budgets buy
different numbers of meta-steps on different hosts); the table says when there is none. Hosts of one name can
still differ in speed (two AMD EPYC hosts have run MAML 2x apart), so ``--same-host-baseline`` first trains MAML
for the same budget in the same invocation and stores that run inside each chosen row as its own baseline:

    python benchmarks/maml_variants.py --only gradient-agreement --same-host-baseline   # about 65 minutes
"""

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

RESULTS = "maml_variants"
TEST_EPSILONS = (0.02, 0.05, 0.1, 0.2, 0.3)  # FGSM steps on [0, 1] images: the robustness curve
OMNIGLOT_ROWS = {  # key -> benchmarks/omniglot.py arguments (5-way 1-shot)
    "maml-5w1s": ["--algorithm", "maml"],
    "cavia-5w1s": ["--algorithm", "cavia"],
    "gradient-agreement-5w1s": ["--algorithm", "maml", "--aggregate", "gradient-agreement"],
    "gradient-agreement-5w1s-task-grad": ["--algorithm", "maml", "--aggregate", "gradient-agreement",
                                          "--agreement-vectors", "task-grad"],
    "taml-entropy-5w1s": ["--algorithm", "taml-entropy"],
    "taml-theil-5w1s": ["--algorithm", "taml-theil"],
    "adml-5w1s": ["--algorithm", "adml"],
    # MAML stopped at ADML's meta-step count: the same run as maml-5w1s up to there (same seed, constant rate),
    # so ADML and MAML can be compared at equal meta-steps as well as at equal time.
    "maml-5w1s-680steps": ["--algorithm", "maml", "--iterations", "680"],
}
ROBUSTNESS_ROWS = ("maml-5w1s", "adml-5w1s", "maml-5w1s-680steps")  # scored on FGSM queries too
PROTOCOL_ITERATIONS = 60_000  # benchmarks/omniglot.py's default cap: rows with it are stopped by the budget
SINUSOID_ROW = "cavia-sinusoid-5shot"

# What each method's paper reports for these settings, with where the number was read.
# Gradient agreement: its NeurIPS 2018 Meta-Learning workshop paper (metalearn2018 paper 57), Table 2, which also
# gives the weights of equation (13) that jaxmeta.gradient_agreement's "paper" normaliser implements.
# CAVIA's and TAML's papers were not available here. CAVIA on sinusoids: a later paper by CAVIA's authors (VIABLE,
# the 2019 workshop's metalearn2019-feng.pdf) reports CAVIA at K = 10, not at K = 5. TAML's one number is a
# third-party transcription that does not say which TAML variant it is, so both TAML rows show it as that.
_TAML_TRANSCRIBED = ("99.23 ± 0.35 for TAML, variant not named (Jamal and Qi 2019 as transcribed in "
                     "cainiaomyf/FSL-Insight, Optimization.md; the paper not re-checked here)")
PUBLISHED = {
    "cavia-sinusoid-5shot": ("- at K = 5 (the CAVIA paper was not available here); at K = 10, 5 context parameters, "
                             "1 step: 0.19 ± 0.02 (Feng, Zintgraf, Peng and Whiteson 2019, NeurIPS Meta-Learning "
                             "workshop, Table 3)"),
    "cavia-5w1s": "- (Zintgraf et al. 2019 report no Omniglot numbers)",
    "gradient-agreement-5w1s": "98.6 ± 0.63 (Eshratifar et al. 2018, NeurIPS Meta-Learning workshop, Table 2)",
    "taml-entropy-5w1s": _TAML_TRANSCRIBED,
    "taml-theil-5w1s": _TAML_TRANSCRIBED,
    "adml-5w1s": "- (Yin et al. 2018 report no Omniglot numbers)",
    "maml-5w1s": "98.7 (Finn et al. 2017, Table 1)",
    "maml-5w1s-680steps": "-",
    "gradient-agreement-5w1s-task-grad": "- (the paper takes the weights from the inner-loop updates)",
}
ROW_METHODS = {"maml-5w1s-680steps": "MAML stopped at ADML's 680 meta-steps",
               "gradient-agreement-5w1s-task-grad": "gradient agreement, weights from the task meta-gradients"}
METHODS = {
    "cavia": "CAVIA (Zintgraf et al. 2019)",
    "gradient-agreement": "gradient agreement (Eshratifar et al. 2018)",
    "taml-entropy": "TAML, entropy (Jamal and Qi 2019)",
    "taml-theil": "TAML, Theil index (Jamal and Qi 2019)",
    "adml": "ADML (Yin et al. 2018)",
    "maml": "MAML (Finn et al. 2017), the baseline",
}


def omniglot_key(config: dict, budget_minutes: float | None = None) -> str:
    """The row of an Omniglot run: ``<method>-<ways>w<shots>s`` (gradient agreement with the book's normaliser: a
    ``-book`` suffix; comparing task gradients instead of inner-loop updates, as runs recorded before
    ``--agreement-vectors`` all did: ``-task-grad``; a budgeted run capped at other than the protocol's
    iterations: ``-<cap>steps``).

    >>> omniglot_key({"ways": 5, "shots": 1, "algorithm": "maml", "iterations": 680}, budget_minutes=30)
    'maml-5w1s-680steps'
    """
    setting = f"{config['ways']}w{config['shots']}s"
    cap = config.get("iterations", PROTOCOL_ITERATIONS)
    steps = "" if not budget_minutes or cap == PROTOCOL_ITERATIONS else f"-{cap}steps"
    if config.get("aggregate") == "gradient-agreement":
        book = "-book" if config.get("agreement_normaliser") == "book" else ""
        vectors = "-task-grad" if config.get("agreement_vectors", "task-grad") == "task-grad" else ""
        return f"gradient-agreement-{setting}{book}{vectors}{steps}"
    return f"{config['algorithm']}-{setting}{steps}"


def record(results_dir: Path, key: str, row: dict) -> None:
    """Add (or replace) row ``key`` of ``maml_variants.json`` and rewrite ``maml_variants.md``."""
    path = Path(results_dir) / f"{RESULTS}.json"
    rows = common.read_json(path, default={})
    rows[key] = row
    common.write_json(path, rows)
    write_table(results_dir)


def _baseline(rows: dict, key: str) -> dict | None:
    """The MAML run row ``key`` is compared with: the one stored inside it (run beside it on its host), else the
    MAML row of its setting recorded on the same kind of host."""
    if key == SINUSOID_ROW or "baseline" in rows[key]:
        return rows[key].get("baseline")
    setting = re.search(r"\d+w\d+s", key)
    candidate = None if setting is None else rows.get(f"maml-{setting.group()}")
    if candidate is None or common.hardware(candidate["environment"]) != common.hardware(rows[key]["environment"]):
        return None
    return candidate


def _accuracy(row: dict) -> str:
    return common.mean_ci(100 * row["accuracy_after_training_steps"][0], 100 * row["accuracy_after_training_steps"][1])


def _robustness(row: dict) -> str:
    attacked = row.get("adversarial") or {}
    return ", ".join(f"{eps}: {common.mean_ci(100 * m, 100 * c)}" for eps, (m, c) in attacked.items()) or "-"


def write_table(results_dir: Path) -> None:
    """``maml_variants.md`` from ``maml_variants.json``."""
    rows = common.read_json(Path(results_dir) / f"{RESULTS}.json", default={})
    lines = [
        "# The MAML variants beside MAML at the same budget",
        "",
        "Omniglot 5-way 1-shot: test accuracy (%, mean ± 95% CI over 600 test tasks, 15 queries per class, the MAML "
        "split) after the training number of inner steps, each method trained for the stated budget on the "
        "hardware named; MAML's column is MAML trained for the same budget on the same kind of host "
        "(`maml-5w1s`), or, where the column says so, a MAML run made beside the row on its host. FGSM columns: "
        "the same test tasks with every query attacked against the adapted model "
        "(x + epsilon sign(grad_x L), clipped to [0, 1]). Sinusoid: query MSE after one inner step on 600 held-out "
        "tasks (MAML's protocol, K = 5).",
        "",
        "| row | method | ours | MAML, same budget | ours under FGSM (epsilon: accuracy) | MAML under FGSM | "
        "meta-steps | budget | hardware | published |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(rows):
        row = rows[key]
        base = _baseline(rows, key)
        method = ROW_METHODS.get(key) or METHODS.get(key.split("-5w")[0].split("-sinusoid")[0].removesuffix("-book"),
                                                     key)
        if key == SINUSOID_ROW:
            ours = common.mean_ci(row["mse"]["1"]["mean"], row["mse"]["1"]["ci95"], 3) + " MSE"
            theirs = "-" if base is None else common.mean_ci(base["mse"]["1"]["mean"], base["mse"]["1"]["ci95"], 3)
            steps, budget = f"{row['iterations']:,}", "full protocol"
            robust = theirs_robust = "-"
        else:
            ours = f"{_accuracy(row)} ({common.count(row['config']['inner_steps'], 'step')})"
            theirs = "no MAML row on this host" if base is None else _accuracy(base)
            theirs = "(this row)" if base is row else theirs
            if "baseline" in row:
                theirs += f" ({base['meta_steps']:,} steps, run beside it on its host)"
            steps = f"{row['meta_steps']:,}"
            budget = f"{row['budget_minutes']:g} min" if row["budget_minutes"] else "none"
            cap = row["config"].get("iterations", PROTOCOL_ITERATIONS)
            if row["budget_minutes"] and cap != PROTOCOL_ITERATIONS and "train_seconds" in row:  # its cap stopped it
                budget = f"{row['train_seconds'] / 60:.1f} min (stopped at {cap:,} steps)"
            robust = _robustness(row)
            theirs_robust = "-" if base is None or base is row or robust == "-" else _robustness(base)
        lines.append(f"| {key} | {method} | {ours} | {theirs} | {robust} | {theirs_robust} | {steps} | {budget} | "
                     f"{common.hardware(row['environment'])} | {PUBLISHED.get(key, '-')} |")
    common.write_atomically(Path(results_dir) / f"{RESULTS}.md", "\n".join(lines) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=None,
                        choices=[key.removesuffix("-5w1s") for key in OMNIGLOT_ROWS] + ["cavia-sinusoid"],
                        help="run these rows only (the others stay as recorded)")
    parser.add_argument("--budget-minutes", type=float, default=30.0)
    parser.add_argument("--table-only", action="store_true", help="rewrite the Markdown table and stop")
    parser.add_argument("--same-host-baseline", action="store_true",
                        help="first train MAML for the same budget here and compare the chosen Omniglot rows with "
                             "that run (stored inside each row) instead of the recorded maml-5w1s row")
    parser.add_argument("--results-dir", type=Path, default=common.RESULTS_DIR)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.table_only:
        write_table(args.results_dir)
        return
    chosen = args.only or [key.removesuffix("-5w1s") for key in OMNIGLOT_ROWS] + ["cavia-sinusoid"]
    keys = [key for key in OMNIGLOT_ROWS if key.removesuffix("-5w1s") in chosen]
    if args.same_host_baseline and "maml-5w1s" in keys:
        parser.error("--same-host-baseline compares the chosen rows with a MAML run made beside them; drop "
                     "maml from --only (or drop --same-host-baseline to re-record the maml-5w1s row)")
    if args.same_host_baseline and not keys:
        parser.error("--same-host-baseline needs at least one Omniglot row in --only")
    import omniglot
    import sinusoid

    progress = ["--no-progress"] if args.no_progress else []
    if "cavia-sinusoid" in chosen:
        sinusoid.main(["--algorithms", "maml", "cavia", "--shots", "5", "--variants-table", str(args.results_dir),
                       "--out", str(args.results_dir), *progress])
    common_arguments = ["--budget-minutes", f"{args.budget_minutes:g}", "--validate-every", "500",
                        "--validation-tasks", "100", *progress]
    epsilons = ["--test-epsilons", *map(str, TEST_EPSILONS)]
    baseline = None
    if args.same_host_baseline:  # MAML for the same budget, this host, now: the chosen rows' own baseline
        attacked = epsilons if set(keys) & set(ROBUSTNESS_ROWS) else []  # FGSM columns for the rows that have them
        baseline = omniglot.main([*OMNIGLOT_ROWS["maml-5w1s"], *common_arguments, "--run-dir",
                                  "runs/maml_variants/maml-5w1s-same-host", *attacked])
    for key in keys:  # each row recorded once, whole (with its baseline, if any)
        summary = omniglot.main([*OMNIGLOT_ROWS[key], *common_arguments, "--run-dir", f"runs/maml_variants/{key}",
                                 *(epsilons if key in ROBUSTNESS_ROWS else [])])
        if baseline is not None:
            summary["baseline"] = baseline
        record(args.results_dir, omniglot_key(summary["config"], summary.get("budget_minutes")), summary)


if __name__ == "__main__":
    main()
