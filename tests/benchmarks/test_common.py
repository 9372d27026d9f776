"""benchmarks/common.py, the benchmarking helpers every driver shares: timing, FLOP and memory counts,
measurements in worker processes, result files."""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import common  # noqa: E402


def test_xla_counts_a_matrix_product_at_two_m_k_n_flops_and_sizes_its_buffers():
    a, b = jnp.ones((8, 16), jnp.float32), jnp.ones((16, 4), jnp.float32)
    compiled = jax.jit(jnp.matmul).lower(a, b).compile()
    assert common.cost_flops(compiled) == pytest.approx(2 * 8 * 16 * 4)
    memory = common.memory_bytes(compiled)
    assert memory["argument"] == (8 * 16 + 16 * 4) * 4 and memory["output"] == 8 * 4 * 4
    assert memory["step"] == memory["argument"] + memory["output"] + memory["temp"]


def test_scan_unrolled_makes_the_cost_analysis_count_every_iteration_and_is_undone():
    def loop(x, steps):
        return jax.lax.scan(lambda c, _: (c @ c, None), x, None, length=steps)[0]

    x = jnp.ones((8, 8), jnp.float32)
    def count(steps):  # a new function each time, so that jit traces it again (its cache would not)
        return common.cost_flops(jax.jit(lambda x: loop(x, steps)).lower(x).compile())

    assert count(3) == pytest.approx(count(1), rel=0.01)  # a loop body counts once (and its counter)
    with common.scan_unrolled():
        unrolled = {steps: count(steps) for steps in (1, 3)}
    assert unrolled[3] == pytest.approx(3 * unrolled[1], rel=0.01)
    assert jax.lax.scan.__module__.startswith("jax")


def test_loop_flops_extrapolates_from_one_and_two_unrolled_iterations():
    def loop(x, steps):
        return jax.lax.scan(lambda c, _: (jnp.tanh(c @ c), None), x, None, length=steps)[0]

    x = jnp.ones((8, 8), jnp.float32)

    def count(steps):
        with common.scan_unrolled():
            return common.cost_flops(jax.jit(lambda x: loop(x, steps)).lower(x).compile())

    assert common.loop_flops(count, 7)["flops"] == pytest.approx(count(7), rel=0.01)
    assert common.loop_flops(count, 1)["flops_per_further_step"] == 0


def test_meta_step_flops_counts_every_task_of_a_step_that_loops_over_them():
    import optax

    import jaxmeta
    from jaxmeta.models import MLP, functional

    model = MLP((8, 1))
    params = model.init(jax.random.key(0), jnp.zeros((1, 1)))["params"]
    tasks = jaxmeta.sinusoid_tasks(jax.random.key(1), 4, shots=5)
    learner = jaxmeta.maml(jaxmeta.regression_loss(functional(model)), inner_lr=0.01, inner_steps=1)
    built = []

    def build(conv, task_chunk):
        built.append((conv, task_chunk))
        optimizer = optax.sgd(0.1)
        return jaxmeta.init_state(learner, optimizer, params), jaxmeta.make_meta_step(
            learner, optimizer, task_chunk=task_chunk)

    looped = common.meta_step_flops(build, "onednn", 1, tasks, jax.random.key(2))
    assert built == [("im2col", 1), ("im2col", None)]  # oneDNN's custom calls are not counted: im2col is
    assert looped["loop_body"] == looped["as_timed"] > 0 and looped["per_task"] == looped["step"] / 4
    assert looped["step"] == pytest.approx(4 * looped["loop_body"], rel=0.3)  # the loop body is one task
    vmapped = common.meta_step_flops(build, "xla", None, tasks, jax.random.key(2))
    assert vmapped["loop_body"] is None and vmapped["step"] == vmapped["as_timed"] == looped["step"]


def test_time_compiled_runs_warmup_then_times_each_repetition():
    calls = []

    def step(state, tasks, key):
        calls.append(state)
        return state + 1, {"loss": jnp.float32(state)}

    seconds, state, metrics = common.time_compiled(step, 0, None, None, reps=3, warmup=2)
    assert len(seconds) == 3 and all(s >= 0 for s in seconds)
    assert calls == [0, 1, 2, 3, 4] and state == 5 and float(metrics["loss"]) == 4


def test_call_seconds_times_each_call_after_the_untimed_warmup():
    calls = []

    def function(x, y):
        calls.append((x, y))
        return jnp.float32(x + y)

    seconds = common.call_seconds(function, 1, 2, reps=3, warmup=2)
    assert len(seconds) == 3 and all(s >= 0 for s in seconds) and calls == [(1, 2)] * 5


