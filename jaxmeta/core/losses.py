"""Turn a model's ``apply(params, inputs)`` into the library's loss signature.

Any pure function of a parameter pytree is a model here: a Flax module's
``apply`` (wrapped as ``lambda p, x: module.apply({"params": p}, x)``), a
hand-written function, a Haiku transform. Batches are ``(inputs, targets)``.
"""

import jax.numpy as jnp
import optax

from jaxmeta.core.types import ApplyFn, LossFn


def regression_loss(apply_fn: ApplyFn) -> LossFn:
    r"""Mean squared error of ``apply_fn`` on a batch ``(x, y)``.

    .. math::
        L(\theta) = \frac{1}{n} \sum_{i=1}^{n} \lVert f_\theta(x_i) - y_i \rVert^2

    (the mean is taken over every output element, as in MAML's sinusoid code).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> loss_fn = regression_loss(lambda w, x: x @ w)
      >>> loss, aux = loss_fn(jnp.ones((2, 1)), (jnp.ones((3, 2)), jnp.zeros((3, 1))),
      ...                     key=jax.random.key(0))
      >>> float(loss)
      4.0
    """

    def loss_fn(params, batch, *, key):
        del key
        inputs, targets = batch
        predictions = apply_fn(params, inputs)
        return jnp.mean((predictions - targets) ** 2), {}

    return loss_fn


def classification_loss(apply_fn: ApplyFn) -> LossFn:
    r"""Softmax cross-entropy of ``apply_fn``'s logits on ``(x, labels)``; reports accuracy.

    .. math::
        L(\theta) = -\frac{1}{n} \sum_{i=1}^{n} \log \operatorname{softmax}(f_\theta(x_i))_{y_i}

    Example:
      >>> import jax, jax.numpy as jnp
      >>> loss_fn = classification_loss(lambda w, x: x @ w)
      >>> loss, aux = loss_fn(jnp.eye(3), (jnp.eye(3), jnp.arange(3)), key=jax.random.key(0))
      >>> float(aux["accuracy"])
      1.0
    """

    def loss_fn(params, batch, *, key):
        del key
        inputs, labels = batch
        logits = apply_fn(params, inputs)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
        return loss, {"accuracy": accuracy}

    return loss_fn
