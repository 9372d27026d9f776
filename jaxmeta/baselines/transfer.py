r"""Transfer learning, the baseline every few-shot learner must beat (Chen et al., "A Closer Look at Few-shot
Classification", ICLR 2019).

A trunk pretrained as an ordinary classifier on all meta-training classes
(:mod:`jaxmeta.training.classifier`) is frozen; for each test task a new head
is trained on the support set's features :math:`z_i = f(x_i)` and scores the
queries. Two heads:

* ``"linear"`` (Chen et al.'s *Baseline*): :math:`s_c(z) = w_c^\top z + b_c`;
* ``"cosine"`` (their *Baseline++*): :math:`s_c(z) = \gamma\, g_c\,
  \frac{w_c^\top z}{\lVert w_c \rVert \lVert z \rVert}`, a cosine similarity
  with a learned gain :math:`g_c` per class (their weight-normalised class
  vectors) and a fixed scale :math:`\gamma` (2 for up to 200 classes, as in
  their code).

The head is fitted with the optimiser of their fine-tuning: 100 epochs of the
support set in minibatches of 4, SGD with learning rate 0.01, momentum 0.9
with dampening 0.9 (an exponential moving average of the gradients,
:func:`optax.ema`) and weight decay :math:`10^{-3}`, from a random
initialisation. The whole fit is one ``lax.scan``, so it is ``jax.vmap``-able
over tasks and deterministic for a key.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmeta.baselines.embedding import embedding_accuracy
from jaxmeta.core.types import ApplyFn, Params, PRNGKey, Task, check_choice, check_positive_int, example_count

HEADS = ("linear", "cosine")
"""The heads :func:`fine_tune_head` fits: Chen et al.'s Baseline (linear) and Baseline++ (cosine)."""


class Head(NamedTuple):
    """A task's classifier on features: ``weight [D, classes]``, and ``bias`` (linear) or ``gain`` (cosine)
    ``[classes]``."""

    weight: jax.Array
    offset: jax.Array


def init_head(key: PRNGKey, feature_dim: int, num_classes: int, kind: str = "linear") -> Head:
    """A random head: weights :math:`U(\\pm 1/\\sqrt{D})` (PyTorch's ``nn.Linear`` default, as in Chen et al.);
    a zero bias, or a unit gain per class."""
    _check_kind(kind)
    bound = 1.0 / jnp.sqrt(feature_dim)
    weight = jax.random.uniform(key, (feature_dim, num_classes), minval=-bound, maxval=bound)
    offset = jnp.zeros(num_classes) if kind == "linear" else jnp.ones(num_classes)
    return Head(weight, offset)


def head_logits(head: Head, features: jax.Array, kind: str = "linear", *, scale: float = 2.0) -> jax.Array:
    r"""Class scores ``[n, classes]`` of ``features [n, D]``: linear, or :math:`\gamma g_c \cos(w_c, z)`.

    Example:
      >>> import jax.numpy as jnp
      >>> head = Head(jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.ones(2))
      >>> head_logits(head, jnp.array([[3.0, 0.0]]), "cosine").round(3).tolist()  # cos 1 and 0, times the scale 2
      [[2.0, 0.0]]
    """
    _check_kind(kind)
    if kind == "linear":
        return features @ head.weight + head.offset
    z = features / (jnp.linalg.norm(features, axis=-1, keepdims=True) + 1e-5)
    w = head.weight / (jnp.linalg.norm(head.weight, axis=0, keepdims=True) + 1e-5)
    return scale * head.offset * (z @ w)


def head_optimizer(*, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 1e-3
                   ) -> optax.GradientTransformation:
    """Chen et al.'s fine-tuning SGD: weight decay, momentum with dampening equal to it (an EMA of the
    gradients, :func:`optax.ema` without debiasing), learning rate ``lr``."""
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.ema(momentum, debias=False),
                       optax.scale(-lr))


def fine_tune_head(features: jax.Array, labels: jax.Array, *, num_classes: int, key: PRNGKey,
                   kind: str = "linear", epochs: int = 100, batch_size: int = 4, scale: float = 2.0,
                   optimizer: optax.GradientTransformation | None = None) -> Head:
    r"""Fit a new head on one task's support features ``[n, D]`` and labels ``[n]`` (``0..num_classes-1``).

    Each epoch visits the support set in a new random order, in minibatches of
    ``batch_size`` (the last one smaller when ``batch_size`` does not divide
    ``n``), minimising the mean softmax cross-entropy of :func:`head_logits`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> z = 10 * jnp.array([[1.0, 0.1], [0.9, -0.1], [-1.0, 0.2], [-0.8, 0.0]]); y = jnp.array([0, 0, 1, 1])
      >>> head = fine_tune_head(z, y, num_classes=2, key=jax.random.key(0))
      >>> jnp.argmax(head_logits(head, z), -1).tolist()
      [0, 0, 1, 1]
    """
    _check_kind(kind)
    n = example_count((features, labels), "support")
    if features.ndim != 2:
        raise ValueError(f"features must be [examples, feature_dim], got shape {features.shape}; flatten or "
                         "pool the trunk's output first.")
    for name, value in (("num_classes", num_classes), ("epochs", epochs), ("batch_size", batch_size)):
        check_positive_int(value, name)
    optimizer = optimizer or head_optimizer()
    init_key, order_key = jax.random.split(key)
    head = init_head(init_key, features.shape[1], num_classes, kind)
    batches = -(-n // batch_size)
    padded = batches * batch_size

    def loss(head, index, valid):
        logits = head_logits(head, features[index], kind, scale=scale)
        per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels[index])
        return jnp.sum(jnp.where(valid, per_example, 0.0)) / jnp.sum(valid)

    def epoch(carry, epoch_key):
        order = jnp.concatenate([jax.random.permutation(epoch_key, n), jnp.zeros(padded - n, jnp.int32)])
        valid = jnp.arange(padded) < n

        def step(carry, batch):
            head, state = carry
            index, mask = batch
            updates, state = optimizer.update(jax.grad(loss)(head, index, mask), state, head)
            return (optax.apply_updates(head, updates), state), None

        plan = (order.reshape(batches, batch_size), valid.reshape(batches, batch_size))
        return jax.lax.scan(step, carry, plan)[0], None

    (head, _), _ = jax.lax.scan(epoch, (head, optimizer.init(head)), jax.random.split(order_key, epochs))
    return head


