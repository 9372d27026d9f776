r"""Episodes as sequences: the one-shot task of Santoro et al. 2016 for any recurrent core.

An episode is a sequence of images :math:`x_1..x_T` of a few classes whose
labels are drawn afresh each episode; at step :math:`t` the model sees
:math:`(x_t, y_{t-1})` — the label of the *previous* image — and must
predict :math:`y_t`. It can only be right on a class's first presentation by
chance; from the second on, it must have bound the earlier image to the label
that arrived one step later. The loss is the cross-entropy summed over the
steps (averaged here):

.. math::
    L = -\frac{1}{T} \sum_{t=1}^{T} \log p_\theta(y_t \mid x_{1..t}, y_{0..t-1}).

:class:`SequenceClassifier` runs a core (:class:`~jaxmeta.memory.MANNCell`,
:class:`~jaxmeta.memory.NTMCell` or the plain :class:`LSTMCore` baseline) over
the episode with ``nn.scan``; :func:`memory_learner` makes it a
:class:`jaxmeta.MetaLearner` (the gradient of the episode loss), so the meta
step, training loop and checkpoints of the library apply. An episode is a
:class:`jaxmeta.Task` with an empty support set and the sequence as the query
set, ``Task(support=(), query=(images [T, H, W, 1], labels [T]))``: every
step is a query on the steps before it (see :func:`jaxmeta.data.sequence_tasks`).

Accuracy is reported by *presentation*: :func:`presentation_index` numbers
the occurrences of each class, and the paper's Table 1 gives the accuracy on
the 1st, 2nd, 3rd, 5th and 10th.
"""

from typing import NamedTuple, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.learner import MetaLearner, ModelMetrics, direct_learner
from jaxmeta.core.types import Params, Task
from jaxmeta.models.conv import images_as_float

PRESENTATIONS = (1, 2, 3, 5, 10)
"""The presentations of Santoro et al. 2016, Table 1."""


class LSTMCore(nn.Module):
    """The LSTM baseline in the interface of the memory cells:
    ``(state, x) -> (state, (h, ()))``, with :meth:`~jaxmeta.memory.LSTMCore.initial_state`."""

    features: int = 200

    def initial_state(self):
        """The LSTM's state at the start of an episode: zero cell and hidden vectors."""
        zeros = jnp.zeros((self.features,))
        return zeros, zeros

    @nn.compact
    def __call__(self, state, inputs):
        state, hidden = nn.OptimizedLSTMCell(self.features, name="lstm")(state, inputs)
        return state, (hidden, ())


def previous_labels(labels: jax.Array, num_classes: int) -> jax.Array:
    """``[T, num_classes]``: the one-hot label of step ``t - 1`` at step ``t``, zeros at the first step."""
    one_hot = jax.nn.one_hot(labels, num_classes)
    return jnp.concatenate([jnp.zeros_like(one_hot[:1]), one_hot[:-1]], axis=0)


def presentation_index(labels: jax.Array) -> jax.Array:
    """``[T]``: how many earlier steps had the same label (0 on a class's first presentation).

    Example:
      >>> import jax.numpy as jnp
      >>> presentation_index(jnp.array([2, 0, 2, 2, 0]))
      Array([0, 0, 1, 2, 1], dtype=int32)
    """
    same = labels[:, None] == labels[None, :]
    earlier = jnp.tril(jnp.ones(same.shape, bool), k=-1)
    return jnp.sum(same & earlier, axis=1).astype(jnp.int32)


