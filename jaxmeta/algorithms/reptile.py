r"""Reptile (Nichol, Achiam and Schulman, 2018) as a pseudo-gradient for any optax optimizer.

For each task, run :math:`k` inner steps on its support set from
:math:`\theta` to :math:`\phi_k`, and move :math:`\theta` towards :math:`\phi_k`:

.. math::
    \theta \leftarrow \theta + \epsilon \, \frac{1}{B}\sum_{i=1}^{B} (\phi^{(i)}_k - \theta).

jaxmeta returns the pseudo-gradient :math:`g = \theta - \phi_k` from
``task_grad``, so that ``optax.sgd(epsilon)`` reproduces the update above
exactly, and any other optax optimizer applies to it. The batched version
averages :math:`g` over tasks (``make_meta_step``); the serial version
updates after every task (``make_meta_step(..., serial=True)``).

The inner steps are gradient descent (``inner_lr``) or any optax optimizer
(``inner_optimizer``; the paper's experiments use Adam with
:math:`\beta_1 = 0`), on the whole support set or, with ``inner_batch``, on
mini-batches: the support set is shuffled and cut into ``inner_batch``-sized
batches, one per step, reshuffled when it runs out (the paper trains on 10
shots per class in 5 steps of 10 examples: one pass over a 5-way task).

The paper's code keeps one inner Adam for the whole of meta-training: its
moments run on from task to task, so the step
:math:`\phi \leftarrow \phi - \alpha\, g / (\sqrt{v} + \epsilon)` divides by a
long-run average of :math:`g^2`, not by the current task's (with fresh state
the first step of every task is :math:`\alpha\,\mathrm{sign}(g)` for every
parameter). ``persistent_inner_state=True`` does the same: the inner
optimizer's state :math:`s` becomes part of the meta-parameters
(:class:`~jaxmeta.algorithms.ReptileParams`), every task of a meta-batch starts from it, and its
pseudo-gradient :math:`s - \bar s_k` moves it, at step 1, to the mean of the
tasks' final states (use :func:`~jaxmeta.algorithms.outer_optimizer`). The paper runs the tasks of
a meta-batch one after the other through one state; averaging them instead
lets them run in parallel, and gives the moments the same kind of long-run
average over a horizon of meta-steps.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.adapt import Mask, adapt, check_steps
from jaxmeta.core.learner import AdaptationScore, MetaLearner, check_inner_rule, query_metrics
from jaxmeta.core.types import Batch, LossFn, Params, PRNGKey


class ReptileParams(NamedTuple):
    """Reptile's meta-parameters with a persistent inner optimizer: the initialisation and the optimizer's state."""

    params: Params
    inner_state: Any


def reptile(loss_fn: LossFn, *, inner_lr: Any = None, inner_steps: int = 5, inner_optimizer: Any = None,
            inner_batch: int | None = None, adapt_mask: Mask = None,
            persistent_inner_state: bool = False) -> MetaLearner:
    r"""Reptile: the meta-"gradient" of a task is :math:`\theta - \phi_k`.

    Args:
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      inner_lr: the inner SGD learning rate (with ``inner_optimizer``: an
        optional scale of its update).
      inner_steps: :math:`k`; with :math:`k = 1` Reptile reduces to joint
        training on the expected loss, so use several steps.
      inner_optimizer: a fixed optax optimizer for the inner loop, e.g.
        ``optax.adam(1e-3, b1=0.0)`` (the paper's); fresh state for each task.
      inner_batch: in meta-training, each step uses a mini-batch of this many
        support examples (see the module docstring); ``None``: all of them.
        ``adapt`` (evaluation) always uses the whole support set.
      adapt_mask: adapt only these parameters.
      persistent_inner_state: carry the inner optimizer's state across tasks
        and meta-steps (the paper's code; see the module docstring): the
        meta-parameters are :class:`~jaxmeta.algorithms.ReptileParams`, to be updated with
        :func:`~jaxmeta.algorithms.outer_optimizer`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import regression_loss, Task
      >>> learner = reptile(regression_loss(lambda w, x: x * w), inner_lr=0.1, inner_steps=3)
      >>> x = jnp.array([1.0, 2.0])
      >>> g, _ = learner.task_grad(jnp.array(0.0), Task((x, 2 * x), (x, 2 * x)), jax.random.key(0))
      >>> round(float(g), 4)  # theta - phi_3
      -1.75

    References:
      Nichol, Achiam and Schulman, "On First-Order Meta-Learning
      Algorithms", arXiv:1803.02999, 2018.
    """
    check_inner_rule(inner_lr, inner_optimizer, learner="reptile",
                     no_learned_rule="its pseudo-gradient theta - phi does not differentiate the inner loop, so the "
                                     "rule's parameters would get no gradient.")
    inner_steps = check_steps(inner_steps, "inner_steps")
    if inner_batch is not None:
        check_steps(inner_batch, "inner_batch")
    if persistent_inner_state and inner_optimizer is None:
        raise ValueError("persistent_inner_state carries an inner optimizer's state; pass inner_optimizer= too "
                         "(e.g. optax.adam(1e-3, b1=0.0)).")

    def run(meta, support, *, key, steps=None, observe=None, batches=False):
        params, state = (meta.params, meta.inner_state) if persistent_inner_state else (meta, None)
        return adapt(loss_fn, params, support, lr=inner_lr, optimizer=inner_optimizer, opt_state=state,
                     steps=inner_steps if steps is None else steps, key=key, mask=adapt_mask, observe=observe,
                     minibatches=batches)

    def adapt_fn(meta, support, *, key, steps=None, observe=None):
        return run(meta, support, key=key, steps=steps, observe=observe)

    def init(params):
        return ReptileParams(params, inner_optimizer.init(params)) if persistent_inner_state else params

    def task_grad(meta, task, key):
        inner_key, query_key, batch_key = jax.random.split(key, 3)
        fixed = jax.lax.stop_gradient(meta)
        if inner_batch is None:
            adaptation = run(fixed, task.support, key=inner_key)
        else:
            batches = minibatches(task.support, inner_batch, inner_steps, key=batch_key)
            adaptation = run(fixed, batches, key=inner_key, batches=True)
        theta = meta.params if persistent_inner_state else meta
        pseudo_grad = jax.tree.map(lambda t, p: t - p, theta, adaptation.params)
        if persistent_inner_state:
            state_step = jax.tree.map(lambda s, f: s - f, fixed.inner_state, adaptation.opt_state)
            pseudo_grad = ReptileParams(pseudo_grad, state_step)
        loss, aux = loss_fn(adaptation.params, task.query, key=query_key)
        return pseudo_grad, query_metrics(loss, aux, adaptation.support_losses)

    return MetaLearner(init=init, task_grad=task_grad, adapt=adapt_fn, score=AdaptationScore(loss_fn, adapt_fn))


def outer_optimizer(step_size: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    r"""Reptile's outer update for :class:`~jaxmeta.algorithms.ReptileParams`: SGD with ``step_size`` on the
    initialisation (:math:`\theta \leftarrow \theta + \epsilon(\bar\phi - \theta)`), step 1 on the inner state
    (:math:`s \leftarrow \bar s_k`, the tasks' mean final state).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> meta = ReptileParams(jnp.ones(2), optax.adam(1e-3).init(jnp.ones(2)))
      >>> optimizer = outer_optimizer(0.5)
      >>> pseudo = ReptileParams(jnp.full(2, 0.2), jax.tree.map(lambda s: s - (s + 1), meta.inner_state))
      >>> new = optax.apply_updates(meta, optimizer.update(pseudo, optimizer.init(meta), meta)[0])
      >>> [round(x, 6) for x in new.params.tolist()], int(new.inner_state[0].count)
      ([0.9, 0.9], 1)
    """
    def labels(meta):
        return ReptileParams(jax.tree.map(lambda _: "params", meta.params),
                             jax.tree.map(lambda _: "inner_state", meta.inner_state))

    return optax.multi_transform({"params": optax.sgd(step_size), "inner_state": optax.sgd(1.0)}, labels)


def minibatches(batch: Batch, size: int, count: int, *, key: PRNGKey) -> Batch:
    """``count`` mini-batches of ``size`` examples of ``batch``, stacked: ``[count, size, ...]`` per leaf.

    The examples are shuffled and taken in order, without replacement, and
    shuffled again whenever they run out (as many passes as ``count * size``
    needs). Every leaf of ``batch`` has the examples along its first axis.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.arange(4)
      >>> batches = minibatches((x, x), 2, 3, key=jax.random.key(0))
      >>> batches[0].shape
      (3, 2)
      >>> sorted(batches[0][:2].ravel().tolist())  # the first pass sees every example once
      [0, 1, 2, 3]
    """
    n = jax.tree.leaves(batch)[0].shape[0]
    if size > n:
        raise ValueError(f"inner_batch {size} is larger than the support set ({n} examples); use at most {n}.")
    passes = -(-count * size // n)
    order = jnp.concatenate([jax.random.permutation(k, n) for k in jax.random.split(key, passes)])
    index = order[: count * size].reshape(count, size)
    return jax.tree.map(lambda leaf: leaf[index], batch)
