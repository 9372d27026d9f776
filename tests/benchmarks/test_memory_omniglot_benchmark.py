"""benchmarks/memory_omniglot.py end to end on the real archives with a tiny MANN, and its input checks."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import common  # noqa: E402
import memory_omniglot  # noqa: E402

TINY = ["--ways", "3", "--instances", "4", "--batch", "2", "--controller", "8", "--rows", "6", "--width", "4",
        "--heads", "2", "--iterations", "6", "--validate-every", "3", "--validation-episodes", "4",
        "--checkpoint-every", "3", "--steps-per-call", "3", "--eval-episodes", "6", "--no-progress"]


@pytest.mark.long
def test_tiny_run_trains_evaluates_by_presentation_and_records(omniglot_root, tmp_path):
    run_dir, results = tmp_path / "run", tmp_path / "results"
    summary = memory_omniglot.main(["--model", "mann", "--root", str(omniglot_root), "--run-dir", str(run_dir),
                                    "--record", "--results-dir", str(results), *TINY])
    assert summary["meta_steps"] == 6 and summary["episodes"] == 12
    assert sorted(summary["test"]) == ["accuracy", "loss", "presentation_1", "presentation_2", "presentation_3"]
    assert all(0 <= mean <= 1 for name, (mean, _) in summary["test"].items() if name != "loss")
    kinds = [json.loads(line)["kind"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert kinds == ["train", "validation", "train", "validation"]
    assert (results / "memory_omniglot_mann_3way_episode.png").stat().st_size > 0
    table = (results / "memory_omniglot.md").read_text()
    assert "trained on the hardware named in each row within the stated budget" in table
    row = [line for line in table.splitlines() if line.startswith("| mann (add vector written) | 3 |")][0].split(" | ")
    assert row[5:7] == ["-", "-"] and row[-1] == "- |"  # no 5th or 10th presentation, no published 3-way row
    assert row[-2] == common.hardware(common.environment())

    again = memory_omniglot.main(["--model", "mann", "--root", str(omniglot_root), "--run-dir", str(run_dir),
                                  "--resume", *TINY])
    assert again["meta_steps"] == 6 and again["test"] == summary["test"]
    restored = memory_omniglot.main(["--model", "mann", "--root", str(omniglot_root), "--run-dir", str(run_dir),
                                     "--evaluate-only", *TINY])
    assert restored["stopped"] == "restored" and restored["test"] == summary["test"]


def test_result_rows_name_the_hardware_they_ran_on():
    xeon = {"backend": "cpu", "cpu_count": 2, "cpu_model": "Intel(R) Xeon(R) Processor"}
    assert common.hardware(xeon) == "Intel(R) Xeon(R) Processor, 2 cores"
    assert common.hardware({"backend": "cpu", "cpu_count": 2}) == "CPU, 2 cores (model not recorded)"
    assert common.hardware({"backend": "gpu", "device_kind": "NVIDIA H100 80GB HBM3"}) == "NVIDIA H100 80GB HBM3"
    assert common.hardware({"backend": "tpu"}) == "TPU"


@pytest.mark.parametrize("argv, message", [
    (["--model", "dnc"], "invalid choice: 'dnc'"),
    (["--write-vector", "value"], "invalid choice: 'value'"),
    (["--lr", "0"], "--lr must be positive"),
    (["--instances", "0"], "--instances must be at least 1"),
    (["--heads", "9", "--rows", "8"], "--heads (9) cannot exceed --rows (8)"),
])
def test_invalid_settings_are_refused_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit):
        memory_omniglot.parse_args(argv)
    assert message in capsys.readouterr().err