class SequenceClassifier(nn.Module):
    """Logits ``[T, num_classes]`` for an episode ``(images [T, ...], labels [T])``, and the core's traces.

    Attributes:
      core: a recurrent cell with ``initial_state()`` and ``(state, x) -> (state, (output, trace))``.
      num_classes: the classes of an episode (labels ``0..num_classes-1``).

    ``uint8`` images are scaled to [0, 1] (``jaxmeta.models.conv.images_as_float``),
    so episodes sampled as stored and as ``float32`` give the same predictions.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = SequenceClassifier(LSTMCore(8), num_classes=3)
      >>> images, labels = jnp.zeros((6, 4, 4, 1)), jnp.array([0, 1, 2, 0, 1, 2])
      >>> params = model.init(jax.random.key(0), images, labels)["params"]
      >>> logits, traces = model.apply({"params": params}, images, labels)
      >>> logits.shape
      (6, 3)
    """

    core: nn.Module
    num_classes: int

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array):
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"images {images.shape} and labels {labels.shape} must have the same number of steps.")
        pixels = images_as_float(images).reshape(images.shape[0], -1)  # uint8 -> [0, 1], as the samplers' float32
        if not jnp.issubdtype(pixels.dtype, jnp.floating):
            pixels = pixels.astype(jnp.float32)
        inputs = jnp.concatenate([pixels, previous_labels(labels, self.num_classes).astype(pixels.dtype)], axis=-1)
        scan = nn.scan(lambda core, state, x: core(state, x), variable_broadcast="params",
                       split_rngs={"params": False})
        _, (outputs, traces) = scan(self.core, self.core.initial_state(), inputs)
        return nn.Dense(self.num_classes, name="classifier")(outputs), traces

    def episode_loss(self, images: jax.Array, labels: jax.Array):
        """The mean cross-entropy over the steps, and the logits."""
        logits, _ = self(images, labels)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits


def episode_metrics(model: SequenceClassifier, params: Params, task: Task) -> tuple[jax.Array, dict]:
    """The episode loss of one task and ``{"loss", "accuracy", "presentation_1", ...}``.

    ``presentation_k`` is the accuracy on the ``k``-th presentation of the
    classes, for the ``k`` of :data:`PRESENTATIONS` that the episode reaches.
    """
    images, labels = task.query
    loss, logits = cast(tuple[jax.Array, jax.Array],
                        model.apply({"params": params}, images, labels, method="episode_loss"))
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    index = presentation_index(labels)
    metrics = {"loss": loss, "accuracy": correct.mean()}
    for k in PRESENTATIONS:
        if k <= labels.shape[0]:
            at_k = (index == k - 1).astype(jnp.float32)
            metrics[f"presentation_{k}"] = jnp.sum(correct * at_k) / jnp.maximum(at_k.sum(), 1.0)
    return loss, metrics


def memory_learner(model: SequenceClassifier) -> MetaLearner:
    r"""A :class:`~jaxmeta.MetaLearner` whose task gradient is :math:`\nabla_\theta L` of the episode.

    Example:
      >>> import jax, jax.numpy as jnp, optax, jaxmeta
      >>> model = SequenceClassifier(LSTMCore(8), num_classes=2)
      >>> episodes = jaxmeta.Task((), (jnp.zeros((3, 4, 4, 4, 1)), jnp.zeros((3, 4), jnp.int32)))
      >>> params = model.init(jax.random.key(0), *jax.tree.map(lambda x: x[0], episodes.query))["params"]
      >>> learner = memory_learner(model)
      >>> state = jaxmeta.init_state(learner, optax.adam(1e-3), params)
      >>> state, metrics = jaxmeta.make_meta_step(learner, optax.adam(1e-3))(state, episodes, jax.random.key(1))
      >>> sorted(metrics)[:3]
      ['accuracy', 'loss', 'presentation_1']
    """

    return direct_learner(
        ModelMetrics(episode_metrics, model),
        no_inner_loop="A memory model has no inner loop: it learns within the episode through its state. "
                      "Score episodes with jaxmeta.evaluate(learner, params, episodes, key=...), without steps "
                      "or loss_fn.",
    )


class EpisodeTrace(NamedTuple):
    """What :func:`trace_episode` records: ``logits [T, C]`` and the core's ``(read_weights, write_weights)``
    per step (``[T, heads, rows]`` each; empty for the LSTM)."""

    logits: jax.Array
    read_weights: jax.Array
    write_weights: jax.Array


def trace_episode(model: SequenceClassifier, params: Params, images: jax.Array, labels: jax.Array) -> EpisodeTrace:
    """Play one episode and return the predictions and the memory's read and write weights at every step."""
    logits, traces = model.apply({"params": params}, images, labels)
    if not traces:
        empty = jnp.zeros((labels.shape[0], 0, 0))
        return EpisodeTrace(logits, empty, empty)
    return EpisodeTrace(logits, *traces)
