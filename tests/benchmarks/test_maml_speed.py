"""benchmarks/maml_speed.py: the jaxmeta worker on a tiny setting, the report when the PyTorch libraries
are missing (simulated, so the test is the same with or without torch), and its argument checks."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import common  # noqa: E402
import maml_speed  # noqa: E402

TINY = {"meta_batch": 2, "ways": 5, "shots": 1, "queries": 1, "inner_steps": 1, "inner_lr": 0.4}


def run_worker():
    """One jaxmeta worker process on the tiny setting with oneDNN's convolutions, with its FLOP count (three
    compilations: the timed step, and for XLA's cost analysis the im2col step as timed and under vmap)."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "maml_speed.py"), "--worker", "jaxmeta", "--path", "onednn", "--flops",
         "--reps", "1",
         "--warmup", "0", "--data", "random", *maml_speed.setting_arguments(TINY)],
        capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.long
def test_the_worker_times_the_cpu_path_counts_the_flops_and_the_report_names_missing_libraries(tmp_path, monkeypatch):
    """One test, so that the worker's two compilations run once (xdist spreads a module's tests
    over processes, where a module fixture would run once per process)."""
    record = worker_record = run_worker()
    assert record["impl"] == "jaxmeta" and record["conv"] == "onednn" and record["task_chunk"] == 1
    assert {k: record["setting"][k] for k in TINY} == TINY and record["setting"]["first_order"] is False
    assert len(record["seconds_per_step"]) == 1 and record["median_seconds"] > 0
    assert record["tasks_per_second"] == pytest.approx(2 / record["median_seconds"])
    assert record["compile_seconds"] > 0 and record["last_loss"] > 0
    flops = record["flops"]
    # The lax.map body is counted once by XLA; the step under vmap counts every task. XLA cannot see into
    # oneDNN's custom calls, so both counts come from the im2col step: the convolutions are most of them.
    assert flops["loop_body"] == flops["as_timed"] > 0 and "conv='im2col'" in flops["source"]
    conv_flops = 2 * 9 * 64 * (64 * (14 * 14 + 7 * 7 + 3 * 3)) * (5 + 5)  # layers 2-4 forward, 10 images
    assert flops["loop_body"] > 3 * conv_flops  # forward, two backward products, and the inner step's
    assert flops["step"] == pytest.approx(TINY["meta_batch"] * flops["loop_body"], rel=0.3)
    assert flops["per_task"] == pytest.approx(flops["step"] / TINY["meta_batch"])

    # A `torch` package that fails to import, first on the children's path: torch_maml.py exits with 3.
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch hidden by the test')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker.parent))
    status, record = common.run_json(maml_speed.job("higher", "5-way", TINY, 0, reps=1, warmup=0).command, "higher")
    assert status == common.MISSING_EXIT_CODE and "ImportError" in record["error"]

    real_run_json = common.run_json

    def run_json(command, what):  # jaxmeta from the first worker: one compile
        if "--worker" in command and "jaxmeta" in command:
            assert command[command.index("--data") + 1] == "omniglot"  # the default
            return 0, worker_record
        return real_run_json(command, what)

    monkeypatch.setattr(common, "run_json", run_json)
    out = tmp_path / "out"
    summary = maml_speed.main(["--quick", "--settings", "5-way", "--ceiling-reps", "1", "--out", str(out)])

    data = json.loads((out / "maml_speed.json").read_text())
    assert data["comparisons"]["ran"] == {} and set(data["comparisons"]["missing"]) == set(maml_speed.TORCH_IMPLS)
    assert data["quick"] is True and data["protocol"]["reps"] == 1 and data["protocol"]["rounds"] == 1
    assert data["environment"]["jax"] and data["ceiling"]["gflops_per_second"] > 0
    (entry,) = data["settings"]
    assert list(entry["results"]) == ["jaxmeta"] and entry["ratios_jaxmeta_over"] == {}
    assert entry["goal_met"] is None and entry["flops"]["step"] == worker_record["flops"]["step"]
    result = entry["results"]["jaxmeta"]
    assert result["gflops_per_second"] == pytest.approx(worker_record["flops"]["step"] / 1e9 / result["median_seconds"])
    assert summary["comparisons"] == data["comparisons"]
    table = (out / "maml_speed.md").read_text()
    assert "Comparisons that ran: none" in table and "Not installed, so not compared: learn2learn" in table
    assert "| 5-way | jaxmeta, CPU path (onednn, task_chunk=1) |" in table
    assert "--with-accelerator-path" in table and "Quick smoke run" in table


@pytest.mark.parametrize("argv, message", [
    (["--reps", "0"], "--reps must be at least 1"),
    (["--rounds", "0"], "--rounds must be at least 1"),
    (["--meta-batch", "-2"], "--meta-batch must be at least 1"),
    (["--warmup", "-1"], "--warmup must be >= 0"),
    (["--settings", "10-way"], "invalid choice: '10-way'"),
    (["--impls", "maml++"], "invalid choice: 'maml++'"),
    (["--ways", "5"], "--ways only go with --worker"),
    (["--worker", "jaxmeta", "--ways", "5"], "--worker jaxmeta needs --shots"),
    (["--worker", "jaxmeta", *maml_speed.setting_arguments({**TINY, "inner_lr": 0})], "--inner-lr must be positive"),
])
def test_bad_arguments_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit):
        maml_speed.parse_args(argv)
    assert message in capsys.readouterr().err


def test_each_jaxmeta_variant_runs_its_worker_with_its_device_count():
    commands = []
    for impl in ("jaxmeta", "jaxmeta-host-devices", "jaxmeta-im2col", "jaxmeta-accelerator"):
        job = maml_speed.job(impl, "5-way", TINY, 0, reps=1, warmup=0, data="random")
        assert job.required and job.library is None  # a failure of jaxmeta stops the benchmark
        commands.append(job.command)
    torch_job = maml_speed.job("higher", "5-way", TINY, 0, reps=1, warmup=0)
    assert torch_job.library == "higher" and not torch_job.required  # a missing library is skipped after
    devices = [command[command.index("--devices") + 1] for command in commands]
    paths = [command[command.index("--path") + 1] for command in commands]
    names = [command[command.index("--impl") + 1] for command in commands]
    assert devices == ["1", str(maml_speed.HOST_DEVICES), "1", "1"] and names == list(maml_speed.JAX_IMPLS[:1]) + [
        "jaxmeta-host-devices", "jaxmeta-im2col", "jaxmeta-accelerator"]
    assert paths == ["onednn", "onednn", "im2col", "accelerator"]  # make test builds the oneDNN extension
    assert all(command[command.index("--data") + 1] == "random" for command in commands)


def test_the_omniglot_meta_batch_has_the_random_batch_layout_with_real_drawings(omniglot):
    import common

    real = common.omniglot_meta_batch(0, 3, ways=5, shots=1, queries=2, data=omniglot)
    fake = common.random_omniglot_tasks(0, 3, ways=5, shots=1, queries=2)
    for ours, theirs in zip(jax.tree.leaves(real), jax.tree.leaves(fake)):
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_array_equal(np.sort(real.query[1], axis=1), np.sort(fake.query[1], axis=1))  # 0..4, twice
    images = np.concatenate([real.support[0].ravel(), real.query[0].ravel()])
    assert 0.5 < np.mean(images == 0) < 0.98 and images.max() == 255  # strokes on an empty background
    again = common.omniglot_meta_batch(0, 3, ways=5, shots=1, queries=2, data=omniglot)
    np.testing.assert_array_equal(again.query[0], real.query[0])
