"""benchmarks/hessian_cost.py end to end on the sinusoid MLP with 2 inner steps, and its argument checks."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import common  # noqa: E402
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


def fake_worker_results(monkeypatch):
    """Replace the worker processes by instant fakes; return the list of what was run."""
    ran = []

    def fake_run_json(command, what):
        ran.append(what)
        if str(hessian_cost.TORCH_SCRIPT) in command:
            impl = command[command.index("--impl") + 1]
            if impl == "higher":
                return common.MISSING_EXIT_CODE, {"impl": impl, "error": "ModuleNotFoundError: higher"}
            return 0, {"impl": impl, "library_version": "0", "median_seconds": 2.0, "peak_rss_bytes": 2 * 2**20}
        option = lambda name: command[command.index(name) + 1]  # noqa: E731
        if "agreement" in command:
            return 0, {"model": option("--model"), "inner_steps": int(option("--inner-steps")),
                       "cosine": {"maml": 1.0}, "remat_relative_difference": None}
        return 0, {"method": option("--method"), "model": option("--model"),
                   "inner_steps": int(option("--inner-steps")), "median_seconds": 1.0, "compile_seconds": 1.0,
                   "memory_bytes": {"step": 2**20}, "peak_rss_bytes": 2**20, "flops": 1e9}

    monkeypatch.setattr(common, "run_json", fake_run_json)  # run_jobs's workers
    return ran


def test_resume_measures_only_what_is_missing_and_saves_after_every_worker(monkeypatch):
    ran = fake_worker_results(monkeypatch)
    args = hessian_cost.parse_args(["--models", "conv4-32", "--steps", "1", "2", "--methods", "maml", "fomaml",
                                    "--torch", "learn2learn", "higher", "--no-progress"])
    saved = []
    first = hessian_cost.run_grid(args, save=lambda grid: saved.append(len(grid["costs"])))
    # 2 steps x (2 methods + agreement) + learn2learn's 2 methods x 2 steps + higher tried once.
    assert len(ran) == 2 * 3 + 4 + 1 and len(saved) == len(ran)
    assert first["missing"] == {"higher": "ModuleNotFoundError: higher"} and first["failures"] == []
    assert {(t["impl"], t["method"], t["inner_steps"]) for t in first["torch"]} == {
        ("learn2learn", m, k) for m in ("maml", "fomaml") for k in (1, 2)}
    # Resuming with one cost and one agreement dropped runs exactly those two (and higher again).
    # A record of a model this run leaves out is kept, and every save holds all the previous records.
    other_model = {**first["costs"][0], "model": "conv4-64"}
    previous = {**first, "costs": first["costs"][1:] + [other_model], "agreement": first["agreement"][:1]}
    ran.clear()
    saved.clear()
    second = hessian_cost.run_grid(args, previous, save=lambda grid: saved.append(len(grid["costs"])))
    assert ran == ["maml on conv4-32 with 1 step", "higher maml on conv4-32 with 1 step",
                   "gradient agreement on conv4-32 with 2 steps"]
    assert saved == [len(previous["costs"]) + 1] * len(ran)
    assert sorted(map(hessian_cost._key, second["costs"])) == sorted(
        map(hessian_cost._key, first["costs"] + [other_model]))
    table_of = lambda grid: hessian_cost.markdown({  # noqa: E731
        "quick": False, "environment": {"processor": "x", "cpu_count": 2, "jax": "0", "backend": "cpu"},
        "protocol": {"reps": 1}, **grid, "goals": {}})
    table = table_of(second)
    assert "| conv4-32 | 2 | fomaml | learn2learn 0 | 2.0000 | 2.0 | 0.50 | 0.50 |" in table
    assert "higher is not installed" in table
    assert "Per model:" not in table  # one day: one run
    # Records resumed from another day: the table says which model's column comes from when.
    old_record = {**other_model, "model": "conv4-128", "measured_at": "2000-01-01T00:00:00"}
    table = table_of({**second, "costs": second["costs"] + [old_record]})
    assert "Per model: conv4-32 20" in table and "conv4-128 2000-01-01T00:00:00 to 2000-01-01T00:00:00" in table
