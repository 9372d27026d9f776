"""The outer training loop: many meta steps per compiled call, a progress bar, NaN detection.

Tasks come from either

* a *device sampler* ``sample(key) -> Task`` (jit-able; e.g. sinusoids or a
  device-resident Omniglot array): ``steps_per_call`` meta steps run inside
  one ``jax.lax.scan``, so Python is visited once per chunk, or
* an *iterable* of task batches produced on the host: one meta step per batch.

The key of meta-step ``s`` is ``jax.random.fold_in(key, s)``, so the tasks and
randomness of a run do not depend on how it is chunked.
"""

import functools
from collections.abc import Callable, Iterable
from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxmeta.core.meta_step import MetaTrainState
from jaxmeta.core.types import Metrics, PRNGKey, Task

PRESAMPLE_BYTES = 64 * 2**20
"""Sample a whole chunk's tasks up front when they take at most this much memory."""

MetaStep = Callable[[MetaTrainState, Task, PRNGKey], tuple[MetaTrainState, Metrics]]
TaskSource = Union[Callable[[PRNGKey], Task], Iterable[Task]]


class NonFiniteLossError(FloatingPointError):
    """The meta-loss became NaN or infinite; ``step`` is the first bad meta-step (1-based).

    ``state`` is the state at the start of the chunk in which that happened:
    every meta-step before it had a finite loss.
    """

    def __init__(self, step: int, value: float, state: MetaTrainState):
        super().__init__(
            f"The meta-loss is {value} at meta-step {step}. Training stopped; the state before "
            "it, with finite losses only, is attached as `error.state`. Lower the inner or outer "
            "learning rate, or check the data of that step for NaN or inf."
        )
        self.step = step
        self.value = value
        self.state = state


class FitResult(NamedTuple):
    """The final state and the per-meta-step metrics (each a NumPy array ``[steps]``)."""

    state: MetaTrainState
    history: dict[str, np.ndarray]


