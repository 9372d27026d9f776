r"""Ordinary supervised training on the meta-training loop: the baselines' classifiers and derived architectures.

A classifier's training step is written with the meta step's signature,
``step(state, batch, key) -> (state, metrics)`` over a
:class:`~jaxmeta.MetaTrainState` whose ``meta_params`` are the model's
parameters, so :func:`jaxmeta.fit` and :func:`jaxmeta.training.train` run it
(progress bar, time budget, atomic checkpoints and exact resume) and
:class:`ImageBatches` is its task source:

.. math::
    \theta \leftarrow \theta + \operatorname{update}\Big(\nabla_\theta \frac{1}{B} \sum_{i \in \mathcal{B}}
    -\log \operatorname{softmax}(f_\theta(x_i))_{y_i}\Big).
"""

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxmeta.core.losses import classification_loss
from jaxmeta.core.meta_step import MetaTrainState
from jaxmeta.core.types import ApplyFn, Params, PRNGKey, example_count


@flax.struct.dataclass
class ImageBatches:
    """A jit-able source of ``(images, labels)`` minibatches drawn with replacement; a pytree holding the arrays
    on the device, so :func:`jaxmeta.fit` passes it as data.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> source = ImageBatches.create(jnp.zeros((6, 4, 4, 1)), jnp.arange(6), batch_size=3)
      >>> [a.shape for a in source(jax.random.key(0))]
      [(3, 4, 4, 1), (3,)]
    """

    images: jax.Array
    labels: jax.Array
    batch_size: int = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, images: Any, labels: Any, *, batch_size: int, name: str = "training") -> "ImageBatches":
        """From arrays (NumPy or JAX); a clear error for an empty set, a label count mismatch or a bad batch size."""
        example_count((images, labels), name)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        return cls(jnp.asarray(images), jnp.asarray(labels), batch_size)

    def __call__(self, key: PRNGKey) -> tuple[jax.Array, jax.Array]:
        index = jax.random.randint(key, (self.batch_size,), 0, self.images.shape[0])
        return self.images[index], self.labels[index]


def init_classifier(params: Params, optimizer: optax.GradientTransformation) -> MetaTrainState:
    """A classifier's training state: step 0, its parameters, the optimizer's fresh state."""
    return MetaTrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params))


def make_classifier_step(apply_fn: ApplyFn, optimizer: optax.GradientTransformation) -> Callable:
    """One optax step on the softmax cross-entropy of ``apply_fn``'s logits, with the meta step's signature.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta import fit
      >>> x = jnp.array([[1.0], [-1.0]]); y = jnp.array([1, 0])
      >>> step = make_classifier_step(lambda w, x: x @ w, optax.sgd(0.5))
      >>> state = init_classifier(jnp.zeros((1, 2)), optax.sgd(0.5))
      >>> result = fit(step, state, ImageBatches.create(x, y, batch_size=2), key=jax.random.key(0), num_steps=20,
      ...              progress=False)
      >>> float(result.history["accuracy"][-1])
      1.0
    """
    return make_loss_step(classification_loss(apply_fn), optimizer)


def make_loss_step(loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """One optax step on ``loss_fn(params, batch, *, key) -> (loss, aux)``, with the meta step's signature
    ``step(state, batch, key) -> (state, {"loss", **aux})`` (the classifier's and the contrastive embedding's)."""

    def step(state, batch, key):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.meta_params, batch, key=key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.meta_params)
        return (MetaTrainState(state.step + 1, optax.apply_updates(state.meta_params, updates), opt_state),
                {"loss": loss, **aux})

    return step


def classify_accuracy(apply_fn: ApplyFn, params: Params, images: Any, labels: Any, *, batch_size: int = 500) -> float:
    """The accuracy of ``apply_fn``'s argmax over a labelled set, in batches of ``batch_size`` (each normalised by
    batch-statistics layers as a batch of its own)."""
    apply = jax.jit(apply_fn)
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = apply(params, jnp.asarray(images[start:start + batch_size]))
        correct += int(jnp.sum(jnp.argmax(logits, -1) == jnp.asarray(labels[start:start + batch_size])))
    return correct / len(images)
