r"""The conv-4 of Finn et al. (2017) for few-shot image classification, as Flax linen modules.

Four blocks of

.. math::
    x \mapsto \operatorname{maxpool}_{2\times2}\big(\operatorname{relu}(\operatorname{BN}(W * x + b))\big)

with 3x3 convolutions of 64 filters ("SAME" padding) and a linear head:
28x28x1 Omniglot images become 14x14, 7x7, 3x3 and 1x1 feature maps (pooling
floors odd sizes, as PyTorch's ``MaxPool2d(2)`` and TensorFlow's ``VALID``
pooling do), so the head sees 64 features.

Batch norm runs in the mode of the reference MAML implementations: it always
normalises with the statistics of the batch it is given (the support set in
the inner loop, the query set after adaptation), keeps no running averages,
and its scale and offset are ordinary parameters that the inner loop adapts
with the rest. Because nothing is stored between calls, the model is a pure
function of its parameters, and ``jax.vmap`` over tasks normalises each task
with its own statistics.

``uint8`` inputs (as stored by :mod:`jaxmeta.data.episodes`) are scaled to
[0, 1] inside the model, which lets the sampler move a quarter of the bytes.
"""

from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def max_pool_2x2(x: jax.Array) -> jax.Array:
    r"""2x2 max pooling with stride 2 over ``[..., H, W, C]``, flooring odd sizes.

    Each output is the largest of its window's four values :math:`x_1, \dots, x_4`
    (row-major), and its derivative is that of the first maximal one:

    .. math::
        y = \max_i x_i, \qquad \dot y = \dot x_{i^*}, \qquad
        i^* = \min\{i : x_i = y\},

    as in PyTorch's ``MaxPool2d``. :math:`i^*` comes from comparisons, so
    exactly one element of each window gets the gradient at every order of
    differentiation (a custom JVP; reverse mode transposes it). ``jnp.max``'s
    own rule is avoided: it averages over the elements equal to the maximum,
    dividing by their count, and in compiled second-order gradients XLA may
    recompute the operand with different rounding, so that the count is zero.
    Exact MAML's meta-gradient of a 64-filter conv-4 then came out NaN in
    float64, and 30% off under ``jax.checkpoint`` in float32
    (``tests/models/test_conv.py``). The forward pass is a reshape and a max,
    whose gradient is several times cheaper on the CPU than that of
    ``lax.reduce_window``.

    Example:
      >>> import jax.numpy as jnp
      >>> max_pool_2x2(jnp.arange(9.0).reshape(3, 3, 1))[..., 0].tolist()
      [[4.0]]
    """
    *batch, height, width, channels = x.shape
    h, w = height // 2, width // 2
    return _max_of_windows(x[..., : 2 * h, : 2 * w, :].reshape(*batch, h, 2, w, 2, channels))


_WINDOW_POSITIONS = np.arange(4).reshape(2, 1, 2, 1)  # row-major position in the window, axes -4 to -1


@jax.custom_jvp
def _max_of_windows(windows: jax.Array) -> jax.Array:
    """``[..., h, 2, w, 2, C] -> [..., h, w, C]``: the maximum of each 2x2 window."""
    return windows.max(axis=(-4, -2))


@_max_of_windows.defjvp
def _max_of_windows_jvp(primals, tangents):
    (windows,), (tangent,) = primals, tangents
    a, b = windows[..., :, 0, :, 0, :], windows[..., :, 0, :, 1, :]
    c, d = windows[..., :, 1, :, 0, :], windows[..., :, 1, :, 1, :]
    a_wins, c_wins = a >= b, c >= d  # ties go to the first element
    top, bottom = jnp.where(a_wins, a, b), jnp.where(c_wins, c, d)
    top_wins = top >= bottom
    first = jnp.where(top_wins, jnp.where(a_wins, 0, 1), jnp.where(c_wins, 2, 3))
    chosen = first[..., :, None, :, None, :] == _WINDOW_POSITIONS  # one True per window
    # The value is picked by the same comparisons, so higher derivatives follow the same element.
    value = jnp.where(top_wins, top, bottom)
    return value, jnp.sum(jnp.where(chosen, tangent, 0), axis=(-4, -2))


