"""benchmarks/maml_rl.py on a tiny navigation problem: it trains MAML and the pretrained policy by TRPO, tests all
three policies by adaptation step, times the rollout and the meta-iteration, and writes its JSON, table and figure
(a killed run continues from its checkpoints: jaxmeta.training.train's resume, tested in tests/training)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import maml_rl  # noqa: E402


@pytest.mark.long
def test_quick_run_records_returns_by_step_for_every_policy(tmp_path):
    argv = ["--quick", "--no-progress", "--run-dir", str(tmp_path / "run"), "--results-dir", str(tmp_path / "out")]
    record = maml_rl.main(argv)
    stored = json.loads((tmp_path / "out" / "maml_rl.json").read_text())
    navigation = stored["navigation"]
    assert set(navigation["returns_by_step"]) == {"maml", "pretrained", "random"}
    for curve in navigation["returns_by_step"].values():
        assert len(curve["mean"]) == len(curve["ci"]) == 4 and all(m < 0 for m in curve["mean"])
    assert navigation["training"]["maml"]["meta_iterations"] == 2 and navigation["speed"]["env_steps_per_second"] > 0
    assert record["navigation"]["returns_by_step"] == navigation["returns_by_step"]
    table = (tmp_path / "out" / "maml_rl.md").read_text()
    assert "| maml |" in table and "| random |" in table and "Host:" in table
    assert (tmp_path / "out" / "maml_rl.png").stat().st_size > 10_000
    assert (tmp_path / "run" / "maml" / "checkpoints").is_dir() and (tmp_path / "run" / "pretrained").is_dir()
