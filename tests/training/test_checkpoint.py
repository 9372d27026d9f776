"""RunDirectory: orbax checkpoints round-trip exactly; the configuration guards the directory."""

import json

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta.training.checkpoint import RunDirectory, RunDirectoryError, write_text_atomically


def test_save_and_restore_round_trip_an_optax_state_exactly(tmp_path):
    params = {"w": jnp.linspace(-1, 1, 6, dtype=jnp.float32).reshape(2, 3), "b": jnp.zeros(3, jnp.float32)}
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.update(params, optimizer.init(params), params)[1]
    state = (jnp.asarray(7, jnp.int32), params, opt_state)
    run = RunDirectory(tmp_path, {"algorithm": "maml", "ways": 5}, resume=False)
    run.save(7, state, {"elapsed_seconds": 3.25})
    step, restored, record = run.restore_latest(state)
    run.close()
    assert step == 7 and record == {"elapsed_seconds": 3.25}
    for a, b in zip(*(map(np.asarray, __import__("jax").tree.leaves(t)) for t in (state, restored))):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert json.loads((tmp_path / "config.json").read_text()) == {"algorithm": "maml", "ways": 5}


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    run = RunDirectory(tmp_path, {}, resume=False, max_to_keep=2)
    for step in (1, 2, 3):
        run.save(step, {"x": jnp.full(2, step)}, {})
    assert run.latest_step() == 3
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [2, 3]
    run.close()


def test_resume_accepts_the_same_configuration_written_differently(tmp_path):
    RunDirectory(tmp_path, {"shape": (1, 2), "lr": 0.5}, resume=False).close()
    run = RunDirectory(tmp_path, {"lr": 0.5, "shape": [1, 2]}, resume=True)
    with pytest.raises(RunDirectoryError, match="no checkpoint to resume from"):
        run.restore_latest({"x": jnp.zeros(1)})
    run.close()


def test_a_file_in_place_of_the_directory_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file"):
        RunDirectory(tmp_path / "file", {}, resume=False)


def test_write_text_atomically_replaces_the_whole_file(tmp_path):
    path = tmp_path / "deep" / "a.txt"
    write_text_atomically(path, "first")
    write_text_atomically(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]  # no temporary left behind


def test_a_state_saved_on_four_devices_restores_onto_two(tmp_path):
    import jax

    from jaxmeta.distributed import replicate, task_mesh

    params = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.asarray(3, jnp.int32)}
    run = RunDirectory(tmp_path, {"devices": "any"}, resume=False)
    run.save(3, replicate(params, task_mesh(num_devices=4)), {})
    template = replicate(jax.tree.map(jnp.zeros_like, params), task_mesh(num_devices=2))
    _, restored, _ = run.restore_latest(template)
    run.close()
    for name in params:
        np.testing.assert_array_equal(restored[name], params[name])
        assert restored[name].dtype == params[name].dtype
        assert len(restored[name].sharding.device_set) == 2 and restored[name].sharding.is_fully_replicated
