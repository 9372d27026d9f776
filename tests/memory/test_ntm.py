"""One step of the NTM cell against Graves et al.'s equations, given the controller's output."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.memory import NTMCell, NTMState, addressing

RNG = np.random.default_rng(2)


def softplus(x):
    return np.log1p(np.exp(x))


def head_weights(params, hidden, memory, previous, width, reach):
    """Parse a head's controller outputs in the documented order (key, strength, gate, shift, sharpening)."""
    raw = (hidden @ np.asarray(params["kernel"]) + np.asarray(params["bias"])).reshape(previous.shape[0], -1)
    key, strength, gate = np.tanh(raw[:, :width]), softplus(raw[:, width]), 1 / (1 + np.exp(-raw[:, width + 1]))
    shift_logits = raw[:, width + 2:width + 3 + 2 * reach]
    shifts = np.exp(shift_logits) / np.exp(shift_logits).sum(1, keepdims=True)
    gamma = 1 + softplus(raw[:, -1])
    norms = np.linalg.norm(key, axis=1)[:, None] * np.linalg.norm(memory, axis=1)[None, :]
    content = np.exp(strength[:, None] * (key @ memory.T) / norms)
    content /= content.sum(1, keepdims=True)
    gated = gate[:, None] * content + (1 - gate[:, None]) * previous
    rows = memory.shape[0]
    shifted = np.stack([[sum(shifts[h, k + reach] * gated[h, (i - k) % rows] for k in range(-reach, reach + 1))
                         for i in range(rows)] for h in range(previous.shape[0])])
    powered = (shifted + addressing.EPSILON) ** gamma[:, None]
    return powered / powered.sum(1, keepdims=True)


@pytest.mark.long
def test_a_step_writes_then_reads_as_graves_et_al():
    cell = NTMCell(controller_features=6, rows=8, width=3, read_heads=2, write_heads=1, shift_reach=2)
    state = NTMState((RNG.normal(size=6), RNG.normal(size=6)), RNG.normal(size=(8, 3)),
                     RNG.dirichlet(np.ones(8), size=2), RNG.dirichlet(np.ones(8), size=1), RNG.normal(size=(2, 3)))
    x = RNG.normal(size=5)
    params = cell.init(jax.random.key(0), state, x)["params"]
    new, (output, (read_w, write_w)) = cell.apply({"params": params}, state, x)

    _, hidden = nn.OptimizedLSTMCell(6).apply({"params": params["controller"]}, state.controller,
                                              np.concatenate([x, state.reads.reshape(-1)]))
    hidden = np.asarray(hidden)
    expected_write = head_weights(params["write_heads"], hidden, state.memory, state.write_weights, 3, 2)
    erase_add = (hidden @ np.asarray(params["erase_add"]["kernel"]) + np.asarray(params["erase_add"]["bias"]))
    erase, add = 1 / (1 + np.exp(-erase_add[:3])), np.tanh(erase_add[3:])
    memory = state.memory * (1 - np.outer(expected_write[0], erase)) + np.outer(expected_write[0], add)
    expected_read = head_weights(params["read_heads"], hidden, memory, state.read_weights, 3, 2)

    np.testing.assert_allclose(write_w, expected_write, rtol=1e-9)
    np.testing.assert_allclose(new.memory, memory, rtol=1e-9)
    np.testing.assert_allclose(read_w, expected_read, rtol=1e-9)
    np.testing.assert_allclose(new.reads, expected_read @ memory, rtol=1e-9)
    np.testing.assert_allclose(output, np.concatenate([hidden, new.reads.reshape(-1)]), rtol=1e-9)


def test_the_initial_state_and_a_clear_error_for_a_memory_too_small_to_shift():
    state = NTMCell(controller_features=4, rows=5, width=2, read_heads=2).initial_state()
    np.testing.assert_array_equal(state.read_weights, np.eye(5)[[0, 0]])
    with pytest.raises(ValueError, match="rows=2 must be at least 2 \\* shift_reach \\+ 1 = 3"):
        cell = NTMCell(controller_features=4, rows=2, width=2)
        cell.init(jax.random.key(0), cell.initial_state(), jnp.ones(2))
