"""Meta-SGD: gradients with respect to the initialisation and the learning rates."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmeta
from gradcheck import adapted_query_loss, finite_difference_grad, regression_task, tiny_mlp


def test_metasgd_meta_gradient_matches_finite_differences():
    params, apply = tiny_mlp(jax.random.key(0))
    loss_fn = jaxmeta.regression_loss(apply)
    task = regression_task(jax.random.key(1))
    learner = jaxmeta.metasgd(loss_fn, lr_init=0.2, inner_steps=2)
    meta = learner.init(params)
    # make the rates differ per coordinate, so a wrong broadcast would show
    meta = meta._replace(lrs=jax.tree.map(lambda a: a * (1 + 0.5 * jnp.sin(jnp.arange(a.size).reshape(a.shape))),
                                          meta.lrs))
    grads, _ = learner.task_grad(meta, task, jax.random.key(0))

    numeric = finite_difference_grad(adapted_query_loss(learner, loss_fn, task), meta)
    chex.assert_trees_all_close(grads, numeric, rtol=1e-6, atol=1e-9)
    assert isinstance(grads, jaxmeta.MetaSGDParams)


def test_learning_rate_gradient_closed_form_one_step():
    """For one step, d L_q(theta - alpha * g_s) / d alpha = -g_s * grad L_q(phi)."""
    params, apply = tiny_mlp(jax.random.key(2))
    loss_fn = jaxmeta.regression_loss(apply)
    task = regression_task(jax.random.key(3))
    learner = jaxmeta.metasgd(loss_fn, lr_init=0.1)
    meta = learner.init(params)
    grads, _ = learner.task_grad(meta, task, jax.random.key(0))
    g_support = jax.grad(lambda p: loss_fn(p, task.support, key=None)[0])(params)
    phi = jax.tree.map(lambda p, a, g: p - a * g, params, meta.lrs, g_support)
    g_query = jax.grad(lambda p: loss_fn(p, task.query, key=None)[0])(phi)
    chex.assert_trees_all_close(grads.lrs, jax.tree.map(lambda s, q: -s * q, g_support, g_query), rtol=1e-10)


def test_init_gives_rates_shaped_like_parameters():
    params, apply = tiny_mlp(jax.random.key(4))
    meta = jaxmeta.metasgd(jaxmeta.regression_loss(apply), lr_init=0.03).init(params)
    chex.assert_trees_all_equal_shapes(meta.lrs, params)
    assert all(np.all(np.asarray(a) == 0.03) for a in jax.tree.leaves(meta.lrs))


def test_learned_rates_scale_an_inner_optimizers_direction():
    """phi_{j+1} = phi_j + alpha * u_j with u_j Adam's direction; the meta-gradient matches finite differences."""
    params, apply = tiny_mlp(jax.random.key(5))
    loss_fn = jaxmeta.regression_loss(apply)
    task = regression_task(jax.random.key(6))
    direction = optax.chain(optax.scale_by_adam(b1=0.0), optax.scale(-1.0))
    learner = jaxmeta.metasgd(loss_fn, lr_init=0.05, inner_steps=2, inner_optimizer=direction)
    meta = learner.init(params)
    phi = learner.adapt(meta, task.support, key=jax.random.key(0)).params
    expected, v = params, jax.tree.map(jnp.zeros_like, params)
    for t in (1, 2):
        g = jax.grad(lambda p: loss_fn(p, task.support, key=None)[0])(expected)
        v = jax.tree.map(lambda vi, gi: 0.999 * vi + 0.001 * gi**2, v, g)
        expected = jax.tree.map(lambda p, gi, vi, t=t: p - 0.05 * gi / (jnp.sqrt(vi / (1 - 0.999**t)) + 1e-8),
                                expected, g, v)
    chex.assert_trees_all_close(phi, expected, rtol=1e-10)
    grads, _ = learner.task_grad(meta, task, jax.random.key(0))

    numeric = finite_difference_grad(adapted_query_loss(learner, loss_fn, task), meta)
    chex.assert_trees_all_close(grads, numeric, rtol=1e-6, atol=1e-9)
