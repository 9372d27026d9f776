"""Gradient-based meta-learners, each a factory returning a :class:`~jaxmeta.core.learner.MetaLearner`."""

from jaxmeta.algorithms.anil import anil
from jaxmeta.algorithms.imaml import imaml
from jaxmeta.algorithms.maml import fomaml
from jaxmeta.algorithms.maml import maml
from jaxmeta.algorithms.metasgd import MetaSGDParams
from jaxmeta.algorithms.metasgd import metasgd
from jaxmeta.algorithms.reptile import reptile

__all__ = ["anil", "fomaml", "imaml", "maml", "MetaSGDParams", "metasgd", "reptile"]
