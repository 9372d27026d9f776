"""train(): checkpoints, exact resume after a kill, validation records, time budget, NaN handling."""

import json
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta import NonFiniteLossError, init_state, make_meta_step, maml, regression_loss, sinusoid_tasks
from jaxmeta.models import MLP, functional
from jaxmeta.training.checkpoint import RunDirectory, RunDirectoryError
from jaxmeta.training.loop import restore_run, train

RUN_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import jax, jax.numpy as jnp, numpy as np, optax
    from jaxmeta import maml, regression_loss, init_state, make_meta_step, sinusoid_tasks
    from jaxmeta.models import MLP, functional
    from jaxmeta.training.loop import train

    run_dir, mode, out = sys.argv[1], sys.argv[2], sys.argv[3]  # mode: fresh, resume, or kill
    model = MLP((16, 16, 1))
    learner = maml(regression_loss(functional(model)), inner_lr=0.01)
    optimizer = optax.adam(1e-3)
    state = init_state(learner, optimizer, model.init(jax.random.key(0), jnp.zeros((1, 1)))["params"])

    validations = []

    def validate(meta_params):
        validations.append(1)
        if mode == "kill" and len(validations) == 7:  # at step 70, 10 steps after the (synchronous) checkpoint 60
            os.kill(os.getpid(), signal.SIGKILL)
        return {"norm": float(sum(jnp.sum(x ** 2) for x in jax.tree.leaves(meta_params)))}

    result = train(make_meta_step(learner, optimizer), state, lambda k: sinusoid_tasks(k, 8, shots=5),
                   key=jax.random.key(1), num_steps=300, run_dir=run_dir, config={"lr": 1e-3},
                   resume=mode == "resume", checkpoint_every=20, validate=validate, validate_every=10,
                   steps_per_call=10, progress=False)
    np.savez(out, *jax.tree.leaves(result.state))
