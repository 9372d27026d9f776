"""benchmarks/hessian_cost.py end to end on the sinusoid MLP with 2 inner steps, and its argument checks."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import hessian_cost  # noqa: E402


@pytest.mark.long
def test_tiny_grid_times_sizes_and_compares_every_method_with_exact_maml(tmp_path):
    summary = hessian_cost.main(["--models", "sinusoid-mlp", "--steps", "2", "--reps", "1",
                                 "--out", str(tmp_path), "--no-progress"])
    assert summary["failures"] == []
    assert {(c["method"], c["inner_steps"]) for c in summary["costs"]} == {
        (m, 2) for m in hessian_cost.METHODS}
    for cost in summary["costs"]:
        assert cost["median_seconds"] > 0 and cost["compile_seconds"] > 0 and cost["flops"] > 0
        assert cost["memory_bytes"]["step"] >= cost["memory_bytes"]["temp"] > 0
        assert cost["peak_rss_bytes"] >= cost["rss_before_compile_bytes"] > 0
    flops = {c["method"]: c["flops"] for c in summary["costs"]}
    assert flops["maml"] > flops["fomaml"]  # the Hessian-vector products cost something
    for agreement in summary["agreement"]:
        cosine = agreement["cosine"]
        assert cosine["maml"] == pytest.approx(1.0) and cosine["maml-remat"] == pytest.approx(1.0)
        assert agreement["dtype"] == "float64"
        assert agreement["remat_relative_difference"] < 1e-12  # remat is the same gradient
        assert -1.0 <= cosine["fomaml"] < 1.0 and -1.0 <= cosine["reptile"] <= 1.0
    assert summary["goals"] == {}  # the goals are defined on conv4-64, not run here
    assert json.loads((tmp_path / "hessian_cost.json").read_text())["costs"] == summary["costs"]
    table = (tmp_path / "hessian_cost.md").read_text()
    assert "| sinusoid-mlp | 2 | maml-remat |" in table and "not measured in this run" in table
    assert (tmp_path / "hessian_cost.png").stat().st_size > 10_000


@pytest.mark.parametrize("method", ["maml", "fomaml"])
def test_flop_count_grows_by_the_same_amount_with_each_inner_step(method):
    # XLA counts a loop body once; the count extrapolated from 1 and 2 unrolled steps must match
    # a 3-step unrolled compile (XLA's simplifications vary the increments by about 1%).
    import jax
    import optax

    loss_fn, params, tasks, inner_lr, _ = hessian_cost.problem("sinusoid-mlp")
    tasks = jax.tree.map(lambda x: x[:2], tasks)
    args = (method, loss_fn, params, tasks, inner_lr, 3, optax.adam(1e-3), jax.random.key(0))
    extrapolated = hessian_cost.step_flops(*args)
    assert extrapolated["flops_per_further_step"] > 0
    assert extrapolated["flops"] == pytest.approx(hessian_cost.unrolled_flops(*args), rel=0.03)
    assert jax.lax.scan.__module__.startswith("jax")  # the patch is undone


@pytest.mark.parametrize("argv, message", [
    (["--reps", "0"], "--reps must be at least 1"),
    (["--steps", "0", "5"], "--steps must all be at least 1"),
    (["--methods", "newton"], "invalid choice"),
])
def test_bad_arguments_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit):
        hessian_cost.main(argv)
    assert message in capsys.readouterr().err
