"""Gradient-based meta-learners, each a factory returning a :class:`~jaxmeta.core.learner.MetaLearner`."""

from jaxmeta.algorithms.anil import anil
from jaxmeta.algorithms.imaml import imaml
from jaxmeta.algorithms.maml import fomaml
from jaxmeta.algorithms.maml import maml
from jaxmeta.algorithms.maml import multi_step_loss_weights
from jaxmeta.algorithms.maml_plus_plus import maml_plus_plus
from jaxmeta.algorithms.metasgd import MetaSGDParams
from jaxmeta.algorithms.metasgd import metasgd
from jaxmeta.algorithms.reptile import ReptileParams
from jaxmeta.algorithms.reptile import reptile

__all__ = ["anil", "fomaml", "imaml", "maml", "maml_plus_plus", "MetaSGDParams", "metasgd", "multi_step_loss_weights",
           "ReptileParams", "reptile"]
