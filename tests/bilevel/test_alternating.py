"""DARTS's alternating step: the outer update along the hypergradient, then the weights' step at the new
outer variables, checked against the two updates written out."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmeta.bilevel import BilevelProblem, init_alternating, make_alternating_step, unrolled


def test_one_step_is_the_outer_update_then_the_inner_update_at_the_new_outer_variables():
    problem = BilevelProblem(
        inner_loss=lambda w, a, batch, *, key: (jnp.sum((w - a) ** 2) + 0.5 * jnp.sum(w ** 4), {}),
        outer_loss=lambda w, a, batch, *, key: (jnp.sum((w - 1.0) ** 2) + 0.1 * jnp.sum(a ** 2), {}),
    )
    fn = unrolled(problem, steps=2, lr=0.1)
    outer_optimizer, inner_optimizer = optax.adam(0.05), optax.sgd(0.2, momentum=0.9)
    a, w = jnp.array([0.3, -0.2]), jnp.array([1.0, 0.5])
    state = init_alternating(a, w, outer_optimizer, inner_optimizer)
    step = jax.jit(make_alternating_step(problem, fn, outer_optimizer, inner_optimizer))
    key = jax.random.key(3)
    new, metrics = step(state, (None, None), key)

    outer_key, _ = jax.random.split(key)
    result = fn(a, w, None, None, outer_key)
    updates, _ = outer_optimizer.update(result.grad, outer_optimizer.init(a), a)
    a_next = a + updates
    train_loss, grads = jax.value_and_grad(lambda v: problem.inner_loss(v, a_next, None, key=None)[0])(w)
    w_next = w - 0.2 * grads  # momentum's first step is the plain step
    np.testing.assert_allclose(new.meta_params["outer"], a_next, rtol=1e-12)
    np.testing.assert_allclose(new.meta_params["inner"], w_next, rtol=1e-12)
    np.testing.assert_allclose(metrics["val_loss"], result.loss, rtol=1e-12)
    np.testing.assert_allclose(metrics["loss"], train_loss, rtol=1e-12)
    assert int(new.step) == 1