def fit(
    meta_step: MetaStep,
    state: MetaTrainState,
    tasks: TaskSource,
    *,
    key: PRNGKey,
    num_steps: int,
    steps_per_call: int = 100,
    progress: bool = True,
    description: str = "meta-training",
    callback: Callable[[MetaTrainState, dict[str, np.ndarray]], None] | None = None,
    presample: bool | None = None,
    stop: Callable[[MetaTrainState], bool] | None = None,
) -> FitResult:
    """Run ``num_steps`` meta steps from ``state``.

    Args:
      meta_step: from :func:`jaxmeta.make_meta_step`.
      state: the starting :class:`~jaxmeta.MetaTrainState` (its ``step`` counts on).
      tasks: a jit-able sampler ``sample(key) -> Task`` or an iterable of task batches.
      key: the run's key; meta-step ``s`` uses ``fold_in(key, s)``.
      num_steps: how many meta steps to run.
      steps_per_call: meta steps per compiled call (device samplers only). The chunk is
        compiled once per meta step, sampler and length: later calls with the same three reuse it.
      progress: show a tqdm progress bar with the running loss.
      description: the progress bar's label.
      callback: called after every chunk with the state and that chunk's metrics;
        a mapping it returns (e.g. ``{"val_acc": "0.93"}``) is shown in the progress bar.
      presample: draw a chunk's tasks in one vectorised call before its steps
        (faster for small tasks; the tasks are the same either way). ``None``
        decides by size: on when a chunk's tasks fit in ``PRESAMPLE_BYTES``.
      stop: asked after every chunk (and its callback); ``True`` ends the run
        there, e.g. at a time budget.

    Returns:
      A :class:`~jaxmeta.training.FitResult`.

    Raises:
      NonFiniteLossError: with the first meta-step whose loss is not finite.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta import maml, regression_loss, init_state, make_meta_step, sinusoid_tasks
      >>> loss_fn = regression_loss(lambda w, x: x * w)
      >>> learner, optimizer = maml(loss_fn, inner_lr=0.01), optax.adam(1e-2)
      >>> state = init_state(learner, optimizer, jnp.zeros((1,)))
      >>> result = fit(make_meta_step(learner, optimizer), state,
      ...              lambda k: sinusoid_tasks(k, 4, shots=5), key=jax.random.key(0),
      ...              num_steps=20, steps_per_call=10, progress=False)
      >>> int(result.state.step), result.history["loss"].shape
      (20, (20,))
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative int, got {num_steps!r}.")
    if callable(tasks):
        chunks = _device_chunks(meta_step, tasks, key, num_steps, max(1, int(steps_per_call)), presample)
    else:
        chunks = _host_chunks(meta_step, iter(tasks), key, num_steps)
    history: list[dict[str, np.ndarray]] = []
    shown: dict[str, str] = {}  # what callbacks asked to show beside the running metrics
    with tqdm(total=num_steps, desc=description, disable=not progress, dynamic_ncols=True) as bar:
        for new_state, metrics in chunks(state):
            metrics = jax.tree.map(np.asarray, metrics)
            _raise_if_not_finite(metrics["loss"], int(state.step), state)
            state = new_state
            history.append(metrics)
            if callback is not None:
                shown.update(callback(state, metrics) or {})
            bar.update(len(metrics["loss"]))
            bar.set_postfix({**{name: f"{np.mean(v):.4g}" for name, v in metrics.items() if name != "support_loss"},
                             **shown})
            if stop is not None and stop(state):
                break
    merged = {name: np.concatenate([h[name] for h in history]) for name in history[0]} if history else {}
    return FitResult(state, merged)


def _raise_if_not_finite(losses: np.ndarray, first_step: int, state: MetaTrainState) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        raise NonFiniteLossError(first_step + int(bad[0]) + 1, float(losses[bad[0]]), state)


def step_keys(key: PRNGKey, step: jax.Array) -> tuple[PRNGKey, PRNGKey]:
    """The task-sampling key and the meta-step key of meta-step ``step``."""
    task_key, grad_key = jax.random.split(jax.random.fold_in(key, step))
    return task_key, grad_key


@functools.partial(jax.jit, static_argnames=("meta_step", "sample_fn", "length", "presample"))
def _run_chunk(state, source, key, *, meta_step, sample_fn, length, presample):
    """``length`` meta steps in one ``lax.scan``.

    One module-level jitted function, with the meta step and a plain-function
    sampler as static arguments, so that later :func:`fit` calls with the same
    step, sampler and chunk length reuse the compiled chunk instead of
    compiling it again. A pytree sampler (e.g. ``EpisodeSampler``, holding a
    device array) is the traced argument ``source`` instead.
    """
    sample = source if sample_fn is None else sample_fn
    # All the chunk's keys in one vectorised call: on the CPU, threefry runs
    # as a rolled loop, so one call per step costs a noticeable share of a step.
    task_keys, grad_keys = jax.vmap(step_keys, in_axes=(None, 0))(key, state.step + jnp.arange(length))
    if presample:  # the chunk's tasks in one vectorised call too, when they are small
        tasks = jax.vmap(sample)(task_keys)
        return jax.lax.scan(lambda state, xs: meta_step(state, *xs), state, (tasks, grad_keys))

    def body(state, step_key):
        task_key, grad_key = step_key
        return meta_step(state, sample(task_key), grad_key)

    return jax.lax.scan(body, state, (task_keys, grad_keys))


def _device_chunks(meta_step, sample, key, num_steps, steps_per_call, presample):
    if presample is None:
        task_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(jax.eval_shape(sample, key)))
        presample = task_bytes * steps_per_call <= PRESAMPLE_BYTES
    as_argument = not jax.tree_util.treedef_is_leaf(jax.tree.structure(sample))
    source, sample_fn = (sample, None) if as_argument else (None, sample)

    def chunks(state):
        remaining = num_steps
        while remaining > 0:
            length = min(steps_per_call, remaining)
            state, metrics = _run_chunk(state, source, key, meta_step=meta_step, sample_fn=sample_fn,
                                        length=length, presample=bool(presample))
            remaining -= length
            yield state, metrics

    return chunks


def _host_chunks(meta_step, iterator, key, num_steps):
    def chunks(state):
        for _ in range(num_steps):
            try:
                tasks = next(iterator)
            except StopIteration:
                raise ValueError(
                    f"The task iterator ran out after {int(state.step)} meta-steps; it must "
                    f"yield at least num_steps={num_steps} batches (use an endless iterator)."
                ) from None
            _, grad_key = step_keys(key, state.step)
            state, metrics = meta_step(state, tasks, grad_key)
            yield state, jax.tree.map(lambda x: x[None], metrics)

    return chunks
