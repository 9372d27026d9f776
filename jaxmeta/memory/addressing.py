r"""Addressing of an external memory ``M [N rows, W columns]``: NTM and least-recently-used access.

Every function handles one memory and one or more heads (a leading head axis
``H``); batches of episodes are the caller's ``jax.vmap``.

**Content addressing** (Graves et al. 2014, eq. 5-6; Santoro et al. 2016, eq. 2-3).
A key :math:`k` and a key strength :math:`\beta \ge 0` give

.. math::
    w^c(i) = \frac{\exp\big(\beta\, K(k, M(i))\big)}{\sum_j \exp\big(\beta\, K(k, M(j))\big)},
    \qquad K(u, v) = \frac{u \cdot v}{\lVert u \rVert\, \lVert v \rVert},

with norms below ``1e-8`` raised to it, so that a zero row (an empty or
zeroed memory location) has similarity 0 and a finite gradient
(:func:`jaxmeta.metric.cosine_similarities`).

**NTM location addressing** (Graves et al. 2014, eq. 7-9): interpolation with
the previous weights by a gate :math:`g \in [0, 1]`, a circular convolution
with a shift distribution :math:`s` over offsets :math:`-S..S`, sharpening by
:math:`\gamma \ge 1`:

.. math::
    w^g = g\, w^c + (1 - g)\, w_{t-1}, \qquad
    \tilde w(i) = \sum_{k=-S}^{S} s(k)\, w^g\big((i - k) \bmod N\big), \qquad
    w(i) = \frac{\tilde w(i)^\gamma}{\sum_j \tilde w(j)^\gamma}.

**Least-recently-used access** (Santoro et al. 2016, eq. 5-8): usage decays by
:math:`\gamma` and grows with reads and writes; the least-used weights mark
the ``n`` rows of smallest usage (``n`` = number of read heads; ties go to
the lower index); writes go to the previously read rows or the least-used ones:

.. math::
    u_t = \gamma\, u_{t-1} + w^r_t + w^w_t, \qquad
    w^{lu}_t(i) = \mathbb{1}\big[u_t(i) \le m(u_t, n)\big], \qquad
    w^w_t = \sigma(\alpha)\, w^r_{t-1} + \big(1 - \sigma(\alpha)\big)\, w^{lu}_{t-1},

and before writing, the least-used row (smallest :math:`u_{t-1}`) is set to zero.
"""

import jax
import jax.numpy as jnp

from jaxmeta.metric.distances import cosine_similarities

EPSILON = 1e-6


def content_weights(memory: jax.Array, keys: jax.Array, strengths: jax.Array) -> jax.Array:
    r"""``[H, N]`` weights :math:`w^c = \operatorname{softmax}(\beta K(k, M))` for keys ``[H, W]``, strengths ``[H]``.

    Example:
      >>> import jax.numpy as jnp
      >>> memory = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> content_weights(memory, jnp.array([[2.0, 0.0]]), jnp.array([100.0])).round(3).tolist()
      [[1.0, 0.0]]
    """
    return jax.nn.softmax(strengths[:, None] * cosine_similarities(keys, memory), axis=-1)


def read(memory: jax.Array, weights: jax.Array) -> jax.Array:
    r"""``[H, W]`` read vectors :math:`r = \sum_i w(i)\, M(i)` for weights ``[H, N]``."""
    return weights @ memory


def interpolate(content: jax.Array, previous: jax.Array, gate: jax.Array) -> jax.Array:
    r""":math:`w^g = g\, w^c + (1 - g)\, w_{t-1}` with a gate ``[H]`` in [0, 1]."""
    return gate[:, None] * content + (1.0 - gate[:, None]) * previous


def shift(weights: jax.Array, shifts: jax.Array) -> jax.Array:
    r"""Circular convolution :math:`\tilde w(i) = \sum_k s(k)\, w((i - k) \bmod N)`.

    ``shifts [H, 2S + 1]`` is a distribution over the offsets ``-S..S`` (index
    ``S`` is no shift); offset ``+1`` moves the weight to the next row.

    Example:
      >>> import jax.numpy as jnp
      >>> shift(jnp.array([[1.0, 0.0, 0.0]]), jnp.array([[0.0, 0.0, 1.0]])).tolist()
      [[0.0, 1.0, 0.0]]
    """
    reach = shifts.shape[-1] // 2
    rolled = jnp.stack([jnp.roll(weights, offset, axis=-1) for offset in range(-reach, reach + 1)], axis=-1)
    return jnp.einsum("hnk,hk->hn", rolled, shifts)


