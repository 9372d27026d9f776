"""The data-layer benchmark end to end on the real archives, with tiny repeat counts."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import omniglot_data  # noqa: E402


@pytest.mark.long
def test_benchmark_writes_loading_and_sampling_figures(omniglot_root, tmp_path):
    summary = omniglot_data.main(["--root", str(omniglot_root), "--batch-sizes", "4", "--repeats", "2",
                                  "--out", str(tmp_path)])
    data = json.loads((tmp_path / "omniglot_data.json").read_text())
    assert data["loading"]["characters"] == 1623 and data["loading"]["first_load_seconds"] > 0
    assert len(data["sampling_5w1s15q"]) == 4 and all(r["tasks_per_second"] > 0 for r in data["sampling_5w1s15q"])
    assert "| 4 | yes | uint8 |" in (tmp_path / "omniglot_data.md").read_text()
    assert summary["loading"] == data["loading"]
