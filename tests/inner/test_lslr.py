"""LSLR: meta-gradients with respect to the per-layer, per-step rates against finite differences; equal rates
are MAML; the number of steps is checked."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmeta
from jaxmeta.inner import LearnedInnerParams, lslr
from gradcheck import adapted_query_loss, finite_difference_grad, regression_task, tiny_mlp


def _problem(seed=0):
    params, apply = tiny_mlp(jax.random.key(seed))
    return params, jaxmeta.regression_loss(apply), regression_task(jax.random.key(seed + 100))


def test_rates_meta_gradient_matches_finite_differences():
    params, loss_fn, task = _problem()
    learner = jaxmeta.maml(loss_fn, inner_optimizer=lslr(steps=3, lr_init=0.2), inner_steps=3)
    meta = learner.init(params)
    # Distinct rates per layer and step, so that a mix-up of layers or steps shows.
    rates = jax.tree.map(lambda r: r * jnp.array([1.0, 0.6, 1.4]), meta.rule)
    rates = [jax.tree.map(lambda r, i=i: r * (1 + 0.3 * i), layer) for i, layer in enumerate(rates)]
    meta = LearnedInnerParams(meta.params, rates)
    grads, _ = learner.task_grad(meta, task, jax.random.key(0))

    numeric = finite_difference_grad(adapted_query_loss(learner, loss_fn, task), meta)
    chex.assert_trees_all_close(grads, numeric, rtol=1e-6, atol=1e-9)


def test_step_j_uses_rate_j_of_each_layer():
    params, loss_fn, task = _problem(1)
    learner = jaxmeta.maml(loss_fn, inner_optimizer=lslr(steps=2), inner_steps=2)
    rates = [{"w": jnp.array([0.1, 0.3]), "b": jnp.array([0.2, 0.05])}, {"w": jnp.array([0.4, 0.0]),
                                                                        "b": jnp.array([0.0, 0.7])}]
    phi = learner.adapt(LearnedInnerParams(params, rates), task.support, key=jax.random.key(0)).params
    expected = params
    for j in range(2):
        g = jax.grad(lambda p: loss_fn(p, task.support, key=None)[0])(expected)
        expected = jax.tree.map(lambda p, r, gi, j=j: p - r[j] * gi, expected, rates, g)
    chex.assert_trees_all_close(phi, expected, rtol=1e-12)


def test_equal_rates_are_maml_exactly():
    params, loss_fn, task = _problem(2)
    learned = jaxmeta.maml(loss_fn, inner_optimizer=lslr(steps=3, lr_init=0.25), inner_steps=3)
    grads, metrics = learned.task_grad(learned.init(params), task, jax.random.key(0))
    expected, expected_metrics = jaxmeta.maml(loss_fn, inner_lr=0.25, inner_steps=3).task_grad(
        params, task, jax.random.key(0))
    chex.assert_trees_all_equal(grads.params, expected)
    assert metrics["loss"] == expected_metrics["loss"]
    assert all(np.all(np.isfinite(r)) for r in jax.tree.leaves(grads.rule))


def test_rates_for_another_number_of_steps_are_refused():
    params, loss_fn, task = _problem(3)
    with pytest.raises(ValueError, match=r"values for 3 inner steps, but inner_steps is 5.*lslr\(steps=5\)"):
        jaxmeta.maml(loss_fn, inner_optimizer=lslr(steps=3), inner_steps=5)
    learner = jaxmeta.maml(loss_fn, inner_optimizer=lslr(steps=3), inner_steps=3)
    with pytest.raises(ValueError, match="learned values for 3 inner steps.*cannot run 10"):
        learner.adapt(learner.init(params), task.support, key=jax.random.key(0), steps=10)
    with pytest.raises(ValueError, match=r"rates for \[0\]\['b'\] have shape \(2,\).*for 3 inner steps"):
        lslr(steps=3).optimizer([{"w": jnp.ones(3), "b": jnp.ones(2)}])
    with pytest.raises(TypeError, match="reptile cannot meta-learn an inner rule"):
        jaxmeta.reptile(loss_fn, inner_optimizer=lslr(steps=3), inner_steps=3)
