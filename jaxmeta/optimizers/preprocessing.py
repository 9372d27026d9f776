r"""Gradient preprocessing for coordinate-wise learned optimizers (Andrychowicz et al. 2016, appendix A).

Gradients span many orders of magnitude, which an LSTM reads badly. Each
coordinate :math:`\nabla` becomes two numbers, its log-magnitude and its sign,
except when it is tiny:

.. math::
    \nabla \mapsto \begin{cases}
      \big(\tfrac{\log |\nabla|}{p},\ \operatorname{sgn}(\nabla)\big) & |\nabla| \ge e^{-p} \\
      \big(-1,\ e^{p}\, \nabla\big) & \text{otherwise,}
    \end{cases}

with :math:`p = 10`. Both branches are bounded for :math:`|\nabla| \le e^{p}`
and meet continuously in the first component at :math:`|\nabla| = e^{-p}`.
"""

import jax
import jax.numpy as jnp

POWER = 10.0


def preprocess_gradient(gradient: jax.Array, power: float = POWER) -> jax.Array:
    """``[..., 2]``: the two preprocessed features of every coordinate of ``gradient``.

    Example:
      >>> import jax.numpy as jnp
      >>> features = preprocess_gradient(jnp.array([jnp.e ** -5, -2.0, 1e-6]))
      >>> [[round(float(v), 3) for v in row] for row in features]
      [[-0.5, 1.0], [0.069, -1.0], [-1.0, 0.022]]
    """
    magnitude = jnp.abs(gradient)
    large = magnitude >= jnp.exp(-power)
    safe = jnp.where(large, magnitude, 1.0)  # no log(0) in the branch that is not taken
    first = jnp.where(large, jnp.log(safe) / power, -1.0)
    second = jnp.where(large, jnp.sign(gradient), jnp.exp(power) * gradient)
    return jnp.stack([first, second], axis=-1)
