"""benchmarks/omniglot.py end to end on the real archives with a tiny model, and its input checks."""

import json
import sys
from pathlib import Path

import jax
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import omniglot  # noqa: E402

TINY = ["--width", "4", "--iterations", "6", "--meta-batch", "2", "--queries", "2", "--eval-queries", "2",
        "--validate-every", "3", "--validation-tasks", "4", "--checkpoint-every", "3", "--steps-per-call", "3",
        "--eval-tasks", "6", "--eval-steps", "2", "--no-progress"]


@pytest.mark.long
def test_tiny_run_trains_checkpoints_evaluates_and_records(omniglot_root, tmp_path):
    run_dir, results = tmp_path / "run", tmp_path / "results"
    summary = omniglot.main(["--algorithm", "metasgd", "--root", str(omniglot_root), "--run-dir", str(run_dir),
                             "--record", "--results-dir", str(results), *TINY])
    assert summary["meta_steps"] == 6 and summary["stopped"] == "finished"
    assert len(summary["accuracy_by_steps"]) == 3  # after 0, 1, 2 inner steps
    assert all(0 <= m <= 1 for m, _ in summary["accuracy_by_steps"])
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir()) == [3, 6]
    kinds = [json.loads(line)["kind"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert kinds == ["train", "validation", "train", "validation"]
    assert (run_dir / "learning_curve.png").exists() and (run_dir / "result.json").exists()
    table = (results / "omniglot.md").read_text()
    assert "| metasgd | 5-way 1-shot |" in table and "99.53" in table
    assert f"| {omniglot.common.hardware(summary['environment'])} |" in table

    # A finished run resumed with the same settings has nothing left to train; other settings are refused.
    again = omniglot.main(["--algorithm", "metasgd", "--root", str(omniglot_root), "--run-dir", str(run_dir),
                           "--resume", *TINY])
    assert again["meta_steps"] == 6
    with pytest.raises(ValueError, match=r"another configuration \(inner_lr: 0.4 -> 0.3\)"):
        omniglot.main(["--algorithm", "metasgd", "--root", str(omniglot_root), "--run-dir", str(run_dir),
                       "--resume", "--inner-lr", "0.3", *TINY])


@pytest.mark.long
def test_a_metric_learner_trains_and_is_tested_on_several_episode_widths(omniglot_root, tmp_path):
    run_dir, results = tmp_path / "run", tmp_path / "results"
    lake = ["--split", "lake", "--validate-every", "0"]  # background alphabets train, evaluation alphabets test
    summary = omniglot.main(["--algorithm", "protonet", "--train-ways", "6", "--extra-test-ways", "3",
                             "--root", str(omniglot_root), "--run-dir", str(run_dir), "--record",
                             "--results-dir", str(results), *TINY, "--meta-batch", "1", *lake])
    assert summary["meta_steps"] == 6 and summary["accuracy_after_eval_steps"] is None
    assert summary["config"]["split"] == "lake"
    kinds = [json.loads(line)["kind"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert kinds == ["train", "train"]  # no validation characters, so no validation
    assert len(summary["accuracy_by_steps"]) == 1  # no inner loop: one score
    wider = json.loads((run_dir / "result-3way.json").read_text())
    assert wider["config"]["ways"] == 3 and wider["config"]["train_ways"] == 6
    assert wider["accuracy_by_steps"] != summary["accuracy_by_steps"]
    table = (results / "omniglot.md").read_text()
    assert "| protonet | 5-way 1-shot |" in table and "| protonet | 3-way 1-shot |" in table and "98.8" in table
    assert "| 6w1s, 2 q, 1, lake split |" in table  # the training episodes, and the split named
    assert set(json.loads((results / "omniglot.json").read_text())) == {"protonet-5w1s-lake", "protonet-3w1s-lake"}

    # The newest checkpoint tested again without training gives the same scores.
    again = omniglot.main(["--algorithm", "protonet", "--train-ways", "6", "--evaluate-only", "--root",
                           str(omniglot_root), "--run-dir", str(run_dir), *TINY, "--meta-batch", "1", *lake])
    assert again["stopped"] == "restored" and again["accuracy_by_steps"] == summary["accuracy_by_steps"]


@pytest.mark.long
def test_the_lstm_meta_learner_trains_and_its_checkpoint_scores_the_same(omniglot_root, tmp_path):
    tiny = ["--algorithm", "meta-lstm", "--inner-steps", "2", "--root", str(omniglot_root),
            "--run-dir", str(tmp_path / "run"), *TINY, "--iterations", "3", "--eval-steps", "3"]
    summary = omniglot.main(tiny)
    assert summary["meta_steps"] == 3 and summary["config"]["inner_steps"] == 2
    assert len(summary["accuracy_by_steps"]) == 4  # after 0..3 updates of the LSTM
    again = omniglot.main([*tiny, "--evaluate-only"])  # the LSTM's parameters restored from the checkpoint
    assert again["stopped"] == "restored" and again["accuracy_by_steps"] == summary["accuracy_by_steps"]


def test_reptile_defaults_to_its_papers_protocol():
    five = omniglot.parse_args(["--algorithm", "reptile"])
    assert (five.inner_optimizer, five.inner_beta1, five.inner_lr, five.inner_steps, five.inner_batch) == \
        ("adam", 0.0, 0.001, 5, 10)
    assert (five.train_shots, five.meta_batch, five.meta_lr, five.eval_steps, five.eval_queries) == (10, 5, 1.0, 50, 1)
    assert five.transductive is False and five.init == "lecun" and five.inner_state == "persistent"
    assert five.downsample == "pool" and omniglot.parse_args(["--algorithm", "maml"]).downsample == "pool"
    twenty = omniglot.parse_args(["--algorithm", "reptile", "--ways", "20"])
    assert (twenty.inner_lr, twenty.inner_steps, twenty.inner_batch) == (0.0005, 10, 20)
    maml = omniglot.parse_args(["--algorithm", "maml"])
    assert maml.transductive is True and maml.inner_optimizer == "sgd" and maml.train_shots == 1


def test_matching_networks_default_to_euclidean_attention_and_record_it():
    args = omniglot.parse_args(["--algorithm", "matching"])
    assert args.similarity == "euclidean" and omniglot.build_metric_model(args, 5).similarity == "euclidean"
    assert omniglot.run_config(omniglot.parse_args(["--algorithm", "matching", "--similarity", "cosine"]))[
        "similarity"] == "cosine"
    assert "similarity" not in omniglot.run_config(omniglot.parse_args(["--algorithm", "protonet"]))


@pytest.mark.long
def test_reptile_trains_with_inner_adam_and_scores_each_query_beside_the_support_set(omniglot_root, tmp_path):
    results = tmp_path / "results"
    summary = omniglot.main(["--algorithm", "reptile", "--root", str(omniglot_root), "--run-dir", str(tmp_path / "r"),
                             "--record", "--results-dir", str(results), *TINY, "--eval-queries", "1"])
    assert summary["meta_steps"] == 6 and summary["transductive"] is False
    assert summary["config"]["inner_optimizer"] == "adam" and summary["config"]["train_shots"] == 10
    assert len(summary["accuracy_by_steps"]) == 6  # after 0..5 inner steps (--eval-steps 2 < the 5 trained)
    table = (results / "omniglot.md").read_text()
    assert "inner Adam(b1=0) 0.001 (state carried across tasks), non-transductive test (1 q)" in table
    assert "95.39" in table


@pytest.mark.long
def test_maml_plus_plus_trains_through_its_schedules(omniglot_root, tmp_path):
    summary = omniglot.main(["--algorithm", "maml++", "--root", str(omniglot_root), "--run-dir", str(tmp_path / "r"),
                             *TINY, "--inner-steps", "2", "--msl-anneal-steps", "3", "--first-order-steps", "2",
                             "--record", "--results-dir", str(tmp_path / "results")])
    assert summary["meta_steps"] == 6 and summary["config"]["msl_anneal_steps"] == 3
    assert summary["accuracy_after_eval_steps"] is None  # scored after its training steps only
    assert len(summary["accuracy_by_steps"]) == 3 and all(0 <= m <= 1 for m, _ in summary["accuracy_by_steps"])
    row = next(line for line in (tmp_path / "results" / "omniglot.md").read_text().splitlines()
               if line.startswith("| maml++ |"))
    assert row.split(" | ")[3] == "-"  # scored after its training steps only: no 'after more steps'


@pytest.mark.parametrize("argv, message", [
    (["--algorithm", "protomaml"], "invalid choice: 'protomaml'"),
    (["--algorithm", "protonet", "--transductive"], "protonet scores whole episodes: drop the flag"),
    (["--inner-batch", "5"], "--inner-batch sets Reptile's inner mini-batches"),
    (["--algorithm", "maml++", "--eval-steps", "10"], "evaluated after those only: drop --eval-steps or set it to 5"),
    (["--algorithm", "maml++", "--inner-optimizer", "adam"], "maml++ learns its own inner update rule"),
    (["--algorithm", "reptile", "--inner-beta1", "1"], "--inner-beta1 must be in [0, 1)"),
    (["--algorithm", "maml", "--inner-state", "fresh"], "--inner-state applies to Reptile"),
    (["--algorithm", "reptile", "--inner-optimizer", "sgd", "--inner-state", "persistent"],
     "plain SGD has none: use --inner-optimizer adam"),
    (["--inner-lr", "0"], "--inner-lr must be positive"),
    (["--meta-lr", "-1"], "--meta-lr must be positive"),
    (["--shots", "0"], "--shots must be at least 1"),
    (["--extra-test-ways", "20"], "--extra-test-ways needs a metric learner"),
    (["--algorithm", "metanet", "--extra-test-ways", "20"], "train a separate run for each number of ways"),
    (["--algorithm", "metanet", "--train-ways", "10"], "--train-ways must equal --ways"),
    (["--algorithm", "protonet", "--init", "lecun"], "--init sets the conv-4 of the gradient-based learners"),
    (["--init", "he"], "invalid choice: 'he'"),
    (["--split", "lake", "--validate-every", "500"],
     "--split lake has no validation characters: it trains on the 964 background characters"),
    (["--split", "protonet", "--validate-every", "10"], "or use --split maml, which validates on 100 characters"),
    (["--validate-every", "-1"], "--validate-every must be non-negative"),
    (["--algorithm", "protonet", "--similarity", "cosine"], "protonet has none: drop it"),
])
def test_invalid_settings_are_refused_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit):
        omniglot.parse_args(argv)
    assert message in capsys.readouterr().err


def test_a_onednn_convolution_that_cannot_run_is_refused_with_the_fix(monkeypatch, capsys):
    assert jax.config.jax_enable_x64  # tests/conftest.py: the suite runs in float64, which oneDNN does not compute
    with pytest.raises(SystemExit):
        omniglot.parse_args(["--conv", "onednn"])
    assert "--conv onednn computes in float32 only" in capsys.readouterr().err
    monkeypatch.setattr(omniglot.onednn_conv, "available", lambda: False)
    with pytest.raises(SystemExit):
        omniglot.parse_args(["--conv", "onednn"])
    assert "which is not built: run `make onednn`, or use --conv im2col" in capsys.readouterr().err
    assert omniglot.parse_args([]).conv == "im2col"  # auto: oneDNN neither built nor float32 here


def test_more_ways_than_classes_is_refused_before_training(omniglot_root, tmp_path):
    with pytest.raises(ValueError, match="A 500-way task needs 500 classes, but the split has only 100"):
        omniglot.main(["--ways", "500", "--root", str(omniglot_root), "--run-dir", str(tmp_path / "r"), *TINY])
    assert not (tmp_path / "r").exists()


@pytest.mark.long
def test_a_run_split_over_two_devices_restores_on_one(omniglot_root, tmp_path):
    common = ["--algorithm", "maml", "--root", str(omniglot_root), "--run-dir", str(tmp_path / "run"), *TINY]
    sharded = omniglot.main([*common, "--devices", "2"])
    assert sharded["meta_steps"] == 6
    restored = omniglot.main([*common, "--evaluate-only"])  # the final checkpoint, on one device
    assert restored["meta_steps"] == 6
    assert restored["accuracy_by_steps"] == sharded["accuracy_by_steps"]
    with pytest.raises(SystemExit):
        omniglot.main([*common, "--devices", "4", "--meta-batch", "6"])
