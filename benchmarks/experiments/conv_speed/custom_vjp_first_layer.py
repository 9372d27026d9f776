"""The first layer's channel-major product with hand-written cotangents (``jax.custom_vjp``).

For ``interleaved_ab.py``: ``custom_vjp_first_layer.py:im2col_recursive`` and
``custom_vjp_first_layer.py:im2col_plain_forward``. The product ``Y = P^T K`` (patches
``P = [9, C, ..., H, W]``) has the kernel cotangent ``P Y_bar`` as its own ``custom_vjp`` function,
whose cotangent is the product again, so every reverse order reads the output gradient as stored.
In ``recursive`` the forward rules call the custom functions too (so that the outer pass of MAML
sees them), which breaks forward-over-reverse (``jax.jvp`` of a gradient raises "can't apply
forward-mode autodiff (jvp) to a custom_vjp function"); ``plain_forward`` computes the forward
rules with ``jnp.tensordot``, but its backward rules still call the custom functions, which fails the
same way one order higher (``jax.jvp`` of a MAML meta-gradient); ``one_level`` has a plain backward
rule (``P Y_bar`` as a ``jnp.tensordot``), so only ``jax.jvp`` of the product itself is refused.
"""
import jax
import jax.numpy as jnp

import jaxmeta.models.conv as conv

library_im2col = conv.conv3x3_im2col


def _pixels(patches):
    return tuple(range(2, patches.ndim))


def _plain_product(p, k):
    return jnp.tensordot(p, k, axes=((0, 1), (0, 1)))


def _plain_kernel_grad(p, g):
    return jnp.tensordot(p, g, axes=(_pixels(p), tuple(range(g.ndim - 1))))


def _patch_cotangent(k, g):  # [9, C, O] x [..., O] -> [9, C, ...]
    return jnp.tensordot(k, g, axes=((2,), (g.ndim - 1,)))


def make_product(recursive):
    if recursive is None:  # one level: the backward rule is plain JAX
        product = jax.custom_vjp(_plain_product)
        product.defvjp(lambda p, k: (_plain_product(p, k), (p, k)),
                       lambda res, g: (_patch_cotangent(res[1], g), _plain_kernel_grad(res[0], g)))
        return product
    product, kernel_grad = jax.custom_vjp(_plain_product), jax.custom_vjp(_plain_kernel_grad)
    forward_product = product if recursive else _plain_product
    forward_kernel_grad = kernel_grad if recursive else _plain_kernel_grad
    product.defvjp(lambda p, k: (forward_product(p, k), (p, k)),
                   lambda res, g: (_patch_cotangent(res[1], g), kernel_grad(res[0], g)))
    kernel_grad.defvjp(lambda p, g: (forward_kernel_grad(p, g), (p, g)),
                       lambda res, kb: (_patch_cotangent(kb, res[1]), product(res[0], kb)))
    return product


def make_im2col(product):
    def im2col(x, kernel):
        *batch, height, width, channels = x.shape
        if 9 * channels >= kernel.shape[-1]:
            return library_im2col(x, kernel)
        padded = jnp.pad(x, [(0, 0)] * len(batch) + [(1, 1), (1, 1), (0, 0)])
        shifted = [padded[..., i:i + height, j:j + width, :] for i in range(3) for j in range(3)]
        return product(jnp.stack([jnp.moveaxis(s, -1, 0) for s in shifted]), kernel.reshape(9, channels, -1))
    return im2col


im2col_recursive = make_im2col(make_product(recursive=True))
im2col_plain_forward = make_im2col(make_product(recursive=False))
im2col_one_level = make_im2col(make_product(recursive=None))
im2col_jax_transpose = make_im2col(_plain_product)  # the channel-major product with JAX's own rules (a09f8d0's)


def _channels_last_product(p, k):  # [..., 9C] x [9C, O] -> [..., O]
    return p @ k


def _channels_last_backward(res, g):
    p, k = res
    batch = tuple(range(p.ndim - 1))
    return g @ k.T, jnp.tensordot(p, g, axes=(batch, batch))


channels_last_product = jax.custom_vjp(_channels_last_product)
channels_last_product.defvjp(lambda p, k: (p @ k, (p, k)), _channels_last_backward)


def im2col_all_layers(x, kernel):
    """``library_im2col`` with layers 2-4's product (channels-last patches) as a one-level custom_vjp too."""
    *batch, height, width, channels = x.shape
    if 9 * channels < kernel.shape[-1]:
        return library_im2col(x, kernel)
    padded = jnp.pad(x, [(0, 0)] * len(batch) + [(1, 1), (1, 1), (0, 0)])
    shifted = [padded[..., i:i + height, j:j + width, :] for i in range(3) for j in range(3)]
    return channels_last_product(jnp.concatenate(shifted, axis=-1), kernel.reshape(9 * channels, -1))
