r"""MAML's locomotion task families (Finn et al., 2017, section 5.3) on brax's half-cheetah.

brax (``pip install 'jaxmeta[rl]'``) simulates the half-cheetah in JAX, so its
reset and step are pure functions like :func:`~jaxmeta.rl.navigation`'s and
the rollouts, the inner step and TRPO compile into one program.
:func:`half_cheetah` gives the two families of the paper (:func:`half_cheetah`
states them).
"""

from typing import Any

import jax
import jax.numpy as jnp

from jaxmeta.rl.environment import Environment, check_positive_int

TASKS = ("velocity", "direction")
"""The half-cheetah families :func:`half_cheetah` knows."""


def brax_environment(name: str, **options: Any) -> Any:
    """brax's environment ``name``; a clear error naming the fix when brax is not installed."""
    try:
        from brax import envs
    except ImportError as error:
        raise ImportError("The locomotion tasks run on brax, which is not installed: pip install 'jaxmeta[rl]' "
                          "(or pip install brax).") from error
    return envs.get_environment(name, **options)


def half_cheetah(task: str = "velocity", *, horizon: int = 200, control_cost: float = 0.05,
                 backend: str = "generalized") -> Environment:
    r"""The half-cheetah with a goal velocity or a goal direction per task, as in MAML.

    The agent observes brax's 17 joint positions (without the forward position)
    and velocities and applies 6 torques, clipped to :math:`[-1, 1]`. With
    :math:`v_t` the forward velocity of the torso after the step:

    * ``"velocity"``: a goal velocity :math:`g \sim U[0, 2]` per task,
      :math:`r_t = -|v_t - g| - c \lVert a_t \rVert^2`;
    * ``"direction"``: a direction :math:`d = \pm 1` with probability
      :math:`\tfrac12` each, :math:`r_t = d\, v_t - c \lVert a_t \rVert^2`;

    with :math:`c` = ``control_cost`` (0.05, the reference code's) and episodes
    of ``horizon`` steps (the paper: 200), never ended early. Every episode
    starts from brax's randomised initial pose.

    Args:
      task: one of :data:`TASKS`.
      horizon: steps per episode.
      control_cost: :math:`c`.
      backend: brax's physics pipeline (``"generalized"``, MuJoCo's dynamics in JAX; ``"positional"`` and
        ``"spring"`` are cheaper approximations).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> env = half_cheetah("direction", horizon=10, backend="positional")  # doctest: +SKIP
      >>> goal = env.sample_tasks(jax.random.key(0), 1)[0]  # doctest: +SKIP
      >>> state = env.reset(goal, jax.random.key(1))  # doctest: +SKIP
      >>> env.observe(state).shape  # doctest: +SKIP
      (17,)
    """
    if task not in TASKS:
        raise ValueError(f"Unknown half-cheetah task family {task!r}: choose one of {', '.join(TASKS)}.")
    check_positive_int(horizon, "horizon")
    if not control_cost >= 0:
        raise ValueError(f"control_cost must be non-negative, got {control_cost}.")
    cheetah = brax_environment("halfcheetah", backend=backend)

    def sample_tasks(key, n):
        n = check_positive_int(n, "the number of tasks")
        if task == "velocity":
            return jax.random.uniform(key, (n,), minval=0.0, maxval=2.0)
        return 2.0 * jax.random.bernoulli(key, 0.5, (n,)).astype(jnp.float32) - 1.0

    def step(goal, state, action):
        if jnp.shape(action) != (cheetah.action_size,):
            raise ValueError(f"A half-cheetah action is {cheetah.action_size} torques, shape "
                             f"({cheetah.action_size},); got shape {jnp.shape(action)}.")
        action = jnp.clip(action, -1.0, 1.0)
        state = cheetah.step(state, action)
        velocity = state.metrics["x_velocity"]
        progress = -jnp.abs(velocity - goal) if task == "velocity" else goal * velocity
        return state, progress - control_cost * jnp.sum(action ** 2), jnp.zeros((), bool)

    return Environment(sample_tasks, lambda goal, key: cheetah.reset(key), step, lambda state: state.obs,
                       observation_size=cheetah.observation_size, action_size=cheetah.action_size, horizon=horizon)
