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
  >>> grads, metrics = jax.jit(lambda p: jaxmeta.meta_gradient(learner, p, tasks, jax.random.key(2)))(params)
  >>> sorted(metrics)
  ['loss', 'return_after', 'return_before', 'support_loss']
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.adapt import Adaptation, adapt, check_steps
from jaxmeta.core.evaluate import in_chunks
from jaxmeta.core.learner import MetaLearner, check_inner_rule
from jaxmeta.core.meta_step import MetaTrainState
from jaxmeta.core.types import Task, check_positive_int
from jaxmeta.rl.baseline import linear_feature_baseline
from jaxmeta.rl.environment import Environment
from jaxmeta.rl.estimators import check_estimator, importance_weighted, surrogate
from jaxmeta.rl.policy import Policy
from jaxmeta.rl.rollout import rollout
from jaxmeta.rl.trajectories import Trajectories, average_return, step_mean
from jaxmeta.rl.trpo import trpo_update

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
    normalize: bool = False

    def loss(self, params, batch, *, key=None):
        """The negative surrogate of ``batch = (trajectories, baselines)`` at ``params``."""
        del key
        trajectories, baselines = batch
        log_probs = self.policy.log_prob(params, trajectories.observations, trajectories.actions)
        return -surrogate(self.estimator, log_probs, trajectories, baselines, self.discount, self.normalize), {}

    def batch(self, params, task, key):
        """Trajectories of the policy with ``params`` on ``task``, and their baseline values."""
        trajectories = self.sampler(jax.lax.stop_gradient(params), task, key)
        baselines = None if self.baseline is None else self.baseline(trajectories, self.discount)
        return trajectories, baselines

    def step(self, phi, opt_state, batch, rate, key):
        """One inner step on ``batch``: ``(phi, opt_state, support loss)``."""
        adaptation = adapt(self.loss, phi, batch, steps=1, key=key, lr=rate, optimizer=self.optimizer,
                           opt_state=opt_state, first_order=self.first_order)
        return adaptation.params, adaptation.opt_state, adaptation.support_losses[0]

    def __call__(self, theta, task, key, rates: Sequence[Any]):
        """``([phi_0, ..., phi_k], [batch_0, ..., batch_{k-1}], support losses [k])`` after ``len(rates)`` steps,
        each on a batch sampled from the policy it starts from."""
        phi, opt_state, path, batches, losses = theta, None, [theta], [], []
        for j, rate in enumerate(rates):
            batch_key, step_key = jax.random.split(jax.random.fold_in(key, j))
            batch = self.batch(phi, task, batch_key)
            phi, opt_state, loss = self.step(phi, opt_state, batch, rate, step_key)
            path.append(phi)
            batches.append(batch)
            losses.append(loss)
        return path, batches, jnp.stack(losses) if losses else jnp.zeros((0,))

    def replay(self, theta, batches, key, rates: Sequence[Any]):
        """:math:`\\phi_k` from ``theta`` on batches sampled before (by ``__call__`` with the same key and rates)."""
        phi, opt_state = theta, None
        for j, (batch, rate) in enumerate(zip(batches, rates)):
            _, step_key = jax.random.split(jax.random.fold_in(key, j))
            phi, opt_state, _ = self.step(phi, opt_state, batch, rate, step_key)
        return phi


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
    normalize: bool = False,
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
      normalize: standardised advantages and a mean over steps (:func:`~jaxmeta.rl.surrogate`), the scale of
        the reference implementations, for which the paper's ``inner_lr=0.1`` is meant.

    Returns:
      The learner. Its metrics per task: ``loss`` (the negative meta-surrogate),
      ``support_loss`` (the inner surrogate's, negated, at :math:`\theta`), and the
      undiscounted ``return_before`` and ``return_after`` adaptation. ``score`` gives the
      negative undiscounted return after 0..n steps.
    """
    check_estimator(estimator)
    inner_steps = check_steps(inner_steps, "inner_steps")
    check_inner_rule(inner_lr, inner_optimizer, learner="maml_rl", no_learned_rule="its inner step samples anew.")
    inner = PolicyGradientAdaptation(policy, sampler, estimator, discount, baseline, inner_optimizer, first_order,
                                     normalize)

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


def adaptation_rollouts(inner: PolicyGradientAdaptation, theta: Any, task: Any, key: jax.Array,
                        rates: Sequence[Any]) -> Trajectories:
    """The trajectories of the policy after 0..k inner steps with the rates ``rates`` (stacked ``[k + 1, N, ...]``):
    those of each step are the ones it adapted on; the last are fresh."""
    path, batches, _ = inner(theta, task, key, rates)
    final, _ = inner.batch(path[-1], task, jax.random.fold_in(key, len(rates)))
    return jax.tree.map(lambda *xs: jnp.stack(xs), *[batch[0] for batch in batches], final)


def adaptation_returns(inner: PolicyGradientAdaptation, theta: Any, task: Any, key: jax.Array,
                       rates: Sequence[Any]) -> jax.Array:
    """``[k + 1]`` the average undiscounted return after 0..k steps with the rates ``rates`` (MAML-RL's test:
    0.1 then 0.05), from :func:`adaptation_rollouts`."""
    return jax.vmap(average_return)(adaptation_rollouts(inner, theta, task, key, rates))


def returns_by_step(inner: PolicyGradientAdaptation, theta: Any, tasks: Any, key: jax.Array,
                    rates: Sequence[Any], *, task_chunk: int | None = None) -> jax.Array:
    """``[B, k + 1]``: :func:`adaptation_returns` of each of a batch of tasks (leading axis ``B``), compiled.

    With ``task_chunk``, one compiled call evaluates that many tasks at a time (a Python loop over the chunks), to
    bound the memory and the size of one program; each task's key is the same as without it, so the result is too.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta.rl import GaussianMLPPolicy, gaussian_policy, navigation, rollout_sampler
      >>> env, policy = navigation(horizon=5), gaussian_policy(GaussianMLPPolicy(action_size=2, hidden=(8,)))
      >>> inner = PolicyGradientAdaptation(policy, rollout_sampler(env, policy, num_trajectories=4))
      >>> params = policy.init(jax.random.key(0), jnp.zeros(2))
      >>> returns_by_step(inner, params, env.sample_tasks(jax.random.key(1), 3), jax.random.key(2), (0.1, 0.05)).shape
      (3, 3)
    """
    count = jax.tree.leaves(tasks)[0].shape[0]
    if task_chunk is not None:
        check_positive_int(task_chunk, "task_chunk")
    return in_chunks(lambda part: _returns_by_step(inner, theta, *part, tuple(rates)),
                     (tasks, jax.random.split(key, count)), count, task_chunk)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _returns_by_step(inner, theta, tasks, keys, rates):
    return jax.vmap(lambda task, k: adaptation_returns(inner, theta, task, k, rates))(tasks, keys)


def make_trpo_meta_step(
    inner: PolicyGradientAdaptation,
    *,
    inner_lr: Any = 0.1,
    inner_steps: int = 1,
    max_kl: float = 0.01,
    cg_iterations: int = 10,
    damping: float = 1e-5,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
    jit: bool = True,
) -> Callable[[MetaTrainState, Any, jax.Array], tuple[MetaTrainState, dict[str, jax.Array]]]:
    r"""MAML-RL's outer update by TRPO, as in the paper: ``step(state, tasks, key) -> (state, metrics)``.

    For every task of the batch it samples the inner trajectories :math:`\tau_j`
    with :math:`\theta_\text{old}`, adapts to :math:`\phi^\text{old}_k`, and samples
    :math:`\tau' \sim \pi_{\phi^\text{old}_k}`. With the samples fixed, the loss and
    the KL are functions of :math:`\theta` through the replayed inner steps
    :math:`\phi_k(\theta)` (:meth:`PolicyGradientAdaptation.replay`, on the surrogate
    ``inner.estimator``, so that the trust region is measured on the adapted policies):

    .. math::
        L(\theta) = -\frac1B \sum_{\text{tasks}} \hat J_\text{IS}\big(\phi_k(\theta); \tau'\big), \qquad
        \bar D(\theta) = \frac1B \sum_{\text{tasks}} \operatorname*{mean}_{s \in \tau'}
            D_\text{KL}\big(\pi_{\phi^\text{old}_k}(\cdot \mid s) \,\|\, \pi_{\phi_k(\theta)}(\cdot \mid s)\big),

    (:func:`~jaxmeta.rl.importance_weighted`), and
    :func:`~jaxmeta.rl.trpo_update` takes one constrained step. The defaults are the paper's
    (max KL 0.01, 10 conjugate-gradient iterations, damping :math:`10^{-5}`, 15
    backtracking steps of ratio 0.8). With ``inner_steps=0`` it is plain multi-task
    TRPO on the unadapted policy: the pretraining baseline of MAML-RL.

    The accepted steps' KL is often well under ``max_kl`` (2D navigation: 0.0003 to 0.002 against 0.01). The
    quadratic model takes the Hessian of :math:`\bar D` as ``jax`` differentiates the replayed inner step, which
    with DiCE includes the score products that credit the inner samples' dependence on :math:`\theta` (the
    unbiased second-order terms); the line search evaluates :math:`\bar D` on the fixed samples, without them.
    With that, and the inner step's higher-order terms at the trust region's scale, the model overestimates
    the KL of a full step.

    The state is a :class:`~jaxmeta.MetaTrainState` without optimizer state
    (:func:`init_trpo_state`), so :func:`jaxmeta.fit` and :func:`jaxmeta.training.train`
    (checkpoints, exact resume, progress bar, time budget) drive it like any meta step.

    Args:
      inner: the inner loop (policy, sampler, estimator, discount, baseline); its policy needs ``kl``.
      inner_lr, inner_steps: the inner step size and number of steps (0: no adaptation).
      jit: compile the step.
      max_kl, cg_iterations, damping, backtrack_ratio, max_backtracks: :func:`~jaxmeta.rl.trpo_update`'s.

    Returns:
      The step. Metrics: ``loss_before``, ``loss``, ``kl``, ``backtracks`` and the mean undiscounted
      ``return_before`` and ``return_after`` adaptation of the batch (the same with ``inner_steps=0``).
    """
    if inner.policy.kl is None:
        raise ValueError("TRPO bounds the KL divergence of the policy, but this Policy has no kl function: build it "
                         "with gaussian_policy (or give Policy(..., kl=...)), or train with an optax optimizer "
                         "through jaxmeta.make_meta_step.")
    check_inner_rule(inner_lr, inner.optimizer, learner="make_trpo_meta_step", no_learned_rule="it samples anew.")
    rates = [inner_lr] * (0 if inner_steps == 0 else check_steps(inner_steps, "inner_steps"))

    def step(state, tasks, key):
        params = state.meta_params
        tasks = tasks.support if isinstance(tasks, Task) else tasks
        keys = jax.random.split(key, jax.tree.leaves(tasks)[0].shape[0])

        def sample(task, task_key):
            inner_key, outer_key = jax.random.split(task_key)
            path, batches, _ = inner(params, task, inner_key, rates)
            after = inner.batch(path[-1], task, outer_key)
            old_log_probs = inner.policy.log_prob(path[-1], after[0].observations, after[0].actions)
            return jax.lax.stop_gradient((batches, after, path[-1], old_log_probs)), inner_key

        (batches, afters, old_phis, old_log_probs), inner_keys = jax.vmap(sample)(tasks, keys)

        def task_loss_and_kl(theta, batches, after, old_phi, old_log_probs, inner_key):
            phi = inner.replay(theta, batches, inner_key, rates)
            trajectories, baselines = after
            log_probs = inner.policy.log_prob(phi, trajectories.observations, trajectories.actions)
            loss = -importance_weighted(log_probs, old_log_probs, trajectories, baselines, inner.discount,
                                        inner.normalize)
            return loss, step_mean(inner.policy.kl(old_phi, phi, trajectories.observations), trajectories)

        def loss_and_kl(theta):
            losses, kls = jax.vmap(task_loss_and_kl, in_axes=(None, 0, 0, 0, 0, 0))(
                theta, batches, afters, old_phis, old_log_probs, inner_keys)
            return jnp.mean(losses), jnp.mean(kls)

        new_params, info = trpo_update(loss_and_kl, params, max_kl=max_kl, cg_iterations=cg_iterations, damping=damping,
                                       backtrack_ratio=backtrack_ratio, max_backtracks=max_backtracks)
        return_after = jnp.mean(jax.vmap(average_return)(afters[0]))
        return_before = jnp.mean(jax.vmap(average_return)(batches[0][0])) if batches else return_after
        return MetaTrainState(state.step + 1, new_params, state.opt_state), {
            **info, "return_before": return_before, "return_after": return_after}

    return jax.jit(step) if jit else step


def init_trpo_state(params: Any) -> MetaTrainState:
    """The state :func:`make_trpo_meta_step` updates: step 0, the policy's parameters, no optimizer state."""
    return MetaTrainState(jnp.zeros((), jnp.int32), params, ())
