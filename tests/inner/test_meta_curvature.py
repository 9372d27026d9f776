"""Meta-Curvature: the mode products against the Kronecker matrix they stand for, meta-gradients with respect
to the matrices against finite differences, and identities giving MAML."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

import jaxmeta
from jaxmeta.inner import LearnedInnerParams, meta_curvature, precondition
from gradcheck import adapted_query_loss, finite_difference_grad, regression_task, tiny_mlp


def test_mode_products_are_the_kronecker_preconditioner():
    """vec(MC(G)) = (M_s kron M_i kron M_o) vec(G), with G laid out [spatial, in, out] in row-major order."""
    keys = jax.random.split(jax.random.key(0), 4)
    g = jax.random.normal(keys[0], (3, 3, 2, 4), jnp.float64)
    m = {"spatial": jax.random.normal(keys[1], (9, 9), jnp.float64),
         "in": jax.random.normal(keys[2], (2, 2), jnp.float64),
         "out": jax.random.normal(keys[3], (4, 4), jnp.float64)}
    kron = np.kron(np.kron(m["spatial"], m["in"]), m["out"])
    np.testing.assert_allclose(precondition(m, g).ravel(), kron @ np.asarray(g).ravel(), rtol=1e-12)
    dense = {"in": m["in"], "out": m["out"]}
    np.testing.assert_allclose(precondition(dense, g[0, 0]), m["in"] @ g[0, 0] @ m["out"].T, rtol=1e-12)


def test_matrices_meta_gradient_matches_finite_differences():
    params, apply = tiny_mlp(jax.random.key(1))
    loss_fn = jaxmeta.regression_loss(apply)
    task = regression_task(jax.random.key(101))
    learner = jaxmeta.maml(loss_fn, inner_optimizer=meta_curvature(lr=0.3), inner_steps=2)
    meta = learner.init(params)
    noise = jax.random.split(jax.random.key(2), len(jax.tree.leaves(meta.rule)))
    leaves = jax.tree.leaves(meta.rule)
    perturbed = [leaf + 0.1 * jax.random.normal(k, leaf.shape, leaf.dtype) for leaf, k in zip(leaves, noise)]
    rule = jax.tree.unflatten(jax.tree.structure(meta.rule), perturbed)
    meta = LearnedInnerParams(meta.params, rule)
    grads, _ = learner.task_grad(meta, task, jax.random.key(0))

    numeric = finite_difference_grad(adapted_query_loss(learner, loss_fn, task), meta)
    chex.assert_trees_all_close(grads, numeric, rtol=1e-6, atol=1e-9)


def test_identity_matrices_are_maml():
    params, apply = tiny_mlp(jax.random.key(3))
    loss_fn = jaxmeta.regression_loss(apply)
    task = regression_task(jax.random.key(103))
    learned = jaxmeta.maml(loss_fn, inner_optimizer=meta_curvature(lr=0.3), inner_steps=2)
    grads, _ = learned.task_grad(learned.init(params), task, jax.random.key(0))
    expected, _ = jaxmeta.maml(loss_fn, inner_lr=0.3, inner_steps=2).task_grad(params, task, jax.random.key(0))
    chex.assert_trees_all_close(grads.params, expected, rtol=1e-12, atol=1e-15)
