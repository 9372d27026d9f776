"""The MAML variants through benchmarks/omniglot.py on a tiny model, and the table of benchmarks/maml_variants.py."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import maml_variants  # noqa: E402
import omniglot  # noqa: E402

TINY = ["--width", "4", "--iterations", "2", "--meta-batch", "2", "--queries", "2", "--eval-queries", "2",
        "--validate-every", "0", "--checkpoint-every", "2", "--steps-per-call", "2", "--eval-tasks", "4",
        "--eval-steps", "1", "--no-progress", "--record"]


@pytest.mark.long
def test_the_variants_train_and_their_rows_sit_beside_maml(omniglot_root, tmp_path):
    results = tmp_path / "results"
    run = lambda name, *argv: omniglot.main(["--root", str(omniglot_root), "--run-dir", str(tmp_path / name),  # noqa: E731
                                             "--results-dir", str(results), *TINY, *argv])
    maml = run("maml", "--algorithm", "maml", "--table", "maml-variants", "--test-epsilons", "0")
    adml = run("adml", "--algorithm", "adml", "--test-epsilons", "0.3")
    cavia = run("cavia", "--algorithm", "cavia", "--context-size", "3")
    agreement = run("agreement", "--algorithm", "fomaml", "--aggregate", "gradient-agreement",
                    "--agreement-normaliser", "book")
    entropy = run("entropy", "--algorithm", "taml-entropy", "--taml-weight", "0.5")
    # TAML's other regulariser trains through the same driver path (the registry's taml-theil is tested against
    # jaxmeta.taml_inequality in tests/test_registry.py): its settings and row key, without a second training run
    theil = {"config": omniglot.run_config(omniglot.parse_args(["--algorithm", "taml-theil", *TINY]))}
    # epsilon 0 attacks nothing: the same score as the clean test
    assert maml["adversarial"]["0"] == maml["accuracy_after_training_steps"]
    assert set(adml["adversarial"]) == {"0.3"} and adml["config"]["epsilon"] == 0.1
    assert cavia["config"]["context_size"] == 3 and cavia["config"]["inner_steps"] == 2  # CAVIA's code: 2 steps
    assert agreement["config"]["aggregate"] == "gradient-agreement"
    assert agreement["config"]["agreement_vectors"] == "update"  # the paper's rule, for a learner with an inner loop
    protonet = omniglot.run_config(omniglot.parse_args(["--algorithm", "protonet",
                                                        "--aggregate", "gradient-agreement"]))
    assert protonet["agreement_vectors"] == "task-grad"  # no inner loop: the task gradients
    assert theil["config"]["taml_weight"] == 1.0 and entropy["config"]["taml_weight"] == 0.5
    rows = json.loads((results / "maml_variants.json").read_text())
    assert set(rows) == {"maml-5w1s", "adml-5w1s", "cavia-5w1s", "gradient-agreement-5w1s-book", "taml-entropy-5w1s"}
    assert maml_variants.omniglot_key(theil["config"]) == "taml-theil-5w1s"
    assert not (results / "omniglot.json").exists()  # the variants have a table of their own
    table = (results / "maml_variants.md").read_text()
    adml_row = next(line for line in table.splitlines() if line.startswith("| adml-5w1s |"))
    maml_accuracy = maml_variants._accuracy(rows["maml-5w1s"])
    assert f"| {maml_accuracy} |" in adml_row and "| 0.3: " in adml_row and "| 0: " in adml_row
    assert "Yin et al. 2018 report no Omniglot numbers" in adml_row


def test_a_row_without_maml_on_its_host_says_so(tmp_path):
    environment = {"cpu_model": "Host A", "cpu_count": 2, "device_kind": "cpu", "backend": "cpu"}
    row = {"config": {"algorithm": "cavia", "ways": 5, "shots": 1, "inner_steps": 2}, "meta_steps": 10,
           "budget_minutes": 30, "accuracy_after_training_steps": [0.9, 0.01], "adversarial": {},
           "environment": environment}
    maml_variants.record(tmp_path, "cavia-5w1s", row)
    other_host = {**row, "config": {**row["config"], "algorithm": "maml"},
                  "environment": {**environment, "cpu_model": "Host B"}}
    maml_variants.record(tmp_path, "maml-5w1s", other_host)
    line = next(line for line in (tmp_path / "maml_variants.md").read_text().splitlines()
                if line.startswith("| cavia-5w1s |"))
    assert "no MAML row on this host" in line and "90.00 ± 1.00 (2 steps)" in line


def test_a_row_with_a_maml_run_beside_it_is_compared_with_that_run(tmp_path):
    environment = {"cpu_model": "Host A", "cpu_count": 2, "device_kind": "cpu", "backend": "cpu"}
    row = {"config": {"algorithm": "maml", "aggregate": "gradient-agreement", "ways": 5, "shots": 1,
                      "inner_steps": 1}, "meta_steps": 900, "budget_minutes": 30,
           "accuracy_after_training_steps": [0.9, 0.01], "adversarial": {}, "environment": environment}
    recorded_maml = {**row, "config": {**row["config"], "algorithm": "maml", "aggregate": "mean"},
                     "meta_steps": 1800, "accuracy_after_training_steps": [0.97, 0.003]}
    maml_variants.record(tmp_path, "maml-5w1s", recorded_maml)  # same host name, twice the steps
    beside = {**recorded_maml, "meta_steps": 910, "accuracy_after_training_steps": [0.92, 0.005]}
    maml_variants.record(tmp_path, "gradient-agreement-5w1s", {**row, "baseline": beside})
    rows = json.loads((tmp_path / "maml_variants.json").read_text())
    assert rows["gradient-agreement-5w1s"]["baseline"] == beside and "baseline" not in rows["maml-5w1s"]
    line = next(line for line in (tmp_path / "maml_variants.md").read_text().splitlines()
                if line.startswith("| gradient-agreement-5w1s |"))
    assert "| 92.00 ± 0.50 (910 steps, run beside it on its host) |" in line and "97.00" not in line


@pytest.mark.parametrize("argv, message", [
    (["--only", "maml", "gradient-agreement", "--same-host-baseline"], "drop maml from --only"),
    (["--only", "cavia-sinusoid", "--same-host-baseline"], "needs at least one Omniglot row"),
])
def test_a_same_host_baseline_needs_omniglot_rows_other_than_maml(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        maml_variants.main([*argv, "--results-dir", str(tmp_path)])
    assert message in capsys.readouterr().err


def test_a_same_host_baseline_is_trained_first_and_stored_in_each_chosen_row(monkeypatch, tmp_path):
    calls = []

    def fake_main(argv):  # stands in for benchmarks/omniglot.py: records its arguments, returns a row
        calls.append(argv)
        return {"config": omniglot.run_config(omniglot.parse_args(argv)), "meta_steps": len(calls),
                "budget_minutes": 30, "accuracy_after_training_steps": [0.9, 0.01], "adversarial": {},
                "environment": {"backend": "cpu", "cpu_count": 2, "cpu_model": "Host A"}}

    monkeypatch.setattr(omniglot, "main", fake_main)
    maml_variants.main(["--only", "gradient-agreement", "adml", "--same-host-baseline", "--results-dir",
                        str(tmp_path)])
    baseline_argv, *row_argvs = calls
    assert baseline_argv[baseline_argv.index("--algorithm") + 1] == "maml" and len(row_argvs) == 2
    assert "--test-epsilons" in baseline_argv  # ADML's row has FGSM columns, so its baseline is attacked too
    assert not any("--record" in argv for argv in calls)  # the driver records the rows itself
    rows = json.loads((tmp_path / "maml_variants.json").read_text())
    assert set(rows) == {"gradient-agreement-5w1s", "adml-5w1s"}  # the baseline is no row of its own
    assert all(row["baseline"]["meta_steps"] == 1 for row in rows.values())  # the first run, MAML's
    maml_variants.main(["--only", "maml", "--results-dir", str(tmp_path)])  # no baseline: recorded as it is
    rows = json.loads((tmp_path / "maml_variants.json").read_text())
    assert calls[-1][calls[-1].index("--algorithm") + 1] == "maml" and "baseline" not in rows["maml-5w1s"]


def test_rows_are_keyed_by_method_setting_and_an_iteration_cap_other_than_the_protocols():
    base = {"ways": 5, "shots": 1, "algorithm": "maml", "iterations": maml_variants.PROTOCOL_ITERATIONS}
    assert maml_variants.omniglot_key(base) == "maml-5w1s"
    assert maml_variants.omniglot_key({**base, "iterations": 680}, budget_minutes=30) == "maml-5w1s-680steps"
    assert maml_variants.omniglot_key({**base, "iterations": 2}) == "maml-5w1s"  # no budget: no cap to name
    agreement = {**base, "aggregate": "gradient-agreement", "agreement_normaliser": "book"}
    assert maml_variants.omniglot_key({**agreement, "agreement_vectors": "update"}) == "gradient-agreement-5w1s-book"
    # rows recorded before --agreement-vectors compared the task gradients
    assert maml_variants.omniglot_key(agreement) == "gradient-agreement-5w1s-book-task-grad"
    assert set(maml_variants.ROBUSTNESS_ROWS) <= set(maml_variants.OMNIGLOT_ROWS)


@pytest.mark.parametrize("argv, message", [
    (["--algorithm", "maml", "--context-size", "5"], "--context-size is an option of cavia"),
    (["--algorithm", "cavia", "--context-size", "0"], "--context-size must be at least 1"),
    (["--algorithm", "adml", "--epsilon", "-0.1"], "--epsilon must be non-negative"),
    (["--algorithm", "maml", "--taml-weight", "1"], "--taml-weight is TAML's lambda"),
    (["--algorithm", "taml-theil", "--taml-weight", "-1"], "--taml-weight must be non-negative"),
    (["--algorithm", "maml", "--agreement-normaliser", "book"], "add that, or drop it"),
    (["--algorithm", "maml", "--agreement-vectors", "task-grad"], "add that, or drop it"),
    (["--algorithm", "protonet", "--aggregate", "gradient-agreement", "--agreement-vectors", "update"],
     "use --agreement-vectors task-grad"),
    (["--algorithm", "taml-theil", "--aggregate", "gradient-agreement"], "taml-theil combines its task gradients"),
    (["--algorithm", "protonet", "--test-epsilons", "0.1"], "protonet has none"),
    (["--algorithm", "maml", "--test-epsilons", "-1"], "--test-epsilons must be non-negative"),
])
def test_invalid_variant_settings_are_refused_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit):
        omniglot.parse_args(argv)
    assert message in capsys.readouterr().err
