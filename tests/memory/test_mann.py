"""One step of the MANN cell against Santoro et al.'s equations in NumPy, given the controller's output."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmeta.memory import MANNCell, MANNState

RNG = np.random.default_rng(1)


def dense(params, x):
    return np.asarray(x) @ np.asarray(params["kernel"]) + np.asarray(params["bias"])


def least_used(usage, n):
    """Santoro et al.'s least-used weights: 1 on the n smallest usages (lower index first on ties)."""
    weights = np.zeros_like(usage)
    weights[np.argsort(usage, kind="stable")[:n]] = 1.0
    return weights


def random_state(cell: MANNCell) -> MANNState:
    """A mid-episode state: a used memory, read weights, usage with distinct values."""
    heads, rows = cell.read_heads, cell.rows
    read_weights = RNG.dirichlet(np.ones(rows), size=heads)
    usage = RNG.permutation(rows) / rows + 0.05
    controller = (RNG.normal(size=cell.controller_features), RNG.normal(size=cell.controller_features))
    return MANNState(controller, RNG.normal(size=(rows, cell.width)), read_weights, least_used(usage, heads), usage,
                     RNG.normal(size=(heads, cell.width)))


@pytest.mark.parametrize("learned_strength, write_vector", [(True, "add"), (False, "add"), (True, "key")])
def test_a_step_follows_the_lrua_equations(learned_strength, write_vector):
    cell = MANNCell(controller_features=5, rows=7, width=3, read_heads=2, decay=0.9,
                    learned_strength=learned_strength, write_vector=write_vector)
    state, x = random_state(cell), RNG.normal(size=4)
    params = cell.init(jax.random.key(0), state, x)["params"]
    new, (output, (read_w, write_w)) = cell.apply({"params": params}, state, x)

    controller_input = np.concatenate([x, state.reads.reshape(-1)])
    _, hidden = nn.OptimizedLSTMCell(5).apply({"params": params["controller"]}, state.controller, controller_input)
    keys = np.tanh(dense(params["keys"], hidden)).reshape(2, 3)
    written = np.tanh(dense(params["adds"], hidden)).reshape(2, 3) if write_vector == "add" else keys
    gate = 1 / (1 + np.exp(-dense(params["write_gates"], hidden)))
    strength = 1 + np.log1p(np.exp(dense(params["strengths"], hidden))) if learned_strength else np.ones(2)

    expected_write = gate[:, None] * state.read_weights + (1 - gate[:, None]) * state.least_used[None, :]
    memory = state.memory.copy()
    memory[np.argmin(state.usage)] = 0.0
    memory = memory + expected_write.T @ written
    cosine = (keys @ memory.T) / np.linalg.norm(keys, axis=1)[:, None] / np.linalg.norm(memory, axis=1)[None, :]
    logits = strength[:, None] * cosine
    expected_read = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    usage = 0.9 * state.usage + expected_read.sum(0) + expected_write.sum(0)

    np.testing.assert_allclose(write_w, expected_write, rtol=1e-10)
    np.testing.assert_allclose(new.memory, memory, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(read_w, expected_read, rtol=1e-10)
    np.testing.assert_allclose(new.reads, expected_read @ memory, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new.usage, usage, rtol=1e-10)
    np.testing.assert_array_equal(new.least_used, least_used(usage, 2))
    np.testing.assert_allclose(output, np.concatenate([hidden, new.reads.reshape(-1)]), rtol=1e-10)


def test_the_initial_state_and_a_clear_error_for_too_many_heads():
    cell = MANNCell(controller_features=4, rows=5, width=2, read_heads=2)
    state = cell.initial_state()
    np.testing.assert_array_equal(state.least_used, [1, 1, 0, 0, 0])
    assert float(jnp.abs(state.memory).sum() + state.usage.sum() + jnp.abs(state.reads).sum()) == 0.0
    bad = MANNCell(controller_features=4, rows=3, width=2, read_heads=4)
    with pytest.raises(ValueError, match="read_heads must be between 1 and rows=3"):
        bad.init(jax.random.key(0), cell.initial_state(), jnp.ones(2))


def test_from_an_empty_memory_each_write_goes_to_as_many_fresh_rows_as_heads():
    """Unwritten rows are read with equal weights, so their usages tie exactly; the least-used weights
    must still pick ``heads`` rows, or a write would be spread over every unwritten row."""
    cell = MANNCell(controller_features=6, rows=12, width=3, read_heads=2)
    state = cell.initial_state()
    params = cell.init(jax.random.key(0), state, jnp.ones(4))["params"]
    for _ in range(4):
        state, _ = cell.apply({"params": params}, state, jnp.asarray(RNG.normal(size=4)))
        unwritten = np.asarray(state.usage) == np.asarray(state.usage).min()
        assert unwritten.sum() > 2, "the test needs ties among the unwritten rows"
        np.testing.assert_array_equal(state.least_used, least_used(np.asarray(state.usage), 2))
        assert float(state.least_used.sum()) == 2.0


def test_the_key_written_is_read_back_by_its_own_step_and_the_add_vector_is_not():
    """The fix of issue 31: with the paper's eq. 8 the row just written holds the key, so the step's own read
    finds it at cosine 1 (weight e / (e + 11) among 11 empty rows at strength 1); the default writes an add
    vector of its own, which the key does not match."""
    cells = {vector: MANNCell(controller_features=6, rows=12, width=4, read_heads=1, learned_strength=False,
                              write_vector=vector) for vector in ("add", "key")}
    state = cells["add"].initial_state()
    params = cells["add"].init(jax.random.key(0), state, jnp.ones(5))["params"]
    assert "adds" in params
    weight_on_written_row = {}
    for vector, cell_params in (("add", params), ("key", {k: v for k, v in params.items() if k != "adds"})):
        _, (_, (read_w, write_w)) = cells[vector].apply({"params": cell_params}, state, jnp.ones(5))
        weight_on_written_row[vector] = float(read_w[0, int(np.argmax(write_w[0]))])
    np.testing.assert_allclose(weight_on_written_row["key"], np.e / (np.e + 11), rtol=1e-6)
    assert weight_on_written_row["add"] < 0.9 * weight_on_written_row["key"]
    with pytest.raises(ValueError, match="write_vector must be one of"):
        MANNCell(controller_features=4, rows=5, width=2, write_vector="value").init(
            jax.random.key(0), cells["add"].initial_state(), jnp.ones(2))
