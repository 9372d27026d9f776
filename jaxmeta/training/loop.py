"""A complete training run for any meta-learner: validation, metrics, checkpoints, resume, time budget.

:func:`train` wraps :func:`jaxmeta.fit` (compiled chunks of meta steps) with

* periodic validation on held-out tasks, shown in the progress bar;
* a JSONL log of training and validation metrics and a learning-curve PNG
  (:mod:`jaxmeta.training.metrics_log`);
* orbax checkpoints every ``checkpoint_every`` meta steps and at the end
  (:class:`jaxmeta.training.checkpoint.RunDirectory`);
* ``resume=True``: continue from the newest checkpoint. Meta-step ``s`` draws
  its tasks and randomness from ``fold_in(key, s)`` whatever the chunking, so
  a run that is killed and resumed ends with bitwise the same parameters as a
  run that never stopped;
* ``budget_seconds``: stop at the first chunk boundary after the budget
  (counted over all sessions of the run, compilation included) and save.

A NaN or infinite meta-loss raises :class:`jaxmeta.NonFiniteLossError`;
nothing after the last finite chunk is saved, so the last checkpoint stays
good.
"""

import math
import time
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxmeta.core.meta_step import MetaTrainState
from jaxmeta.core.types import MetaParams, PRNGKey, check_positive_int
from jaxmeta.training.checkpoint import RunDirectory
from jaxmeta.training.fit import MetaStep, NonFiniteLossError, TaskSource, fit
from jaxmeta.training.metrics_log import MetricsLog, plot_learning_curve

Validate = Callable[[MetaParams], Mapping[str, float]]


class TrainResult(NamedTuple):
    """The final state, why the run ended (``"finished"`` or ``"budget"``), and every logged record."""

    state: MetaTrainState
    stopped: str
    records: list[dict]


def train(
    meta_step: MetaStep,
    state: MetaTrainState,
    tasks: TaskSource,
    *,
    key: PRNGKey,
    num_steps: int,
    run_dir,
    config: Mapping[str, Any],
    resume: bool = False,
    checkpoint_every: int = 1000,
    validate: Validate | None = None,
    validate_every: int | None = None,
    steps_per_call: int = 10,
    budget_seconds: float | None = None,
    progress: bool = True,
    description: str = "meta-training",
) -> TrainResult:
    """Meta-train until ``num_steps`` meta steps (in total, across resumes) or the time budget.

    Args:
      meta_step, tasks, key, steps_per_call, progress, description: as in :func:`jaxmeta.fit`.
      state: the initial state; when resuming it only gives the shapes.
      num_steps: the meta-step count at which the run is complete.
      run_dir: where ``config.json``, ``checkpoints/``, ``metrics.jsonl`` and
        ``learning_curve.png`` go.
      config: the run's settings (JSON); a resumed run must have the same.
      resume: continue from the newest checkpoint in ``run_dir``.
      checkpoint_every: save every this many meta steps (and always at the end).
      validate: ``validate(meta_params) -> {name: value}`` on held-out tasks.
      validate_every: how often to validate (default: with every checkpoint).
      budget_seconds: stop once the run has used this much wall time.

    Returns:
      A :class:`TrainResult`.

    Example:
      >>> import tempfile, jax, jax.numpy as jnp, optax
      >>> from jaxmeta import maml, regression_loss, init_state, make_meta_step, sinusoid_tasks
      >>> learner = maml(regression_loss(lambda w, x: x * w), inner_lr=0.01)
      >>> optimizer = optax.adam(1e-2)
      >>> result = train(make_meta_step(learner, optimizer), init_state(learner, optimizer, jnp.zeros((1,))),
      ...                lambda k: sinusoid_tasks(k, 4, shots=5), key=jax.random.key(0), num_steps=20,
      ...                run_dir=tempfile.mkdtemp(), config={"lr": 1e-2}, checkpoint_every=10, progress=False)
      >>> int(result.state.step), result.stopped, [r["step"] for r in result.records]
      (20, 'finished', [10, 20])
    """
    for name, value in (("checkpoint_every", checkpoint_every), ("steps_per_call", steps_per_call),
                        ("validate_every", validate_every or 1)):
        check_positive_int(value, name)
    if budget_seconds is not None and not budget_seconds > 0:
        raise ValueError(f"budget_seconds must be positive, got {budget_seconds!r}.")
    validate_every = validate_every or checkpoint_every
    run = RunDirectory(run_dir, config, resume=resume)
    # With several processes (hosts), process 0 writes the log and the plot; every process saves its shards.
    primary = jax.process_index() == 0
    log = MetricsLog(Path(run_dir) / "metrics.jsonl", writable=primary)
    try:
        elapsed_before, saved_step = 0.0, None
        if resume and run.latest_step() is not None:
            saved_step, state, record = run.restore_latest(state)
            elapsed_before = float(record.get("elapsed_seconds", 0.0))
        log.truncate_after(saved_step)
        started = time.monotonic()
        elapsed = lambda: elapsed_before + time.monotonic() - started  # noqa: E731

        def save(state):
            nonlocal saved_step
            run.save(int(state.step), state, {"elapsed_seconds": elapsed()})
            saved_step = int(state.step)

        def after_chunk(new_state, metrics):
            step, done = int(new_state.step), int(new_state.step) - len(metrics["loss"])
            record = {"step": step, "kind": "train", "elapsed_seconds": round(elapsed(), 3)}
            log.write({**record, **{name: float(np.mean(v)) for name, v in metrics.items()}})
            shown = {}
            if validate is not None and _crossed(done, step, validate_every):
                scores = {name: float(v) for name, v in validate(new_state.meta_params).items()}
                log.write({"step": step, "kind": "validation", **scores})
                shown = {f"val_{name}": f"{v:.4g}" for name, v in scores.items()}
            if _crossed(done, step, checkpoint_every):
                save(new_state)
            return shown

        remaining = max(0, num_steps - int(state.step))
        stop = (lambda _: elapsed() >= budget_seconds) if budget_seconds is not None else None
        try:
            state = fit(meta_step, state, tasks, key=key, num_steps=remaining, steps_per_call=steps_per_call,
                        progress=progress, description=description, callback=after_chunk, stop=stop).state
        except NonFiniteLossError as error:
            log.write({"step": error.step, "kind": "error", "message": str(error)})
            raise
        if saved_step != int(state.step):
            save(state)
        records = log.read()
        if primary:
            plot_learning_curve(records, Path(run_dir) / "learning_curve.png", title=description)
        stopped = "finished" if int(state.step) >= num_steps else "budget"
        return TrainResult(state, stopped, records)
    finally:
        run.close()


def restore_run(run_dir: str | Path, config: Mapping[str, Any], template: MetaTrainState) -> TrainResult:
    """The newest checkpoint of a run directory written by :func:`train`, and the records logged up to it.

    For testing a run's parameters again without training (the drivers' ``--evaluate-only``).
    ``config`` must be the configuration the run was written with and ``template`` a state of
    the same structure (e.g. ``init_state`` of the same learner); another configuration's or a
    damaged directory is refused by :class:`~jaxmeta.training.RunDirectory`, as on resume.
    ``TrainResult.stopped`` is ``"restored"``.
    """
    run = RunDirectory(run_dir, config, resume=True)
    try:
        step, state, _ = run.restore_latest(template)
    finally:
        run.close()
    records = MetricsLog(Path(run_dir) / "metrics.jsonl").read()
    return TrainResult(state, "restored", [record for record in records if record["step"] <= step])


def _crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(before, after]``."""
    return math.floor(after / every) > math.floor(before / every)
