r"""The linear feature baseline of Duan et al. (2016), fitted per task as in MAML-RL (:func:`linear_feature_baseline`).

Example:
  >>> import jax.numpy as jnp
  >>> from jaxmeta.rl import Trajectories
  >>> t = jnp.arange(4.0)[None]
  >>> batch = Trajectories(jnp.zeros((1, 4, 1)), jnp.zeros((1, 4, 1)), jnp.ones((1, 4)), jnp.ones((1, 4)),
  ...                      jnp.ones(1))
  >>> values = linear_feature_baseline(batch, discount=1.0)  # R_t = 4 - t, linear in t (the ridge shrinks it a little)
  >>> [round(v, 1) for v in values[0].tolist()]
  [4.0, 3.0, 2.0, 1.0]
"""

import jax
import jax.numpy as jnp

from jaxmeta.rl.trajectories import Trajectories, reward_to_go


def features(observations: jax.Array) -> jax.Array:
    """``[N, T, 2 obs + 4]``: the baseline's features of each step (:func:`linear_feature_baseline`)."""
    observations = jnp.clip(observations, -10.0, 10.0)
    n, horizon = observations.shape[:2]
    u = jnp.broadcast_to((jnp.arange(horizon, dtype=observations.dtype) / 100.0)[None, :, None], (n, horizon, 1))
    return jnp.concatenate([observations, observations ** 2, u, u ** 2, u ** 3, jnp.ones_like(u)], axis=-1)


def linear_feature_baseline(trajectories: Trajectories, discount: float, ridge: float = 1e-5) -> jax.Array:
    r"""``[N, T]``: the baseline's value of every step, fitted to the trajectories and held fixed.

    The value of the state at step :math:`t` is modelled as linear in the features

    .. math::
        f(s_t, t) = \big(s_t,\ s_t^2,\ u,\ u^2,\ u^3,\ 1\big), \qquad u = t / 100,

    (:math:`s_t` clipped to :math:`[-10, 10]`), fitted to the discounted
    rewards-to-go :math:`R_t` of the task's trajectories by ridge regression over
    their unmasked steps:

    .. math::
        w = \big(F^\top M F + \lambda I\big)^{-1} F^\top M R .

    It depends on the state and time only, so subtracting it leaves every
    estimator of :func:`~jaxmeta.rl.surrogate` unbiased. It is a constant to the
    surrogates (``jax.lax.stop_gradient``).
    """
    trajectories = jax.lax.stop_gradient(trajectories)
    observations = trajectories.observations.reshape(trajectories.observations.shape[:2] + (-1,))
    phi = features(observations.astype(trajectories.rewards.dtype))
    targets = reward_to_go(trajectories.rewards, trajectories.mask, discount)
    mask = trajectories.mask.astype(phi.dtype)[..., None]
    flat, weighted = phi.reshape(-1, phi.shape[-1]), (mask * phi).reshape(-1, phi.shape[-1])
    gram = weighted.T @ flat + ridge * jnp.eye(phi.shape[-1], dtype=phi.dtype)
    coefficients = jnp.linalg.solve(gram, weighted.T @ targets.reshape(-1))
    return phi @ coefficients
