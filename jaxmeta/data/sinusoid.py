r"""Sinusoid regression tasks, the protocol of MAML (Finn et al., 2017, section 5.1).

A task is :math:`y = A \sin(x - \varphi)` with amplitude :math:`A \sim U[0.1, 5]`,
phase :math:`\varphi \sim U[0, \pi]` and inputs :math:`x \sim U[-5, 5]`; the
support and query sets are independent draws of :math:`x` from the same task.
Everything is sampled with ``jax.random``, so a batch of tasks is sampled
inside ``jax.jit`` on the device, and the same key gives the same tasks.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmeta.core.types import PRNGKey, Task, check_positive_int


class SinusoidConfig(NamedTuple):
    """The task distribution; the defaults are MAML's."""

    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    inputs: tuple[float, float] = (-5.0, 5.0)


class Sinusoid(NamedTuple):
    """The hidden parameters of one task."""

    amplitude: jax.Array
    phase: jax.Array

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.amplitude * jnp.sin(x - self.phase)


def sample_sinusoid(key: PRNGKey, config: SinusoidConfig = SinusoidConfig()) -> Sinusoid:
    """Draw the amplitude and phase of one task."""
    k_amp, k_phase = jax.random.split(key)
    amplitude = jax.random.uniform(k_amp, (), jnp.float32, *config.amplitude)
    phase = jax.random.uniform(k_phase, (), jnp.float32, *config.phase)
    return Sinusoid(amplitude, phase)


def sinusoid_examples(key: PRNGKey, wave: Sinusoid, n: int, config: SinusoidConfig = SinusoidConfig()):
    """``n`` examples ``(x [n, 1], y [n, 1])`` of a given wave."""
    x = jax.random.uniform(key, (n, 1), jnp.float32, *config.inputs)
    return x, wave(x)


def sinusoid_task(
    key: PRNGKey, *, shots: int, query_shots: int | None = None, config: SinusoidConfig = SinusoidConfig()
) -> Task:
    """One sinusoid task with ``shots`` support and ``query_shots`` (default ``shots``) query points.

    Example:
      >>> import jax
      >>> task = sinusoid_task(jax.random.key(0), shots=10)
      >>> task.support[0].shape, task.query[1].shape
      ((10, 1), (10, 1))
    """
    _check_positive(shots=shots, query_shots=shots if query_shots is None else query_shots)
    k_wave, k_support, k_query = jax.random.split(key, 3)
    wave = sample_sinusoid(k_wave, config)
    return Task(
        support=sinusoid_examples(k_support, wave, shots, config),
        query=sinusoid_examples(k_query, wave, shots if query_shots is None else query_shots, config),
    )


def sinusoid_tasks(
    key: PRNGKey,
    batch_size: int,
    *,
    shots: int,
    query_shots: int | None = None,
    config: SinusoidConfig = SinusoidConfig(),
) -> Task:
    """A batch of independent sinusoid tasks: every leaf has a leading axis ``batch_size``.

    The whole batch comes from one ``jax.random.uniform`` call (amplitude,
    phase and inputs of every task), which on the CPU is several times cheaper
    than a call per task or per quantity; the same key gives the same batch.

    Example:
      >>> import jax
      >>> tasks = sinusoid_tasks(jax.random.key(0), 25, shots=5)
      >>> tasks.support[0].shape
      (25, 5, 1)
    """
    query_shots = shots if query_shots is None else query_shots
    _check_positive(batch_size=batch_size, shots=shots, query_shots=query_shots)
    u = jax.random.uniform(key, (batch_size, 2 + shots + query_shots, 1), jnp.float32)
    scale = lambda v, bounds: bounds[0] + (bounds[1] - bounds[0]) * v  # noqa: E731
    wave = Sinusoid(scale(u[:, :1], config.amplitude), scale(u[:, 1:2], config.phase))
    x_support = scale(u[:, 2:2 + shots], config.inputs)
    x_query = scale(u[:, 2 + shots:], config.inputs)
    return Task(support=(x_support, wave(x_support)), query=(x_query, wave(x_query)))


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        check_positive_int(value, name)