""")


def _run(script, *args, wait=True):
    process = subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    if wait:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
    return process


@pytest.mark.long
def test_a_killed_and_resumed_run_ends_bitwise_equal_to_an_uninterrupted_one(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN_SCRIPT)
    _run(script, tmp_path / "straight", "fresh", tmp_path / "straight.npz")

    killed = _run(script, tmp_path / "killed", "kill", tmp_path / "unused.npz", wait=False)
    output, _ = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, output  # killed by itself, at a fixed step
    assert not (tmp_path / "unused.npz").exists()
    checkpoints = tmp_path / "killed" / "checkpoints"
    assert max(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()) == 60

    _run(script, tmp_path / "killed", "resume", tmp_path / "resumed.npz")
    straight, resumed = np.load(tmp_path / "straight.npz"), np.load(tmp_path / "resumed.npz")
    assert len(straight.files) == len(resumed.files) > 3
    for name in straight.files:
        np.testing.assert_array_equal(straight[name], resumed[name])  # bitwise
    # The metrics log of the resumed run reads like the uninterrupted one's.
    def read(run):
        return [(r["step"], r["kind"], r.get("loss", r.get("norm")))
                for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())]

    assert read("killed") == read("straight")
    assert (tmp_path / "killed" / "learning_curve.png").stat().st_size > 10_000


def _setup(batch=4):
    model = MLP((8, 1))
    learner = maml(regression_loss(functional(model)), inner_lr=0.01)
    optimizer = optax.adam(1e-2)
    state = init_state(learner, optimizer, model.init(jax.random.key(0), jnp.zeros((1, 1)))["params"])
    return make_meta_step(learner, optimizer), state, lambda k: sinusoid_tasks(k, batch, shots=5)


@pytest.mark.long
def test_validation_and_checkpoint_schedule_budget_stop_and_restore(tmp_path):
    step, state, tasks = _setup()
    calls = []
    result = train(step, state, tasks, key=jax.random.key(0), num_steps=50, run_dir=tmp_path / "a",
                   config={"x": 1}, checkpoint_every=20, validate=lambda p: calls.append(1) or {"acc": 0.5},
                   validate_every=10, steps_per_call=5, progress=False)
    assert result.stopped == "finished" and int(result.state.step) == 50
    assert [r["step"] for r in result.records if r["kind"] == "validation"] == [10, 20, 30, 40, 50]
    assert [r["step"] for r in result.records if r["kind"] == "train"] == list(range(5, 51, 5))
    assert sorted(int(p.name) for p in (tmp_path / "a" / "checkpoints").iterdir()) == [20, 40, 50]
    restored = restore_run(tmp_path / "a", {"x": 1}, state)  # what --evaluate-only reads back
    assert restored.stopped == "restored" and restored.records == result.records
    for saved, read in zip(jax.tree.leaves(result.state), jax.tree.leaves(restored.state), strict=True):
        np.testing.assert_array_equal(saved, read)
    with pytest.raises(RunDirectoryError, match="another configuration"):
        restore_run(tmp_path / "a", {"x": 2}, state)

    budget = train(step, state, tasks, key=jax.random.key(0), num_steps=10**6, run_dir=tmp_path / "b",
                   config={}, budget_seconds=1e-9, steps_per_call=5, progress=False)
    assert budget.stopped == "budget" and int(budget.state.step) == 5  # one chunk, then saved
    assert RunDirectory(tmp_path / "b", {}, resume=True).latest_step() == 5


def test_a_directory_of_another_run_is_refused_before_any_compute_and_left_unchanged(tmp_path):
    step, state, tasks = _setup()
    train(step, state, tasks, key=jax.random.key(0), num_steps=10, run_dir=tmp_path, config={"lr": 0.1},
          progress=False)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    with pytest.raises(RunDirectoryError, match="already holds a run.*--resume"):
        train(step, state, tasks, key=jax.random.key(0), num_steps=10, run_dir=tmp_path, config={"lr": 0.1})
    with pytest.raises(RunDirectoryError, match=r"another configuration \(lr: 0.1 -> 0.2\)"):
        train(step, state, tasks, key=jax.random.key(0), num_steps=10, run_dir=tmp_path, config={"lr": 0.2},
              resume=True)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_a_damaged_checkpoint_or_config_gets_a_clear_error(tmp_path):
    step, state, tasks = _setup()
    train(step, state, tasks, key=jax.random.key(0), num_steps=10, run_dir=tmp_path / "run", config={},
          progress=False)
    for file in (tmp_path / "run" / "checkpoints" / "10").rglob("*"):
        if file.is_file() and file.stat().st_size > 0:
            file.write_bytes(b"\0garbage")
    with pytest.raises(RunDirectoryError, match="cannot be restored.*delete that step's folder"):
        train(step, state, tasks, key=jax.random.key(0), num_steps=20, run_dir=tmp_path / "run", config={},
              resume=True, progress=False)
    (tmp_path / "run" / "config.json").write_text("{not json")
    with pytest.raises(RunDirectoryError, match="config.json is damaged"):
        RunDirectory(tmp_path / "run", {}, resume=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="not a jaxmeta run directory"):
        RunDirectory(tmp_path / "other", {}, resume=False)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    model = MLP((8, 1))
    learner = maml(regression_loss(functional(model)), inner_lr=0.01)
    optimizer = optax.sgd(1e3)  # diverges within a few dozen steps
    state = init_state(learner, optimizer, model.init(jax.random.key(0), jnp.zeros((1, 1)))["params"])
    with pytest.raises(NonFiniteLossError) as caught:
        train(make_meta_step(learner, optimizer), state, lambda k: sinusoid_tasks(k, 4, shots=5),
              key=jax.random.key(0), num_steps=500, run_dir=tmp_path, config={}, checkpoint_every=2,
              steps_per_call=2, progress=False)
    run = RunDirectory(tmp_path, {}, resume=True)
    saved, restored, _ = run.restore_latest(state)
    run.close()
    assert saved < caught.value.step
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored))
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "error" and last["step"] == caught.value.step


def test_the_training_package_exports_what_the_readme_names():
    import jaxmeta.training
    from jaxmeta.training import checkpoint, loop

    assert jaxmeta.training.train is loop.train and jaxmeta.training.RunDirectory is checkpoint.RunDirectory
    assert jaxmeta.training.restore_run is loop.restore_run
    assert all(getattr(jaxmeta.training, name).__doc__ for name in jaxmeta.training.__all__)
