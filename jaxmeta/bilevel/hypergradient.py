r"""Hypergradients of bilevel problems: four ways to differentiate through an inner optimisation.

A bilevel problem learns outer variables :math:`\alpha` (an architecture's
mixing weights, per-example weights, an initialisation) whose quality is
judged only after inner variables :math:`w` (a network's weights) have been
trained for them:

.. math::
    \min_\alpha\; L_{\text{val}}\big(w^\star(\alpha), \alpha\big)
    \quad\text{s.t.}\quad
    w^\star(\alpha) = \arg\min_w L_{\text{train}}(w, \alpha).

Its hypergradient is

.. math::
    \frac{d L_{\text{val}}}{d\alpha}
    = \nabla_\alpha L_{\text{val}}
    + \Big(\frac{d w^\star}{d\alpha}\Big)^{\!\top} \nabla_w L_{\text{val}},

and the methods here differ only in how they get the second term:

* :func:`unrolled` (exact for :math:`k` steps): :math:`w_k(\alpha)` is ``k``
  steps of :func:`jaxmeta.adapt` from the current :math:`w` (gradient descent,
  or any optax optimizer), and ``jax.grad`` differentiates through all of them.
* :func:`implicit` (exact at a stationary point): at :math:`\nabla_w
  L_{\text{train}}(w^\star, \alpha) = 0` the implicit function theorem gives

  .. math::
      \frac{d L_{\text{val}}}{d\alpha} = \nabla_\alpha L_{\text{val}}
      - \nabla^2_{\alpha w} L_{\text{train}}\; v,
      \qquad (\nabla^2_{ww} L_{\text{train}} + \delta I)\, v = \nabla_w L_{\text{val}},

  with :math:`v` found by conjugate gradient on Hessian-vector products
  (the iMAML machinery); nothing is differentiated through the inner loop.
* :func:`finite_difference` (DARTS's "second-order" approximation, Liu et al.
  2019, eq. 7-8): one lookahead step :math:`w' = w - \xi \nabla_w
  L_{\text{train}}(w, \alpha)`, and the mixed second derivative replaced by a
  central difference,

  .. math::
      \frac{d L_{\text{val}}(w', \alpha)}{d\alpha}
      \approx \nabla_\alpha L_{\text{val}}(w', \alpha)
      - \xi\,\frac{\nabla_\alpha L_{\text{train}}(w^+, \alpha)
                    - \nabla_\alpha L_{\text{train}}(w^-, \alpha)}{2\epsilon},
      \qquad w^\pm = w \pm \epsilon\, \nabla_{w'} L_{\text{val}}(w', \alpha),

  with :math:`\epsilon = 0.01 / \lVert \nabla_{w'} L_{\text{val}}(w', \alpha) \rVert`.
  It approximates :func:`unrolled` with one SGD step of size :math:`\xi`; its
  error is :math:`O(\epsilon^2)` times the third derivatives of
  :math:`L_{\text{train}}` (none for a quadratic).
* :func:`first_order`: the second term dropped, :math:`\nabla_\alpha
  L_{\text{val}}(w_k, \alpha)` with :math:`w_k` treated as a constant
  (DARTS's "first order", :math:`\xi = 0`, with ``steps=0``).

Every method returns a :class:`HypergradientFn` with one signature,
``(outer, inner, train_batch, val_batch, key) -> Hypergradient``, so any of
them drives the same optax update (:func:`make_outer_step`).

Losses take both kinds of variables: ``inner_loss(inner, outer, batch, *, key)
-> (loss, aux)`` and ``outer_loss(inner, outer, batch, *, key) -> (loss, aux)``
(the library's loss signature with the outer variables added).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.adapt import adapt, check_steps, describe_tree
from jaxmeta.core.hessian import hvp, tree_vdot
from jaxmeta.core.types import Batch, Metrics, Params, PRNGKey, check_choice, example_count

BilevelLoss = Callable[..., tuple[jax.Array, Metrics]]
"""``loss(inner, outer, batch, *, key) -> (loss, aux)``."""


class BilevelProblem(NamedTuple):
    """The two losses of a bilevel problem.

    Attributes:
      inner_loss: ``inner_loss(inner, outer, batch, *, key) -> (loss, aux)``, minimised over the inner
        variables (the training loss).
      outer_loss: ``outer_loss(inner, outer, batch, *, key) -> (loss, aux)``, minimised over the outer
        variables through the inner solution (the validation loss).
    """

    inner_loss: BilevelLoss
    outer_loss: BilevelLoss


class Hypergradient(NamedTuple):
    """What a :class:`HypergradientFn` returns.

    Attributes:
      grad: the (approximate) hypergradient :math:`dL_{\\text{val}}/d\\alpha`, shaped like the outer variables.
      inner: the inner variables the outer loss was evaluated at (:math:`w_k`, :math:`w'` or :math:`w`).
      loss: the outer loss there.
      aux: the outer loss's metrics there.
    """

    grad: Params
    inner: Params
    loss: jax.Array
    aux: Metrics


HypergradientFn = Callable[[Params, Params, Batch, Batch, PRNGKey], Hypergradient]
"""``hypergradient(outer, inner, train_batch, val_batch, key) -> Hypergradient``."""


def _inner_objective(problem: BilevelProblem, outer: Params) -> Callable:
    """The inner loss at fixed outer variables, in the library's ``loss_fn(params, batch, *, key)`` form."""
    return lambda inner, batch, *, key: problem.inner_loss(inner, outer, batch, key=key)


