"""benchmarks/learned_optimizer.py end to end at a tiny size on the Omniglot classifiers, and its checks.

(The quadratic family goes through the same code; its meta-training is tested in
tests/optimizers/test_meta_training.py.)"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import learned_optimizer  # noqa: E402

TINY = ["--iterations", "3", "--batch", "2", "--horizon", "4", "--unroll", "2", "--steps", "5",
        "--test-problems", "3", "--validation-problems", "2", "--no-progress"]


@pytest.mark.long
def test_tiny_run_compares_the_learned_optimizer_with_tuned_baselines(omniglot_root, tmp_path):
    results = learned_optimizer.main(["--problems", "classifier", "--root", str(omniglot_root), "--results-dir",
                                      str(tmp_path), *TINY])
    assert sorted(results["families"]) == ["classifier"]
    for family in results["families"].values():
        curves = family["curves"]
        assert [name.split(" ")[0] for name in curves] == ["LSTM", "SGD", "RMSProp", "Adam"]
        starts = [curve[0] for curve in curves.values()]
        assert all(len(curve) == 6 for curve in curves.values())
        np.testing.assert_allclose(starts, starts[0], rtol=1e-6)  # the same functions from the same points
        assert set(family["baseline_learning_rates"].values()) <= set(learned_optimizer.LEARNING_RATES)
        assert len(family["meta_training_losses"]) == 3 * 2  # iterations x truncations per problem
        assert family["meta_training_iterations"] == 3
    # a 10-way classifier starts near log(10) in cross-entropy
    assert abs(results["families"]["classifier"]["curves"]["LSTM (learned)"][0] - np.log(10)) < 0.5
    assert json.loads((tmp_path / "learned_optimizer.json").read_text())["config"]["iterations"] == 3
    assert "| LSTM (learned) |" in (tmp_path / "learned_optimizer.md").read_text()
    assert "Meta-trained 3 batches of 2 problems in" in (tmp_path / "learned_optimizer.md").read_text()
    assert (tmp_path / "learned_optimizer.png").stat().st_size > 0


@pytest.mark.parametrize("argv, message", [
    (["--horizon", "30", "--unroll", "20"], "--horizon (30) must be a multiple of --unroll (20)"),
    (["--meta-lr", "0"], "--meta-lr must be positive"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--budget-minutes", "-1"], "--budget-minutes must be positive, got -1.0"),
    (["--problems", "rosenbrock"], "invalid choice: 'rosenbrock'"),
])
def test_invalid_settings_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        learned_optimizer.parse_args(argv)
    assert message in capsys.readouterr().err
