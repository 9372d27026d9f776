"""Learning to reweight examples: the weights against a direct statement of Ren et al.'s formula, the
degenerate cases, the class-balancing baseline and the weighted training step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmeta.bilevel import example_weights, inverse_frequency_weights, make_weighted_step, normalised_positive_part


def softmax_loss(params, batch):
    """Per-example cross-entropy of a linear softmax classifier."""
    x, y = batch
    logits = x @ params["w"] + params["b"]
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(5, 3))), "b": jnp.asarray(rng.normal(size=3))}
    train = (jnp.asarray(rng.normal(size=(12, 5))), jnp.asarray(rng.integers(0, 3, 12)))
    val = (jnp.asarray(rng.normal(size=(4, 5))), jnp.asarray(rng.integers(0, 3, 4)))
    return params, train, val


def test_weights_are_the_clipped_normalised_gradient_inner_products(data):
    """u_i = lr <grad l_i(theta), grad L_val(theta)>, w = max(u, 0) / sum max(u, 0)."""
    params, train, val = data
    lr = 0.3
    flat = lambda tree: np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(tree)])  # noqa: E731
    examples = [jax.tree.map(lambda a, i=i: a[i:i + 1], train) for i in range(12)]
    per_example = [flat(jax.grad(lambda p, e=e: softmax_loss(p, e)[0])(params)) for e in examples]
    val_grad = flat(jax.grad(lambda p: jnp.mean(softmax_loss(p, val)))(params))
    u = lr * np.array([g @ val_grad for g in per_example])
    expected = np.maximum(u, 0) / np.maximum(u, 0).sum()
    result = example_weights(softmax_loss, params, train, val, lr=lr)
    np.testing.assert_allclose(result.scores, u, rtol=1e-10)
    np.testing.assert_allclose(result.weights, expected, rtol=1e-10)
    assert 0 < np.count_nonzero(expected) < 12  # the check sees both kept and dropped examples
    np.testing.assert_allclose(result.val_loss, jnp.mean(softmax_loss(params, val)), rtol=1e-12)


def test_no_positive_score_gives_zero_weights_not_nan():
    loss = lambda w, batch: (batch[0] * w - batch[1]) ** 2  # noqa: E731
    val = (jnp.array([1.0, 2.0]), jnp.array([3.0, 6.0]))  # w = 3 fits the validation set: its gradient is 0
    result = example_weights(loss, jnp.array(3.0), (jnp.array([1.0, 1.0]), jnp.array([0.0, 5.0])), val, lr=0.1)
    np.testing.assert_array_equal(result.weights, [0.0, 0.0])
    np.testing.assert_array_equal(normalised_positive_part(jnp.array([-1.0, -2.0])), [0.0, 0.0])


def test_an_empty_validation_set_is_refused(data):
    params, train, _ = data
    with pytest.raises(ValueError, match="validation set is empty"):
        example_weights(softmax_loss, params, train, (jnp.zeros((0, 5)), jnp.zeros(0, int)), lr=0.1)


def test_inverse_frequency_gives_every_present_class_the_same_total_weight():
    labels = jnp.array([0, 0, 0, 0, 2, 2, 1])
    weights = inverse_frequency_weights(labels, 3)
    totals = [float(weights[labels == k].sum()) for k in range(3)]
    np.testing.assert_allclose(totals, [1 / 3] * 3, rtol=1e-12)
    with pytest.raises(ValueError, match="non-empty"):
        inverse_frequency_weights(jnp.zeros(0, int), 3)


def test_weighted_steps(data):
    params, train, val = data
    optimizer = optax.sgd(0.3)
    state = optimizer.init(params)
    uniform = jax.jit(make_weighted_step(softmax_loss, optimizer, weighting="uniform"))
    new, _, weights = uniform(params, state, train, val)
    plain = jax.tree.map(lambda p, g: p - 0.3 * g, params, jax.grad(lambda p: jnp.mean(softmax_loss(p, train)))(params))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), new, plain)
    learned = jax.jit(make_weighted_step(softmax_loss, optimizer, weighting="learned", lr=0.3))
    _, _, weights = learned(params, state, train, val)
    np.testing.assert_allclose(weights, example_weights(softmax_loss, params, train, val, lr=0.3).weights)
    balanced = jax.jit(make_weighted_step(softmax_loss, optimizer, weighting="inverse-frequency", num_classes=3))
    new, _, weights = balanced(params, state, train, val)
    expected = inverse_frequency_weights(train[1], 3)
    assert not np.allclose(expected, 1 / 12)  # the batch is imbalanced, so the weights are not uniform
    np.testing.assert_allclose(weights, expected)
    manual = jax.tree.map(lambda p, g: p - 0.3 * g, params,
                          jax.grad(lambda p: jnp.sum(expected * softmax_loss(p, train)))(params))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), new, manual)
    with pytest.raises(ValueError, match="Unknown weighting"):
        make_weighted_step(softmax_loss, optimizer, weighting="focal")
    with pytest.raises(ValueError, match="num_classes"):
        make_weighted_step(softmax_loss, optimizer, weighting="inverse-frequency")


def test_train_weighted_is_deterministic_for_a_key_and_learns():
    from jaxmeta.bilevel import train_weighted
    from jaxmeta.data.digits import imbalanced_pair, load_digits
    from jaxmeta.models import MLP, functional
    from jaxmeta.training.classifier import classify_accuracy

    split = imbalanced_pair(load_digits(), ratio=0.9, train_size=100)
    model = MLP((16, 2))
    apply = functional(model)
    params = model.init(jax.random.key(0), split.train.images[:1])["params"]
    runs = [train_weighted(apply, params, tuple(split.train), tuple(split.validation), weighting=w, steps=60,
                           lr=0.1, batch_size=20, key=jax.random.key(1), num_classes=2)
            for w in ("learned", "learned", "inverse-frequency")]
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), runs[0], runs[1])
    for trained in runs:
        assert classify_accuracy(apply, trained, *split.test) > 0.75
