"""Metric-based meta-learners as Flax modules: they learn an embedding space, not an initialisation.

Each model maps ``(support_inputs, support_labels, query_inputs)`` to class
scores ``[queries, ways]`` and has an ``episode_loss`` method;
:func:`metric_learner` makes it a :class:`jaxmeta.MetaLearner`, so the meta
step, training loop and checkpoints of the gradient-based learners apply.
"""

from jaxmeta.metric.distances import class_means
from jaxmeta.metric.distances import cosine_similarities
from jaxmeta.metric.distances import squared_distances
from jaxmeta.metric.episode import MetricClassifier
from jaxmeta.metric.episode import metric_learner
from jaxmeta.metric.matching import MatchingNetwork
from jaxmeta.metric.protonet import GaussianPrototypicalNetwork
from jaxmeta.metric.protonet import PrototypicalNetwork
from jaxmeta.metric.protonet import SemiSupervisedPrototypicalNetwork
from jaxmeta.metric.relation import RelationModule
from jaxmeta.metric.relation import RelationNetwork
from jaxmeta.metric.relation import relation_optimizer
from jaxmeta.metric.siamese import SiameseNetwork

__all__ = [
    "GaussianPrototypicalNetwork", "MatchingNetwork", "MetricClassifier", "PrototypicalNetwork",
    "RelationModule", "RelationNetwork", "SemiSupervisedPrototypicalNetwork", "SiameseNetwork", "class_means",
    "cosine_similarities", "metric_learner", "relation_optimizer", "squared_distances",
]
