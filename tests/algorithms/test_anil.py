"""ANIL: only the head adapts; the body still gets its (second-order) meta-gradient."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmeta
from gradcheck import adapted_query_loss, finite_difference_grad, regression_task, tiny_mlp


def test_anil_freezes_body_in_inner_loop_and_matches_finite_differences():
    params, apply = tiny_mlp(jax.random.key(0))
    loss_fn = jaxmeta.regression_loss(apply)
    task = regression_task(jax.random.key(1))
    head = lambda path: path.startswith("[1]")  # noqa: E731  (the last layer)
    learner = jaxmeta.anil(loss_fn, head=head, inner_lr=0.3, inner_steps=2)
    phi = learner.adapt(params, task.support, key=jax.random.key(0)).params
    chex.assert_trees_all_equal(phi[0], params[0])
    assert not np.allclose(phi[1]["w"], params[1]["w"])

    grads, _ = learner.task_grad(params, task, jax.random.key(0))

    numeric = finite_difference_grad(adapted_query_loss(learner, loss_fn, task), params)
    chex.assert_trees_all_close(grads, numeric, rtol=1e-6, atol=1e-9)
    assert float(jnp.abs(grads[0]["w"]).max()) > 0


def test_anil_with_an_inner_optimizer_adapts_the_head_only_and_matches_finite_differences():
    params, apply = tiny_mlp(jax.random.key(2))
    loss_fn = jaxmeta.regression_loss(apply)
    task = regression_task(jax.random.key(3))
    learner = jaxmeta.anil(loss_fn, head=lambda path: path.startswith("[1]"),
                           inner_optimizer=optax.sgd(0.2, momentum=0.9), inner_steps=3)
    phi = learner.adapt(params, task.support, key=jax.random.key(0)).params
    chex.assert_trees_all_equal(phi[0], params[0])
    grads, _ = learner.task_grad(params, task, jax.random.key(0))

    numeric = finite_difference_grad(adapted_query_loss(learner, loss_fn, task), params)
    chex.assert_trees_all_close(grads, numeric, rtol=1e-6, atol=1e-9)
