"""NTM and least-recently-used addressing against direct NumPy formulas (Graves et al. 2014; Santoro et al. 2016)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.memory import addressing

RNG = np.random.default_rng(0)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_content_weights_are_a_softmax_of_scaled_cosine_similarities():
    memory, keys, strengths = RNG.normal(size=(6, 4)), RNG.normal(size=(3, 4)), RNG.uniform(0.5, 5, size=3)
    cosine = np.array([[k @ m / np.linalg.norm(k) / np.linalg.norm(m) for m in memory] for k in keys])
    expected = softmax(strengths[:, None] * cosine)
    np.testing.assert_allclose(addressing.content_weights(memory, keys, strengths), expected, rtol=1e-12)
    np.testing.assert_allclose(addressing.read(memory, expected), expected @ memory, rtol=1e-12)


def test_content_addressing_of_a_zero_memory_is_uniform_with_a_finite_gradient():
    memory, keys = jnp.zeros((5, 3)), jnp.asarray(RNG.normal(size=(2, 3)))
    np.testing.assert_allclose(addressing.content_weights(memory, keys, jnp.ones(2)), np.full((2, 5), 0.2))
    grad = jax.grad(lambda m: addressing.content_weights(m, keys, jnp.ones(2))[0, 0])(memory)
    assert np.all(np.isfinite(grad))


def test_interpolation_shift_and_sharpening():
    content, previous, gate = softmax(RNG.normal(size=(2, 7))), softmax(RNG.normal(size=(2, 7))), np.array([0.3, 0.9])
    gated = addressing.interpolate(content, previous, gate)
    np.testing.assert_allclose(gated, gate[:, None] * content + (1 - gate[:, None]) * previous, rtol=1e-12)

    shifts = softmax(RNG.normal(size=(2, 5)))  # offsets -2..2
    expected = np.zeros((2, 7))
    for h in range(2):
        for i in range(7):
            expected[h, i] = sum(shifts[h, k + 2] * gated[h, (i - k) % 7] for k in range(-2, 3))
    shifted = addressing.shift(gated, shifts)
    np.testing.assert_allclose(shifted, expected, rtol=1e-12)
    np.testing.assert_allclose(np.sum(shifted, -1), 1.0, rtol=1e-12)

    gamma = np.array([1.0, 3.5])
    powered = (np.asarray(shifted) + addressing.EPSILON) ** gamma[:, None]
    np.testing.assert_allclose(addressing.sharpen(shifted, gamma), powered / powered.sum(-1, keepdims=True),
                               rtol=1e-12)


def test_a_shift_by_one_moves_the_weight_to_the_next_row_circularly():
    w = np.zeros((1, 4))
    w[0, 3] = 1.0
    np.testing.assert_allclose(addressing.shift(w, np.array([[0.0, 0.0, 1.0]])), [[1.0, 0, 0, 0]])
    np.testing.assert_allclose(addressing.shift(w, np.array([[1.0, 0.0, 0.0]])), [[0, 0, 1.0, 0]])


def test_ntm_weights_compose_the_four_stages():
    memory, previous = RNG.normal(size=(6, 3)), softmax(RNG.normal(size=(1, 6)))
    keys, strengths, gates = RNG.normal(size=(1, 3)), np.array([2.0]), np.array([0.6])
    shifts, gammas = softmax(RNG.normal(size=(1, 3))), np.array([2.0])
    staged = addressing.sharpen(addressing.shift(addressing.interpolate(
        addressing.content_weights(memory, keys, strengths), previous, gates), shifts), gammas)
    np.testing.assert_allclose(addressing.ntm_weights(memory, previous, keys, strengths, gates, shifts, gammas),
                               staged, rtol=1e-12)


def test_erase_and_add_applies_the_heads_in_turn():
    memory, weights = RNG.normal(size=(5, 3)), softmax(RNG.normal(size=(2, 5)))
    erase, add = RNG.uniform(size=(2, 3)), RNG.normal(size=(2, 3))
    expected = memory.copy()
    for h in range(2):
        expected = expected * (1 - np.outer(weights[h], erase[h])) + np.outer(weights[h], add[h])
    np.testing.assert_allclose(addressing.erase_and_add(memory, weights, erase, add), expected, rtol=1e-12)


def test_usage_update():
    usage, read_w, write_w = RNG.uniform(size=8), softmax(RNG.normal(size=(3, 8))), softmax(RNG.normal(size=(3, 8)))
    np.testing.assert_allclose(addressing.update_usage(usage, read_w, write_w, 0.95),
                               0.95 * usage + read_w.sum(0) + write_w.sum(0), rtol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_least_used_weights_mark_the_n_smallest_usages(n):
    usage = RNG.permutation(10).astype(np.float64) / 10
    expected = np.zeros(10)
    expected[np.argsort(usage)[:n]] = 1.0
    np.testing.assert_array_equal(addressing.least_used_weights(jnp.asarray(usage), n), expected)


def test_least_used_weights_break_ties_towards_the_lower_index_and_reject_a_bad_n():
    np.testing.assert_array_equal(addressing.least_used_weights(jnp.array([0.2, 0.1, 0.1, 0.5]), 1), [0, 1, 0, 0])
    np.testing.assert_array_equal(addressing.least_used_weights(jnp.array([0.2, 0.1, 0.1, 0.5]), 2), [0, 1, 1, 0])
    np.testing.assert_array_equal(addressing.least_used_weights(jnp.array([0.3, 0.0, 0.0, 0.0, 0.0]), 2),
                                  [0, 1, 1, 0, 0])
    for bad in (0, 5, 1.5):
        with pytest.raises(ValueError, match="between 1 and the number of memory rows 4"):
            addressing.least_used_weights(jnp.zeros(4), bad)


def test_lrua_write_weights_interpolate_previous_reads_and_least_used_rows():
    previous_read = softmax(RNG.normal(size=(2, 6)))
    least_used, alpha = np.array([0, 1.0, 0, 0, 1, 0]), np.array([-1.0, 2.0])
    gate = 1 / (1 + np.exp(-alpha))
    expected = gate[:, None] * previous_read + (1 - gate[:, None]) * least_used[None, :]
    np.testing.assert_allclose(addressing.lrua_write_weights(previous_read, least_used, alpha), expected, rtol=1e-12)


def test_the_least_used_row_is_zeroed_then_written():
    memory, usage = RNG.normal(size=(4, 3)), np.array([0.7, 0.2, 0.9, 0.4])
    zeroed = np.asarray(addressing.zero_least_used(memory, usage))
    np.testing.assert_array_equal(zeroed[1], 0.0)
    np.testing.assert_array_equal(np.delete(zeroed, 1, axis=0), np.delete(memory, 1, axis=0))
    weights, keys = softmax(RNG.normal(size=(2, 4))), RNG.normal(size=(2, 3))
    expected = zeroed + sum(np.outer(weights[h], keys[h]) for h in range(2))
    np.testing.assert_allclose(addressing.lrua_write(zeroed, weights, keys), expected, rtol=1e-12)
