"""Gradient-based meta-learners, each a factory returning a :class:`~jaxmeta.core.learner.MetaLearner`."""

from jaxmeta.algorithms.adml import AdversarialScore
from jaxmeta.algorithms.adml import adml
from jaxmeta.algorithms.adml import adversarial_score
from jaxmeta.algorithms.adml import fgsm
from jaxmeta.algorithms.anil import anil
from jaxmeta.algorithms.cavia import cavia
from jaxmeta.algorithms.imaml import imaml
from jaxmeta.algorithms.maml import fomaml
from jaxmeta.algorithms.maml import maml
from jaxmeta.algorithms.maml import multi_step_loss_weights
from jaxmeta.algorithms.maml_plus_plus import maml_plus_plus
from jaxmeta.algorithms.metasgd import MetaSGDParams
from jaxmeta.algorithms.metasgd import metasgd
from jaxmeta.algorithms.reptile import ReptileParams
from jaxmeta.algorithms.reptile import outer_optimizer
from jaxmeta.algorithms.reptile import reptile
from jaxmeta.algorithms.taml import InequalityTerms
from jaxmeta.algorithms.taml import taml_entropy
from jaxmeta.algorithms.taml import taml_inequality

__all__ = [
    "AdversarialScore", "InequalityTerms", "adml", "adversarial_score", "anil", "cavia", "fgsm", "fomaml",
    "imaml", "maml", "maml_plus_plus", "MetaSGDParams", "metasgd", "multi_step_loss_weights", "ReptileParams",
    "outer_optimizer", "reptile", "taml_entropy", "taml_inequality",
]
