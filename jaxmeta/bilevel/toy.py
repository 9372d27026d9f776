r"""The toy bilevel problem of DARTS (Liu, Simonyan and Yang, ICLR 2019, Figure 2).

.. math::
    L_{\text{val}}(w, \alpha) = \alpha w - 2\alpha + 1, \qquad
    L_{\text{train}}(w, \alpha) = w^2 - 2\alpha w + \alpha^2 = (w - \alpha)^2,

so :math:`w^\star(\alpha) = \alpha` and :math:`L_{\text{val}}(w^\star(\alpha),
\alpha) = (\alpha - 1)^2`: the bilevel optimum is :math:`(\alpha, w) = (1, 1)`.
The search starts from :math:`(2, -2)`.

What each hypergradient's alternating search converges to follows from its
fixed point (the weights' step stops at :math:`w = \alpha`):

* exact (implicit): :math:`g = w - 2 + \alpha`, zero at :math:`\alpha = 1`;
* one lookahead step of size :math:`\xi` (unrolled, or DARTS's finite
  difference, which is exact here since :math:`L_{\text{train}}` is
  quadratic): :math:`g = w' - 2 + 2\xi\alpha`, zero at :math:`\alpha = 2 / (1 + 2\xi)`,
  the optimum for :math:`\xi = 1/2` (where one step solves the inner problem);
* first order (:math:`\xi = 0`): :math:`g = w - 2`, zero at :math:`(2, 2)`, off the optimum, with
  :math:`L_{\text{val}} = 1` instead of 0.
"""

import jax
import jax.numpy as jnp
import optax

from jaxmeta.bilevel.alternating import init_alternating, make_alternating_step
from jaxmeta.bilevel.hypergradient import BilevelProblem, HypergradientFn

START = (2.0, -2.0)
"""The search's starting point :math:`(\\alpha, w)` in the paper's figure."""
OPTIMUM = (1.0, 1.0)
"""The bilevel optimum :math:`(\\alpha^\\star, w^\\star)`."""


def darts_toy() -> BilevelProblem:
    """The toy problem's two losses over scalars ``w`` (inner) and ``alpha`` (outer); batches are ignored."""
    return BilevelProblem(
        inner_loss=lambda w, alpha, batch, *, key: (w ** 2 - 2 * alpha * w + alpha ** 2, {}),
        outer_loss=lambda w, alpha, batch, *, key: (alpha * w - 2 * alpha + 1, {}),
    )


def toy_trajectory(hypergradient_fn: HypergradientFn, *, steps: int, outer_lr: float = 0.1, inner_lr: float = 0.1,
                   start: tuple[float, float] = START) -> jax.Array:
    r"""The path :math:`(\alpha_t, w_t)`, ``[steps + 1, 2]``, of DARTS's alternating search with SGD on both.

    Example:
      >>> from jaxmeta.bilevel import first_order, implicit
      >>> path = toy_trajectory(implicit(darts_toy(), steps=1, lr=0.5, cg_steps=1), steps=500)
      >>> [round(float(x), 3) for x in path[-1]]  # the bilevel optimum
      [1.0, 1.0]
      >>> [round(float(x), 3) for x in toy_trajectory(first_order(darts_toy()), steps=500)[-1]]
      [2.0, 2.0]
    """
    problem = darts_toy()
    outer_optimizer, inner_optimizer = optax.sgd(outer_lr), optax.sgd(inner_lr)
    step = make_alternating_step(problem, hypergradient_fn, outer_optimizer, inner_optimizer)
    alpha, w = (jnp.asarray(x, dtype=jnp.result_type(float)) for x in start)

    def body(state, key):
        state, _ = step(state, (None, None), key)
        return state, jnp.stack([state.meta_params["outer"], state.meta_params["inner"]])

    state = init_alternating(alpha, w, outer_optimizer, inner_optimizer)
    _, path = jax.lax.scan(body, state, jax.random.split(jax.random.key(0), steps))
    return jnp.concatenate([jnp.stack([alpha, w])[None], path])
