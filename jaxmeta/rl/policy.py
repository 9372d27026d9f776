r"""Stochastic policies: a Gaussian MLP (Flax) and the two pure functions a rollout and a surrogate need.

A :class:`Policy` is the pair ``sample(params, observation, key) -> action``
and ``log_prob(params, observations, actions) -> log-probabilities``, for any
parametrisation (the tests use a tabular softmax policy).

Example:
  >>> import jax, jax.numpy as jnp
  >>> policy = gaussian_policy(GaussianMLPPolicy(action_size=2, hidden=(8,)))
  >>> params = policy.init(jax.random.key(0), jnp.zeros(2))
  >>> action = policy.sample(params, jnp.zeros(2), jax.random.key(1))
  >>> action.shape, policy.log_prob(params, jnp.zeros((5, 2)), jnp.zeros((5, 2))).shape
  ((2,), (5,))
"""

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp


class GaussianMLPPolicy(nn.Module):
    r"""``observation [..., obs] -> (mean [..., act], log_std [act])``.

    The module maps an observation to the mean of a diagonal
    Gaussian over actions, through ReLU layers (MAML-RL: two of 100 units); the
    log standard deviation is a parameter of its own, independent of the state:

    .. math::
        \pi_\theta(a \mid s) = \mathcal{N}\big(a;\ \mu_\theta(s),\ \operatorname{diag}(e^{2\sigma})\big), \qquad
        \log \pi_\theta(a \mid s) = -\sum_i \Big[\frac{(a_i - \mu_i)^2}{2 e^{2\sigma_i}} + \sigma_i
            + \tfrac12 \log 2\pi\Big].
    """

    action_size: int
    hidden: Sequence[int] = (100, 100)
    init_std: float = 1.0

    @nn.compact
    def __call__(self, observations):
        x = observations
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        mean = nn.Dense(self.action_size)(x)
        log_std = self.param("log_std", nn.initializers.constant(math.log(self.init_std)), (self.action_size,))
        return mean, log_std


class Policy(NamedTuple):
    r"""A stochastic policy as pure functions: ``init(key, observation) -> params``,
    ``sample(params, observation, key) -> action``, ``log_prob(params, observations, actions) -> [...]`` (the
    log-probability of each action, summed over its dimensions) and ``kl(old_params, params, observations) -> [...]``
    (:math:`D_\text{KL}(\pi_\text{old}(\cdot \mid s) \,\|\, \pi(\cdot \mid s))` in each state, for TRPO), for
    any parametrisation."""

    init: Callable[[jax.Array, jax.Array], Any]
    sample: Callable[[Any, jax.Array, jax.Array], jax.Array]
    log_prob: Callable[[Any, jax.Array, jax.Array], jax.Array]
    kl: Callable[[Any, Any, jax.Array], jax.Array] | None = None


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, actions: jax.Array) -> jax.Array:
    """The diagonal Gaussian's log-density of ``actions``, summed over the last axis."""
    z = (actions - mean) * jnp.exp(-log_std)
    return -jnp.sum(0.5 * z ** 2 + log_std + 0.5 * math.log(2 * math.pi), axis=-1)


def gaussian_kl(mean_p: jax.Array, log_std_p: jax.Array, mean_q: jax.Array, log_std_q: jax.Array) -> jax.Array:
    r""":math:`D_\text{KL}(p \,\|\, q)` of two diagonal Gaussians, summed over the last axis:

    .. math::
        \sum_i \sigma^q_i - \sigma^p_i + \frac{e^{2\sigma^p_i} + (\mu^p_i - \mu^q_i)^2}{2 e^{2\sigma^q_i}} - \frac12 .
    """
    variance_ratio = jnp.exp(2 * (log_std_p - log_std_q))
    return jnp.sum(log_std_q - log_std_p + 0.5 * (variance_ratio + ((mean_p - mean_q) * jnp.exp(-log_std_q)) ** 2)
                   - 0.5, axis=-1)


def gaussian_policy(module: nn.Module) -> Policy:
    """The :class:`Policy` of a module returning ``(mean, log_std)``, such as :class:`GaussianMLPPolicy`."""

    def init(key, observation):
        return module.init(key, observation)["params"]

    def sample(params, observation, key):
        mean, log_std = module.apply({"params": params}, observation)
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    def log_prob(params, observations, actions):
        if jnp.shape(actions)[-1:] != (module.action_size,):
            raise ValueError(f"The actions' last axis must be the policy's action size {module.action_size}, "
                             f"got actions of shape {jnp.shape(actions)}.")
        mean, log_std = module.apply({"params": params}, observations)
        return gaussian_log_prob(mean, log_std, actions)

    def kl(old_params, params, observations):
        return gaussian_kl(*module.apply({"params": old_params}, observations),
                           *module.apply({"params": params}, observations))

    return Policy(init, sample, log_prob, kl)
