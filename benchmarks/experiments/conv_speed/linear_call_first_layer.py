"""``library_step.py`` with the first layer's product as a ``linear_call`` whose transpose is written by hand.

``linear_call_first_layer.py on|off <library_step args>``. With ``on``, the first layer's
channel-major im2col product ``P^T K`` (patches ``P = [9, C, ..., H, W]``, data) becomes
``jax.custom_derivatives.linear_call(fwd, transpose, P, K)`` with ``transpose(P, G) = P G``, a
``[9C, pixels] @ [pixels, O]`` product that reads the output gradient ``G`` as stored, instead of
JAX's ``dot_general`` transpose, which XLA turns into a transposed copy of ``G``. ``linear_call`` has
no batching rule in jax 0.10.2; this probe registers one that binds it once per batch element
(the meta step's ``vmap`` over a chunk of one task), through JAX's private ``batching`` module.
"""
import runpy
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
from jax._src.custom_derivatives import linear_call_p
from jax._src.interpreters import batching
from jax.custom_derivatives import linear_call

import jaxmeta.models.conv as conv


def _unrolled_batching(args, dims, **params):
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    outs = [linear_call_p.bind(*[a if d is None else jax.lax.index_in_dim(a, i, d, keepdims=False)
                                 for a, d in zip(args, dims)], **params) for i in range(size)]
    return [jnp.stack(o) for o in zip(*outs)], [0] * len(outs[0])


batching.primitive_batchers[linear_call_p] = _unrolled_batching
library_im2col = conv.conv3x3_im2col


def first_layer_product(patches, kernel):
    """``tensordot(patches, kernel)`` over (tap, channel), with ``patches @ G`` as its transpose."""
    pixel_axes = tuple(range(2, patches.ndim))
    product = lambda p, k: jnp.tensordot(p, k, axes=((0, 1), (0, 1)))  # noqa: E731
    transpose = lambda p, g: jnp.tensordot(p, g, axes=(pixel_axes, tuple(range(g.ndim - 1))))  # noqa: E731
    return linear_call(product, transpose, patches, kernel)


def im2col_with_linear_call(x, kernel):
    *batch, height, width, channels = x.shape
    if 9 * channels >= kernel.shape[-1]:
        return library_im2col(x, kernel)
    padded = jnp.pad(x, [(0, 0)] * len(batch) + [(1, 1), (1, 1), (0, 0)])
    shifted = [padded[..., i:i + height, j:j + width, :] for i in range(3) for j in range(3)]
    patches = jnp.stack([jnp.moveaxis(s, -1, 0) for s in shifted])
    return first_layer_product(patches, kernel.reshape(9, channels, -1))


if __name__ == "__main__":
    if sys.argv.pop(1) == "on":
        conv.conv3x3_im2col = im2col_with_linear_call
    sys.argv[0] = str(Path(__file__).with_name("library_step.py"))
    runpy.run_path(sys.argv[0], run_name="__main__")
