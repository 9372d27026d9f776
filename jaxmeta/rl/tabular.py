r"""A small deterministic MDP whose trajectories can all be enumerated: exact returns, exact meta-gradients.

States :math:`s \in \{0..S-1\}`, actions :math:`a \in \{0..A-1\}`, a start
state, deterministic transitions :math:`s' = f(s, a)` and a horizon :math:`T`.
The task is the reward table :math:`r(s, a)`. A tabular softmax policy
:math:`\pi_\theta(a \mid s) = \operatorname{softmax}(\theta_s)_a` visits each of the
:math:`A^T` action sequences :math:`\tau` with probability
:math:`p_\theta(\tau) = \prod_t \pi_\theta(a_t \mid s_t)`, so

.. math::
    J(\theta) = \sum_\tau p_\theta(\tau) \sum_t \gamma^t r(s_t, a_t)

is a closed-form function of :math:`\theta`, and ``jax.grad`` of
:math:`J(\theta + \alpha \nabla J(\theta))` is the exact MAML-RL meta-gradient.
:func:`enumeration_sampler` hands every trajectory to a learner with its
probability as its weight, so the surrogates' weighted means are expectations
and a learner's meta-gradient is its estimator's *expected* meta-gradient,
without sampling error.

Example:
  >>> import jax.numpy as jnp
  >>> mdp = TabularMDP(transitions=jnp.array([[0, 1], [1, 0]]), start=0, horizon=2)
  >>> rewards = jnp.array([[0.0, 1.0], [2.0, 0.0]])
  >>> theta = jnp.zeros((2, 2))  # uniform: 4 sequences of probability 1/4
  >>> float(expected_return(mdp, rewards, theta, discount=1.0))  # (0+0 + 0+1 + 1+2 + 1+0) / 4
  1.25
"""

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmeta.rl.environment import Environment
from jaxmeta.rl.policy import Policy
from jaxmeta.rl.trajectories import Trajectories, reward_to_go


class TabularMDP(NamedTuple):
    """A deterministic MDP: ``transitions [S, A]``, the next state of each state and action; the ``start`` state; the
    ``horizon`` :math:`T`. Its tasks are reward tables ``[S, A]``; :func:`expected_return` is its closed-form return."""

    transitions: jax.Array
    start: int
    horizon: int


def softmax_policy() -> Policy:
    """The tabular softmax policy: ``params [S, A]`` logits; observations are state indices."""

    def init(key, observation):
        raise TypeError("Initialise a tabular policy's logits yourself, e.g. jnp.zeros((states, actions)).")

    def sample(params, state, key):
        return jax.random.categorical(key, params[state])

    def log_prob(params, states, actions):
        return jnp.take_along_axis(jax.nn.log_softmax(params[states], axis=-1), actions[..., None], axis=-1)[..., 0]

    def kl(old_params, params, states):
        old = jax.nn.log_softmax(old_params[states], axis=-1)
        return jnp.sum(jnp.exp(old) * (old - jax.nn.log_softmax(params[states], axis=-1)), axis=-1)

    return Policy(init, sample, log_prob, kl)


def action_sequences(num_actions: int, horizon: int) -> np.ndarray:
    """``[A^T, T]`` every sequence of actions."""
    return np.array(list(itertools.product(range(num_actions), repeat=horizon)), np.int32).reshape(-1, horizon)


def enumerate_trajectories(mdp: TabularMDP, rewards: jax.Array, theta: jax.Array) -> Trajectories:
    """Every trajectory of the MDP, each weighted by its probability under ``theta`` (held fixed)."""
    actions = jnp.asarray(action_sequences(mdp.transitions.shape[1], mdp.horizon))

    def walk(state, action):
        return mdp.transitions[state, action], state

    _, states = jax.vmap(lambda a: jax.lax.scan(walk, jnp.asarray(mdp.start), a))(actions)
    log_probs = softmax_policy().log_prob(jax.lax.stop_gradient(theta), states, actions)
    return Trajectories(states, actions, rewards[states, actions].astype(theta.dtype),
                        jnp.ones(actions.shape, theta.dtype), jnp.exp(log_probs.sum(axis=1)))


def expected_return(mdp: TabularMDP, rewards: jax.Array, theta: jax.Array, discount: float) -> jax.Array:
    """:math:`J(\\theta)` in closed form (differentiable at every order)."""
    trajectories = enumerate_trajectories(mdp, rewards, theta)
    probabilities = jnp.exp(softmax_policy().log_prob(theta, trajectories.observations, trajectories.actions).sum(1))
    return jnp.sum(probabilities * reward_to_go(trajectories.rewards, trajectories.mask, discount)[:, 0])


def enumeration_sampler(mdp: TabularMDP):
    """A :data:`~jaxmeta.rl.Sampler` that returns every trajectory with its probability (the key is unused);
    the task is the reward table."""
    return lambda theta, rewards, key: enumerate_trajectories(mdp, rewards, theta)


def tabular_environment(mdp: TabularMDP) -> Environment:
    """The MDP as an :class:`~jaxmeta.rl.Environment` whose tasks are reward tables, for sampled rollouts
    (:func:`~jaxmeta.rl.rollout`) beside the enumeration; ``sample_tasks`` draws standard normal tables."""
    states, actions = mdp.transitions.shape

    def step(rewards, state, action):
        return mdp.transitions[state, action], rewards[state, action], jnp.zeros((), bool)

    return Environment(sample_tasks=lambda key, n: jax.random.normal(key, (n, states, actions)),
                       reset=lambda rewards, key: jnp.asarray(mdp.start), step=step, observe=lambda state: state,
                       observation_size=1, action_size=actions, horizon=mdp.horizon)