def sharpen(weights: jax.Array, gamma: jax.Array) -> jax.Array:
    r""":math:`w(i) = \tilde w(i)^\gamma / \sum_j \tilde w(j)^\gamma` with ``gamma [H] >= 1``."""
    powered = jnp.power(weights + EPSILON, gamma[:, None])
    return powered / jnp.sum(powered, axis=-1, keepdims=True)


def ntm_weights(memory, previous, keys, strengths, gates, shifts, gammas) -> jax.Array:
    """The full NTM addressing of Graves et al. 2014: content, interpolation, shift, sharpening (``[H, N]``)."""
    gated = interpolate(content_weights(memory, keys, strengths), previous, gates)
    return sharpen(shift(gated, shifts), gammas)


def erase_and_add(memory: jax.Array, weights: jax.Array, erase: jax.Array, add: jax.Array) -> jax.Array:
    r"""NTM write (Graves et al. 2014, eq. 3-4), heads applied in turn:
    :math:`M \leftarrow M \circ (1 - w e^\top) + w a^\top`.

    ``weights [H, N]``, ``erase [H, W]`` in [0, 1], ``add [H, W]``.
    """
    for head in range(weights.shape[0]):
        memory = memory * (1.0 - jnp.outer(weights[head], erase[head])) + jnp.outer(weights[head], add[head])
    return memory


def update_usage(usage: jax.Array, read_weights: jax.Array, write_weights: jax.Array, decay: float) -> jax.Array:
    r""":math:`u_t = \gamma u_{t-1} + \sum_h w^r_{t,h} + \sum_h w^w_{t,h}` (usage ``[N]``, weights ``[H, N]``)."""
    return decay * usage + jnp.sum(read_weights, axis=0) + jnp.sum(write_weights, axis=0)


def least_used_weights(usage: jax.Array, n: int) -> jax.Array:
    r""":math:`w^{lu}(i) = 1` for the ``n`` rows of smallest usage, else 0 (``[N]``).

    This is the paper's :math:`\mathbb{1}[u(i) \le m(u, n)]` with exactly ``n``
    ones: on ties at the ``n``-th smallest value the lower indices win, as for the
    zeroed row in :func:`zero_least_used`. Ties are the rule, not an accident: rows
    never written hold zeros, content reading gives them equal weights, so their
    usages stay exactly equal. Marking every tie would spread each new write over
    all the unwritten rows (and scale it by their count), which stops the memory
    from binding one image to one row.

    Example:
      >>> import jax.numpy as jnp
      >>> least_used_weights(jnp.array([0.5, 0.1, 0.9, 0.3]), 2).tolist()
      [0.0, 1.0, 0.0, 1.0]
      >>> least_used_weights(jnp.array([0.2, 0.0, 0.0, 0.0]), 2).tolist()
      [0.0, 1.0, 1.0, 0.0]
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= usage.shape[-1]:
        raise ValueError(f"n must be an int between 1 and the number of memory rows {usage.shape[-1]}, got {n!r}.")
    _, rows = jax.lax.top_k(-usage, n)  # top_k puts the lower index first on ties
    return jnp.zeros_like(usage).at[rows].set(1.0)


def lrua_write_weights(previous_read: jax.Array, previous_least_used: jax.Array, alpha: jax.Array) -> jax.Array:
    r""":math:`w^w_t = \sigma(\alpha) w^r_{t-1} + (1 - \sigma(\alpha)) w^{lu}_{t-1}` per head (``[H, N]``)."""
    gate = jax.nn.sigmoid(alpha)[:, None]
    return gate * previous_read + (1.0 - gate) * previous_least_used[None, :]


def zero_least_used(memory: jax.Array, usage: jax.Array) -> jax.Array:
    """``memory`` with the row of smallest ``usage`` set to zero (the first such row on ties)."""
    return memory * (1.0 - jax.nn.one_hot(jnp.argmin(usage), memory.shape[0], dtype=memory.dtype))[:, None]


def lrua_write(memory: jax.Array, write_weights: jax.Array, vectors: jax.Array) -> jax.Array:
    r""":math:`M_t(i) = M_{t-1}(i) + \sum_h w^w_{t,h}(i)\, a_{t,h}` for vectors ``[H, W]`` (Santoro et al. 2016,
    eq. 8, write the keys, :math:`a = k`)."""
    return memory + write_weights.T @ vectors
