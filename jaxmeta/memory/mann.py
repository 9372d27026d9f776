r"""Memory-augmented neural network with least-recently-used access (Santoro et al. 2016).

One step of the cell, for input :math:`x_t` (an image and the previous label):

1. the LSTM controller reads :math:`[x_t, r_{t-1}]` and gives :math:`h_t`;
2. each of the ``H`` heads emits a key :math:`k_t = \tanh(W_k h_t)`, a write
   gate :math:`\alpha_t` and a key strength :math:`\beta_t`;
3. write weights :math:`w^w_t = \sigma(\alpha_t) w^r_{t-1} + (1 - \sigma(\alpha_t)) w^{lu}_{t-1}`;
   the least-used row is zeroed, then :math:`M_t = M_{t-1} + (w^w_t)^\top a_t`, where the
   written vector :math:`a_t = \tanh(W_a h_t)` is an add vector of its own (``write_vector="add"``,
   the default) or the key itself, :math:`a_t = k_t` (``write_vector="key"``, the paper's eq. 8);
4. read weights :math:`w^r_t = \operatorname{softmax}(\beta_t K(k_t, M_t))`, read
   vectors :math:`r_t = w^r_t M_t`;
5. usage :math:`u_t = \gamma u_{t-1} + w^r_t + w^w_t` and the least-used
   weights :math:`w^{lu}_t` from it (``jaxmeta.memory.addressing``).

The output is :math:`[h_t, r_t]`. Santoro et al. read with
:math:`\operatorname{softmax}(K)`, a strength of 1; with cosine
similarities in [-1, 1] that spreads a read over all rows, so the strength is
learned here (``1 + softplus``) unless ``learned_strength=False``.

**What is written.** Santoro et al.'s eq. 8 writes the key, so the row written
at step :math:`t` holds :math:`k_t`, and the read of step :math:`t`, addressed
by the same :math:`k_t` on :math:`M_t`, finds that row at cosine 1 before any
row of an earlier image of the class. One vector must then both look up the
current image and carry what should be stored (the previous label arrives
with this step), and on one-shot Omniglot the model barely uses its memory:
after 42,400 training episodes (30 min, 2 CPU cores) it was right on 73.0% of
10th presentations against 69.0% for a plain LSTM, and the 15-class task
stayed at chance (``benchmarks/results/memory_omniglot.md``). The public
reproduction of the paper's 5-class curves (T. Deleu's ``ntm-one-shot``)
writes a separate add vector, as the NTM does (Graves et al. 2014, eq. 4),
and so does ``write_vector="add"``, the default: the key addresses, the add
vector is stored.

At the start of an episode the memory and the reads are zero, the usage is
zero and the least-used weights mark rows ``0..H-1``.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmeta.memory import addressing

WRITE_VECTORS = ("add", "key")

class MANNState(NamedTuple):
    """The recurrent state of :class:`MANNCell`: controller ``(c, h)``, ``memory [N, W]``,
    ``read_weights [H, N]``, ``least_used [N]``, ``usage [N]`` and ``reads [H, W]``."""

    controller: tuple[jax.Array, jax.Array]
    memory: jax.Array
    read_weights: jax.Array
    least_used: jax.Array
    usage: jax.Array
    reads: jax.Array


class MANNCell(nn.Module):
    """One step ``(state, x) -> (state, (output, (read_weights, write_weights)))`` for one episode.

    Attributes:
      controller_features: LSTM units (the paper: 200).
      rows: ``N``, the memory's rows (the paper: 128).
      width: ``W``, the length of a row (the paper: 40).
      read_heads: ``H`` (the paper: 4); also the ``n`` of the least-used weights.
      decay: the usage decay :math:`\\gamma` (the paper: 0.95 to 0.99).
      learned_strength: emit a key strength per head (see the module docstring).
      write_vector: ``"add"`` writes an add vector of its own per head (the default), ``"key"``
        the key, as the paper's eq. 8 (see the module docstring).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> cell = MANNCell(controller_features=8, rows=6, width=4, read_heads=2)
      >>> state = cell.initial_state()
      >>> params = cell.init(jax.random.key(0), state, jnp.ones(3))
      >>> state, (output, (read_w, write_w)) = cell.apply(params, state, jnp.ones(3))
      >>> output.shape, read_w.shape, state.memory.shape
      ((16,), (2, 6), (6, 4))
    """

    controller_features: int = 200
    rows: int = 128
    width: int = 40
    read_heads: int = 4
    decay: float = 0.99
    learned_strength: bool = True
    write_vector: str = "add"

    def initial_state(self) -> MANNState:
        zeros = jnp.zeros((self.controller_features,))
        return MANNState(
            controller=(zeros, zeros),
            memory=jnp.zeros((self.rows, self.width)),
            read_weights=jnp.zeros((self.read_heads, self.rows)),
            least_used=(jnp.arange(self.rows) < self.read_heads).astype(jnp.zeros(()).dtype),
            usage=jnp.zeros((self.rows,)),
            reads=jnp.zeros((self.read_heads, self.width)),
        )

    @nn.compact
    def __call__(self, state: MANNState, inputs: jax.Array):
        if not 1 <= self.read_heads <= self.rows:
            raise ValueError(f"read_heads must be between 1 and rows={self.rows}, got {self.read_heads}.")
        if self.write_vector not in WRITE_VECTORS:
            raise ValueError(f"write_vector must be one of {WRITE_VECTORS}, got {self.write_vector!r}.")
        controller, hidden = nn.OptimizedLSTMCell(self.controller_features, name="controller")(
            state.controller, jnp.concatenate([inputs, state.reads.reshape(-1)]))
        heads = self.read_heads
        keys = jnp.tanh(nn.Dense(heads * self.width, name="keys")(hidden)).reshape(heads, self.width)
        if self.write_vector == "add":
            written = jnp.tanh(nn.Dense(heads * self.width, name="adds")(hidden)).reshape(heads, self.width)
        else:
            written = keys
        alpha = nn.Dense(heads, name="write_gates")(hidden)
        if self.learned_strength:
            strengths = 1.0 + jax.nn.softplus(nn.Dense(heads, name="strengths")(hidden))
        else:
            strengths = jnp.ones((heads,))

        write_weights = addressing.lrua_write_weights(state.read_weights, state.least_used, alpha)
        memory = addressing.zero_least_used(state.memory, state.usage)
        memory = addressing.lrua_write(memory, write_weights, written)
        read_weights = addressing.content_weights(memory, keys, strengths)
        reads = addressing.read(memory, read_weights)
        usage = addressing.update_usage(state.usage, read_weights, write_weights, self.decay)
        least_used = addressing.least_used_weights(usage, heads)

        new_state = MANNState(controller, memory, read_weights, least_used, usage, reads)
        output = jnp.concatenate([hidden, reads.reshape(-1)])
        return new_state, (output, (read_weights, write_weights))