def trunk_params(classifier_params: Params, head: str = "head") -> Params:
    """The trunk of a pretrained classifier's parameters: everything but its ``head`` (a
    :class:`~jaxmeta.models.Conv4`'s trunk is a :class:`~jaxmeta.models.ConvEmbedding`'s parameters)."""
    if head not in classifier_params:
        raise ValueError(f"The classifier's parameters have no {head!r} entry to drop (they have "
                         f"{sorted(classifier_params)}); name the head with head=.")
    return {name: value for name, value in classifier_params.items() if name != head}


def multitask_init(classifier_params: Params, ways: int, *, head: str = "head") -> Params:
    r"""Multi-task pretraining as a MAML initialisation: a pretrained classifier's trunk with a zero head for
    ``ways`` classes, the :math:`\theta` that MAML-style adaptation starts from without meta-training.

    The head ``{"kernel": [D, C], "bias": [C]}`` (a :class:`~jaxmeta.models.Conv4`'s ``head``) becomes
    zeros of ``[D, ways]`` and ``[ways]``: every class starts with the same score, so the labels' order in
    a task does not matter, and one inner step of SGD with learning rate :math:`\alpha` on the support
    cross-entropy gives :math:`W = \frac{\alpha}{n} Z^\top (Y - \tfrac{1}{N})` (each class's weight the
    mean of its support features, less the overall mean, up to a factor). Evaluate it with the learner of
    a ``ways``-way model and :func:`jaxmeta.evaluate`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta.models import Conv4
      >>> pretrained = Conv4(num_classes=100, features=8).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
      >>> params = multitask_init(pretrained["params"], 5)
      >>> params["head"]["kernel"].shape, float(jnp.abs(params["head"]["kernel"]).sum())
      ((8, 5), 0.0)
    """
    if isinstance(ways, bool) or not isinstance(ways, int) or ways < 1:
        raise ValueError(f"ways must be a positive int, got {ways!r}.")
    trunk = trunk_params(classifier_params, head)
    old = classifier_params[head]
    if set(old) != {"kernel", "bias"} or getattr(old["kernel"], "ndim", None) != 2:
        raise ValueError(f"The head {head!r} must be a dense layer {{'kernel': [D, C], 'bias': [C]}}; got "
                         f"{ {name: getattr(v, 'shape', None) for name, v in old.items()} }.")
    kernel = old["kernel"]
    return {**trunk, head: {"kernel": jnp.zeros((kernel.shape[0], ways), kernel.dtype),
                            "bias": jnp.zeros((ways,), old["bias"].dtype)}}


def transfer_accuracy(embed_fn: ApplyFn, params: Params, tasks: Task, *, ways: int, key: PRNGKey,
                      kind: str = "linear", scale: float = 2.0, chunk_size: int | None = None,
                      **fine_tune) -> jax.Array:
    r"""Per-task query accuracy ``[tasks]`` of a frozen trunk with a head fitted on each task's support set.

    ``embed_fn(params, images) -> [n, D]`` features (e.g. a
    :class:`~jaxmeta.models.ConvEmbedding`'s ``apply`` with :func:`trunk_params`
    of a pretrained classifier); ``tasks`` is a batch of :class:`~jaxmeta.Task`
    with labels ``0..ways-1``. The support and the query images are embedded
    separately, each as a batch of its own (batch-statistics norms then see one
    set at a time, as the meta-learners' tasks do). ``scale`` is the cosine
    head's :math:`\gamma`; ``chunk_size`` as in :func:`embedding_accuracy`; ``fine_tune`` goes to
    :func:`fine_tune_head`. Feed
    the result to :func:`jaxmeta.confidence_interval`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta import Task
      >>> x = 10 * jnp.array([[[1.0, 0.0], [0.0, 1.0]]]); y = jnp.array([[0, 1]])  # one 2-way 1-shot task
      >>> tasks = Task(support=(x, y), query=(0.9 * x, y))
      >>> transfer_accuracy(lambda p, x: x, None, tasks, ways=2, key=jax.random.key(0)).tolist()
      [1.0]
    """
    _check_kind(kind)

    def predict(support_z, support_y, query_z, key):
        head = fine_tune_head(support_z, support_y, num_classes=ways, key=key, kind=kind, scale=scale, **fine_tune)
        return jnp.argmax(head_logits(head, query_z, kind, scale=scale), axis=-1)

    return embedding_accuracy(embed_fn, params, tasks, predict, key=key, chunk_size=chunk_size)


def _check_kind(kind: str) -> None:
    check_choice(kind, HEADS, "head")
