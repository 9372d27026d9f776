r"""Curvature of a loss: Hessian-vector products and the top Hessian eigenvalue.

For a scalar function :math:`f` of a parameter pytree :math:`\theta`,

.. math::
    \operatorname{hvp}(f, \theta, v) = \nabla^2 f(\theta)\, v
    = \frac{\partial}{\partial \epsilon} \nabla f(\theta + \epsilon v) \Big|_{\epsilon = 0},

computed forward-over-reverse (``jax.jvp`` of ``jax.grad``): about the cost of
two gradients, and no Hessian is ever formed. :func:`top_hessian_eigenvalue`
runs power iteration on it, as analyses of MAML's inner-loop curvature do.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxmeta.core.types import Params, PRNGKey


def hvp(f: Callable[[Params], jax.Array], params: Params, vector: Params) -> Params:
    r"""The Hessian-vector product :math:`\nabla^2 f(\theta) v` (forward-over-reverse).

    Example:
      >>> import jax.numpy as jnp
      >>> f = lambda w: 0.5 * w @ jnp.array([[2.0, 1.0], [1.0, 3.0]]) @ w
      >>> hvp(f, jnp.zeros(2), jnp.array([1.0, 0.0])).tolist()
      [2.0, 1.0]
    """
    return jax.jvp(jax.grad(f), (params,), (vector,))[1]


def tree_vdot(a: Params, b: Params) -> jax.Array:
    """The inner product of two pytrees of the same structure."""
    return jnp.asarray(sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))


def top_hessian_eigenvalue(
    f: Callable[[Params], jax.Array], params: Params, *, key: PRNGKey, iterations: int = 100
) -> tuple[jax.Array, Params]:
    r"""The eigenvalue of :math:`\nabla^2 f(\theta)` of largest magnitude, and its unit eigenvector.

    Power iteration :math:`v \leftarrow Hv / \lVert Hv \rVert` from a random
    start; the eigenvalue is the Rayleigh quotient :math:`v^\top H v`. The error
    shrinks like :math:`|\lambda_2 / \lambda_1|^{t}` after :math:`t` iterations.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> f = lambda w: 0.5 * w @ jnp.diag(jnp.array([1.0, -4.0, 2.0])) @ w
      >>> value, _ = top_hessian_eigenvalue(f, jnp.zeros(3), key=jax.random.key(0))
      >>> round(float(value), 4)
      -4.0
    """
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    start = jax.tree.unflatten(treedef, [jax.random.normal(k, jnp.shape(x), jnp.result_type(x))
                                         for k, x in zip(keys, leaves)])

    def normalise(v):
        norm = jnp.sqrt(tree_vdot(v, v))
        return jax.tree.map(lambda x: x / norm, v)

    def step(v, _):
        return normalise(hvp(f, params, v)), None

    vector, _ = jax.lax.scan(step, normalise(start), None, length=iterations)
    return tree_vdot(vector, hvp(f, params, vector)), vector
