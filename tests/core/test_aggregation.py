"""Gradient agreement: its weights against a NumPy statement of the formula, and the meta step that uses them."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta.core.aggregation import agreement_weights, gradient_agreement, mean_of_tasks, pairwise_inner_products
from jaxmeta.core.learner import direct_learner
from jaxmeta.distributed import make_sharded_meta_step, replicate, shard_tasks, task_mesh
from jaxmeta.models import MLP, functional


def numpy_weights(task_vectors, normaliser):
    """w_i = sum_j <g_i, g_j> / Z, Z = sum_k |sum_j <g_k, g_j>| (paper) or sum_kj |<g_k, g_j>| (book)."""
    g = np.asarray(task_vectors, np.float64)
    b = len(g)
    products = np.array([[g[i] @ g[j] for j in range(b)] for i in range(b)])
    agreement = np.array([sum(products[i, j] for j in range(b)) for i in range(b)])
    z = sum(abs(a) for a in agreement) if normaliser == "paper" else sum(abs(p) for p in products.ravel())
    return agreement / z


def stacked_tree(rng, tasks):
    """Task gradients as a two-leaf pytree [B, ...], and the same as one flat vector per task."""
    tree = {"w": rng.normal(size=(tasks, 3, 2)), "b": rng.normal(size=(tasks, 4))}
    flat = np.concatenate([tree["w"].reshape(tasks, -1), tree["b"]], axis=1)
    return jax.tree.map(jnp.asarray, tree), flat


@pytest.mark.parametrize("normaliser", ["paper", "book"])
def test_weights_equal_the_formula_on_hand_made_gradients(normaliser):
    tree, flat = stacked_tree(np.random.default_rng(0), 5)
    np.testing.assert_allclose(agreement_weights(tree, normaliser), numpy_weights(flat, normaliser), rtol=1e-12)
    np.testing.assert_allclose(pairwise_inner_products(tree), flat @ flat.T, rtol=1e-12)
    combined = gradient_agreement(normaliser, vectors="task_grad")(tree)
    w = numpy_weights(flat, normaliser)
    np.testing.assert_allclose(combined["b"], np.einsum("i,ij->j", w, np.asarray(tree["b"])), rtol=1e-12)
    # the paper's rule: the weights come from the tasks' updates and weigh their gradients
    updates, flat_updates = stacked_tree(np.random.default_rng(5), 5)
    combined = gradient_agreement(normaliser)(tree, updates)
    w = numpy_weights(flat_updates, normaliser)
    np.testing.assert_allclose(combined["w"], np.einsum("i,ijk->jk", w, np.asarray(tree["w"])), rtol=1e-12)


@pytest.mark.parametrize("normaliser", ["paper", "book"])
def test_agreeing_tasks_get_equal_weights_and_an_opposed_task_a_negative_one(normaliser):
    g = np.array([0.5, -1.0, 2.0])
    same = jnp.asarray(np.stack([g] * 4))
    np.testing.assert_allclose(agreement_weights(same, normaliser), np.full(4, 0.25), rtol=1e-12)
    opposed = jnp.asarray(np.stack([g, g, 1.5 * g, -g]))
    weights = np.asarray(agreement_weights(opposed, normaliser))
    assert weights[3] < 0 < weights[:3].min()
    np.testing.assert_allclose(weights, numpy_weights(opposed, normaliser), rtol=1e-12)


def test_the_book_normaliser_is_never_smaller_than_the_papers():
    tree, flat = stacked_tree(np.random.default_rng(1), 6)
    paper, book = (np.abs(np.asarray(agreement_weights(tree, n))).sum() for n in ("paper", "book"))
    assert paper == pytest.approx(1.0, rel=1e-12) and book <= paper


MODEL = MLP((8, 1))
LOSS = jaxmeta.regression_loss(functional(MODEL))


def float64(tree):
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), tree)


def start(learner, optimizer):
    params = float64(MODEL.init(jax.random.key(0), jnp.zeros((1, 1)))["params"])
    return jaxmeta.init_state(learner, optimizer, params)


def test_the_weighted_step_is_the_plain_step_when_every_task_gradient_is_the_same():
    learner, optimizer = jaxmeta.maml(LOSS, inner_lr=0.1), optax.sgd(0.3)
    one = float64(jaxmeta.sinusoid_tasks(jax.random.key(1), 1, shots=5))
    tasks = jax.tree.map(lambda x: jnp.repeat(x, 4, axis=0), one)  # the same task four times
    state = start(learner, optimizer)
    plain, plain_metrics = jaxmeta.make_meta_step(learner, optimizer)(state, tasks, jax.random.key(2))
    for normaliser in ("paper", "book"):
        agreed, metrics = jaxmeta.make_meta_step(learner, optimizer, aggregate=gradient_agreement(normaliser))(
            state, tasks, jax.random.key(2))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), agreed, plain)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), metrics, plain_metrics)
    different = float64(jaxmeta.sinusoid_tasks(jax.random.key(3), 4, shots=5))
    agreed, _ = jaxmeta.make_meta_step(learner, optimizer, aggregate=gradient_agreement())(
        state, different, jax.random.key(2))
    plain, _ = jaxmeta.make_meta_step(learner, optimizer)(state, different, jax.random.key(2))
    assert not np.allclose(agreed.meta_params["Dense_0"]["kernel"], plain.meta_params["Dense_0"]["kernel"])


def test_the_meta_step_weighs_maml_gradients_by_the_agreement_of_the_inner_updates():
    # Algorithm 1 of the paper: u_i = theta - phi_i (here one step, alpha * the support gradient, taken
    # directly), w from the u_i, and the step along sum_i w_i g_i with g_i MAML's task meta-gradients.
    alpha, rate = 0.1, 0.3
    learner, optimizer = jaxmeta.maml(LOSS, inner_lr=alpha), optax.sgd(rate)
    tasks = float64(jaxmeta.sinusoid_tasks(jax.random.key(5), 4, shots=5))
    state = start(learner, optimizer)
    theta, key = state.meta_params, jax.random.key(6)
    keys = jax.random.split(key, 4)
    grads, _ = jax.vmap(learner.task_grad, in_axes=(None, 0, 0))(theta, tasks, keys)
    support_grad = jax.vmap(jax.grad(lambda p, batch: LOSS(p, batch, key=None)[0]), in_axes=(None, 0))
    updates = jax.tree.map(lambda g: alpha * g, support_grad(theta, tasks.support))
    flatten = lambda tree: np.concatenate([np.asarray(x).reshape(4, -1) for x in jax.tree.leaves(tree)], 1)  # noqa: E731
    for normaliser in ("paper", "book"):
        w = numpy_weights(flatten(updates), normaliser)
        assert not np.allclose(w, numpy_weights(flatten(grads), normaliser), rtol=1e-3)  # the two rules differ here
        stepped, _ = jaxmeta.make_meta_step(learner, optimizer, aggregate=gradient_agreement(normaliser))(
            state, tasks, key)
        expected = jax.tree.map(lambda t, g, w=w: t - rate * np.einsum("i,i...->...", w, g), theta, grads)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13),
                     stepped.meta_params, expected)


@pytest.mark.parametrize("num_devices", [2, 4])
def test_sharded_and_unsharded_gradient_agreement_give_the_same_step(num_devices):
    learner, optimizer = jaxmeta.fomaml(LOSS, inner_lr=0.1, inner_steps=2), optax.adam(1e-2)
    tasks = float64(jaxmeta.sinusoid_tasks(jax.random.key(4), 8, shots=5))
    mesh = task_mesh(num_devices=num_devices)
    rule = gradient_agreement()
    single = jaxmeta.make_meta_step(learner, optimizer, aggregate=rule, task_chunk=2)
    sharded = make_sharded_meta_step(learner, optimizer, mesh, aggregate=rule)
    expected, state = start(learner, optimizer), replicate(start(learner, optimizer), mesh)
    for i in range(2):
        expected, expected_metrics = single(expected, tasks, jax.random.key(10 + i))
        state, metrics = sharded(state, shard_tasks(tasks, mesh), jax.random.key(10 + i))
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)  # noqa: E731
    jax.tree.map(close, state, expected)
    jax.tree.map(close, metrics, expected_metrics)


def test_mean_of_tasks_is_the_mean_and_bad_rules_are_refused():
    tree, flat = stacked_tree(np.random.default_rng(2), 3)
    np.testing.assert_allclose(mean_of_tasks(tree)["b"], np.asarray(tree["b"]).mean(0))
    with pytest.raises(ValueError, match=r"normaliser must be one of \('paper', 'book'\)"):
        gradient_agreement("theil")
    with pytest.raises(ValueError, match="normaliser must be one of"):
        agreement_weights(tree, "mean")
    learner = jaxmeta.maml(LOSS, inner_lr=0.1)
    with pytest.raises(ValueError, match="serial=True updates after every task: drop aggregate"):
        jaxmeta.make_meta_step(learner, optax.sgd(0.1), serial=True, aggregate=gradient_agreement())
    with pytest.raises(TypeError, match="aggregate must be a function"):
        jaxmeta.make_meta_step(learner, optax.sgd(0.1), aggregate="gradient-agreement")
    with pytest.raises(ValueError, match=r"vectors must be one of \('update', 'task_grad'\)"):
        gradient_agreement(vectors="gradients")
    with pytest.raises(ValueError, match="call it as rule\\(stacked_grads, stacked_updates\\)"):
        gradient_agreement()(tree)
    no_inner_loop = direct_learner(lambda p, task: (jnp.sum(p * task.query[0]), {}), no_inner_loop="none")
    with pytest.raises(ValueError, match=r"has no inner loop .*gradient_agreement\(vectors='task_grad'\)"):
        jaxmeta.make_meta_step(no_inner_loop, optax.sgd(0.1), aggregate=gradient_agreement())
    jaxmeta.make_meta_step(no_inner_loop, optax.sgd(0.1), aggregate=gradient_agreement(vectors="task_grad"))
