"""Meta-reinforcement learning: MAML-RL with policy-gradient surrogates whose higher-order derivatives are right.

Environments are pure JAX functions (:func:`navigation`, and brax's :func:`half_cheetah`); a :class:`Policy`
samples and scores actions (:class:`GaussianMLPPolicy`); :func:`rollout` draws :class:`Trajectories` under
``jit`` and ``vmap``; the surrogates of :func:`surrogate` (``"naive"``, ``"dice"``, ``"lvc"``) turn them into
objectives whose ``jax.grad`` at every order estimates the return's; :func:`maml_rl` is the meta-learner built on them.
A :class:`TabularMDP` enumerates its trajectories, so its meta-gradients are exact (the estimators' tests).
"""

from jaxmeta.rl.baseline import linear_feature_baseline
from jaxmeta.rl.environment import Environment
from jaxmeta.rl.environment import navigation
from jaxmeta.rl.estimators import ESTIMATORS
from jaxmeta.rl.estimators import importance_weighted
from jaxmeta.rl.estimators import magic_box
from jaxmeta.rl.estimators import surrogate
from jaxmeta.rl.locomotion import BRAX_BACKENDS
from jaxmeta.rl.locomotion import HALF_CHEETAH_TASKS
from jaxmeta.rl.locomotion import half_cheetah
from jaxmeta.rl.maml_rl import PolicyGradientAdaptation
from jaxmeta.rl.maml_rl import Sampler
from jaxmeta.rl.maml_rl import adaptation_returns
from jaxmeta.rl.maml_rl import adaptation_rollouts
from jaxmeta.rl.maml_rl import init_trpo_state
from jaxmeta.rl.maml_rl import make_trpo_meta_step
from jaxmeta.rl.maml_rl import maml_rl
from jaxmeta.rl.maml_rl import returns_by_step
from jaxmeta.rl.maml_rl import rl_tasks
from jaxmeta.rl.maml_rl import rollout_sampler
from jaxmeta.rl.policy import GaussianMLPPolicy
from jaxmeta.rl.policy import Policy
from jaxmeta.rl.policy import gaussian_kl
from jaxmeta.rl.policy import gaussian_log_prob
from jaxmeta.rl.policy import gaussian_policy
from jaxmeta.rl.rollout import rollout
from jaxmeta.rl.tabular import TabularMDP
from jaxmeta.rl.tabular import enumerate_trajectories
from jaxmeta.rl.tabular import enumeration_sampler
from jaxmeta.rl.tabular import expected_return
from jaxmeta.rl.tabular import softmax_policy
from jaxmeta.rl.tabular import tabular_environment
from jaxmeta.rl.trajectories import Trajectories
from jaxmeta.rl.trajectories import average_return
from jaxmeta.rl.trajectories import returns
from jaxmeta.rl.trajectories import reward_to_go
from jaxmeta.rl.trajectories import step_mean
from jaxmeta.rl.trpo import hessian_vector_product
from jaxmeta.rl.trpo import trpo_update

__all__ = ["BRAX_BACKENDS", "ESTIMATORS", "Environment", "HALF_CHEETAH_TASKS", "GaussianMLPPolicy", "Policy",
           "PolicyGradientAdaptation", "Sampler", "TabularMDP", "Trajectories", "adaptation_returns",
           "adaptation_rollouts", "average_return", "enumerate_trajectories", "enumeration_sampler",
           "expected_return", "gaussian_kl", "gaussian_log_prob", "gaussian_policy", "half_cheetah",
           "hessian_vector_product", "importance_weighted", "init_trpo_state", "linear_feature_baseline",
           "magic_box", "make_trpo_meta_step", "maml_rl", "navigation", "returns", "returns_by_step", "reward_to_go",
           "rl_tasks", "rollout", "rollout_sampler", "softmax_policy", "step_mean", "surrogate",
           "tabular_environment", "trpo_update"]
