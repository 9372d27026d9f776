"""A run directory: the run's configuration and its orbax checkpoints, checked before any compute.

Layout::

    run_dir/
      config.json         the configuration the run was started with
      checkpoints/<step>/ orbax checkpoints (the training state and a JSON record)
      metrics.jsonl       see :mod:`jaxmeta.training.metrics_log`

Orbax writes each checkpoint into a temporary directory and renames it when
it is complete, so a run killed while saving keeps its previous checkpoint.
Arrays are saved as they are sharded: with several processes (hosts), every
process calls :meth:`RunDirectory.save` and writes the shards it holds, and
the checkpoint restores onto any other device layout.
Opening a directory that holds another configuration's run, or a damaged
one, raises :class:`RunDirectoryError` and changes nothing on disk.
"""

import json
import os
import tempfile
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked; the message says why and what to do."""


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)


def _sync_processes(name: str) -> None:
    """Wait until every process reaches this point (nothing to wait for with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def _normalise(config: Mapping[str, Any]) -> dict:
    """The configuration as it reads back from JSON (tuples become lists, and so on)."""
    return json.loads(json.dumps(dict(config), sort_keys=True))


class RunDirectory:
    """The configuration and checkpoints of one training run.

    Args:
      path: the directory (created if missing).
      config: the run's configuration, JSON-serialisable; a resumed run must
        have the same one.
      resume: continue the run in ``path``. Without it, a directory that
        already holds a run is an error (nothing is overwritten).
      max_to_keep: how many recent checkpoints to keep.

    Example:
      >>> import tempfile, jax.numpy as jnp
      >>> run = RunDirectory(tempfile.mkdtemp(), {"lr": 0.1}, resume=False)
      >>> run.save(10, {"w": jnp.ones(3)}, {"elapsed_seconds": 1.5})
      >>> step, state, record = run.restore_latest({"w": jnp.zeros(3)})
      >>> step, state["w"].tolist(), record["elapsed_seconds"]
      (10, [1.0, 1.0, 1.0], 1.5)
      >>> run.close()
    """

    def __init__(self, path, config: Mapping[str, Any], *, resume: bool, max_to_keep: int = 3):
        self.path = Path(path)
        self.config = _normalise(config)
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"The run directory {self.path} is a file; pass a directory path.")
        config_file = self.path / "config.json"
        if config_file.exists():
            self._check_existing(config_file, resume)
        elif self.path.exists() and any(self.path.iterdir()):
            raise RunDirectoryError(
                f"{self.path} is not empty and holds no config.json, so it is not a jaxmeta run directory. "
                "Choose an empty or new directory; nothing was changed."
            )
        # With several processes, all of them check the directory before any of them writes to it.
        _sync_processes("jaxmeta.RunDirectory.checked")
        if jax.process_index() == 0:
            self.path.mkdir(parents=True, exist_ok=True)
            if not config_file.exists():
                write_text_atomically(config_file, json.dumps(self.config, indent=2, sort_keys=True) + "\n")
        _sync_processes("jaxmeta.RunDirectory.written")
        self._manager = ocp.CheckpointManager(
            (self.path / "checkpoints").absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                 enable_async_checkpointing=False),
        )

    def _check_existing(self, config_file: Path, resume: bool) -> None:
        try:
            stored = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise RunDirectoryError(
                f"{config_file} is damaged ({error}). Choose another run directory, or delete this one "
                "to start over."
            ) from None
        if not resume:
            raise RunDirectoryError(
                f"{self.path} already holds a run. Pass --resume (resume=True) to continue it, or choose "
                "another directory; nothing was changed."
            )
        if stored != self.config:
            keys = sorted(set(stored) | set(self.config))
            changed = [f"{k}: {stored.get(k, '<missing>')!r} -> {self.config.get(k, '<missing>')!r}"
                       for k in keys if stored.get(k, "<missing>") != self.config.get(k, "<missing>")]
            raise RunDirectoryError(
                f"{self.path} holds a run with another configuration ({'; '.join(changed)}). Resume it with "
                "its own settings, or start this configuration in another directory; nothing was changed."
            )

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or ``None``."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any, record: Mapping[str, Any]) -> None:
        """Save ``state`` (a pytree of arrays) and a JSON ``record`` as the checkpoint of ``step``.

        ``jax.Array`` leaves are written shard by shard (each process its own
        shards); other leaves are converted with ``np.asarray``.
        """
        state = jax.tree.map(lambda x: x if isinstance(x, jax.Array) else np.asarray(x), state)
        self._manager.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                              record=ocp.args.JsonSave(dict(record))),
                           force=True)
        self._manager.wait_until_finished()

    def restore_latest(self, template: Any) -> tuple[int, Any, dict]:
        """``(step, state, record)`` of the newest checkpoint, ``state`` shaped like ``template``.

        Leaves of ``template`` that are ``jax.Array`` s come back with their
        sharding, whatever the device layout of the run that saved them: a
        state saved on four devices restores onto two, or one.
        """
        step = self.latest_step()
        if step is None:
            raise RunDirectoryError(f"{self.path} has no checkpoint to resume from.")
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
            np.shape(x), x.dtype if isinstance(x, jax.Array) else np.asarray(x).dtype,
            sharding=x.sharding if isinstance(x, jax.Array) else None), template)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), record=ocp.args.JsonRestore()))
        except Exception as error:  # orbax raises many types for unreadable or mismatched files
            raise RunDirectoryError(
                f"The checkpoint {self.path / 'checkpoints' / str(step)} cannot be restored ({type(error).__name__}: "
                f"{error}). If it is damaged, delete that step's folder to resume from the previous checkpoint, "
                "or start over in another directory."
            ) from error
        state = jax.tree.map(
            lambda x, t: x if isinstance(t, jax.Array) else jax.numpy.asarray(x, dtype=np.asarray(t).dtype),
            restored.state, template)
        return step, state, dict(restored.record)

    def close(self) -> None:
        self._manager.close()
