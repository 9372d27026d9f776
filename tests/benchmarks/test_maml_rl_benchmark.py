"""benchmarks/maml_rl.py on a tiny navigation problem: it trains MAML and the pretrained policy by TRPO, tests all
three policies by adaptation step, times the rollout and the meta-iteration, and writes its JSON, table and figure
beside another environment's results (a killed run continues from its checkpoints: jaxmeta.training.train's
resume, tested in tests/training). The half-cheetah's figure is drawn from a record of the same form (its
environment and a MAML-TRPO step on it: tests/rl/test_locomotion.py)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import maml_rl  # noqa: E402


@pytest.mark.long
def test_quick_run_records_returns_by_step_for_every_policy(tmp_path):
    argv = ["--quick", "--no-progress", "--run-dir", str(tmp_path / "run"), "--results-dir", str(tmp_path / "out")]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "maml_rl.json").write_text(json.dumps({"cheetah-dir": cheetah_record()}))
    record = maml_rl.main(argv)
    stored = json.loads((tmp_path / "out" / "maml_rl.json").read_text())
    assert stored["cheetah-dir"] == cheetah_record()  # another environment's results stay
    navigation = stored["navigation"]
    assert set(navigation["returns_by_step"]) == {"maml", "pretrained", "random"}
    for curve in navigation["returns_by_step"].values():
        assert len(curve["mean"]) == len(curve["ci"]) == 4 and all(m < 0 for m in curve["mean"])
    assert navigation["training"]["maml"]["meta_iterations"] == 2 and navigation["speed"]["env_steps_per_second"] > 0
    assert record["navigation"]["returns_by_step"] == navigation["returns_by_step"]
    table = (tmp_path / "out" / "maml_rl.md").read_text()
    assert "| maml |" in table and "| random |" in table and "Host:" in table
    assert table.index("## navigation") < table.index("## cheetah-dir") and "brax's spring pipeline" in table
    assert (tmp_path / "out" / "maml_rl.png").stat().st_size > 10_000
    assert (tmp_path / "run" / "maml" / "checkpoints").is_dir() and (tmp_path / "run" / "pretrained").is_dir()


def cheetah_record():
    curve = {"mean": [-90.0, -60.0, -55.0, -50.0], "ci": [5.0, 4.0, 4.0, 4.0]}
    trained = {"meta_iterations": 3, "stopped": "finished", "train_seconds": 60.0}
    return {"returns_by_step": {"maml": curve, "pretrained": curve, "random": curve}, "test_tasks": 3,
            "training": {"maml": trained, "pretrained": trained}, "test_rates": [0.1, 0.05, 0.05],
            "speed": {"env_steps_per_second": 5000.0, "env_steps_per_rollout_call": 400,
                      "seconds_per_meta_iteration": 1.0, "paper_protocol_hours": 10.0},
            "config": {"meta_batch": 2, "trajectories": 2, "horizon": 100, "hidden": [8], "estimator": "dice",
                       "backend": "spring"},
            "environment": {"backend": "cpu", "cpu_count": 2, "cpu_model": "test host"},
            "command": "benchmarks/maml_rl.py --env cheetah-dir"}


def test_the_half_cheetah_figure_shows_returns_and_velocities(tmp_path):
    observations = np.random.default_rng(0).normal(size=(3, 4, 100, 17))
    maml_rl.plot(tmp_path / "cheetah.png", "cheetah-dir", cheetah_record(), observations, np.array([1.0, -1.0, 1.0]))
    assert (tmp_path / "cheetah.png").stat().st_size > 10_000
