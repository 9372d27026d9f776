r"""MAML for reinforcement learning (Finn et al., 2017, section 5.3) with a selectable policy-gradient surrogate
(the method and its options: :func:`maml_rl`).

Example:
  >>> import jax, jax.numpy as jnp
  >>> import jaxmeta
  >>> from jaxmeta.rl import GaussianMLPPolicy, gaussian_policy, navigation, rollout_sampler
  >>> env = navigation(horizon=5)
  >>> policy = gaussian_policy(GaussianMLPPolicy(action_size=2, hidden=(8,)))
  >>> learner = maml_rl(policy, rollout_sampler(env, policy, num_trajectories=4), inner_lr=0.1)
  >>> params = policy.init(jax.random.key(0), jnp.zeros(2))
  >>> tasks = rl_tasks(env.sample_tasks(jax.random.key(1), 3))
  >>> grads, metrics = jaxmeta.meta_gradient(learner, params, tasks, jax.random.key(2))
  >>> sorted(metrics)
  ['loss', 'return_after', 'return_before', 'support_loss']
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.adapt import Adaptation, adapt, check_steps
from jaxmeta.core.learner import MetaLearner, check_inner_rule
from jaxmeta.core.types import Task
from jaxmeta.rl.baseline import linear_feature_baseline
from jaxmeta.rl.environment import Environment
from jaxmeta.rl.estimators import check_estimator, surrogate
from jaxmeta.rl.policy import Policy
from jaxmeta.rl.rollout import rollout
from jaxmeta.rl.trajectories import Trajectories, average_return

Sampler = Callable[[Any, Any, jax.Array], Trajectories]
"""``sampler(params, task, key) -> Trajectories`` drawn from the policy with ``params`` (held fixed) on ``task``."""


def rollout_sampler(env: Environment, policy: Policy, *, num_trajectories: int) -> Sampler:
    """The :data:`Sampler` of ``num_trajectories`` rollouts of ``policy`` in ``env`` (MAML-RL: 20)."""
    return lambda params, task, key: rollout(env, policy, params, task, key, num_trajectories=num_trajectories)


def rl_tasks(tasks: Any) -> Task:
    """A batch of environment tasks (leading axis ``B``) as the ``Task`` the meta step maps over."""
    return Task(tasks, tasks)


@dataclasses.dataclass(frozen=True)
class PolicyGradientAdaptation:
    """The inner loop of MAML-RL: sample with the current policy, one :func:`jaxmeta.adapt` step, repeat."""

    policy: Policy
    sampler: Sampler
    estimator: str = "dice"
    discount: float = 0.99
    baseline: Callable[[Trajectories, float], jax.Array] | None = linear_feature_baseline
    optimizer: optax.GradientTransformation | None = None
    first_order: bool = False

    def loss(self, params, batch, *, key=None):
        """The negative surrogate of ``batch = (trajectories, baselines)`` at ``params``."""
        del key
        trajectories, baselines = batch
        log_probs = self.policy.log_prob(params, trajectories.observations, trajectories.actions)
        return -surrogate(self.estimator, log_probs, trajectories, baselines, self.discount), {}

    def batch(self, params, task, key):
        """Trajectories of the policy with ``params`` on ``task``, and their baseline values."""
        trajectories = self.sampler(jax.lax.stop_gradient(params), task, key)
        baselines = None if self.baseline is None else self.baseline(trajectories, self.discount)
        return trajectories, baselines

    def __call__(self, theta, task, key, rates: Sequence[Any]):
        """``([phi_0, ..., phi_k], [batch_0, ..., batch_{k-1}], support losses [k])`` after ``len(rates)`` steps."""
        phi, opt_state, path, batches, losses = theta, None, [theta], [], []
        for j, rate in enumerate(rates):
            batch_key, step_key = jax.random.split(jax.random.fold_in(key, j))
            batch = self.batch(phi, task, batch_key)
            step = adapt(self.loss, phi, batch, steps=1, key=step_key, lr=rate, optimizer=self.optimizer,
                         opt_state=opt_state, first_order=self.first_order)
            phi, opt_state = step.params, step.opt_state
            path.append(phi)
            batches.append(batch)
            losses.append(step.support_losses[0])
        return path, batches, jnp.stack(losses)


def maml_rl(
    policy: Policy,
    sampler: Sampler,
    *,
    estimator: str = "dice",
    inner_lr: Any = 0.1,
    inner_steps: int = 1,
    inner_optimizer: optax.GradientTransformation | None = None,
    first_order: bool = False,
    discount: float = 0.99,
    baseline: Callable[[Trajectories, float], jax.Array] | None = linear_feature_baseline,
) -> MetaLearner:
    r"""MAML-RL as a :class:`~jaxmeta.core.learner.MetaLearner`.

    A task is a member of an environment family (a goal). Each inner step samples
    trajectories from the current policy and takes a policy-gradient step on them:

    .. math::
        \tau_j \sim p_{\phi_j}, \qquad
        \phi_{j+1} = \phi_j + \alpha_j \nabla_\phi \hat J(\phi_j; \tau_j), \qquad \phi_0 = \theta,

    then trajectories :math:`\tau' \sim p_{\phi_k}` score the adapted policy and the
    meta-objective is :math:`\hat J(\phi_k; \tau')`, differentiated with respect to
    :math:`\theta` through every step. The sampling itself is not differentiated
    (the parameters are held fixed while sampling); how :math:`\theta` moves the
    sampling distributions enters through the surrogate :math:`\hat J`
    (:func:`~jaxmeta.rl.surrogate`). With ``"dice"`` the meta-gradient's expectation
    is that of the objective :math:`J(\theta + \alpha \nabla J(\theta))` (for one
    inner step)

    .. math::
        \nabla_\theta J(\phi) = \big(I + \alpha \nabla^2 J(\theta)\big) \nabla J(\phi), \qquad
        \phi = \theta + \alpha \nabla J(\theta),

    up to the correlation of the inner step's samples with their own Hessian
    estimate; ``"naive"`` replaces :math:`\nabla^2 J` by a biased estimate, and
    ``"lvc"`` keeps its per-step curvature terms only. On trajectories enumerated
    with their probabilities as weights, ``"dice"`` gives the formula above exactly
    (the tests check this on a tabular MDP).

    The step is the library's :func:`jaxmeta.adapt` (one step per batch of fresh
    trajectories), so ``inner_optimizer`` and ``first_order`` apply as they do to
    supervised MAML. The learner is a :class:`~jaxmeta.core.learner.MetaLearner`:
    ``make_meta_step`` with any optax optimizer trains it, on a batch of tasks
    given as :func:`rl_tasks` (the task in both ``support`` and ``query``: the
    support trajectories are drawn with :math:`\theta`, the query trajectories
    with :math:`\phi_k`).

    Args:
      policy: the stochastic policy (:func:`~jaxmeta.rl.gaussian_policy`).
      sampler: ``sampler(params, task, key) -> Trajectories`` (:func:`rollout_sampler`).
      estimator: the surrogate of both the inner step and the meta-objective, one of
        :data:`~jaxmeta.rl.ESTIMATORS`.
      inner_lr: :math:`\alpha` (MAML-RL: 0.1); with ``inner_optimizer`` it scales the optimizer's update.
      inner_steps: sample-and-step rounds of the inner loop (MAML-RL trains with 1).
      inner_optimizer: an optax optimizer for the inner step (``None``: gradient ascent).
      first_order: stop the gradient through the inner step's policy gradient.
      discount: :math:`\gamma` of the surrogates and the baseline (MAML-RL: 0.99).
      baseline: ``baseline(trajectories, discount) -> [N, T]`` values, or ``None``.

    Returns:
      The learner. Its metrics per task: ``loss`` (the negative meta-surrogate),
      ``support_loss`` (the inner surrogate's, negated, at :math:`\theta`), and the
      undiscounted ``return_before`` and ``return_after`` adaptation. ``score`` gives the
      negative undiscounted return after 0..n steps.
    """
    check_estimator(estimator)
    inner_steps = check_steps(inner_steps, "inner_steps")
    check_inner_rule(inner_lr, inner_optimizer, learner="maml_rl", no_learned_rule="its inner step samples anew.")
    inner = PolicyGradientAdaptation(policy, sampler, estimator, discount, baseline, inner_optimizer, first_order)

    def rates(steps):
        return [inner_lr] * (inner_steps if steps is None else check_steps(steps))

    def task_grad(theta, task, key):
        inner_key, outer_key = jax.random.split(key)

        def meta_loss(theta):
            path, batches, support_losses = inner(theta, task.support, inner_key, rates(None))
            after = inner.batch(path[-1], task.query, outer_key)
            loss, _ = inner.loss(path[-1], after)
            return loss, {"loss": loss, "support_loss": support_losses[0],
                          "return_before": average_return(batches[0][0]), "return_after": average_return(after[0])}

        return jax.grad(meta_loss, has_aux=True)(theta)

    def adapt_fn(meta_params, support, *, key, steps=None, observe=None):
        path, _, support_losses = inner(meta_params, support, key, rates(steps))
        observed = None if observe is None else jax.tree.map(lambda *xs: jnp.stack(xs), *map(observe, path))
        return Adaptation(path[-1], support_losses, observed)

    def score(meta_params, task, *, key, steps=None):
        returns = adaptation_returns(inner, meta_params, task.support, key, rates(steps))
        return -returns, {"return": returns}

    return MetaLearner(init=lambda params: params, task_grad=task_grad, adapt=adapt_fn, score=score)


def adaptation_returns(inner: PolicyGradientAdaptation, theta: Any, task: Any, key: jax.Array,
                       rates: Sequence[Any]) -> jax.Array:
    """``[k + 1]`` the average undiscounted return after 0..k steps with the rates ``rates`` (MAML-RL's test:
    0.1 then 0.05). The returns before each step are those of the step's own samples; the last, of fresh ones."""
    path, batches, _ = inner(theta, task, key, rates)
    final, _ = inner.batch(path[-1], task, jax.random.fold_in(key, len(rates)))
    return jnp.stack([average_return(batch[0]) for batch in batches] + [average_return(final)])