def test_the_matmul_ceiling_reports_its_flop_and_rate():
    record = common.matmul_ceiling((64, 32, 16), reps=3)
    assert record["flop"] == 2 * 64 * 32 * 16 and len(record["seconds"]) == 3
    assert record["gflops_per_second"] == pytest.approx(record["flop"] / record["median_seconds"] / 1e9)


def test_a_worker_returns_its_last_json_line_and_a_failure_names_what_failed(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text("import json, sys\nprint('log line')\nprint(json.dumps({'ok': 1}))\n"
                      "sys.exit(int(sys.argv[1]))\n")
    assert common.run_json([sys.executable, str(script), "0"], "a worker") == (0, {"ok": 1})
    assert common.run_json([sys.executable, str(script), str(common.MISSING_EXIT_CODE)], "a worker")[0] == \
        common.MISSING_EXIT_CODE
    with pytest.raises(common.WorkerFailed, match="the probe failed .exit code 1"):
        common.run_json([sys.executable, str(script), "1"], "the probe")


def test_run_jobs_runs_each_worker_once_resumes_skips_missing_libraries_and_records_failures(tmp_path):
    """Real worker processes: a script that prints its argument as a record, exits with the missing-library
    code for "absent", and fails for "broken"."""
    script = tmp_path / "worker.py"
    script.write_text("import json, sys\nname = sys.argv[1]\n"
                      "if name == 'broken': sys.exit('broken worker')\n"
                      "print(json.dumps({'name': name, 'error': 'no module absent'}))\n"
                      "sys.exit(3 if name == 'absent' else 0)\n")
    job = lambda kind, name, **options: common.Job(  # noqa: E731
        kind, (name,), [sys.executable, str(script), name], f"job {name}", {"label": name.upper()}, **options)
    jobs = [job("costs", "a"), job("torch", "absent", library="lib"), job("torch", "never", library="lib"),
            job("costs", "broken"), job("costs", "b")]
    saved = []
    results = common.run_jobs(jobs, save=lambda r: saved.append(r), progress=False)
    assert [(r["name"], r["label"]) for r in results["costs"]] == [("a", "A"), ("b", "B")]
    assert results["torch"] == [] and results["missing"] == {"lib": "no module absent"}  # "never" never ran
    (failure,) = results["failures"]
    assert failure["what"] == "job broken" and "broken worker" in failure["error"] and failure["label"] == "BROKEN"
    assert len(saved) == 4 and [r["name"] for r in saved[0]["costs"]] == ["a"]  # after each run, not the skip
    assert all("measured_at" in r for r in results["costs"])

    # Resuming: a kept record is not measured again; one of a job this run does not have is kept too.
    kept = {("costs", "a"): {"name": "a", "kept": True}, ("costs", "z"): {"name": "z", "kept": True}}
    again = common.run_jobs([job("costs", "a"), job("costs", "b")], previous=kept, save=saved.append,
                            progress=False)
    assert [(r["name"], r.get("kept", False)) for r in again["costs"]] == [("a", True), ("b", False), ("z", True)]
    assert len(saved) == 5 and [r["name"] for r in saved[-1]["costs"]] == ["a", "b", "z"]

    with pytest.raises(common.WorkerFailed, match="job broken failed"):
        common.run_jobs([job("costs", "broken", required=True), job("costs", "a")], progress=False)


def test_markdown_table_needs_a_cell_per_column():
    assert common.markdown_table(["a"], []) == ["| a |", "|---|"]
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        common.markdown_table(["a", "b"], [[1]])


def test_count_is_singular_for_one_only():
    assert [common.count(n, "inner step") for n in (0, 1, 2)] == ["0 inner steps", "1 inner step", "2 inner steps"]


def test_worker_command_turns_options_into_flags():
    command = common.worker_command("b.py", "cost", inner_steps=5, flops=True, remat=False, seed=None, sizes=(1, 2))
    assert command[0] == sys.executable and command[1].endswith("b.py")
    assert command[2:] == ["--worker", "cost", "--inner-steps", "5", "--flops", "--sizes", "1", "2"]


def test_result_files_round_trip_and_a_missing_one_gives_the_default(tmp_path):
    path = tmp_path / "results.json"
    assert common.read_json(path, default={}) == {}
    common.write_json(path, {"row": [1.5, None]})
    assert json.loads(path.read_text()) == {"row": [1.5, None]} == common.read_json(path)
    assert common.mean_ci(97.8512, 0.2671) == "97.85 ± 0.27"


def test_the_environment_names_the_host():
    environment = common.environment()
    assert environment["backend"] == jax.default_backend() and environment["cpu_count"] >= 1
    assert common.hardware(environment).endswith("cores") or environment["backend"] != "cpu"
    np.testing.assert_equal(environment["jax"], jax.__version__)


def test_the_examples_in_the_docstrings_hold():
    import doctest

    result = doctest.testmod(common)
    assert result.attempted >= 3 and result.failed == 0