def _inner_solve(problem, outer, inner, train_batch, key, *, steps, lr, optimizer, first_order=False):
    """``steps`` inner updates from ``inner`` (no update for ``steps == 0``)."""
    if steps == 0:
        return inner
    return adapt(_inner_objective(problem, outer), inner, train_batch, steps=steps, key=key, lr=lr,
                 optimizer=optimizer, first_order=first_order).params


def _outer_value_and_grad(problem, inner, outer, val_batch, key, argnums):
    """The outer loss, its metrics and its gradient with respect to ``argnums`` (0: inner, 1: outer)."""
    (loss, aux), grads = jax.value_and_grad(
        lambda w, a: problem.outer_loss(w, a, val_batch, key=key), argnums=argnums, has_aux=True)(inner, outer)
    return loss, aux, grads


def unrolled(problem: BilevelProblem, *, steps: int, lr: Any = None,
             optimizer: optax.GradientTransformation | None = None, remat: bool = False) -> HypergradientFn:
    r"""The exact hypergradient through ``steps`` inner updates.

    .. math::
        w_0 = w, \quad w_{j+1} = \operatorname{step}(w_j; \alpha), \qquad
        g = \frac{d}{d\alpha} L_{\text{val}}\big(w_k(\alpha), \alpha\big)

    The inner steps are :func:`jaxmeta.adapt`'s (gradient descent with ``lr``,
    or any optax ``optimizer``), differentiated by ``jax.grad`` at every order.

    Args:
      problem: the :class:`BilevelProblem`.
      steps: inner updates ``k >= 1`` (with ``lr = \xi`` and ``steps=1`` this is what DARTS approximates).
      lr: the inner learning rate (gradient descent), or the scale of ``optimizer``'s update.
      optimizer: an optax inner optimizer (its state starts fresh at :math:`w`).
      remat: recompute each inner step in the backward pass (memory for compute).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta.bilevel import BilevelProblem, unrolled
      >>> train = lambda w, a, batch, *, key: ((w - a) ** 2, {})      # w*(a) = a
      >>> val = lambda w, a, batch, *, key: ((w - 3.0) ** 2, {})      # best a: 3
      >>> g = unrolled(BilevelProblem(train, val), steps=1, lr=0.5)
      >>> float(g(jnp.array(1.0), jnp.array(0.0), None, None, jax.random.key(0)).grad)  # w_1 = a: 2 (a - 3)
      -4.0
    """
    steps = check_steps(steps)

    def hypergradient(outer, inner, train_batch, val_batch, key):
        check_variables(problem, inner, outer, train_batch, val_batch)
        inner_key, outer_key = jax.random.split(key)

        def outer_of_outer(a):
            w = adapt(_inner_objective(problem, a), inner, train_batch, steps=steps, key=inner_key, lr=lr,
                      optimizer=optimizer, remat=remat).params
            loss, aux = problem.outer_loss(w, a, val_batch, key=outer_key)
            return loss, (w, aux)

        (loss, (w, aux)), grad = jax.value_and_grad(outer_of_outer, has_aux=True)(outer)
        return Hypergradient(grad, w, loss, aux)

    return hypergradient


