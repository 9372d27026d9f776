r"""The learners by name: the gradient-based ones with their papers' hyper-parameters, the metric and
memory ones with their papers' networks.

:func:`make` builds a :class:`~jaxmeta.MetaLearner` from a name, a loss and,
optionally, a benchmark *setting* whose published hyper-parameters it starts
from; keyword arguments override any of them. :func:`defaults` says what a
setting holds (the learner's own arguments, and the outer loop's meta-batch,
learning rate and gradient clip) and where the values come from. The drivers in
``benchmarks/`` and the notebooks that choose a learner by name choose it here.

The inner loop's optimizer may be named rather than built:
``inner_optimizer="sgd"`` (gradient descent at ``inner_lr``), ``"adam"``
(``optax.adam(inner_lr, b1=inner_beta1, eps_root=inner_eps_root)``) or
``"momentum"`` (``optax.sgd(inner_lr, momentum=inner_momentum)``), or a learned
rule of :mod:`jaxmeta.inner` started at ``inner_lr``: ``"lslr"``
(``lslr(inner_steps, lr_init=inner_lr)``) or ``"meta-curvature"``
(``meta_curvature(inner_lr)``); an optax ``GradientTransformation`` is passed
through as it is. Meta-SGD learns the
rates, so for it a named optimizer gives the *direction* its rates scale
(``"adam"``: Adam's normalised step).

:func:`metric_model` builds a metric learner's Flax module (for
:func:`jaxmeta.metric.metric_learner`) from its name, with the embedding
network of its paper: the conv-4 of Vinyals et al., widened by one channel
for the Gaussian ProtoNet's radius, Sung et al.'s encoder and relation module,
or MetaNet's networks; :func:`memory_model` a memory model's (for
:func:`jaxmeta.memory.memory_learner`), with Santoro et al.'s sizes.

Example:
  >>> import jax.numpy as jnp, jaxmeta
  >>> loss_fn = jaxmeta.regression_loss(lambda w, x: x * w)
  >>> learner = make("maml", loss_fn, setting="sinusoid")
  >>> defaults("maml", "sinusoid").learner
  {'inner_lr': 0.01, 'inner_steps': 1}
  >>> defaults("reptile", "omniglot-5way").meta_batch
  5
  >>> type(metric_model("protonet", ways=5, features=16)).__name__
  'PrototypicalNetwork'
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import optax

from jaxmeta.algorithms.adml import adml
from jaxmeta.algorithms.anil import anil
from jaxmeta.algorithms.cavia import cavia
from jaxmeta.algorithms.imaml import imaml
from jaxmeta.algorithms.maml import fomaml, maml
from jaxmeta.algorithms.maml_plus_plus import maml_plus_plus
from jaxmeta.algorithms.metasgd import metasgd
from jaxmeta.algorithms.reptile import reptile
from jaxmeta.algorithms.taml import taml_entropy, taml_inequality
from jaxmeta.core.learner import MetaLearner
from jaxmeta.core.types import LossFn
from jaxmeta.inner.lslr import lslr
from jaxmeta.inner.meta_curvature import meta_curvature
from jaxmeta.memory.mann import MANNCell
from jaxmeta.memory.metanet import MetaNet
from jaxmeta.memory.ntm import NTMCell
from jaxmeta.memory.sequence import LSTMCore, SequenceClassifier
from jaxmeta.metric.matching import MatchingNetwork
from jaxmeta.metric.protonet import GaussianPrototypicalNetwork, PrototypicalNetwork
from jaxmeta.metric.relation import RelationModule, RelationNetwork
from jaxmeta.metric.siamese import SiameseNetwork
from jaxmeta.models.conv import ConvEmbedding
from jaxmeta.optimizers.meta_lstm import lstm_meta_learner

SETTINGS = ("sinusoid", "omniglot-5way", "omniglot-20way")
"""The benchmark settings with published hyper-parameters: Finn et al. 2017's sinusoid regression (K = 10) and
Omniglot 5-way and 20-way classification."""


class Defaults(NamedTuple):
    """A learner's hyper-parameters at one setting.

    Attributes:
      learner: keyword arguments of the learner's factory (see :func:`make`).
      meta_batch: tasks per meta-step.
      meta_lr: the outer optimizer's learning rate (Adam's; Reptile's outer step size).
      source: where the values come from.
      clip_norm: the global norm the meta-gradient is clipped to before the
        outer optimizer (``optax.clip_by_global_norm``), or ``None`` for no
        clip. The learned inner rules need one (:mod:`jaxmeta.inner` says why).
    """

    learner: dict[str, Any]
    meta_batch: int
    meta_lr: float
    source: str
    clip_norm: float | None = None


class Recipe(NamedTuple):
    """A learner by name: its factory ``build(loss_fn, **hyper) -> MetaLearner``, its paper, its settings."""

    build: Callable[..., MetaLearner]
    paper: str
    settings: Mapping[str, Defaults]


_FINN = "Finn et al. 2017, sections 5.1-5.2"
_MAML_SETTINGS = {
    "sinusoid": Defaults({"inner_lr": 0.01, "inner_steps": 1}, 25, 1e-3, _FINN),
    "omniglot-5way": Defaults({"inner_lr": 0.4, "inner_steps": 1}, 32, 1e-3, _FINN),
    "omniglot-20way": Defaults({"inner_lr": 0.1, "inner_steps": 5}, 16, 1e-3, _FINN),
}


def _from_maml(source: str, learner: Callable[[dict[str, Any]], dict[str, Any]], *,
               settings: tuple[str, ...] = SETTINGS, clip_norm: float | None = None) -> dict[str, Defaults]:
    """MAML's ``settings`` (meta-batch, outer rate) for a learner whose arguments are ``learner(MAML's arguments)``."""
    return {name: d._replace(learner=learner(d.learner), source=source, clip_norm=clip_norm)
            for name, d in _MAML_SETTINGS.items() if name in settings}


_OMNIGLOT = ("omniglot-5way", "omniglot-20way")


_NICHOL = "Nichol et al. 2018, Appendix A (Omniglot); this library's sinusoid setting (2x MAML's rate, 5 steps)"
_REPTILE_SETTINGS = {
    "sinusoid": Defaults({"inner_lr": 0.02, "inner_steps": 5}, 25, 1e-3, _NICHOL),
    "omniglot-5way": Defaults({"inner_optimizer": "adam", "inner_lr": 0.001, "inner_beta1": 0.0, "inner_steps": 5,
                               "inner_batch": 10, "persistent_inner_state": True}, 5, 1.0, _NICHOL),
    "omniglot-20way": Defaults({"inner_optimizer": "adam", "inner_lr": 0.0005, "inner_beta1": 0.0, "inner_steps": 10,
                                "inner_batch": 20, "persistent_inner_state": True}, 5, 1.0, _NICHOL),
}
_METASGD_SETTINGS = _from_maml("MAML's rates as the initial ones (Li et al. 2017 draw them at random)",
                               lambda maml: {"lr_init": maml["inner_lr"], "inner_steps": maml["inner_steps"]})
_IMAML_SETTINGS = _from_maml("MAML's rates; Rajeswaran et al. 2019's 5 conjugate-gradient steps",
                             lambda maml: {**maml, "inner_steps": 10, "lam": 1.0, "cg_steps": 5})
# No clip, unlike the learned rules' sinusoid settings: the authors' code clamps the meta-gradient (to [-10, 10]
# elementwise) on ImageNet only, not on Omniglot.
_MAML_PLUS_PLUS_SETTINGS = _from_maml("Antoniou et al. 2019, section 5; no clip on Omniglot, as in their code",
                                      lambda maml: {"lr_init": 0.1, "inner_steps": 5}, settings=_OMNIGLOT)
_META_LSTM_SETTINGS = _from_maml("5 learner updates (Ravi and Larochelle 2017 use 5-12)",
                                 lambda maml: {"inner_steps": 5}, settings=_OMNIGLOT)
_MAML_ADAM_SETTINGS = _from_maml("MAML's rate as Adam's, 5 steps",
                                 lambda maml: {**maml, "inner_steps": 5, "inner_optimizer": "adam",
                                               "inner_eps_root": 1e-8})
_MAML_MOMENTUM_SETTINGS = _from_maml("MAML's rate, momentum 0.9, 5 steps",
                                     lambda maml: {**maml, "inner_steps": 5, "inner_optimizer": "momentum"})
_MAML_META_CURVATURE_SETTINGS = _from_maml(
    "MAML's rate, 5 steps, the meta-gradient clipped at global norm 10 (this library's choice, notebook 06)",
    lambda maml: {**maml, "inner_steps": 5, "inner_optimizer": "meta-curvature"}, settings=("sinusoid",),
    clip_norm=10.0)

_CAVIA = "Zintgraf et al. 2019's code: its sinusoid flags, and its image classifier's for Omniglot"
_CAVIA_SETTINGS = {
    "sinusoid": Defaults({"context_size": 5, "inner_lr": 1.0, "inner_steps": 1}, 25, 1e-3, _CAVIA),
    "omniglot-5way": Defaults({"context_size": 100, "inner_lr": 1.0, "inner_steps": 2}, 16, 1e-3, _CAVIA),
    "omniglot-20way": Defaults({"context_size": 100, "inner_lr": 1.0, "inner_steps": 2}, 16, 1e-3, _CAVIA),
}
_ADML_SETTINGS = _from_maml("MAML's settings; FGSM epsilon 0.1 on [0, 1] images (this library's choice: Yin et al. "
                            "report no Omniglot numbers)", lambda maml: {**maml, "epsilon": 0.1}, settings=_OMNIGLOT)
_TAML_ENTROPY_SETTINGS = _from_maml("MAML's settings; lambda 0.1 (this library's choice)",
                                   lambda maml: {**maml, "weight": 0.1})
_TAML_INEQUALITY_SETTINGS = _from_maml("MAML's settings; lambda 1 (this library's choice)",
                                      lambda maml: {**maml, "weight": 1.0})


def _taml_entropy(loss_fn: LossFn, *, apply_fn: Callable, weight: float, **maml_options: Any) -> MetaLearner:
    """Entropy-based TAML around MAML (``apply_fn``: the model's logits, ``apply_fn(params, inputs)``)."""
    return taml_entropy(maml(loss_fn, **maml_options), loss_fn, apply_fn, weight=weight)


def _taml_inequality(measure: str) -> Callable[..., MetaLearner]:
    def build(loss_fn: LossFn, *, weight: float, alpha: float = 2.0, **maml_options: Any) -> MetaLearner:
        return taml_inequality(maml(loss_fn, **maml_options), weight=weight, measure=measure, alpha=alpha)

    return build


RECIPES: dict[str, Recipe] = {
    "maml": Recipe(maml, "Finn et al. 2017", _MAML_SETTINGS),
    "maml-remat": Recipe(functools.partial(maml, remat=True),
                         "Finn et al. 2017, with each inner step rematerialised (jax.checkpoint)", _MAML_SETTINGS),
    "fomaml": Recipe(fomaml, "Finn et al. 2017 (first-order)", _MAML_SETTINGS),
    "anil": Recipe(anil, "Raghu et al. 2020 (MAML's settings; pass head=)", _MAML_SETTINGS),
    "metasgd": Recipe(metasgd, "Li et al. 2017", _METASGD_SETTINGS),
    "reptile": Recipe(reptile, "Nichol et al. 2018", _REPTILE_SETTINGS),
    "imaml": Recipe(imaml, "Rajeswaran et al. 2019", _IMAML_SETTINGS),
    "maml++": Recipe(maml_plus_plus, "Antoniou et al. 2019 (pass anneal_steps= and first_order_steps=)",
                     _MAML_PLUS_PLUS_SETTINGS),
    "meta-lstm": Recipe(lstm_meta_learner, "Ravi and Larochelle 2017 (pass key=)", _META_LSTM_SETTINGS),
    "maml-adam": Recipe(maml, "MAML with Adam inside the inner loop (jaxmeta.adapt)", _MAML_ADAM_SETTINGS),
    "maml-momentum": Recipe(maml, "MAML with heavy-ball momentum 0.9 inside the inner loop",
                            _MAML_MOMENTUM_SETTINGS),
    "maml-meta-curvature": Recipe(maml, "Park and Oliva 2019: MAML with a learned Kronecker-factored preconditioner "
                                  "(jaxmeta.inner.meta_curvature)", _MAML_META_CURVATURE_SETTINGS),
    "cavia": Recipe(cavia, "Zintgraf et al. 2019 (the model takes a context: jaxmeta.models.context)",
                    _CAVIA_SETTINGS),
    "adml": Recipe(adml, "Yin et al. 2018", _ADML_SETTINGS),
    "taml-entropy": Recipe(_taml_entropy, "Jamal and Qi 2019, entropy-based, around MAML (pass apply_fn=)",
                           _TAML_ENTROPY_SETTINGS),
    "taml-theil": Recipe(_taml_inequality("theil"), "Jamal and Qi 2019, Theil index, around MAML",
                         _TAML_INEQUALITY_SETTINGS),
    "taml-generalized-entropy": Recipe(_taml_inequality("generalized-entropy"),
                                       "Jamal and Qi 2019, generalised entropy GE(alpha), around MAML",
                                       _TAML_INEQUALITY_SETTINGS),
    "taml-variance-of-logarithms": Recipe(_taml_inequality("variance-of-logarithms"),
                                          "Jamal and Qi 2019, variance of logarithms, around MAML",
                                          _TAML_INEQUALITY_SETTINGS),
}
"""Every learner :func:`make` knows, by name."""

NAMES = tuple(RECIPES)

_OPTIMIZER_OPTIONS = ("inner_beta1", "inner_eps_root", "inner_momentum")
LEARNED_RULES = ("lslr", "meta-curvature")
"""The learned inner rules ``inner_optimizer=`` may name (:mod:`jaxmeta.inner`)."""


def recipe(name: str) -> Recipe:
    """The :class:`Recipe` of ``name``, or a ``ValueError`` that lists the names."""
    if name not in RECIPES:
        raise ValueError(f"No learner is called {name!r}; jaxmeta.registry knows {', '.join(NAMES)}.")
    return RECIPES[name]


def defaults(name: str, setting: str) -> Defaults:
    """The hyper-parameters of learner ``name`` at ``setting`` (one of :data:`SETTINGS`)."""
    settings = recipe(name).settings
    if setting not in settings:
        raise ValueError(f"{name} has no published setting {setting!r}; it has {', '.join(settings) or 'none'}. "
                         "Pass the hyper-parameters as keyword arguments instead.")
    return settings[setting]


def _resolve_inner_optimizer(name: str, hyper: dict[str, Any]) -> dict[str, Any]:
    """Turn a named ``inner_optimizer`` (and its options) into the optax transformation the factories take."""
    options = {key: hyper.pop(key) for key in _OPTIMIZER_OPTIONS if key in hyper}
    choice = hyper.get("inner_optimizer")
    if not isinstance(choice, str):
        if options:
            raise TypeError(f"{', '.join(options)} configure a named inner_optimizer ('adam', 'momentum'); "
                            f"with inner_optimizer={choice!r} pass the options to the optax transformation itself.")
        return hyper
    if choice == "sgd":
        del hyper["inner_optimizer"]
        return hyper
    if choice not in ("adam", "momentum", *LEARNED_RULES):
        raise ValueError(f"inner_optimizer={choice!r} is not one jaxmeta.registry builds; name 'sgd', 'adam', "
                         "'momentum', 'lslr' or 'meta-curvature', or pass an optax GradientTransformation.")
    if choice in LEARNED_RULES:
        if options:
            raise TypeError(f"{', '.join(options)} configure 'adam' or 'momentum', not the learned rule {choice!r}.")
        if name == "metasgd":
            raise ValueError(f"Meta-SGD learns its own rates; inner_optimizer={choice!r} is a learned rule of its "
                             "own. Use maml with it, or give Meta-SGD 'adam' or 'momentum' as its direction.")
        if "inner_lr" not in hyper:
            raise TypeError(f"inner_optimizer={choice!r} needs inner_lr=, the rate the rule starts from.")
        lr = hyper.pop("inner_lr")
        hyper["inner_optimizer"] = (lslr(hyper.get("inner_steps", 1), lr_init=lr) if choice == "lslr"
                                    else meta_curvature(lr))
        return hyper
    beta1, eps_root = options.get("inner_beta1", 0.9), options.get("inner_eps_root", 0.0)
    momentum = options.get("inner_momentum", 0.9)
    if name == "metasgd":  # the learned rates scale a direction: Adam's normalised step, or the momentum
        direction = (optax.scale_by_adam(b1=beta1, eps_root=eps_root) if choice == "adam"
                     else optax.trace(decay=momentum))
        hyper["inner_optimizer"] = optax.chain(direction, optax.scale(-1.0))
        return hyper
    if "inner_lr" not in hyper:
        raise TypeError(f"inner_optimizer={choice!r} needs inner_lr=, its learning rate.")
    lr = hyper.pop("inner_lr")
    hyper["inner_optimizer"] = (optax.adam(lr, b1=beta1, eps_root=eps_root) if choice == "adam"
                                else optax.sgd(lr, momentum=momentum))
    return hyper


def make(name: str, loss_fn: LossFn, *, setting: str | None = None, **overrides: Any) -> MetaLearner:
    """The learner ``name`` on ``loss_fn``, with ``setting``'s hyper-parameters updated by ``overrides``.

    Args:
      name: one of :data:`NAMES`.
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      setting: one of :data:`SETTINGS`, or ``None`` for the factory's own defaults.
      **overrides: keyword arguments of the factory (``inner_lr``, ``inner_steps``, ``head`` for ANIL, ...),
        and ``inner_optimizer`` by name with ``inner_beta1`` / ``inner_eps_root`` / ``inner_momentum``.

    Returns:
      The :class:`~jaxmeta.MetaLearner`.
    """
    entry = recipe(name)
    hyper = {**(defaults(name, setting).learner if setting is not None else {}), **overrides}
    return entry.build(loss_fn, **_resolve_inner_optimizer(name, hyper))


METRIC_NAMES = ("protonet", "gaussian-protonet", "matching", "matching-fce", "relation", "siamese", "metanet")
"""Every metric learner :func:`metric_model` knows, by name."""


def metric_model(name: str, *, ways: int, features: int = 64, conv: str = "xla",
                 similarity: str | None = None) -> nn.Module:
    """The Flax module of metric learner ``name`` for ``ways``-way episodes, with its paper's network.

    Args:
      name: one of :data:`METRIC_NAMES`.
      ways: classes per episode (the parameters do not depend on it, except MetaNet's output layer).
      features: filters per conv block (the papers: 64).
      conv: the convolution implementation (``"xla"``, ``"im2col"`` or ``"onednn"``).
      similarity: Matching networks' attention (``"euclidean"``, the default, or ``"cosine"``).

    Returns:
      The module, to be trained with :func:`jaxmeta.metric.metric_learner`.
    """
    if name not in METRIC_NAMES:
        raise ValueError(f"No metric learner is called {name!r}; jaxmeta.registry knows {', '.join(METRIC_NAMES)}.")
    if similarity is not None and not name.startswith("matching"):
        raise TypeError(f"similarity= applies to the matching networks, not to {name}.")
    embedding = functools.partial(ConvEmbedding, features=features, conv=conv)
    if name == "protonet":
        return PrototypicalNetwork(embedding(), ways=ways)
    if name == "gaussian-protonet":  # one extra output channel: the radius of the covariance
        return GaussianPrototypicalNetwork(embedding(last_features=features + 1), ways=ways)
    if name.startswith("matching"):
        return MatchingNetwork(embedding(), ways=ways, full_context=name == "matching-fce",
                               similarity="euclidean" if similarity is None else similarity)
    if name == "relation":  # Sung et al.'s encoder: 5x5 maps of 28x28 images, for a convolutional relation module
        encoder = embedding(pooled_blocks=2, unpadded_blocks=2, init_scheme="relation-net", flatten=False)
        return RelationNetwork(encoder, ways=ways, relation=RelationModule(features, conv=conv))
    if name == "metanet":
        return MetaNet(ways=ways, features=features, conv=conv)
    return SiameseNetwork(embedding(), ways=ways)


MEMORY_NAMES = ("mann", "ntm", "lstm")
"""Every memory model :func:`memory_model` knows, by name."""


def memory_model(name: str, *, num_classes: int, controller: int = 200, rows: int = 128, width: int = 40,
                 heads: int = 4, write_vector: str = "add") -> SequenceClassifier:
    """The sequence classifier of memory model ``name`` (Santoro et al. 2016's sizes by default).

    Args:
      name: one of :data:`MEMORY_NAMES`: the MANN with least-recently-used access, the NTM, or the
        LSTM baseline.
      num_classes: the classes of an episode.
      controller: the LSTM controller's units (the LSTM baseline's only size).
      rows, width: the memory's size (the paper: 128 x 40).
      heads: the MANN's read heads (the paper: 4).
      write_vector: what the MANN writes (:class:`~jaxmeta.memory.MANNCell`).

    Returns:
      The :class:`~jaxmeta.memory.SequenceClassifier`, to be trained with
      :func:`jaxmeta.memory.memory_learner`.
    """
    if name not in MEMORY_NAMES:
        raise ValueError(f"No memory model is called {name!r}; jaxmeta.registry knows {', '.join(MEMORY_NAMES)}.")
    core: nn.Module
    if name == "mann":
        core = MANNCell(controller_features=controller, rows=rows, width=width, read_heads=heads,
                        write_vector=write_vector)
    elif name == "ntm":
        core = NTMCell(controller_features=controller, rows=rows, width=width)
    else:
        core = LSTMCore(controller)
    return SequenceClassifier(core, num_classes=num_classes)
