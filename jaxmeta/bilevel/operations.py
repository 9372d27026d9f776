r"""DARTS's candidate operations and the mixed operation that weighs them (Liu, Simonyan and Yang, ICLR 2019).

An edge of a searched cell computes every candidate operation :math:`o` on its
input and mixes them with softmax weights of the architecture parameters
:math:`\alpha`:

.. math::
    \bar o(x) = \sum_{o \in \mathcal{O}} \frac{\exp \alpha_o}{\sum_{o'} \exp \alpha_{o'}}\, o(x).

The candidates are the paper's eight (:data:`OPERATIONS`): zero, 3x3 max and
average pooling, identity (``skip_connect``), 3x3 and 5x5 separable
convolutions (ReLU, depthwise, pointwise, norm, twice) and 3x3 and 5x5
dilated separable convolutions (dilation 2, once). Convolutions are ReLU-conv-norm
with the batch's own statistics (:class:`~jaxmeta.models.conv.TaskBatchNorm`,
without scale and offset, as in the DARTS search); pooling is followed by the
same norm inside a mixed operation. At stride 2 the identity becomes
:class:`FactorizedReduce` and zero subsamples.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmeta.models.conv import TaskBatchNorm

OPERATIONS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
              "dil_conv_3x3", "dil_conv_5x5")
"""The candidate operations of the DARTS search space, in the paper's order."""


def check_operations(names: Sequence[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple if every one is a known operation; a clear error otherwise."""
    names = tuple(names)
    unknown = [name for name in names if name not in OPERATIONS]
    if unknown or not names:
        raise ValueError(f"Unknown operation(s) {unknown} (or none given): choose from {OPERATIONS}.")
    return names


class ReLUConvNorm(nn.Module):
    """ReLU, a ``kernel`` x ``kernel`` convolution (no bias), batch-statistics norm."""

    features: int
    kernel: int = 1
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Conv(self.features, (self.kernel, self.kernel), strides=self.stride, padding="SAME",
                    use_bias=False)(nn.relu(x))
        return TaskBatchNorm(affine=False)(x)


class DilatedSeparableConv(nn.Module):
    """ReLU, a depthwise ``kernel`` x ``kernel`` convolution (dilated), a pointwise convolution, norm."""

    features: int
    kernel: int
    stride: int = 1
    dilation: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        x = nn.Conv(channels, (self.kernel, self.kernel), strides=self.stride, padding="SAME",
                    kernel_dilation=self.dilation, feature_group_count=channels, use_bias=False,
                    name="depthwise")(nn.relu(x))
        x = nn.Conv(self.features, (1, 1), use_bias=False, name="pointwise")(x)
        return TaskBatchNorm(affine=False)(x)


class SeparableConv(nn.Module):
    """DARTS's separable convolution: two :class:`DilatedSeparableConv` without dilation (the first strided)."""

    features: int
    kernel: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = DilatedSeparableConv(x.shape[-1], self.kernel, self.stride)(x)
        return DilatedSeparableConv(self.features, self.kernel)(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two strided 1x1 convolutions, one on the input shifted by a pixel, concatenated.

    Odd sizes are padded at the bottom and right before the shift, so both halves have ``ceil(H / 2)`` rows.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(x)
        shifted = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))[:, 1:, 1:]
        half = self.features // 2
        a = nn.Conv(half, (1, 1), strides=2, use_bias=False)(x)
        b = nn.Conv(self.features - half, (1, 1), strides=2, use_bias=False)(shifted)
        return TaskBatchNorm(affine=False)(jnp.concatenate([a, b], axis=-1))


class Pool(nn.Module):
    """3x3 max or average pooling (average over the window's pixels inside the image)."""

    kind: str
    stride: int = 1

    def __call__(self, x: jax.Array) -> jax.Array:
        window, strides = (3, 3), (self.stride, self.stride)
        if self.kind == "max":
            return nn.max_pool(x, window, strides, padding="SAME")
        return nn.avg_pool(x, window, strides, padding="SAME", count_include_pad=False)


class Zero(nn.Module):
    """The zero operation (at stride 2, zeros of the subsampled size)."""

    stride: int = 1

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.zeros_like(x[:, ::self.stride, ::self.stride])


class Identity(nn.Module):
    """The identity (``skip_connect`` at stride 1)."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return x


def operation(name: str, features: int, stride: int) -> nn.Module:
    """The bare candidate operation ``name`` (a key of :data:`OPERATIONS`) with ``features`` outputs at ``stride``."""
    check_operations([name])
    builders = {
        "none": lambda: Zero(stride),
        "max_pool_3x3": lambda: Pool("max", stride),
        "avg_pool_3x3": lambda: Pool("avg", stride),
        "skip_connect": lambda: Identity() if stride == 1 else FactorizedReduce(features),
        "sep_conv_3x3": lambda: SeparableConv(features, 3, stride),
        "sep_conv_5x5": lambda: SeparableConv(features, 5, stride),
        "dil_conv_3x3": lambda: DilatedSeparableConv(features, 3, stride, dilation=2),
        "dil_conv_5x5": lambda: DilatedSeparableConv(features, 5, stride, dilation=2),
    }
    return builders[name]()


class CandidateOperation(nn.Module):
    """One operation of an edge, as a mixed operation runs it: pooling is followed by the norm.

    Searched and discrete cells both build their edges from it, so a discrete
    edge computes exactly what its mixed operation computes with a one-hot
    weight, from the same parameters.
    """

    kind: str
    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out = operation(self.kind, self.features, self.stride)(x)
        if self.kind in ("max_pool_3x3", "avg_pool_3x3"):
            out = TaskBatchNorm(affine=False)(out)
        return out


class MixedOperation(nn.Module):
    r"""The softmax-weighted sum of every candidate operation on one edge: :math:`\sum_o w_o\, o(x)`.

    ``weights`` (``[len(operations)]``, the softmax of the edge's
    :math:`\alpha`) are an input, not a parameter: the architecture is
    learned in the outer loop, the operations' weights in the inner one.
    Each operation's parameters live under its name, so a discrete cell that
    keeps one operation of this edge can reuse them.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> mixed = MixedOperation(features=4, stride=1)
      >>> x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
      >>> weights = jax.nn.softmax(jnp.zeros(len(OPERATIONS)))
      >>> params = mixed.init(jax.random.key(1), x, weights)["params"]
      >>> sorted(params)  # the parametric operations
      ['dil_conv_3x3', 'dil_conv_5x5', 'sep_conv_3x3', 'sep_conv_5x5']
      >>> mixed.apply({"params": params}, x, weights).shape
      (2, 8, 8, 4)
    """

    features: int
    stride: int
    operations: tuple[str, ...] = OPERATIONS

    @nn.compact
    def __call__(self, x: jax.Array, weights: jax.Array) -> jax.Array:
        names = check_operations(self.operations)
        if weights.shape != (len(names),):
            raise ValueError(f"A mixed operation over {len(names)} operations needs weights of shape "
                             f"({len(names)},), got {weights.shape}.")
        outputs = [CandidateOperation(name, self.features, self.stride, name=name)(x) for name in names]
        return jnp.tensordot(weights, jnp.stack(outputs), axes=1)
