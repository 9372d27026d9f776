r"""Neural Turing machine (Graves, Wayne and Danihelka 2014) with an LSTM controller.

One step, for input :math:`x_t`:

1. the controller reads :math:`[x_t, r_{t-1}]` and gives :math:`h_t`;
2. every head emits, from :math:`h_t`, a key :math:`k` (tanh), a strength
   :math:`\beta = \operatorname{softplus}(\cdot)`, a gate
   :math:`g = \sigma(\cdot)`, a shift distribution :math:`s` over offsets
   ``-S..S`` (softmax) and a sharpening :math:`\gamma = 1 + \operatorname{softplus}(\cdot)`,
   and is addressed by :func:`jaxmeta.memory.addressing.ntm_weights`;
3. the write heads also emit an erase vector :math:`e = \sigma(\cdot)` and an
   add vector :math:`a = \tanh(\cdot)`, and write
   :math:`M \leftarrow M \circ (1 - w e^\top) + w a^\top`;
4. the read heads then read :math:`r_t = w^r M_t` from the written memory.

The output is :math:`[h_t, r_t]`. Writing before reading lets a step read what
it just wrote; Graves et al. leave the order open.

At the start the memory holds a small constant (``1e-6``), and every head's
weights sit on row 0.
"""

import itertools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmeta.memory import addressing


class NTMState(NamedTuple):
    """The recurrent state of :class:`NTMCell`: controller ``(c, h)``, ``memory [N, W]``,
    ``read_weights [R, N]``, ``write_weights [V, N]`` and ``reads [R, W]``."""

    controller: tuple[jax.Array, jax.Array]
    memory: jax.Array
    read_weights: jax.Array
    write_weights: jax.Array
    reads: jax.Array


class NTMCell(nn.Module):
    """One step ``(state, x) -> (state, (output, (read_weights, write_weights)))`` for one sequence.

    Attributes:
      controller_features: LSTM units.
      rows: ``N``, the memory's rows.
      width: ``W``, the length of a row.
      read_heads: ``R``, the read heads.
      write_heads: ``V``, the write heads.
      shift_reach: ``S``, shifts by ``-S..S`` rows.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> cell = NTMCell(controller_features=8, rows=6, width=4)
      >>> state = cell.initial_state()
      >>> params = cell.init(jax.random.key(0), state, jnp.ones(3))
      >>> state, (output, (read_w, write_w)) = cell.apply(params, state, jnp.ones(3))
      >>> output.shape, read_w.shape, write_w.shape
      ((12,), (1, 6), (1, 6))
    """

    controller_features: int = 100
    rows: int = 128
    width: int = 20
    read_heads: int = 1
    write_heads: int = 1
    shift_reach: int = 1

    def initial_state(self) -> NTMState:
        zeros = jnp.zeros((self.controller_features,))
        on_first_row = jax.nn.one_hot(0, self.rows)
        return NTMState(
            controller=(zeros, zeros),
            memory=jnp.full((self.rows, self.width), 1e-6),
            read_weights=jnp.tile(on_first_row, (self.read_heads, 1)),
            write_weights=jnp.tile(on_first_row, (self.write_heads, 1)),
            reads=jnp.zeros((self.read_heads, self.width)),
        )

    def _address(self, hidden, memory, previous, name):
        heads, shifts = previous.shape[0], 2 * self.shift_reach + 1
        sizes = {"keys": self.width, "strengths": 1, "gates": 1, "shifts": shifts, "gammas": 1}
        raw = nn.Dense(heads * sum(sizes.values()), name=name)(hidden).reshape(heads, -1)
        parts = dict(zip(sizes, jnp.split(raw, list(itertools.accumulate(sizes.values()))[:-1], axis=-1)))
        return addressing.ntm_weights(
            memory, previous,
            keys=jnp.tanh(parts["keys"]),
            strengths=jax.nn.softplus(parts["strengths"][:, 0]),
            gates=jax.nn.sigmoid(parts["gates"][:, 0]),
            shifts=jax.nn.softmax(parts["shifts"], axis=-1),
            gammas=1.0 + jax.nn.softplus(parts["gammas"][:, 0]),
        )

    @nn.compact
    def __call__(self, state: NTMState, inputs: jax.Array):
        if self.rows < 2 * self.shift_reach + 1:
            raise ValueError(f"rows={self.rows} must be at least 2 * shift_reach + 1 = {2 * self.shift_reach + 1}.")
        controller, hidden = nn.OptimizedLSTMCell(self.controller_features, name="controller")(
            state.controller, jnp.concatenate([inputs, state.reads.reshape(-1)]))

        write_weights = self._address(hidden, state.memory, state.write_weights, "write_heads")
        erase_add = nn.Dense(self.write_heads * 2 * self.width, name="erase_add")(hidden)
        erase, add = jnp.split(erase_add.reshape(self.write_heads, 2 * self.width), 2, axis=-1)
        memory = addressing.erase_and_add(state.memory, write_weights, jax.nn.sigmoid(erase), jnp.tanh(add))

        read_weights = self._address(hidden, memory, state.read_weights, "read_heads")
        reads = addressing.read(memory, read_weights)
        new_state = NTMState(controller, memory, read_weights, write_weights, reads)
        return new_state, (jnp.concatenate([hidden, reads.reshape(-1)]), (read_weights, write_weights))

