r"""Differentiable architecture search on an image classification split, and how its hypergradients compare.

The search is DARTS's (Liu, Simonyan and Yang, ICLR 2019, section 2.3 and
appendix A.1) on a :class:`~jaxmeta.bilevel.DartsNetwork`: the weights
:math:`w` train on minibatches of the training half, the architecture
:math:`\alpha` on minibatches of the validation half, alternating
(:func:`~jaxmeta.bilevel.make_alternating_step`), with the paper's optimizers:

* weights: SGD with momentum 0.9, learning rate 0.025 cosine-annealed to
  0.001, weight decay :math:`3 \cdot 10^{-4}`, gradient norm clipped at 5;
* architecture: Adam with learning rate :math:`3 \cdot 10^{-4}`,
  :math:`\beta = (0.5, 0.999)`, weight decay :math:`10^{-3}`.

The search step has the meta step's signature, so :func:`jaxmeta.training.train`
runs it with checkpoints, resume, a time budget and a progress bar;
:class:`SplitBatches` is its task source. Minibatches are drawn with
replacement (the paper walks through epochs).

:func:`compare_hypergradients` evaluates several hypergradients at one state on
the same batches and reports each one's cosine similarity with a reference.
"""

from collections.abc import Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxmeta.bilevel.alternating import init_alternating, make_alternating_step
from jaxmeta.bilevel.darts import DartsNetwork, init_architecture
from jaxmeta.bilevel.hypergradient import BilevelProblem, HypergradientFn
from jaxmeta.core.hessian import tree_vdot
from jaxmeta.core.losses import classification_loss
from jaxmeta.core.meta_step import MetaTrainState
from jaxmeta.core.types import PRNGKey
from jaxmeta.training.classifier import ImageBatches

WEIGHT_LR = 0.025
"""DARTS's initial learning rate of the weights (and its lookahead step :math:`\\xi`)."""


def classification_problem(network: DartsNetwork) -> BilevelProblem:
    """Softmax cross-entropy of the search network's logits as both losses (on the batch each is given)."""
    def loss(weights, architecture, batch, *, key):
        apply = lambda params, x: network.apply({"params": params}, x, architecture)  # noqa: E731
        return classification_loss(apply)(weights, batch, key=key)

    return BilevelProblem(loss, loss)


@flax.struct.dataclass
class SplitBatches:
    """A jit-able source of ``(train_batch, val_batch)`` pairs: ``batch_size`` images of each half, drawn with
    replacement (two :class:`~jaxmeta.training.classifier.ImageBatches`); a pytree, so :func:`jaxmeta.fit`
    passes it as data.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> source = SplitBatches.create((jnp.zeros((6, 4, 4, 1)), jnp.arange(6)),
      ...                              (jnp.ones((3, 4, 4, 1)), jnp.arange(3)), batch_size=2)
      >>> (x, y), (vx, vy) = source(jax.random.key(0))
      >>> x.shape, vy.shape
      ((2, 4, 4, 1), (2,))
    """

    train: ImageBatches
    validation: ImageBatches

    @classmethod
    def create(cls, train: Any, validation: Any, *, batch_size: int) -> "SplitBatches":
        """From ``(images, labels)`` pairs (NumPy or JAX); a clear error for an empty half or a bad batch size."""
        return cls(ImageBatches.create(*train, batch_size=batch_size, name="training half"),
                   ImageBatches.create(*validation, batch_size=batch_size, name="validation half"))

    def __call__(self, key: PRNGKey):
        train_key, val_key = jax.random.split(key)
        return self.train(train_key), self.validation(val_key)


def search_optimizers(steps: int, *, weight_lr: float = WEIGHT_LR, arch_lr: float = 3e-4):
    """DARTS's optimizers: ``(architecture, weights)`` optax transformations for a search of ``steps`` steps."""
    weights = optax.chain(optax.clip_by_global_norm(5.0), optax.add_decayed_weights(3e-4),
                          optax.sgd(optax.cosine_decay_schedule(weight_lr, max(steps, 1), alpha=0.001 / weight_lr),
                                    momentum=0.9))
    architecture = optax.chain(optax.add_decayed_weights(1e-3), optax.adam(arch_lr, b1=0.5, b2=0.999))
    return architecture, weights


def init_search(network: DartsNetwork, images: jax.Array, key: PRNGKey, *, steps: int,
                weight_lr: float = WEIGHT_LR) -> MetaTrainState:
    """The search's first state: DARTS's :math:`\\alpha` (:func:`init_architecture`), the network's weights and
    the optimizers' states (``images``: a batch, for the shapes)."""
    arch_key, weight_key = jax.random.split(key)
    architecture = init_architecture(arch_key, nodes=network.nodes, operations=network.operations)
    weights = jax.jit(network.init)(weight_key, images, architecture)["params"]  # one compile, not one per op
    return init_alternating(architecture, weights, *search_optimizers(steps, weight_lr=weight_lr))


def make_search_step(network: DartsNetwork, hypergradient_fn: HypergradientFn, *, steps: int,
                     weight_lr: float = WEIGHT_LR):
    """The search step (the meta step's signature) with DARTS's optimizers for a search of ``steps`` steps."""
    return make_alternating_step(classification_problem(network), hypergradient_fn,
                                 *search_optimizers(steps, weight_lr=weight_lr))


def cosine_similarity(a: Any, b: Any) -> jax.Array:
    r""":math:`\langle a, b \rangle / (\lVert a \rVert \lVert b \rVert)` of two pytrees (0 where either is zero)."""
    norms = jnp.sqrt(tree_vdot(a, a) * tree_vdot(b, b))
    return tree_vdot(a, b) / jnp.where(norms > 0, norms, 1.0)


def compare_hypergradients(methods: Mapping[str, HypergradientFn], reference: str, state: MetaTrainState,
                           batches: tuple[Any, Any], key: PRNGKey) -> dict[str, jax.Array]:
    """Each method's hypergradient at the search state, on the same batches and key: its cosine similarity with
    ``reference``'s (``cosine/<name>``) and its norm (``norm/<name>``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jaxmeta.bilevel import BilevelProblem, first_order, unrolled, init_alternating
      >>> import optax
      >>> p = BilevelProblem(lambda w, a, b, *, key: ((w - a) ** 2, {}), lambda w, a, b, *, key: ((w - 3) ** 2, {}))
      >>> state = init_alternating(jnp.array(0.0), jnp.array(1.0), optax.sgd(1.0), optax.sgd(1.0))
      >>> out = compare_hypergradients({"exact": unrolled(p, steps=1, lr=0.5), "first": first_order(p)}, "exact",
      ...                              state, (None, None), jax.random.key(0))
      >>> float(out["cosine/exact"]), float(out["norm/first"])  # L_val has no direct dependence on a
      (1.0, 0.0)
    """
    if reference not in methods:
        raise ValueError(f"The reference {reference!r} is not among the methods {sorted(methods)}.")
    outer, inner = state.meta_params["outer"], state.meta_params["inner"]
    grads = {name: fn(outer, inner, *batches, key).grad for name, fn in methods.items()}
    out = {}
    for name, grad in grads.items():
        out[f"cosine/{name}"] = cosine_similarity(grad, grads[reference])
        out[f"norm/{name}"] = jnp.sqrt(tree_vdot(grad, grad))
    return out
