r"""Per-layer, per-step learning rates (LSLR; Antoniou, Edwards and Storkey, "How to train your MAML", 2019).

Each parameter tensor :math:`l` has its own learning rate for each inner step
:math:`j`, learned in the outer loop:

.. math::
    \phi^{l}_{j+1} = \phi^{l}_j - \alpha_{l, j}\, \nabla_{\phi^l} L^s(\phi_j),
    \qquad j = 0, \dots, k - 1.

The rates start at one value :math:`\alpha_0` (then the rule is MAML's
gradient descent) and are free to change, sign included.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.adapt import check_learning_rate, check_steps
from jaxmeta.inner.learned import LearnedTransform


class LSLRState(NamedTuple):
    """The inner step the next update belongs to."""

    step: jax.Array


def lslr(steps: int, lr_init: float = 0.1) -> LearnedTransform:
    r"""Learned per-layer, per-step learning rates.

    Args:
      steps: :math:`k`, the inner steps the rates are for; the learner must
        run exactly this many (in training and evaluation).
      lr_init: :math:`\alpha_0`, the value every rate starts at.

    Returns:
      A :class:`~jaxmeta.inner.LearnedTransform` whose parameters are a tree
      like the model's with a ``[steps]`` vector of rates at each leaf.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> rule = lslr(steps=2, lr_init=0.1)
      >>> rates = rule.init({"w": jnp.zeros(3), "b": jnp.zeros(())})
      >>> rates["w"].tolist()
      [0.1, 0.1]
      >>> optimizer = rule.optimizer({"w": jnp.array([0.1, 0.5]), "b": jnp.array([0.1, 0.1])})
      >>> grads = {"w": jnp.ones(3), "b": jnp.ones(())}
      >>> state = optimizer.init(grads)
      >>> u1, state = optimizer.update(grads, state)
      >>> u2, state = optimizer.update(grads, state)
      >>> u1["w"].tolist(), u2["w"].tolist()  # step 1 uses rate 0.1, step 2 rate 0.5
      ([-0.1, -0.1, -0.1], [-0.5, -0.5, -0.5])

    Meta-train the rule with the meta-gradient clipped: :mod:`jaxmeta.inner`
    says why.

    References:
      Antoniou, Edwards and Storkey, "How to train your MAML", ICLR 2019, section 4.
    """
    steps = check_steps(steps, "steps")
    check_learning_rate(lr_init)

    def init(params):
        return jax.tree.map(lambda p: jnp.full((steps,), lr_init, jnp.result_type(p)), params)

    def optimizer(rates):
        for path, rate in jax.tree_util.tree_flatten_with_path(rates)[0]:
            if jnp.shape(rate) != (steps,):
                raise ValueError(
                    f"LSLR rates for {jax.tree_util.keystr(path)} have shape {jnp.shape(rate)}, but the rule "
                    f"is for {steps} inner steps: each parameter needs a [{steps}] vector of rates. Build the "
                    "rule with the learner's inner_steps (lslr(steps=inner_steps)) and its rates with rule.init."
                )

        def init_state(params):
            del params
            return LSLRState(jnp.zeros((), jnp.int32))

        def update(updates, state, params=None):
            del params
            scaled = jax.tree.map(lambda g, rate: -rate[state.step] * g, updates, rates)
            return scaled, LSLRState(state.step + 1)

        return optax.GradientTransformation(init_state, update)

    return LearnedTransform(init, optimizer, steps)
