"""The baselines a meta-learner is measured against: transfer learning from a pretrained trunk, and simple
classifiers on a fixed embedding.

Pretrain a classifier on all meta-training classes pooled (:mod:`jaxmeta.training`'s classifier step), keep
its trunk (:func:`trunk_params`), and score test tasks with a head fitted on each support set
(:func:`transfer_accuracy`, Chen et al. 2019's Baseline and Baseline++), or adapt it MAML-style from a
zero head without meta-training (:func:`multitask_init`, multi-task pretraining). On any embedding,
:func:`embedding_accuracy` scores 1-nearest neighbour (:func:`nearest_neighbour`) or logistic regression
(:func:`logistic_regression_predict`) per task, Hsu et al. 2019's baselines for unsupervised embeddings.
"""

from jaxmeta.baselines.embedding import METRICS
from jaxmeta.baselines.embedding import embedding_accuracy
from jaxmeta.baselines.embedding import logistic_regression
from jaxmeta.baselines.embedding import logistic_regression_predict
from jaxmeta.baselines.embedding import nearest_neighbour

from jaxmeta.baselines.transfer import HEADS
from jaxmeta.baselines.transfer import Head
from jaxmeta.baselines.transfer import fine_tune_head
from jaxmeta.baselines.transfer import head_logits
from jaxmeta.baselines.transfer import head_optimizer
from jaxmeta.baselines.transfer import init_head
from jaxmeta.baselines.transfer import multitask_init
from jaxmeta.baselines.transfer import transfer_accuracy
from jaxmeta.baselines.transfer import trunk_params

__all__ = ["HEADS", "METRICS", "Head", "embedding_accuracy", "fine_tune_head", "head_logits", "head_optimizer",
           "init_head", "logistic_regression", "logistic_regression_predict", "multitask_init", "nearest_neighbour",
           "transfer_accuracy", "trunk_params"]
