r"""Learning to reweight examples (Ren, Zeng, Yang and Urtasun, ICML 2018): weights from a one-step lookahead.

Each training example :math:`i` gets a weight :math:`\epsilon_i` in the
training loss; one SGD step on the weighted loss,

.. math::
    \hat\theta(\epsilon) = \theta - \alpha \nabla_\theta \sum_i \epsilon_i\, l_i(\theta),

is judged on a small clean validation set, and the weights are the negative
hypergradient at :math:`\epsilon = 0`, clipped and normalised:

.. math::
    u_i = -\frac{\partial L_{\text{val}}(\hat\theta(\epsilon))}{\partial \epsilon_i}\Big|_{\epsilon = 0}
        = \alpha \big\langle \nabla_\theta l_i(\theta), \nabla_\theta L_{\text{val}}(\theta) \big\rangle,
    \qquad
    w_i = \frac{\max(u_i, 0)}{\sum_j \max(u_j, 0)}

(all zero when no :math:`u_j` is positive). An example whose gradient points
the way the validation gradient does is kept; one that would pull the model
away from the validation set (a mislabelled or over-represented example) is
dropped. The hypergradient is :func:`jaxmeta.bilevel.unrolled` with one step
and the weights as outer variables: nothing here differentiates by hand.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmeta.bilevel.hypergradient import BilevelProblem, unrolled
from jaxmeta.core.types import Batch, Params, PRNGKey, check_choice, example_count
from jaxmeta.training.classifier import ImageBatches

PerExampleLoss = Callable[[Params, Batch], jax.Array]
"""``per_example_loss(params, batch) -> [n]``: one loss per example of the batch."""


class ExampleWeights(NamedTuple):
    """What :func:`example_weights` returns.

    Attributes:
      weights: ``[n]`` non-negative weights summing to 1 (or all zero).
      scores: ``[n]`` the unclipped :math:`u_i`.
      val_loss: the validation loss at :math:`\\theta` (the lookahead from :math:`\\epsilon = 0` does not move).
    """

    weights: jax.Array
    scores: jax.Array
    val_loss: jax.Array


def example_weights(per_example_loss: PerExampleLoss, params: Params, batch: Batch, val_batch: Batch, *,
                    lr: float, key: PRNGKey | None = None) -> ExampleWeights:
    r"""Ren et al.'s weights of the examples of ``batch`` for one training step of size ``lr``.

    Args:
      per_example_loss: ``per_example_loss(params, batch) -> [n]``.
      params: the current parameters :math:`\theta`.
      batch: the training examples to weigh (``n`` of them).
      val_batch: the clean validation examples; :math:`L_{\text{val}}` is their mean loss.
      lr: :math:`\alpha`, the lookahead step (the training step's learning rate).
      key: unused by the deterministic lookahead; accepted for a uniform signature.

    Returns:
      :class:`ExampleWeights`.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda w, batch: (batch[0] * w - batch[1]) ** 2       # fit y = w x
      >>> train = (jnp.array([1.0, 1.0]), jnp.array([2.0, -2.0]))      # the second label is flipped
      >>> val = (jnp.array([1.0]), jnp.array([2.0]))
      >>> example_weights(loss, jnp.array(0.0), train, val, lr=0.1).weights.tolist()
      [1.0, 0.0]
    """
    n = example_count(batch, "training")
    example_count(val_batch, "validation")
    problem = BilevelProblem(
        inner_loss=lambda theta, eps, b, *, key: (jnp.sum(eps * per_example_loss(theta, b)), {}),
        outer_loss=lambda theta, eps, b, *, key: (jnp.mean(per_example_loss(theta, b)), {}),
    )
    eps = jnp.zeros((n,), jnp.result_type(*jax.tree.leaves(params)))
    result = unrolled(problem, steps=1, lr=lr)(eps, params, batch, val_batch,
                                               jax.random.key(0) if key is None else key)
    scores = -result.grad
    return ExampleWeights(normalised_positive_part(scores), scores, result.loss)


def normalised_positive_part(scores: jax.Array) -> jax.Array:
    r""":math:`\max(u, 0) / \sum \max(u, 0)`, and zeros (not NaN) where no score is positive."""
    positive = jnp.maximum(scores, 0.0)
    total = jnp.sum(positive)
    return positive / jnp.where(total > 0, total, 1.0)


def inverse_frequency_weights(labels: jax.Array, num_classes: int) -> jax.Array:
    r"""The class-balancing baseline: :math:`w_i \propto 1 / n_{y_i}`, normalised to sum to 1.

    Example:
      >>> import jax.numpy as jnp
      >>> [round(w, 4) for w in inverse_frequency_weights(jnp.array([0, 0, 0, 1]), 2).tolist()]  # half per class
      [0.1667, 0.1667, 0.1667, 0.5]
    """
    labels = jnp.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] == 0:
        raise ValueError(f"labels must be a non-empty vector of class indices, got shape {labels.shape}.")
    counts = jnp.bincount(labels, length=num_classes)
    weights = 1.0 / counts[labels]
    return weights / jnp.sum(weights)


WEIGHTINGS = ("uniform", "inverse-frequency", "learned")
"""The example weightings :func:`make_weighted_step` knows: plain training, class balancing, Ren et al."""


def make_weighted_step(per_example_loss: PerExampleLoss, optimizer: optax.GradientTransformation, *,
                       weighting: str, lr: float | None = None, num_classes: int | None = None) -> Callable:
    r"""One training step on a weighted loss :math:`\sum_i w_i l_i(\theta)`, the weights chosen by ``weighting``.

    ``step(params, opt_state, batch, val_batch) -> (params, opt_state, weights)``, a pure function to
    ``jax.jit``. ``"uniform"``: :math:`w_i = 1/n` (plain training); ``"inverse-frequency"``:
    :func:`inverse_frequency_weights` of the labels ``batch[1]`` (needs ``num_classes``); ``"learned"``:
    :func:`example_weights` with lookahead step ``lr`` (the paper uses the training learning rate).
    ``val_batch`` is read only by ``"learned"``.
    """
    check_choice(weighting, WEIGHTINGS, "weighting")
    if weighting == "learned" and lr is None:
        raise ValueError("weighting='learned' needs lr=, the lookahead step (the training learning rate).")
    if weighting == "inverse-frequency" and num_classes is None:
        raise ValueError("weighting='inverse-frequency' needs num_classes=.")

    def weights_of(params, batch, val_batch):
        if weighting == "uniform":
            n = example_count(batch, "training")
            return jnp.full((n,), 1.0 / n)
        if weighting == "inverse-frequency":
            return inverse_frequency_weights(batch[1], num_classes)
        return example_weights(per_example_loss, params, batch, val_batch, lr=lr).weights

    def step(params, opt_state, batch, val_batch):
        weights = jax.lax.stop_gradient(weights_of(params, batch, val_batch))
        grads = jax.grad(lambda p: jnp.sum(weights * per_example_loss(p, batch)))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, weights

    return step


def per_example_cross_entropy(apply_fn: Callable[[Params, jax.Array], jax.Array]) -> PerExampleLoss:
    """The softmax cross-entropy of each example of ``(inputs, labels)`` under ``apply_fn``'s logits."""
    def loss(params, batch):
        inputs, labels = batch
        return optax.softmax_cross_entropy_with_integer_labels(apply_fn(params, inputs), labels)

    return loss


def train_weighted(apply_fn: Callable[[Params, jax.Array], jax.Array], params: Params, train: Batch,
                   validation: Batch, *, weighting: str, steps: int, lr: float, batch_size: int, key: PRNGKey,
                   momentum: float = 0.9, num_classes: int | None = None) -> Params:
    r"""Train a classifier for ``steps`` SGD-with-momentum steps on example-weighted minibatches.

    Each step draws ``batch_size`` training examples (with replacement) and
    weighs them by ``weighting`` (:data:`WEIGHTINGS`); ``"learned"`` uses the
    whole (small, clean) ``validation`` set for its lookahead, as Ren et al.
    do. ``train`` and ``validation`` are ``(inputs, labels)``; minibatches come
    from :class:`~jaxmeta.training.ImageBatches`. The steps run as one compiled
    ``lax.scan`` rather than through :func:`jaxmeta.fit` (a benchmark trains
    hundreds of these small models, and a per-step host loop would dominate);
    deterministic for a key.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([[1.0], [-1.0], [2.0], [-2.0]]); y = jnp.array([1, 0, 1, 0])
      >>> apply = lambda w, x: x @ w
      >>> w = train_weighted(apply, jnp.zeros((1, 2)), (x, y), (x, y), weighting="learned", steps=50, lr=0.1,
      ...                    batch_size=4, key=jax.random.key(0))
      >>> from jaxmeta.training.classifier import classify_accuracy
      >>> classify_accuracy(apply, w, x, y)
      1.0
    """
    optimizer = optax.sgd(lr, momentum=momentum)
    step = make_weighted_step(per_example_cross_entropy(apply_fn), optimizer, weighting=weighting, lr=lr,
                              num_classes=num_classes)
    batches = ImageBatches.create(*train, batch_size=batch_size)
    validation = jax.tree.map(jnp.asarray, validation)
    example_count(validation, "validation")

    @jax.jit
    def run(params, opt_state, key):
        def body(carry, step_key):
            params, opt_state, _ = step(*carry, batches(step_key), validation)
            return (params, opt_state), None

        return jax.lax.scan(body, (params, opt_state), jax.random.split(key, steps))[0][0]

    return run(params, optimizer.init(params), key)
