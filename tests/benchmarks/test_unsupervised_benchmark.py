"""benchmarks/unsupervised.py: the embedding part end to end on the real Omniglot split (a 4-step encoder, 4 test
tasks per setting), the table and its rows, and the argument checks."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import unsupervised  # noqa: E402


@pytest.mark.long
def test_the_embedding_part_writes_a_row_per_method_and_setting(tmp_path, omniglot_root):
    rows = unsupervised.main(["--quick", "--parts", "embedding", "--settings", "5w1s", "20w5s", "--run-dir",
                              str(tmp_path / "runs"), "--results-dir", str(tmp_path), "--no-progress"])
    data = json.loads((tmp_path / "unsupervised.json").read_text())
    assert data == rows
    for method in ("embedding-1nn", "embedding-logistic"):
        assert f"{method}-5w5s" not in data  # only the settings asked for
        for ways, shots in ((5, 1), (20, 5)):
            row = data[f"{method}-{ways}w{shots}s"]
            assert row["tasks"] == 4 and 0 <= row["accuracy"] <= 100 and row["ci"] >= 0
            assert row["encoder_steps"] == 4 and row["environment"]["cpu_count"] >= 1
    assert (tmp_path / "runs" / "encoder" / "config.json").exists()  # trained through jaxmeta.training.train
    table = (tmp_path / "unsupervised.md").read_text()
    assert "| embedding-1nn |" in table and "68.84 / 87.78 / 48.09 / 73.36" not in table  # no CACTUs row yet


@pytest.mark.parametrize("argv, message", [
    (["--partitions", "0"], "--partitions must be at least 1"),
    (["--budget-minutes", "0"], "--budget-minutes must be positive"),
    (["--parts", "acai"], "invalid choice: 'acai'"),
    (["--settings", "10w1s"], "invalid choice: '10w1s'"),
])
def test_bad_arguments_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit):
        unsupervised.parse_args(argv)
    assert message in capsys.readouterr().err
