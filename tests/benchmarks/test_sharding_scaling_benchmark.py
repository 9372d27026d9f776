"""benchmarks/sharding_scaling.py on 1 and 2 CPU devices with a tiny model, and its argument checks."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import sharding_scaling  # noqa: E402


@pytest.mark.long
def test_quick_run_times_each_device_count_in_its_own_process(tmp_path):
    summary = sharding_scaling.main(["--quick", "--out", str(tmp_path)])
    assert summary["failures"] == []
    assert [r["devices"] for r in summary["runs"]] == [1, 2]
    for run in summary["runs"]:
        assert run["median_seconds"] > 0 and run["tasks_per_second"] == pytest.approx(4 / run["median_seconds"])
    assert json.loads((tmp_path / "sharding_scaling.json").read_text())["runs"] == summary["runs"]
    assert "| 2 |" in (tmp_path / "sharding_scaling.md").read_text()


def test_a_meta_batch_that_a_device_count_does_not_divide_is_refused(capsys):
    with pytest.raises(SystemExit):
        sharding_scaling.main(["--devices", "1", "3", "--meta-batch", "8"])
    assert "--meta-batch 8 must be a positive multiple of every device count (got 3)" in capsys.readouterr().err
