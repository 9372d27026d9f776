r"""Environments as pure JAX functions, and the 2D navigation task family of MAML (Finn et al., 2017, section 5.3).

An :class:`Environment` is a task family as pure functions, ``jit``- and ``vmap``-able;
:func:`navigation` is the 2D family of MAML's section 5.3.

Example:
  >>> import jax, jax.numpy as jnp
  >>> env = navigation()
  >>> goal = jnp.array([0.3, 0.0])
  >>> state = env.reset(goal, jax.random.key(0))
  >>> state, reward, done = env.step(goal, state, jnp.array([1.0, 0.0]))  # clipped to 0.1
  >>> [round(x, 4) for x in env.observe(state).tolist()], round(float(reward), 4), bool(done)
  ([0.1, 0.0], -0.2, False)
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxmeta.core.types import check_positive_int


class Environment(NamedTuple):
    """A task family as a NamedTuple of pure functions of a *task* (the
    parameters that make one task of the family differ from another, e.g. a goal)
    and a state, so that ``jax.jit`` compiles them and ``jax.vmap`` maps them over
    tasks and trajectories:

    * ``sample_tasks(key, n) -> tasks`` with a leading axis ``n``;
    * ``reset(task, key) -> state``;
    * ``step(task, state, action) -> (state, reward, done)``;
    * ``observe(state) -> observation [observation_size]``;

    and the static sizes ``observation_size``, ``action_size``, ``horizon``.
    """

    sample_tasks: Callable[[jax.Array, int], Any]
    reset: Callable[[Any, jax.Array], Any]
    step: Callable[[Any, Any, jax.Array], tuple[Any, jax.Array, jax.Array]]
    observe: Callable[[Any], jax.Array]
    observation_size: int
    action_size: int
    horizon: int


def navigation(horizon: int = 100, max_speed: float = 0.1, goal_radius: float = 0.01,
               squared: bool = False) -> Environment:
    r"""The 2D navigation family of MAML (Finn et al., 2017, section 5.3).

    A point agent starts at the origin and must reach a goal
    :math:`g` drawn uniformly from the unit square :math:`[-\tfrac12, \tfrac12]^2`.
    It observes its position :math:`x_t`; its action :math:`a_t` is a velocity,
    clipped to :math:`[-0.1, 0.1]` in each coordinate:

    .. math::
        x_{t+1} = x_t + \operatorname{clip}(a_t, -0.1, 0.1), \qquad
        r_t = -\lVert x_{t+1} - g \rVert ,

    and the episode ends when :math:`\lVert x_{t+1} - g \rVert < 0.01` or after
    the horizon of 100 steps. (Finn et al. describe the reward as a negative
    squared distance; the reference code, the rllab point environment of their
    repository and pytorch-maml-rl, uses the distance, which this follows:
    ``squared=True`` gives the other.)

    ``horizon``, the speed clip, the goal radius and the reward (distance or ``squared`` distance) are
    options.
    """
    check_positive_int(horizon, "horizon")
    if not max_speed > 0 or not goal_radius >= 0:
        raise ValueError(f"max_speed must be positive and goal_radius non-negative, got {max_speed} and "
                         f"{goal_radius}.")

    def sample_tasks(key, n):
        return jax.random.uniform(key, (check_positive_int(n, "the number of tasks"), 2), minval=-0.5, maxval=0.5)

    def reset(goal, key):
        del key  # every episode starts at the origin
        return jnp.zeros(jnp.shape(goal), jnp.result_type(goal, jnp.float32))

    def step(goal, position, action):
        if jnp.shape(action) != (2,):
            raise ValueError(f"A 2D-navigation action is a velocity of shape (2,), got shape {jnp.shape(action)}.")
        position = position + jnp.clip(action, -max_speed, max_speed).astype(position.dtype)
        distance = jnp.sqrt(jnp.sum((position - goal) ** 2))
        reward = -(distance ** 2 if squared else distance)
        return position, reward, distance < goal_radius

    return Environment(sample_tasks, reset, step, lambda position: position, observation_size=2, action_size=2,
                       horizon=horizon)
