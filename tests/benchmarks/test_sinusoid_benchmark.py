"""The sinusoid benchmark script end to end, on a tiny configuration."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import sinusoid  # noqa: E402


@pytest.mark.long
def test_tiny_run_writes_json_table_and_figures(tmp_path):
    summary = sinusoid.main([
        "--algorithms", "maml", "metasgd", "--shots", "5", "--iterations", "60", "--steps-per-call", "20",
        "--eval-tasks", "20", "--eval-query", "10", "--out", str(tmp_path), "--no-progress",
    ])
    data = json.loads((tmp_path / "sinusoid.json").read_text())
    assert [r["algorithm"] for r in data["results"]] == ["maml", "metasgd"]
    for record in data["results"]:
        assert set(record["mse"]) == {"0", "1", "10"}
        assert record["meta_steps_per_second"] > 0
    table = (tmp_path / "sinusoid.md").read_text()
    assert "1.13 ± 0.18" in table and "0.90 ± 0.16" in table  # published rows beside ours
    assert (tmp_path / "sinusoid.png").stat().st_size > 10_000
    assert (tmp_path / "sinusoid_training.png").stat().st_size > 10_000
    assert summary["results"] == data["results"]

    # Rows of another run into the same folder are merged into the table (MAML with an inner optimizer).
    sinusoid.main(["--algorithms", "maml-momentum", "maml-meta-curvature", "--shots", "5", "--iterations", "40",
                   "--steps-per-call", "20", "--eval-tasks", "20", "--eval-query", "10", "--out", str(tmp_path),
                   "--no-progress"])
    merged = json.loads((tmp_path / "sinusoid.json").read_text())["results"]
    assert [r["algorithm"] for r in merged] == ["maml", "metasgd", "maml-momentum", "maml-meta-curvature"]
    assert [r["clip_norm"] for r in merged[2:]] == [None, 10.0]  # the registry's clip for the learned rule
    assert merged[0] == data["results"][0]
    rows = [line for line in (tmp_path / "sinusoid.md").read_text().splitlines() if line.startswith("| maml")]
    assert rows[-2].startswith("| maml-momentum | 5 |")
    assert rows[-1].startswith("| maml-meta-curvature (clip 10) | 5 |")
    host = sinusoid.common.hardware(data["environment"])
    assert all(row.endswith(f"| {host} |") for row in rows)  # every row names the machine it ran on
    assert (tmp_path / "sinusoid_maml-momentum_maml-meta-curvature.png").exists()
    assert (tmp_path / "sinusoid.png").exists()

    # CAVIA's row also goes to the variants table, beside MAML's row of the same K and host.
    sinusoid.main(["--algorithms", "cavia", "--shots", "5", "--iterations", "40", "--steps-per-call", "20",
                   "--eval-tasks", "20", "--eval-query", "10", "--out", str(tmp_path), "--no-progress",
                   "--variants-table", str(tmp_path / "variants")])
    variants = json.loads((tmp_path / "variants" / "maml_variants.json").read_text())
    cavia = variants["cavia-sinusoid-5shot"]
    assert cavia["algorithm"] == "cavia" and cavia["baseline"] == {**data["results"][0],
                                                                     "environment": data["environment"]}
    row = next(line for line in (tmp_path / "variants" / "maml_variants.md").read_text().splitlines()
               if line.startswith("| cavia-sinusoid-5shot |"))
    assert format(data["results"][0]["mse"]["1"]["mean"], ".3f") in row  # MAML's 1-step MSE beside CAVIA's


def test_the_clip_is_the_registrys_unless_given_and_the_table_names_it_where_it_differs():
    defaults, none = sinusoid.parse_args([]), sinusoid.parse_args(["--clip-norm", "0"])
    assert sinusoid.clip_norm_of("maml-meta-curvature", defaults) == 10.0
    assert sinusoid.clip_norm_of("maml", defaults) is None
    assert sinusoid.clip_norm_of("maml-meta-curvature", none) is None
    assert sinusoid.clip_norm_of("maml", sinusoid.parse_args(["--clip-norm", "5"])) == 5.0
    label = sinusoid.learner_label
    assert label({"algorithm": "maml", "clip_norm": None}) == "maml"
    assert label({"algorithm": "maml", "clip_norm": 5.0}) == "maml (clip 5)"
    assert label({"algorithm": "maml-meta-curvature", "clip_norm": None}) == "maml-meta-curvature (no clip)"
    rows = [{"algorithm": "maml-meta-curvature", "shots": 5, "clip_norm": clip} for clip in (10.0, None)]
    assert sinusoid.merged(rows[:1], rows[1:]) == rows[::-1]  # both kept, the unclipped first


def test_a_run_whose_meta_loss_turns_non_finite_is_a_row_that_says_where_it_stopped(tmp_path):
    sinusoid.main(["--algorithms", "maml", "--shots", "5", "--iterations", "20", "--steps-per-call", "10",
                   "--inner-lr", "1e30", "--eval-tasks", "20", "--eval-query", "10", "--out", str(tmp_path),
                   "--no-progress"])
    record = json.loads((tmp_path / "sinusoid.json").read_text())["results"][0]
    assert record["training_stopped"]["meta_step"] <= 10 and not np.isfinite(record["training_stopped"]["loss"])
    assert record["meta_steps_per_second"] is None  # no chunk after the compiling one
    table = (tmp_path / "sinusoid.md").read_text()
    assert f"| maml (stopped at meta-step {record['training_stopped']['meta_step']}) | 5 |" in table
    assert "Training stopped on a non-finite meta-loss: maml" in table


@pytest.mark.parametrize("argv, message", [
    (["--iterations", "0"], "--iterations must be at least 1"),
    (["--inner-lr", "-1"], "must be positive"),
    (["--clip-norm", "-1"], "--clip-norm must be positive, or 0 for no clip"),
])
def test_bad_arguments_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit):
        sinusoid.parse_args(argv)
    assert message in capsys.readouterr().err