def implicit(problem: BilevelProblem, *, steps: int, lr: Any = None,
             optimizer: optax.GradientTransformation | None = None, cg_steps: int = 10,
             damping: float = 0.0) -> HypergradientFn:
    r"""The implicit-function-theorem hypergradient at the inner solution, by conjugate gradient.

    .. math::
        (\nabla^2_{ww} L_{\text{train}} + \delta I)\, v = \nabla_w L_{\text{val}}, \qquad
        g = \nabla_\alpha L_{\text{val}} - \nabla_\alpha \big\langle \nabla_w L_{\text{train}}(w_k, \alpha),
        v \big\rangle,

    all at :math:`w_k`, the result of ``steps`` inner updates (first-order: the
    path to :math:`w_k` is not differentiated, so memory does not grow with
    ``steps``). Exact when :math:`w_k` is a stationary point of
    :math:`L_{\text{train}}` with a positive definite Hessian and CG has
    converged (``cg_steps`` at least the number of distinct Hessian
    eigenvalues); ``damping`` :math:`\delta > 0` regularises an indefinite
    Hessian (a network far from its minimum), at the price of a bias.

    Args:
      problem: the :class:`BilevelProblem`.
      steps: inner updates that approximate :math:`w^\star(\alpha)`.
      lr: the inner learning rate (gradient descent), or the scale of ``optimizer``'s update.
      optimizer: an optax inner optimizer.
      cg_steps: conjugate-gradient iterations.
      damping: :math:`\delta \ge 0` added to the Hessian.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta.bilevel import BilevelProblem, implicit
      >>> train = lambda w, a, batch, *, key: ((w - a) ** 2, {})      # w*(a) = a, dw*/da = 1
      >>> val = lambda w, a, batch, *, key: ((w - 3.0) ** 2, {})
      >>> g = implicit(BilevelProblem(train, val), steps=1, lr=0.5, cg_steps=1)
      >>> float(g(jnp.array(1.0), jnp.array(0.0), None, None, jax.random.key(0)).grad)  # 2 (w* - 3)
      -4.0
    """
    steps = check_steps(steps)
    cg_steps = check_steps(cg_steps, "cg_steps")
    if not (isinstance(damping, (int, float)) and damping >= 0):
        raise ValueError(f"damping must be a number >= 0, got {damping!r}.")

    def hypergradient(outer, inner, train_batch, val_batch, key):
        check_variables(problem, inner, outer, train_batch, val_batch)
        inner_key, train_key, outer_key = jax.random.split(key, 3)
        w = jax.lax.stop_gradient(_inner_solve(problem, outer, inner, train_batch, inner_key, steps=steps, lr=lr,
                                               optimizer=optimizer, first_order=True))
        loss, aux, (grad_w, grad_a) = _outer_value_and_grad(problem, w, outer, val_batch, outer_key, (0, 1))
        train_loss = lambda w_, a_: problem.inner_loss(w_, a_, train_batch, key=train_key)[0]  # noqa: E731

        def operator(v):  # (H + delta I) v
            return jax.tree.map(lambda hv, x: hv + damping * x, hvp(lambda w_: train_loss(w_, outer), w, v), v)

        v, _ = jax.scipy.sparse.linalg.cg(operator, grad_w, x0=grad_w, maxiter=cg_steps, tol=0.0)
        v = jax.lax.stop_gradient(v)
        mixed = jax.grad(lambda a: tree_vdot(jax.grad(train_loss)(w, a), v))(outer)
        return Hypergradient(jax.tree.map(jnp.subtract, grad_a, mixed), w, loss, aux)

    return hypergradient


