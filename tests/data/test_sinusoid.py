"""Sinusoid tasks: the MAML protocol's ranges, consistency and determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.data.sinusoid import SinusoidConfig, sinusoid_task, sinusoid_tasks


def test_batch_shapes_ranges_and_dtype():
    tasks = sinusoid_tasks(jax.random.key(0), 2000, shots=5, query_shots=7)
    xs, ys = tasks.support
    xq, yq = tasks.query
    assert xs.shape == ys.shape == (2000, 5, 1) and xq.shape == (2000, 7, 1)
    assert xs.dtype == jnp.float32
    for x in (xs, xq):
        assert -5.0 <= float(x.min()) and float(x.max()) <= 5.0
    assert float(jnp.abs(ys).max()) <= 5.0 + 1e-5


def test_support_and_query_come_from_the_same_wave():
    """Recover amplitude and phase from the support set by least squares; the query must fit them."""
    tasks = sinusoid_tasks(jax.random.key(1), 50, shots=10)
    amplitudes, phases = [], []
    for i in range(50):
        x, y = (np.asarray(a[i, :, 0], np.float64) for a in tasks.support)
        basis = np.stack([np.sin(x), np.cos(x)], 1)  # A sin(x - p) = A cos p sin x - A sin p cos x
        (c, s), *_ = np.linalg.lstsq(basis, y, rcond=None)
        amplitude, phase = np.hypot(c, s), np.arctan2(-s, c)
        xq, yq = (np.asarray(a[i, :, 0], np.float64) for a in tasks.query)
        np.testing.assert_allclose(amplitude * np.sin(xq - phase), yq, atol=1e-4)
        amplitudes.append(amplitude)
        phases.append(phase)
    assert 0.1 - 1e-4 <= min(amplitudes) and max(amplitudes) <= 5.0 + 1e-4
    assert -1e-4 <= min(phases) and max(phases) <= np.pi + 1e-4


def test_same_key_same_tasks_and_different_keys_differ():
    a = sinusoid_tasks(jax.random.key(3), 4, shots=5)
    b = sinusoid_tasks(jax.random.key(3), 4, shots=5)
    c = sinusoid_tasks(jax.random.key(4), 4, shots=5)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not np.allclose(a.support[0], c.support[0])


def test_single_task_and_jit():
    task = jax.jit(lambda k: sinusoid_task(k, shots=3))(jax.random.key(0))
    assert task.support[0].shape == (3, 1) and task.query[0].shape == (3, 1)
    narrow = sinusoid_tasks(jax.random.key(0), 100, shots=4, config=SinusoidConfig(inputs=(0.0, 1.0)))
    assert float(narrow.support[0].min()) >= 0.0 and float(narrow.support[0].max()) <= 1.0


@pytest.mark.parametrize("kwargs", [dict(shots=0), dict(shots=5, query_shots=-1), dict(shots=2.5)])
def test_bad_sizes_are_rejected(kwargs):
    with pytest.raises(ValueError, match="must be a positive int"):
        sinusoid_tasks(jax.random.key(0), 4, **kwargs)