class TaskBatchNorm(nn.Module):
    r"""Batch norm with the current batch's statistics only (no running averages).

    .. math::
        y = \gamma \frac{x - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}} + \beta,

    with :math:`\mu_B, \sigma_B^2` the mean and (biased) variance of ``x`` over
    every axis but the last, and :math:`\gamma` (``scale``), :math:`\beta`
    (``bias``) learned per channel (``affine=False``: :math:`\gamma = 1, \beta = 0`
    and no parameters, as DARTS's search operations normalise).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> bn = TaskBatchNorm()
      >>> x = jax.random.normal(jax.random.key(0), (8, 3)) * 5 + 2
      >>> y = bn.apply(bn.init(jax.random.key(1), x), x)
      >>> bool(jnp.allclose(y.mean(0), 0, atol=1e-5)), bool(jnp.allclose(y.std(0), 1, atol=1e-3))
      (True, True)
    """

    epsilon: float = 1e-5
    scale_init: Callable = nn.initializers.ones
    affine: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axis=axes)
        variance = jnp.mean(jnp.square(x - mean), axis=axes)
        if not self.affine:
            return (x - mean) * jax.lax.rsqrt(variance + self.epsilon)
        scale = self.param("scale", self.scale_init, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return (x - mean) * (jax.lax.rsqrt(variance + self.epsilon) * scale) + bias


CONV_IMPLEMENTATIONS = ("xla", "im2col", "onednn")


def same_padding(size: int, stride: int) -> tuple[int, int]:
    """TensorFlow's (and XLA's) "SAME" padding of a 3x3 window: ``ceil(size / stride)`` outputs, the odd pixel
    of padding at the end.

    >>> same_padding(28, 1), same_padding(28, 2), same_padding(7, 2)
    ((1, 1), (0, 1), (1, 1))
    """
    total = max((-(-size // stride) - 1) * stride + 3 - size, 0)
    return total // 2, total - total // 2


def conv3x3_im2col(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    r"""A 3x3 "SAME" convolution as one matrix product of image patches (im2col).

    .. math::
        y_{n,h,w,o} = \sum_{i,j,c} x^{\text{pad}}_{n,h+i,w+j,c}\, K_{i,j,c,o}
        = (P\, K_{\text{flat}})_{(n,h,w),o}

    where :math:`P` stacks the 9 shifted copies of :math:`x` along the channel
    axis. Every derivative of it is a matrix product too, which XLA's CPU
    backend runs several times faster than the kernel gradient of its direct
    convolution, batched or not.

    When the patches are narrower than the output (:math:`9C < O`, the conv-4's
    first layer on 1-channel images), they are built channel-major,
    :math:`P^\top` of shape ``[9, C, ..., H, W]``, and multiplied by
    :func:`channel_major_product`, whose cotangents are written out so that no
    order of reverse mode copies the output gradient into a transposed layout
    (the measurements in the docs, ``docs/design/onednn.md``).

    ``stride`` 2 takes every other patch (the output is ``ceil(H / 2) x ceil(W / 2)``,
    padded as TensorFlow's "SAME").
    """
    *batch, height, width, channels = x.shape
    pad = [(0, 0)] * len(batch) + [same_padding(height, stride), same_padding(width, stride), (0, 0)]
    padded = jnp.pad(x, pad)
    rows, cols = -(-height // stride), -(-width // stride)
    shifted = [padded[..., i:i + (rows - 1) * stride + 1:stride, j:j + (cols - 1) * stride + 1:stride, :]
               for i in range(3) for j in range(3)]
    if 9 * channels < kernel.shape[-1]:
        patches = jnp.stack([jnp.moveaxis(s, -1, 0) for s in shifted])  # [9, C, ..., H, W]
        return channel_major_product(patches, kernel.reshape(9, channels, -1))
    patches = jnp.concatenate(shifted, axis=-1)
    return patches @ kernel.reshape(9 * channels, -1)


def _product(patches: jax.Array, kernel: jax.Array) -> jax.Array:
    return jnp.tensordot(patches, kernel, axes=((0, 1), (0, 1)))


@jax.custom_vjp
def channel_major_product(patches: jax.Array, kernel: jax.Array) -> jax.Array:
    r"""``[T, C, *pixels] x [T, C, O] -> [*pixels, O]``: :math:`Y = P^\top K`, contracting taps and channels.

    Its cotangents are products too,

    .. math::
        \bar K = P\,\bar Y, \qquad \bar P = K\,\bar Y^\top,

    written out here (``jax.custom_vjp``) because JAX's own transpose of the
    forward product computes :math:`\bar K` as :math:`(\bar Y^\top P^\top)^\top`,
    for which XLA's CPU backend copies the output gradient :math:`\bar Y`, the
    step's largest tensor, into a transposed layout: 22% more tasks/s for
    5-way 1-shot MAML (the measurements in the docs, ``docs/design/onednn.md``). The rules
    themselves are plain JAX, so every order of reverse mode is exact
    (including gradients with respect to the input images, through
    :math:`\bar P`), and so is forward-over-reverse (``jax.jvp`` of a gradient,
    Hessian-vector products); only ``jax.jvp`` of the product itself is
    refused, as for any ``custom_vjp``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> p, k = jnp.ones((9, 1, 4, 4)), jnp.ones((9, 1, 8))
      >>> channel_major_product(p, k).shape
      (4, 4, 8)
      >>> jax.grad(lambda k: channel_major_product(p, k).sum())(k)[0, 0, 0].item()
      16.0
    """
    return _product(patches, kernel)


def _product_backward(residuals, out_cotangent):
    patches, kernel = residuals
    pixels = tuple(range(2, patches.ndim))
    patches_cotangent = jnp.tensordot(kernel, out_cotangent, axes=((2,), (out_cotangent.ndim - 1,)))
    kernel_cotangent = jnp.tensordot(patches, out_cotangent, axes=(pixels, tuple(range(len(pixels)))))
    return patches_cotangent, kernel_cotangent


channel_major_product.defvjp(lambda patches, kernel: (_product(patches, kernel), (patches, kernel)), _product_backward)


def conv3x3(x: jax.Array, kernel: jax.Array, implementation: str = "xla", stride: int = 1,
            padding: str = "SAME") -> jax.Array:
    """A 3x3 convolution of ``[..., H, W, C]`` with ``[3, 3, C, O]`` (no bias), by ``implementation``.

    ``padding`` "SAME" keeps ``H x W`` (``ceil(H / 2) x ceil(W / 2)`` at ``stride`` 2); "VALID"
    (stride 1 only) pads nothing and gives ``(H - 2) x (W - 2)``: the "SAME" result without its
    border, which is how im2col and oneDNN compute it.

    ``"onednn"`` computes with :func:`conv3x3_im2col` when ``9 C < O`` (the conv-4's 1-channel first
    layer), where its channel-major product beats oneDNN's kernels for that shape, and for ``stride``
    2, which the extension does not implement.
    """
    if implementation not in CONV_IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {CONV_IMPLEMENTATIONS}, got {implementation!r}.")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}.")
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}.")
    if padding == "VALID":
        if stride != 1:
            raise ValueError("padding 'VALID' is implemented for stride 1 only; use padding 'SAME' with stride 2.")
        if implementation != "xla":  # XLA pads (or not) itself, below
            return conv3x3(x, kernel, implementation)[..., 1:-1, 1:-1, :]
    if implementation == "im2col" or (implementation == "onednn" and (9 * x.shape[-1] < kernel.shape[-1]
                                                                      or stride != 1)):
        return conv3x3_im2col(x, kernel, stride)
    if implementation == "onednn":
        from jaxmeta.models.onednn_conv import conv3x3_onednn  # loads the extension on first use

        return conv3x3_onednn(x, kernel)
    y = jax.lax.conv_general_dilated(x.reshape(-1, *x.shape[-3:]), kernel, (stride, stride), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y.reshape(*x.shape[:-3], *y.shape[-3:])


def images_as_float(x: jax.Array) -> jax.Array:
    """``uint8`` images scaled to [0, 1] in float32; other inputs unchanged."""
    if x.dtype == jnp.uint8:
        return x.astype(jnp.float32) * np.float32(1 / 255)
    return jnp.asarray(x)


class Conv3x3(nn.Module):
    """A 3x3 convolution with bias (``jaxmeta.models.conv.conv3x3``); parameters named and shaped as ``nn.Conv``'s.

    ``implementation`` chooses how it is computed, with identical results (up
    to rounding): ``"xla"`` (``lax.conv_general_dilated``; the right choice on
    GPU and TPU), ``"im2col"`` (``conv3x3_im2col``; faster on the CPU, see
    ``docs/design/onednn.md``) or ``"onednn"`` (oneDNN's direct
    convolutions through XLA's FFI, ``jaxmeta.models.onednn_conv``; the
    fastest on the CPU, float32 only, compiled by ``make onednn`` or on first use; a first layer
    with fewer than ``features / 9`` input channels stays im2col). Every order
    of reverse mode works with all three. Forward-over-reverse (``jax.jvp`` of a
    gradient: ``jaxmeta.core.hessian.hvp``, iMAML) works with ``"xla"`` and
    ``"im2col"``, not ``"onednn"``; plain forward mode (``jax.jvp`` of the
    model's output) needs ``"xla"`` when the first layer's input has fewer than
    ``features / 9`` channels (``channel_major_product`` is a ``custom_vjp``).
    """

    features: int
    implementation: str = "xla"
    kernel_init: Callable = nn.initializers.lecun_normal()
    stride: int = 1
    padding: str = "SAME"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.implementation not in CONV_IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {CONV_IMPLEMENTATIONS}, got {self.implementation!r}.")
        kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
        return conv3x3(x, kernel, self.implementation, self.stride, self.padding) + bias


class Initialisation(NamedTuple):
    """Initialisers of the conv-4's parameters: conv kernels, batch-norm scales, the linear head's kernel and bias.

    Conv biases start at zero in every scheme (a conv bias is cancelled by the batch norm after it); linear
    biases at zero unless the scheme says otherwise.
    """

    conv_kernel: Callable
    norm_scale: Callable
    head_kernel: Callable
    head_bias: Callable = nn.initializers.zeros


_PYTORCH_DEFAULT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")  # U(+-1/sqrt(fan_in))

INITIALISATIONS = {
    # Flax's defaults: Var W = 1 / fan_in for every kernel, unit scales.
    "lecun": Initialisation(nn.initializers.lecun_normal(), nn.initializers.ones, nn.initializers.lecun_normal()),
    # PyTorch's defaults for Conv2d, BatchNorm2d and Linear (kaiming_uniform_ with a = sqrt(5)): Var W = 1 / (3 fan_in).
    "pytorch": Initialisation(_PYTORCH_DEFAULT, nn.initializers.ones, _PYTORCH_DEFAULT),
    # learn2learn's conv-4 (vision/models/cnn4.py): Glorot-uniform convs, U(0, 1) norm scales and a
    # standard-normal head, as Finn et al.'s TensorFlow code (Xavier convs, N(0, 1) output weights).
    "learn2learn": Initialisation(nn.initializers.glorot_uniform(), nn.initializers.uniform(1.0),
                                  nn.initializers.normal(1.0)),
    # Sung et al.'s Relation network code (weights_init): conv kernels N(0, 2 / (9 * out_channels)), unit
    # norm scales, linear kernels N(0, 0.01^2) with biases 1.
    "relation-net": Initialisation(nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
                                   nn.initializers.ones, nn.initializers.normal(0.01), nn.initializers.ones),
}
"""The conv-4's initialisations by name (``init_scheme=``): Flax's, PyTorch's, learn2learn's and the Relation
network code's (each an ``Initialisation`` of this module)."""


def initialisation(name: str) -> Initialisation:
    """The :class:`Initialisation` called ``name`` in :data:`INITIALISATIONS`, or a clear error."""
    if name not in INITIALISATIONS:
        raise ValueError(f"init_scheme must be one of {sorted(INITIALISATIONS)}, got {name!r}.")
    return INITIALISATIONS[name]


class ConvBlock(nn.Module):
    """3x3 convolution, :class:`TaskBatchNorm`, ReLU, :func:`max_pool_2x2` (unless ``pool=False``).

    ``init_scheme`` names the initialisation of the kernel and the norm's scale (see :data:`INITIALISATIONS`);
    ``stride`` 2 makes the convolution itself halve the image (Nichol et al.'s blocks, with ``pool=False``);
    ``padding`` "VALID" shrinks it by 2 (Sung et al.'s first two blocks).
    """

    features: int = 64
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    conv: str = "xla"
    pool: bool = True
    init_scheme: str = "lecun"
    stride: int = 1
    padding: str = "SAME"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scheme = initialisation(self.init_scheme)
        x = Conv3x3(self.features, self.conv, kernel_init=scheme.conv_kernel, stride=self.stride,
                    padding=self.padding, name="conv")(x)
        x = self.activation(TaskBatchNorm(scale_init=scheme.norm_scale, name="norm")(x))
        return max_pool_2x2(x) if self.pool else x


DOWNSAMPLING = ("pool", "stride")


def _conv_trunk(x: jax.Array, *, features: int, blocks: int, conv: str, pooled_blocks: int | None = None,
                last_features: int | None = None, init_scheme: str = "lecun", downsample: str = "pool",
                unpadded_blocks: int = 0) -> jax.Array:
    """``blocks`` :class:`ConvBlock` s named ``block_i`` (call inside a compact method); scales ``uint8`` input."""
    if x.ndim < 4:
        raise ValueError(
            f"The conv-4 expects images [N, H, W, C] (channels last), got shape {x.shape}; add a "
            "channel axis with x[..., None]."
        )
    if downsample not in DOWNSAMPLING:
        raise ValueError(f"downsample must be one of {DOWNSAMPLING}, got {downsample!r}.")
    x = images_as_float(x)
    pooled_blocks = blocks if pooled_blocks is None else pooled_blocks
    for i in range(blocks):
        width = last_features if (i == blocks - 1 and last_features is not None) else features
        halve = i < pooled_blocks
        x = ConvBlock(width, conv=conv, pool=halve and downsample == "pool", init_scheme=init_scheme,
                      stride=2 if halve and downsample == "stride" else 1,
                      padding="VALID" if i < unpadded_blocks else "SAME", name=f"block_{i}")(x)
    return x


class Conv4(nn.Module):
    """The conv-4 classifier: ``[N, H, W, C]`` images (``uint8`` or float) -> ``[N, num_classes]`` logits.

    The linear layer is named ``head``, so ANIL's ``head`` predicate can pick it.
    ``conv`` picks the convolution's implementation (see :class:`Conv3x3`):
    ``"onednn"`` (when built) or ``"im2col"`` on the CPU, ``"xla"`` on
    accelerators; the parameters and the function computed are the same.
    ``init_scheme`` names the initialisation (:data:`INITIALISATIONS`: ``"lecun"``, Flax's defaults; ``"pytorch"``;
    ``"learn2learn"``, the reference MAML implementations'). ``downsample="stride"`` is the network of
    Nichol et al.'s Reptile code: stride-2 convolutions and no pooling (28x28 -> 14, 7, 4, 2; the head sees
    2 x 2 x 64 features), a quarter of the pooled network's multiply-adds.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = Conv4(num_classes=5)
      >>> params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
      >>> sorted(params)
      ['block_0', 'block_1', 'block_2', 'block_3', 'head']
      >>> model.apply({"params": params}, jnp.zeros((10, 28, 28, 1), jnp.uint8)).shape
      (10, 5)
    """

    num_classes: int
    features: int = 64
    blocks: int = 4
    conv: str = "xla"
    init_scheme: str = "lecun"
    downsample: str = "pool"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = _conv_trunk(x, features=self.features, blocks=self.blocks, conv=self.conv, init_scheme=self.init_scheme,
                        downsample=self.downsample)
        scheme = initialisation(self.init_scheme)
        head = nn.Dense(self.num_classes, kernel_init=scheme.head_kernel, bias_init=scheme.head_bias, name="head")
        return head(x.reshape(*x.shape[:-3], -1))


class ConvEmbedding(nn.Module):
    """The conv-4 without its head: the embedding network of the metric learners.

    ``[N, H, W, C]`` images -> ``[N, D]`` features (``flatten=True``; ``D = 64``
    for 28x28 inputs) or ``[N, h, w, features]`` feature maps. ``pooled_blocks``
    keeps the pooling in the first blocks only (the Relation network pools the
    first two of four), ``unpadded_blocks`` convolves the first blocks without
    padding (the Relation network's first two: 28 -> 26 -> 13 -> 11 -> 5, so
    5x5 maps), ``last_features`` widens the last block (the Gaussian
    prototypical network's extra covariance channels), and ``init_scheme``
    names the initialisation (:data:`INITIALISATIONS`).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> net = ConvEmbedding()
      >>> params = net.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
      >>> net.apply({"params": params}, jnp.zeros((6, 28, 28, 1), jnp.uint8)).shape
      (6, 64)
      >>> ConvEmbedding(pooled_blocks=2, flatten=False).apply({"params": params}, jnp.zeros((6, 28, 28, 1))).shape
      (6, 7, 7, 64)
      >>> ConvEmbedding(pooled_blocks=2, unpadded_blocks=2, flatten=False).apply(
      ...     {"params": params}, jnp.zeros((6, 28, 28, 1))).shape
      (6, 5, 5, 64)
    """

    features: int = 64
    blocks: int = 4
    conv: str = "xla"
    pooled_blocks: int | None = None
    last_features: int | None = None
    flatten: bool = True
    unpadded_blocks: int = 0
    init_scheme: str = "lecun"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = _conv_trunk(x, features=self.features, blocks=self.blocks, conv=self.conv,
                        pooled_blocks=self.pooled_blocks, last_features=self.last_features,
                        unpadded_blocks=self.unpadded_blocks, init_scheme=self.init_scheme)
        return x.reshape(*x.shape[:-3], -1) if self.flatten else x
