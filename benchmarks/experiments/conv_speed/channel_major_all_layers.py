"""Channel-major patches ``[9, C, ..., H, W]`` in every layer, for ``interleaved_ab.py`` (2026-11-25, 4th session).

``as_library``: the library's ``channel_major_product`` (forward ``P^T K`` as XLA lays it out) in every
layer, not only where ``9C < O``. ``output_major``: the forward as ``(K^T P)^T`` (a canonical product
writing ``Y^T [O, pixels]``, then one transpose of the output), so that the kernel gradient ``P G`` and
the patch gradient ``K G^T`` are canonical products with the channel-major patches.
"""
import jax
import jax.numpy as jnp

from jaxmeta.models.conv import _product_backward, channel_major_product, conv3x3_im2col


def _shifted(x):
    """The 9 shifted copies of ``x [..., H, W, C]`` (zero-padded by one pixel), as in ``conv3x3_im2col``."""
    *batch, height, width, _ = x.shape
    padded = jnp.pad(x, [(0, 0)] * len(batch) + [(1, 1), (1, 1), (0, 0)])
    return [padded[..., i:i + height, j:j + width, :] for i in range(3) for j in range(3)]


def _patches(x):
    return jnp.stack([jnp.moveaxis(s, -1, 0) for s in _shifted(x)])  # [9, C, ..., H, W]


def as_library(x, kernel):
    return channel_major_product(_patches(x), kernel.reshape(9, x.shape[-1], -1))


def _output_major(p, k):
    return jnp.moveaxis(jnp.tensordot(k, p, axes=((0, 1), (0, 1))), 0, -1)


@jax.custom_vjp
def output_major_product(p, k):
    return _output_major(p, k)


# The cotangents are the library product's (K G^T and P G); only the forward's layout differs.
output_major_product.defvjp(lambda p, k: (_output_major(p, k), (p, k)), _product_backward)


def output_major(x, kernel):
    return output_major_product(_patches(x), kernel.reshape(9, x.shape[-1], -1))


def stacked_patches(x, kernel):
    """The library's channels-last product, with the patches built by ``stack`` + reshape, not ``concatenate``."""
    *batch, height, width, channels = x.shape
    if 9 * channels < kernel.shape[-1]:
        return conv3x3_im2col(x, kernel)
    patches = jnp.stack(_shifted(x), axis=-2).reshape(*batch, height, width, 9 * channels)
    return patches @ kernel.reshape(9 * channels, -1)
