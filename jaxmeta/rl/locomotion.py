r"""MAML's locomotion task families (Finn et al., 2017, section 5.3) on brax's half-cheetah (:func:`half_cheetah`).

brax (``pip install 'jaxmeta[rl]'``) simulates the half-cheetah in JAX, so its reset and step are pure
functions like :func:`~jaxmeta.rl.navigation`'s, and the rollouts, the inner step and TRPO compile into one
program.
"""

import contextlib
import io
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from jaxmeta.core.types import check_choice, check_positive_int
from jaxmeta.rl.environment import Environment

HALF_CHEETAH_TASKS = ("velocity", "direction")
"""The half-cheetah task families :func:`~jaxmeta.rl.half_cheetah` knows: a goal velocity or a goal direction."""

BRAX_BACKENDS = ("generalized", "positional", "spring")
"""brax's physics pipelines: ``"generalized"`` (MuJoCo's dynamics in JAX) and two cheaper approximations."""


def brax_environment(name: str, **options: Any) -> Any:
    """brax's environment ``name``, built without brax's and MuJoCo's notices about brax's own assets.

    Raises an ``ImportError`` that names the fix when brax is not installed.
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # MJX prints that its optional GPU backend is missing
            import mujoco
            from brax import envs
    except ImportError as error:
        raise ImportError("The locomotion tasks run on brax, which is not installed: pip install 'jaxmeta[rl]' "
                          "(or pip install brax).") from error
    notices: list[str] = []
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(notices.append)  # else MuJoCo writes MUJOCO_LOG.TXT into the working directory
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Brax System, piplines and environments are not actively",
                                    category=UserWarning)
            environment = envs.get_environment(name, **options)
    finally:
        mujoco.set_mju_user_warning(previous)
    for notice in notices:
        if "settotalmass" not in notice:  # the one deprecation brax's half_cheetah.xml triggers
            warnings.warn(f"MuJoCo, loading brax's {name}: {notice}", stacklevel=2)
    return environment


def half_cheetah(task: str = "velocity", *, horizon: int = 200, control_cost: float = 0.05,
                 backend: str = "generalized") -> Environment:
    r"""The half-cheetah with a goal velocity or a goal direction per task, as in MAML (Finn et al., 2017).

    The agent observes the 17 joint positions (without the forward position)
    and velocities of brax's ``halfcheetah`` and applies 6 torques, clipped to
    :math:`[-1, 1]`. With :math:`v_t` the forward velocity of the torso over the
    step (:math:`\Delta x / \Delta t`, :math:`\Delta t = 0.05` s) and
    :math:`c` = ``control_cost``:

    * ``"velocity"``: a goal velocity :math:`g \sim U[0, 2]` per task,

      .. math:: r_t = -\lvert v_t - g \rvert - c \lVert a_t \rVert^2 ;

    * ``"direction"``: a direction :math:`d = \pm 1`, each with probability
      :math:`\tfrac12`,

      .. math:: r_t = d\, v_t - c \lVert a_t \rVert^2 ;

    as in the reference code (rllab's ``HalfCheetahEnvRandVel`` and
    ``HalfCheetahEnvRandDirec``: :math:`c = 0.05`), with episodes of ``horizon``
    steps (the paper: 200), never ended early, each from brax's randomised
    initial pose.

    Args:
      task: one of :data:`~jaxmeta.rl.HALF_CHEETAH_TASKS`.
      horizon: steps per episode.
      control_cost: :math:`c`, non-negative.
      backend: brax's physics pipeline, one of :data:`~jaxmeta.rl.BRAX_BACKENDS`: ``"generalized"`` (MuJoCo's
        dynamics, the paper's simulator), or the cheaper ``"positional"`` and ``"spring"``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> env = half_cheetah("direction", horizon=10, backend="spring")
      >>> direction = env.sample_tasks(jax.random.key(0), 1)[0]
      >>> state = env.reset(direction, jax.random.key(1))
      >>> state, reward, done = env.step(direction, state, jnp.zeros(env.action_size))
      >>> env.observe(state).shape, env.action_size, bool(done)
      ((17,), 6, False)
    """
    check_choice(task, HALF_CHEETAH_TASKS, "half-cheetah task family")
    check_choice(backend, BRAX_BACKENDS, "brax backend")
    check_positive_int(horizon, "horizon")
    if not control_cost >= 0:
        raise ValueError(f"control_cost must be non-negative, got {control_cost}.")
    cheetah = brax_environment("halfcheetah", backend=backend)
    action_size = cheetah.action_size

    def sample_tasks(key, n):
        n = check_positive_int(n, "the number of tasks")
        if task == "velocity":
            return jax.random.uniform(key, (n,), minval=0.0, maxval=2.0)
        return jnp.where(jax.random.bernoulli(key, 0.5, (n,)), 1.0, -1.0)

    def reset(goal, key):
        del goal  # the task changes the reward only
        return cheetah.reset(key)

    def step(goal, state, action):
        if jnp.shape(action) != (action_size,):
            raise ValueError(f"A half-cheetah action is {action_size} torques, shape ({action_size},); got shape "
                             f"{jnp.shape(action)}.")
        action = jnp.clip(action, -1.0, 1.0)
        state = cheetah.step(state, action)
        velocity = state.metrics["x_velocity"]
        progress = -jnp.abs(velocity - goal) if task == "velocity" else goal * velocity
        return state, progress - control_cost * jnp.sum(action ** 2), jnp.zeros((), bool)

    return Environment(sample_tasks, reset, step, lambda state: state.obs,
                       observation_size=cheetah.observation_size, action_size=action_size, horizon=horizon)
