"""benchmarks/inner_optimizer_cost.py end to end on a tiny conv-4 and real Omniglot tasks."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import inner_optimizer_cost  # noqa: E402


@pytest.mark.long
def test_quick_run_times_each_rule_and_writes_the_ratio_to_sgd(omniglot_root, tmp_path):
    summary = inner_optimizer_cost.main(["--quick", "--rules", "sgd", "adam", "--inner-steps", "1",
                                         "--out", str(tmp_path)])
    assert set(summary["median_seconds"]) == {"sgd", "adam"} and summary["ratio_to_sgd"]["sgd"] == 1.0
    assert len(summary["seconds_per_step"]["adam"]) == 1 and summary["median_seconds"]["adam"] > 0
    assert summary["goal"]["met"] == (summary["ratio_to_sgd"]["adam"] <= 1.3)
    assert json.loads((tmp_path / "inner_optimizer_cost.json").read_text())["setting"]["inner_steps"] == 1
    assert "| adam |" in (tmp_path / "inner_optimizer_cost.md").read_text()


def test_sgd_must_be_measured(capsys):
    with pytest.raises(SystemExit):
        inner_optimizer_cost.parse_args(["--rules", "adam"])
    assert "--rules must include sgd" in capsys.readouterr().err
