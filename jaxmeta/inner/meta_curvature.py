r"""Meta-Curvature (Park and Oliva, NeurIPS 2019): a learned, per-layer curvature transform of the inner gradient.

The inner step is gradient descent on a transformed gradient,

.. math::
    \phi_{j+1} = \phi_j - \alpha\, \operatorname{MC}\big(\nabla L^s(\phi_j)\big),

where, for a parameter tensor whose gradient :math:`G` has shape
``[*spatial, in, out]`` (a conv kernel ``[3, 3, C_in, C_out]``, a dense kernel
``[in, out]``), reshaped to :math:`S \times I \times O`, the transform is a
product along each mode with a learned matrix:

.. math::
    \operatorname{MC}(G) = G \times_1 M_s \times_2 M_i \times_3 M_o, \qquad
    \operatorname{MC}(G)_{t j k} = \sum_{s, i, o} (M_s)_{t s} (M_i)_{j i} (M_o)_{k o}\, G_{s i o}.

Its Kronecker form :math:`M_o \otimes M_i \otimes M_s` is a full matrix on the
layer's gradient for :math:`S^2 + I^2 + O^2` parameters. Dense kernels have
no spatial mode. Vectors (biases, batch-norm scales) get an element-wise
scale and scalars a scalar: a choice of ours, the paper transforms weight
tensors. Every matrix starts at the identity (and every scale at 1), where
the rule is MAML's gradient descent.
"""

import math

import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.adapt import check_learning_rate
from jaxmeta.inner.learned import LearnedTransform


def _identity_transform(p: jax.Array):
    dtype = jnp.result_type(p)
    if jnp.ndim(p) < 2:
        return jnp.ones(jnp.shape(p), dtype)
    *spatial, n_in, n_out = jnp.shape(p)
    matrices = {"in": jnp.eye(n_in, dtype=dtype), "out": jnp.eye(n_out, dtype=dtype)}
    if spatial:
        matrices["spatial"] = jnp.eye(math.prod(spatial), dtype=dtype)
    return matrices


def precondition(transform, g: jax.Array) -> jax.Array:
    r""":math:`\operatorname{MC}(G)` for one parameter's gradient ``g`` and its transform (matrices or a scale)."""
    if not isinstance(transform, dict):
        return transform * g
    *spatial, n_in, n_out = g.shape
    if not spatial:
        return transform["in"] @ g @ transform["out"].T
    flat = g.reshape(-1, n_in, n_out)
    mixed = jnp.einsum("ts,ji,ko,sio->tjk", transform["spatial"], transform["in"], transform["out"], flat)
    return mixed.reshape(g.shape)


def meta_curvature(lr: float) -> LearnedTransform:
    r"""Meta-Curvature: gradient descent with a learned, per-layer Kronecker-factored preconditioner.

    Args:
      lr: :math:`\alpha`, the fixed inner learning rate.

    Returns:
      A :class:`~jaxmeta.inner.LearnedTransform` whose parameters are, per
      parameter of the model, a dict of matrices ``{"spatial", "in", "out"}``
      (identities at the start) or an element-wise scale (ones).

    Example:
      >>> import jax.numpy as jnp
      >>> rule = meta_curvature(lr=0.1)
      >>> matrices = rule.init({"kernel": jnp.zeros((3, 3, 2, 4)), "bias": jnp.zeros(4)})
      >>> {name: m.shape for name, m in matrices["kernel"].items()}
      {'in': (2, 2), 'out': (4, 4), 'spatial': (9, 9)}
      >>> g = {"kernel": jnp.ones((3, 3, 2, 4)), "bias": jnp.ones(4)}
      >>> optimizer = rule.optimizer(matrices)
      >>> update, _ = optimizer.update(g, optimizer.init(g))
      >>> float(update["kernel"][0, 0, 0, 0])  # identity matrices: plain -lr * g
      -0.1

    Meta-train the rule with the meta-gradient clipped: :mod:`jaxmeta.inner`
    says why.

    References:
      Park and Oliva, "Meta-Curvature", NeurIPS 2019, section 3.
    """
    check_learning_rate(lr)

    def init(params):
        return jax.tree.map(_identity_transform, params)

    def optimizer(transforms):
        def update(updates, state, params=None):
            del params
            return jax.tree.map(lambda g, m: -lr * precondition(m, g), updates, transforms), state

        return optax.GradientTransformation(lambda params: optax.EmptyState(), update)

    return LearnedTransform(init, optimizer)
