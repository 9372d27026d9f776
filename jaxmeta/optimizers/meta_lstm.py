r"""The LSTM meta-learner of Ravi and Larochelle 2017: an LSTM whose cell state is the learner's parameters.

The learner's parameters :math:`\theta` are the cell state of an LSTM; a
gradient step is an LSTM update with a learned input gate :math:`i_t` (the
learning rate) and forget gate :math:`f_t` (a decay), coordinate by coordinate:

.. math::
    \theta_t = f_t \odot \theta_{t-1} - i_t \odot \nabla_{\theta_{t-1}} L_t,

.. math::
    i_t = \sigma\big(W_I [h_t, \theta_{t-1}, i_{t-1}] + b_I\big), \qquad
    f_t = \sigma\big(W_F [h_t, \theta_{t-1}, f_{t-1}] + b_F\big),

where :math:`h_t` is the output of a first, ordinary LSTM layer (20 units)
reading the preprocessed gradient and loss (:mod:`jaxmeta.optimizers.preprocessing`),
shared by all coordinates, as in the paper's two-layer architecture. The
initial cell state :math:`\theta_0` is meta-learned too. The biases start at
:math:`b_F = 5` (keep the parameters) and :math:`b_I = -5` (small steps), as
the paper suggests.

Meta-training follows the paper: ``inner_steps`` updates on the support set,
then the query loss of :math:`\theta_T` is differentiated with respect to the
LSTM's parameters and :math:`\theta_0`, with the gradients and losses fed to
the LSTM treated as inputs (no second derivatives). :func:`lstm_meta_learner`
packages this as a :class:`jaxmeta.MetaLearner`, so the meta step, the
training loop and :func:`jaxmeta.evaluate` apply unchanged.
"""

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxmeta.core.adapt import Adaptation, check_steps
from jaxmeta.core.learner import AdaptationScore, MetaLearner, exact_task_grad
from jaxmeta.core.types import LossFn, Params, PRNGKey
from jaxmeta.optimizers.preprocessing import preprocess_gradient


class MetaLSTMState(NamedTuple):
    """Per coordinate: the first layer's ``(c, h)`` ``[n, hidden]`` and the previous gates ``[n]``."""

    carry: tuple
    input_gate: jax.Array
    forget_gate: jax.Array


class MetaLSTMCell(nn.Module):
    """``(state, theta [n], gradient [n], loss []) -> (state, theta' [n])``, one learner update.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> cell = MetaLSTMCell()
      >>> state, theta = cell.initial_state(3), jnp.ones(3)
      >>> params = cell.init(jax.random.key(0), state, theta, jnp.ones(3), jnp.array(1.0))["params"]
      >>> state, new_theta = cell.apply({"params": params}, state, theta, jnp.ones(3), jnp.array(1.0))
      >>> bool(jnp.all(new_theta < theta))  # a positive gradient moves every coordinate down
      True
    """

    hidden: int = 20
    forget_bias: float = 5.0
    input_bias: float = -5.0

    def initial_state(self, coordinates: int, dtype=jnp.float32) -> MetaLSTMState:
        zeros = jnp.zeros((coordinates, self.hidden), dtype)
        return MetaLSTMState((zeros, zeros), jnp.zeros(coordinates, dtype), jnp.zeros(coordinates, dtype))

    @nn.compact
    def __call__(self, state: MetaLSTMState, theta, gradient, loss):
        loss_features = jnp.broadcast_to(preprocess_gradient(loss), (theta.shape[0], 2))
        features = jnp.concatenate([preprocess_gradient(gradient), loss_features], axis=-1)
        carry, hidden = nn.OptimizedLSTMCell(self.hidden, name="lstm")(state.carry, features)

        def gate(previous, bias, name):
            inputs = jnp.concatenate([hidden, theta[:, None], previous[:, None]], axis=-1)
            dense = nn.Dense(1, name=name, kernel_init=nn.initializers.normal(0.01),
                             bias_init=nn.initializers.constant(bias))
            return jax.nn.sigmoid(dense(inputs)[:, 0])

        input_gate = gate(state.input_gate, self.input_bias, "input_gate")
        forget_gate = gate(state.forget_gate, self.forget_bias, "forget_gate")
        return MetaLSTMState(carry, input_gate, forget_gate), forget_gate * theta - input_gate * gradient


class MetaLSTMParams(NamedTuple):
    """The meta-parameters: the learner's initial parameters :math:`\\theta_0` and the meta-learner's."""

    params: Params
    meta_learner: Any


def lstm_meta_learner(loss_fn: LossFn, *, key: PRNGKey, inner_steps: int,
                      cell: MetaLSTMCell = MetaLSTMCell()) -> MetaLearner:
    """The LSTM meta-learner as a :class:`~jaxmeta.MetaLearner` (see the module docstring).

    Args:
      loss_fn: the learner's ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      key: initialises the meta-learner's LSTM.
      inner_steps: learner updates on the support set in meta-training.
      cell: the coordinate-wise meta-learner cell.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import regression_loss, Task
      >>> learner = lstm_meta_learner(regression_loss(lambda w, x: x * w), key=jax.random.key(0), inner_steps=2)
      >>> meta = learner.init(jnp.array(0.0))
      >>> x = jnp.array([1.0, 2.0])
      >>> grads, metrics = learner.task_grad(meta, Task((x, 2 * x), (x, 2 * x)), jax.random.key(1))
      >>> sorted(metrics)
      ['loss', 'support_loss']
    """
    inner_steps = check_steps(inner_steps, "inner_steps")

    def init(params):
        flat, _ = ravel_pytree(params)
        state = cell.initial_state(flat.shape[0], flat.dtype)
        variables = cell.init(key, state, flat, jnp.zeros_like(flat), jnp.zeros((), flat.dtype))
        return MetaLSTMParams(params, variables["params"])

    def adapt_fn(meta_params: MetaLSTMParams, support, *, key, steps: int | None = None, observe=None):
        steps = inner_steps if steps is None else check_steps(steps)
        flat, unravel = ravel_pytree(meta_params.params)

        def step(carry, step_key):
            theta, state = carry
            loss, gradient = jax.value_and_grad(lambda v: loss_fn(unravel(v), support, key=step_key)[0])(theta)
            loss, gradient = jax.lax.stop_gradient((loss, gradient))  # inputs to the meta-learner, as in the paper
            state, theta_next = cell.apply({"params": meta_params.meta_learner}, state, theta, gradient, loss)
            state = jax.tree.map(lambda new, old: new.astype(old.dtype), state, carry[1])
            return (theta_next.astype(theta.dtype), state), (loss, None if observe is None else observe(unravel(theta)))

        (final, _), (losses, seen) = jax.lax.scan(step, (flat, cell.initial_state(flat.shape[0], flat.dtype)),
                                                  jax.random.split(key, steps))
        if observe is not None:
            seen = jax.tree.map(lambda s, x: jnp.concatenate([s, x[None]]), seen, observe(unravel(final)))
        return Adaptation(unravel(final), losses, seen)

    return MetaLearner(init=init, task_grad=exact_task_grad(loss_fn, adapt_fn), adapt=adapt_fn,
                       score=AdaptationScore(loss_fn, adapt_fn))
