"""Sequence episodes through a recurrent core: label shifting, presentation accuracy, gradients through
the memory (finite differences, float64), the MetaLearner interface."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmeta
from jaxmeta.memory import (LSTMCore, MANNCell, NTMCell, SequenceClassifier, episode_metrics,
                            memory_learner, presentation_index, previous_labels, trace_episode)
from gradcheck import directional_derivatives

RNG = np.random.default_rng(3)
CORES = {
    "lstm": lambda: LSTMCore(6),
    "mann": lambda: MANNCell(controller_features=6, rows=5, width=3, read_heads=2),
    "ntm": lambda: NTMCell(controller_features=6, rows=5, width=3),
}


def episode(ways=3, instances=3, size=4):
    labels = np.repeat(np.arange(ways), instances)[RNG.permutation(ways * instances)]
    return RNG.normal(size=(ways * instances, size, size, 1)), labels


def test_labels_arrive_one_step_late():
    labels = np.array([2, 0, 1, 2])
    np.testing.assert_array_equal(previous_labels(labels, 3), [[0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]])


def test_presentation_index_counts_earlier_occurrences():
    labels = RNG.integers(0, 4, size=30)
    expected = [np.sum(labels[:t] == labels[t]) for t in range(30)]
    np.testing.assert_array_equal(presentation_index(labels), expected)


def test_presentation_accuracies_match_their_definition():
    model = SequenceClassifier(LSTMCore(6), num_classes=3)
    images, labels = episode(ways=3, instances=4)
    params = jax.jit(model.init)(jax.random.key(0), images, labels)["params"]
    loss, metrics = episode_metrics(model, params, jaxmeta.Task((), (images, labels)))
    logits, _ = model.apply({"params": params}, images, labels)
    correct = np.argmax(logits, -1) == labels
    index = np.array([np.sum(labels[:t] == labels[t]) for t in range(12)])
    for k in (1, 2, 3):
        np.testing.assert_allclose(metrics[f"presentation_{k}"], correct[index == k - 1].mean())
    assert "presentation_5" in metrics and float(metrics["presentation_5"]) == 0.0  # no 5th presentation: empty
    np.testing.assert_allclose(metrics["accuracy"], correct.mean())
    log_p = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
    np.testing.assert_allclose(loss, -np.mean(np.take_along_axis(np.asarray(log_p), labels[:, None], 1)), rtol=1e-12)


@pytest.mark.parametrize("core", sorted(CORES))
def test_gradients_match_finite_differences(core):
    model = SequenceClassifier(CORES[core](), num_classes=3)
    images, labels = episode()
    params = jax.tree.map(lambda x: x.astype(jnp.float64),
                          jax.jit(model.init)(jax.random.key(1), images, labels)["params"])
    task = jaxmeta.Task((), (jnp.asarray(images), jnp.asarray(labels)))
    autodiff, numeric = directional_derivatives(lambda p: episode_metrics(model, p, task)[0], params,
                                                jax.random.key(2))
    np.testing.assert_allclose(autodiff, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("core", ["mann", "ntm"])
def test_the_loss_depends_on_what_is_written_to_and_read_from_memory(core):
    """Parameters that act only through the memory (keys, write gates, heads) get non-zero gradients."""
    model = SequenceClassifier(CORES[core](), num_classes=3)
    images, labels = episode()
    params = jax.jit(model.init)(jax.random.key(1), images, labels)["params"]
    grads, _ = jax.jit(memory_learner(model).task_grad)(params, jaxmeta.Task((), (images, labels)), jax.random.key(0))
    memory_only = ["keys", "write_gates", "strengths"] if core == "mann" else ["write_heads", "erase_add", "read_heads"]
    for name in memory_only:
        norm = optax.tree.norm(grads["core"][name])
        assert np.isfinite(norm) and norm > 1e-6, name


@pytest.mark.long
def test_a_meta_step_on_a_batch_of_episodes_and_the_traces():
    model = SequenceClassifier(CORES["mann"](), num_classes=3)
    images, labels = zip(*(episode() for _ in range(4)))
    episodes = jaxmeta.Task((), (np.stack(images), np.stack(labels)))
    params = jax.jit(model.init)(jax.random.key(0), images[0], labels[0])["params"]
    learner = memory_learner(model)
    state = jaxmeta.init_state(learner, optax.adam(1e-2), params)
    step = jaxmeta.make_meta_step(learner, optax.adam(1e-2))
    first = jaxmeta.evaluate(learner, state.meta_params, episodes, key=jax.random.key(0), chunk_size=3)
    for i in range(30):
        state, metrics = step(state, episodes, jax.random.key(i))
    after = jaxmeta.evaluate(learner, state.meta_params, episodes, key=jax.random.key(0), chunk_size=3)
    assert first.losses.shape == (4, 1) and "presentation_1" in first.metrics
    np.testing.assert_allclose(first.losses[0, 0], episode_metrics(model, params, jax.tree.map(
        lambda x: x[0], episodes))[0], rtol=1e-12)
    assert float(after.losses.mean()) < float(first.losses.mean())

    trace = trace_episode(model, state.meta_params, images[0], labels[0])
    assert trace.logits.shape == (9, 3) and trace.read_weights.shape == (9, 2, 5)
    np.testing.assert_allclose(trace.read_weights.sum(-1), 1.0, rtol=1e-10)
    lstm = SequenceClassifier(LSTMCore(4), num_classes=3)
    lstm_params = lstm.init(jax.random.key(0), images[0], labels[0])["params"]
    assert trace_episode(lstm, lstm_params, images[0], labels[0]).read_weights.size == 0


def test_clear_errors():
    model = SequenceClassifier(LSTMCore(4), num_classes=3)
    images, labels = episode()
    with pytest.raises(ValueError, match="same number of steps"):
        model.init(jax.random.key(0), images, labels[:-1])
    with pytest.raises(TypeError, match="no inner loop"):
        memory_learner(model).adapt({}, (), key=jax.random.key(0))


def test_stored_uint8_images_are_scaled_like_the_float_samples():
    """Episodes sampled as stored (uint8, as the benchmark's test episodes) and as float32 in [0, 1]
    (as its training sampler) must look the same to the model."""
    model = SequenceClassifier(LSTMCore(4), num_classes=3)
    pixels = jax.random.randint(jax.random.key(1), (9, 4, 4, 1), 0, 256).astype(jnp.uint8)
    labels = jnp.arange(9) % 3
    params = model.init(jax.random.key(0), pixels.astype(jnp.float32) / 255, labels)["params"]
    stored, _ = model.apply({"params": params}, pixels, labels)
    scaled, _ = model.apply({"params": params}, pixels.astype(jnp.float32) / 255, labels)
    np.testing.assert_allclose(stored, scaled, rtol=1e-5, atol=1e-6)
