r"""Scoring any learner: the query loss (and accuracy) after 0, 1, ..., n inner steps.

For each task, the learner adapts on the support set and the query set is
scored at every :math:`\phi_j`, :math:`j = 0..n`; learners without an inner
loop (metric and memory learners) are scored once, :math:`n = 0`. Summaries
are means with a 95% confidence half-width :math:`1.96\, s / \sqrt{m}` over
:math:`m` tasks.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxmeta.core.adapt import check_steps
from jaxmeta.core.learner import AdaptationScore, MetaLearner, ScoreFn
from jaxmeta.core.meta_step import map_over_tasks, task_batch_size
from jaxmeta.core.types import LossFn, MetaParams, Metrics, PRNGKey, Task


class Evaluation(NamedTuple):
    """Per-task adaptation curves.

    Attributes:
      losses: ``[tasks, steps + 1]`` query loss after 0..steps inner steps.
      metrics: the loss function's aux metrics, each ``[tasks, steps + 1]``.
    """

    losses: jax.Array
    metrics: Metrics

    def summary(self) -> dict[str, list[tuple[float, float]]]:
        """``{"loss": [(mean, ci95) for step 0..n], "accuracy": ...}`` over the tasks."""
        named = {"loss": self.losses, **self.metrics}
        return {name: list(zip(*confidence_interval(values))) for name, values in named.items()}


def confidence_interval(values, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% confidence half-width (normal approximation) along ``axis``.

    Example:
      >>> mean, ci = confidence_interval([1.0, 2.0, 3.0])
      >>> float(mean), round(float(ci), 4)
      (2.0, 1.1316)
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    if n < 2:
        raise ValueError(f"A confidence interval needs at least 2 values, got {n}.")
    return values.mean(axis), 1.96 * values.std(axis, ddof=1) / np.sqrt(n)


@functools.partial(jax.jit, static_argnames=("score", "steps", "task_chunk"))
def _evaluate_batch(score, meta_params, tasks, keys, steps, task_chunk):
    return map_over_tasks(lambda task, key: score(meta_params, task, key=key, steps=steps), tasks, keys, task_chunk)


def in_chunks(compute: Callable[[Any], Any], batch: Any, size: int, chunk_size: int | None, progress: bool = False,
              description: str = "") -> Any:
    """``compute`` on consecutive slices of ``chunk_size`` of the ``size`` tasks in ``batch`` (all when ``None``),
    concatenated. With ``progress`` a bar advances as each chunk finishes (not as it is dispatched).
    """
    chunk = size if chunk_size is None else max(1, int(chunk_size))
    starts = range(0, size, chunk)
    if progress:
        starts = tqdm(starts, desc=description, unit="chunk", leave=False)
    parts = []
    for start in starts:
        parts.append(compute(jax.tree.map(lambda x, start=start: x[start:start + chunk], batch)))
        if progress:
            jax.block_until_ready(parts[-1])
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)


def evaluate(
    learner: MetaLearner,
    meta_params: MetaParams,
    tasks: Task,
    *,
    key: PRNGKey,
    steps: int | None = None,
    loss_fn: LossFn | None = None,
    chunk_size: int | None = None,
    task_chunk: int | None = None,
    progress: bool = False,
) -> Evaluation:
    """Score any learner on a batch of tasks: the query loss and metrics after 0..n inner steps.

    A learner with an inner loop adapts on each task's support set for
    ``steps`` steps (its own number when ``None``) and the query set is scored
    after each (``learner.score``). A learner without one (the metric and
    memory learners) is scored once, ``n = 0``. Every learner gives the same
    :class:`Evaluation`, summarised the same way.

    Args:
      learner: any :class:`~jaxmeta.MetaLearner` made by a jaxmeta factory.
      meta_params: the meta-parameters to evaluate.
      tasks: a batch of tasks (leading task axis).
      key: randomness for the inner loop and the loss.
      steps: the number of inner steps ``n >= 1``; results cover 0..n. Leave it
        out for the learner's own number (and for learners without an inner loop).
      loss_fn: score the query sets with this loss (``aux`` metrics included)
        instead of the one the learner was built with.
      chunk_size: evaluate this many tasks per compiled call, to bound memory.
      task_chunk: within a call, adapt this many tasks at a time, one group
        after another (as in :func:`jaxmeta.make_meta_step`; faster on the
        CPU); all at once (``jax.vmap``) when ``None``. Same results.
      progress: show a progress bar over the chunks.

    Returns:
      An :class:`Evaluation` with ``[tasks, n + 1]`` curves.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import maml, regression_loss, Task
      >>> learner = maml(regression_loss(lambda w, x: x * w), inner_lr=0.1)
      >>> x = jnp.tile(jnp.array([1.0, 2.0]), (3, 1))
      >>> result = evaluate(learner, jnp.array(0.0), Task((x, 2 * x), (x, 2 * x)),
      ...                   key=jax.random.key(0), steps=2)
      >>> result.losses.shape
      (3, 3)
    """
    if steps is not None and steps != 0:
        steps = check_steps(steps)
    score: ScoreFn
    if loss_fn is not None:
        score = AdaptationScore(loss_fn, learner.adapt)
    elif learner.score is not None:
        score = learner.score
    else:
        raise TypeError("This MetaLearner has no score function (it was not made by a jaxmeta factory): pass "
                        "loss_fn=, the loss that scores its query sets after adaptation.")
    size = task_batch_size(tasks)
    losses, metrics = in_chunks(
        lambda part: _evaluate_batch(score, meta_params, *part, steps, task_chunk),
        (tasks, jax.random.split(key, size)), size, chunk_size, progress, "evaluating")
    return Evaluation(losses, metrics)