def finite_difference(problem: BilevelProblem, *, lr: float, epsilon: float = 0.01) -> HypergradientFn:
    r"""DARTS's second-order approximation: one lookahead step, the mixed derivative by central differences.

    .. math::
        w' = w - \xi \nabla_w L_{\text{train}}(w, \alpha), \qquad
        v = \nabla_{w'} L_{\text{val}}(w', \alpha), \qquad
        w^\pm = w \pm \frac{\epsilon_0}{\lVert v \rVert} v,

    .. math::
        g = \nabla_\alpha L_{\text{val}}(w', \alpha)
        - \xi\, \frac{\nabla_\alpha L_{\text{train}}(w^+, \alpha) - \nabla_\alpha L_{\text{train}}(w^-, \alpha)}
        {2 \epsilon_0 / \lVert v \rVert}.

    It costs two gradients of the training loss with respect to :math:`\alpha`
    besides the lookahead, and no second derivative. It approximates
    :func:`unrolled` with ``steps=1, lr=xi``; where :math:`v = 0` the
    correction is zero. The DARTS code steps its lookahead with the weights'
    momentum and weight decay; here the lookahead is plain SGD, which is the
    paper's equation 6. In a ReLU network :math:`\nabla_\alpha L_{\text{train}}`
    is only piecewise smooth in :math:`w` (units switching on or off), so a
    difference over a radius that crosses switches measures jumps, not the
    derivative; it converges to :func:`unrolled`'s value as ``epsilon``
    shrinks (``tests/bilevel/test_search.py``).

    Args:
      problem: the :class:`BilevelProblem`.
      lr: :math:`\xi > 0`, the lookahead step (DARTS: the weights' learning rate).
      epsilon: :math:`\epsilon_0`, the finite-difference radius in units of :math:`\lVert v \rVert^{-1}`
        (DARTS: 0.01).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta.bilevel import BilevelProblem, finite_difference
      >>> train = lambda w, a, batch, *, key: ((w - a) ** 2, {})      # quadratic: the difference is exact
      >>> val = lambda w, a, batch, *, key: ((w - 3.0) ** 2, {})
      >>> g = finite_difference(BilevelProblem(train, val), lr=0.5)
      >>> round(float(g(jnp.array(1.0), jnp.array(0.0), None, None, jax.random.key(0)).grad), 4)  # float32 rounding
      -4.0
    """
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr (DARTS's xi) must be a positive number, got {lr!r}; use steps of first_order() for "
                         "xi = 0.")
    if not (isinstance(epsilon, (int, float)) and epsilon > 0):
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r} (DARTS uses 0.01).")

    def hypergradient(outer, inner, train_batch, val_batch, key):
        check_variables(problem, inner, outer, train_batch, val_batch)
        inner_key, train_key, outer_key = jax.random.split(key, 3)
        lookahead = _inner_solve(problem, outer, inner, train_batch, inner_key, steps=1, lr=lr, optimizer=None,
                                 first_order=True)
        loss, aux, (v, grad_a) = _outer_value_and_grad(problem, lookahead, outer, val_batch, outer_key, (0, 1))
        norm = jnp.sqrt(tree_vdot(v, v))
        radius = jnp.where(norm > 0, epsilon / jnp.where(norm > 0, norm, 1.0), 1.0)

        def train_grad_a(sign):
            w = jax.tree.map(lambda p, d: p + sign * radius * d, inner, v)
            return jax.grad(lambda a: problem.inner_loss(w, a, train_batch, key=train_key)[0])(outer)

        plus, minus = train_grad_a(1.0), train_grad_a(-1.0)
        grad = jax.tree.map(lambda g, p, m: g - lr * (p - m) / (2 * radius), grad_a, plus, minus)
        return Hypergradient(grad, lookahead, loss, aux)

    return hypergradient


