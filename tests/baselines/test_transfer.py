"""jaxmeta.baselines.transfer: the fine-tuned heads of Chen et al. against closed forms, a hand-computed step,
separable toy tasks, and bad input; a pretrained trunk and the per-task transfer accuracy."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta import Task
from jaxmeta.baselines import (fine_tune_head, head_logits, head_optimizer, init_head, transfer_accuracy,
                               trunk_params)
from jaxmeta.models import Conv4, ConvEmbedding


def separable_task(key, classes=5, shots=4, dim=8):
    centres = 6.0 * jax.random.normal(key, (classes, dim))
    noise = jax.random.normal(jax.random.fold_in(key, 1), (classes, shots, dim))
    return (centres[:, None] + noise).reshape(-1, dim), jnp.repeat(jnp.arange(classes), shots)


def test_heads_score_as_their_formulas_say():
    head = init_head(jax.random.key(0), 3, 2, "cosine")._replace(offset=jnp.array([1.5, 0.5]))
    z = jnp.array([[1.0, 2.0, -1.0], [0.0, 1.0, 0.0]])
    w = head.weight
    cos = (z @ w) / (jnp.linalg.norm(z, axis=1)[:, None] * jnp.linalg.norm(w, axis=0)[None])
    np.testing.assert_allclose(head_logits(head, z, "cosine", scale=2.0), 2.0 * head.offset * cos, rtol=1e-4)
    linear = init_head(jax.random.key(1), 3, 2)._replace(offset=jnp.array([0.3, -0.2]))
    np.testing.assert_allclose(head_logits(linear, z), z @ linear.weight + linear.offset, rtol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_the_head_fits_a_separable_support_set_exactly_and_deterministically(kind):
    z, y = separable_task(jax.random.key(3))
    head = fine_tune_head(z, y, num_classes=5, key=jax.random.key(4), kind=kind)
    assert bool(jnp.all(jnp.argmax(head_logits(head, z, kind), -1) == y))  # zero support error
    again = fine_tune_head(z, y, num_classes=5, key=jax.random.key(4), kind=kind)
    other = fine_tune_head(z, y, num_classes=5, key=jax.random.key(5), kind=kind)
    jax.tree.map(np.testing.assert_array_equal, head, again)
    assert not np.allclose(head.weight, other.weight)


def test_one_epoch_of_one_batch_is_one_hand_computed_sgd_step():
    z, y = separable_task(jax.random.key(6), classes=3, shots=2)
    key = jax.random.key(7)
    head = fine_tune_head(z, y, num_classes=3, key=key, epochs=1, batch_size=len(y))
    start = init_head(jax.random.split(key)[0], z.shape[1], 3)
    grad = jax.grad(lambda h: optax.softmax_cross_entropy_with_integer_labels(head_logits(h, z), y).mean())(start)
    # weight decay, then momentum 0.9 with dampening 0.9 from a zero buffer, then the learning rate 0.01
    expected = jax.tree.map(lambda p, g: p - 0.01 * 0.1 * (g + 1e-3 * p), start, grad)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), head, expected)


def test_a_batch_size_that_does_not_divide_the_support_set_uses_each_example_once_per_epoch():
    z, y = separable_task(jax.random.key(8), classes=2, shots=3)  # 6 examples in batches of 4 and 2
    key = jax.random.key(9)
    partial = fine_tune_head(z, y, num_classes=2, key=key, epochs=1, batch_size=4, optimizer=optax.sgd(0.1))
    start = init_head(jax.random.split(key)[0], z.shape[1], 2)
    order = jax.random.permutation(jax.random.split(jax.random.split(key)[1], 1)[0], 6)
    loss = lambda h, i: optax.softmax_cross_entropy_with_integer_labels(head_logits(h, z[i]), y[i]).mean()  # noqa: E731
    expected = start
    for index in (order[:4], order[4:]):
        expected = jax.tree.map(lambda p, g: p - 0.1 * g, expected, jax.grad(loss)(expected, index))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), partial, expected)


def test_the_optimizer_is_sgd_with_dampened_momentum_and_weight_decay():
    optimizer = head_optimizer()
    params, grads = jnp.array([1.0, -2.0]), jnp.array([0.5, 0.5])
    state = optimizer.init(params)
    first, state = optimizer.update(grads, state, params)
    np.testing.assert_allclose(first, -0.01 * 0.1 * (grads + 1e-3 * params))
    second, _ = optimizer.update(grads, state, params)
    np.testing.assert_allclose(second, -0.01 * (0.9 * 0.1 + 0.1) * (grads + 1e-3 * params))


def test_bad_input_is_refused_with_the_fix():
    z, y = separable_task(jax.random.key(10), classes=2, shots=2)
    with pytest.raises(ValueError, match="Unknown head 'softmax'"):
        fine_tune_head(z, y, num_classes=2, key=jax.random.key(0), kind="softmax")
    with pytest.raises(ValueError, match="features must be \\[examples, feature_dim\\]"):
        fine_tune_head(z.reshape(4, 2, 4), y, num_classes=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="support set is empty"):
        fine_tune_head(z[:0], y[:0], num_classes=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        fine_tune_head(z, y, num_classes=0, key=jax.random.key(0))


def separable_tasks(key, tasks=3, ways=4, shots=2, queries=3, dim=6):
    # each class around its own axis, so both heads (a cosine head sees directions only) can separate them
    axes = jax.vmap(lambda k: jax.random.permutation(k, dim)[:ways])(jax.random.split(key, tasks))
    centres = 6.0 * jax.nn.one_hot(axes, dim)[:, :, None, :]
    draw = lambda k, n: (centres + jax.random.normal(k, (tasks, ways, n, dim))).reshape(tasks, ways * n, dim)  # noqa: E731
    labels = lambda n: jnp.tile(jnp.repeat(jnp.arange(ways), n), (tasks, 1))  # noqa: E731
    return Task(support=(draw(jax.random.fold_in(key, 1), shots), labels(shots)),
                query=(draw(jax.random.fold_in(key, 2), queries), labels(queries)))


def test_a_pretrained_conv4_trunk_is_a_conv_embedding():
    model = Conv4(num_classes=7, features=8, blocks=2)
    x = jax.random.normal(jax.random.key(11), (5, 12, 12, 1))
    params = model.init(jax.random.key(12), x)["params"]
    features = ConvEmbedding(features=8, blocks=2).apply({"params": trunk_params(params)}, x)
    np.testing.assert_allclose(model.apply({"params": params}, x),
                               features @ params["head"]["kernel"] + params["head"]["bias"], rtol=1e-10)
    with pytest.raises(ValueError, match="no 'classifier' entry to drop"):
        trunk_params(params, head="classifier")


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_transfer_accuracy_scores_each_task_with_its_own_head(kind):
    tasks = separable_tasks(jax.random.key(13))
    identity = lambda params, x: x  # noqa: E731
    accuracy = transfer_accuracy(identity, None, tasks, ways=4, key=jax.random.key(14), kind=kind)
    assert accuracy.shape == (3,) and bool(jnp.all(accuracy == 1.0))
    wrong = tasks._replace(query=(tasks.query[0], jnp.roll(tasks.query[1], 3, axis=1)))  # queries mislabelled
    assert float(jnp.mean(transfer_accuracy(identity, None, wrong, ways=4, key=jax.random.key(14), kind=kind))) < 0.5
    np.testing.assert_array_equal(accuracy, transfer_accuracy(identity, None, tasks, ways=4, key=jax.random.key(14),
                                                              kind=kind))


def test_a_single_unbatched_task_is_refused_with_the_fix():
    tasks = separable_tasks(jax.random.key(15), tasks=1)
    single = Task(support=(tasks.support[0][0], tasks.support[1][0]), query=(tasks.query[0][0], tasks.query[1][0]))
    with pytest.raises(ValueError, match="add a leading task axis"):
        transfer_accuracy(lambda p, x: x, None, single, ways=4, key=jax.random.key(0))


def test_multitask_init_keeps_the_trunk_and_one_maml_step_gives_the_closed_form_head():
    import jaxmeta
    from jaxmeta.baselines import multitask_init

    with jax.enable_x64(True):
        k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
        pretrained = {"trunk": {"w": jax.random.normal(k1, (3, 4), jnp.float64)},
                      "head": {"kernel": jax.random.normal(k2, (4, 9), jnp.float64), "bias": jnp.ones(9)}}
        params = multitask_init(pretrained, 3)
        jax.tree.map(np.testing.assert_array_equal, params["trunk"], pretrained["trunk"])
        assert params["head"]["kernel"].shape == (4, 3) and not np.any(params["head"]["kernel"])

        def features(p, x):
            return jax.nn.relu(x @ p["w"])

        def apply(p, x):
            return features(p["trunk"], x) @ p["head"]["kernel"] + p["head"]["bias"]

        x = jax.random.normal(k3, (6, 3), jnp.float64)
        y = jnp.array([0, 1, 2, 0, 1, 2])
        alpha = 0.5
        learner = jaxmeta.maml(jaxmeta.classification_loss(apply), inner_lr=alpha, inner_steps=1)
        adapted = learner.adapt(params, (x, y), key=k4).params
        z = features(params["trunk"], x)
        expected = alpha / 6 * z.T @ (jax.nn.one_hot(y, 3) - 1 / 3)
        np.testing.assert_allclose(adapted["head"]["kernel"], expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(adapted["head"]["bias"], alpha * (jnp.bincount(y, length=3) / 6 - 1 / 3),
                                   atol=1e-12)
        np.testing.assert_array_equal(adapted["trunk"]["w"], params["trunk"]["w"])  # zero head: no trunk gradient


def test_multitask_init_refuses_a_head_that_is_not_a_dense_layer():
    from jaxmeta.baselines import multitask_init

    with pytest.raises(ValueError, match="must be a dense layer"):
        multitask_init({"trunk": {}, "head": {"scale": jnp.ones(3)}}, 5)
    with pytest.raises(ValueError, match="ways must be a positive int"):
        multitask_init({"head": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)}}, 0)