def first_order(problem: BilevelProblem, *, steps: int = 0, lr: Any = None,
                optimizer: optax.GradientTransformation | None = None) -> HypergradientFn:
    r"""The hypergradient without its second-order term: :math:`g = \nabla_\alpha L_{\text{val}}(w_k, \alpha)`.

    :math:`w_k` (``steps`` inner updates from :math:`w`; :math:`w` itself for
    ``steps=0``, DARTS's first order) is treated as a constant, so only the
    outer loss's direct dependence on :math:`\alpha` is seen.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta.bilevel import BilevelProblem, first_order
      >>> train = lambda w, a, batch, *, key: ((w - a) ** 2, {})
      >>> val = lambda w, a, batch, *, key: ((w - 3.0) ** 2 + 0.5 * a ** 2, {})
      >>> g = first_order(BilevelProblem(train, val))
      >>> float(g(jnp.array(1.0), jnp.array(0.0), None, None, jax.random.key(0)).grad)  # only d(a^2/2)/da
      1.0
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a Python int >= 0 (0: at the current inner variables), got {steps!r}.")

    def hypergradient(outer, inner, train_batch, val_batch, key):
        check_variables(problem, inner, outer, train_batch, val_batch)
        inner_key, outer_key = jax.random.split(key)
        w = jax.lax.stop_gradient(_inner_solve(problem, outer, inner, train_batch, inner_key, steps=steps, lr=lr,
                                               optimizer=optimizer, first_order=True))
        loss, aux, grad = _outer_value_and_grad(problem, w, outer, val_batch, outer_key, 1)
        return Hypergradient(grad, w, loss, aux)

    return hypergradient


METHODS: dict[str, Callable[..., HypergradientFn]] = {
    "unrolled": unrolled,
    "implicit": implicit,
    "finite-difference": finite_difference,
    "first-order": first_order,
}
"""The hypergradient methods by name (for command lines and records)."""


def hypergradient(method: str, problem: BilevelProblem, **options: Any) -> HypergradientFn:
    """The :class:`HypergradientFn` of ``method`` (a key of :data:`METHODS`) with its ``options``.

    Example:
      >>> from jaxmeta.bilevel import BilevelProblem
      >>> problem = BilevelProblem(lambda w, a, b, *, key: (w ** 2, {}), lambda w, a, b, *, key: (w, {}))
      >>> fn = hypergradient("implicit", problem, steps=5, lr=0.1)
    """
    return METHODS[check_choice(method, sorted(METHODS), "hypergradient method")](problem, **options)


def make_outer_step(hypergradient_fn: HypergradientFn, optimizer: optax.GradientTransformation) -> Callable:
    r"""One optax update of the outer variables along any :class:`HypergradientFn`.

    ``step(outer, opt_state, inner, train_batch, val_batch, key) -> (outer, opt_state, Hypergradient)``,
    a pure function to ``jax.jit`` (``opt_state = optimizer.init(outer)``).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta.bilevel import BilevelProblem, unrolled
      >>> train = lambda w, a, batch, *, key: ((w - a) ** 2, {})
      >>> val = lambda w, a, batch, *, key: ((w - 3.0) ** 2, {})
      >>> optimizer = optax.sgd(0.1)
      >>> step = jax.jit(make_outer_step(unrolled(BilevelProblem(train, val), steps=1, lr=0.5), optimizer))
      >>> a, state = jnp.array(0.0), optimizer.init(jnp.array(0.0))
      >>> for _ in range(50):
      ...     a, state, result = step(a, state, jnp.array(1.0), None, None, jax.random.key(0))
      >>> round(float(a), 3)  # one step of size 1/2 solves the inner problem: w_1 = a, and L_val is 0 at a = 3
      3.0
    """
    def step(outer, opt_state, inner, train_batch, val_batch, key):
        result = hypergradient_fn(outer, inner, train_batch, val_batch, key)
        updates, opt_state = optimizer.update(result.grad, opt_state, outer)
        return optax.apply_updates(outer, updates), opt_state, result

    return step


def check_variables(problem: BilevelProblem, inner: Params, outer: Params, train_batch: Batch,
                    val_batch: Batch) -> None:
    """Raise a clear error when the variables or batches do not fit the problem's losses.

    Checks that the outer variables are floating-point arrays (they are
    differentiated), that neither batch is empty, and that both losses
    evaluate to a scalar on ``(inner, outer, batch)`` (shapes only, nothing is
    computed).
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(outer)[0]:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            raise TypeError(f"The outer variables are differentiated, so they must be floating-point arrays; leaf "
                            f"{jax.tree_util.keystr(path)} has dtype {jnp.result_type(leaf)}.")
    for name, batch in (("training", train_batch), ("validation", val_batch)):
        if any(jnp.ndim(leaf) for leaf in jax.tree.leaves(batch)):  # losses that ignore the batch may get None
            example_count(batch, name)
    for name, loss, batch in (("inner_loss", problem.inner_loss, train_batch),
                              ("outer_loss", problem.outer_loss, val_batch)):
        try:
            shape = jax.eval_shape(lambda w, a, b, loss=loss: loss(w, a, b, key=jax.random.key(0))[0], inner, outer,
                                   batch)
        except Exception as error:  # the user's loss failed on these variables: say which and how they looked
            raise ValueError(
                f"{name}(inner, outer, batch, *, key) failed with inner variables {describe_tree(inner)} and outer "
                f"variables {describe_tree(outer)}: {type(error).__name__}: {error}. Check that the variables are "
                "passed in the order (outer, inner, ...) to the hypergradient and (inner, outer, ...) to the losses, "
                "and that they are the ones the losses were written for."
            ) from error
        if shape.shape != ():
            raise ValueError(f"{name} must return a scalar loss, got shape {shape.shape}; average over the batch.")
