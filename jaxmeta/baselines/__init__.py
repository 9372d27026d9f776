"""The baselines a meta-learner is measured against: transfer learning from a pretrained trunk.

Pretrain a classifier on all meta-training classes pooled (:mod:`jaxmeta.training`'s classifier step), keep
its trunk (:func:`trunk_params`), and score test tasks with a head fitted on each support set
(:func:`transfer_accuracy`, Chen et al. 2019's Baseline and Baseline++).
"""

from jaxmeta.baselines.transfer import HEADS
from jaxmeta.baselines.transfer import Head
from jaxmeta.baselines.transfer import fine_tune_head
from jaxmeta.baselines.transfer import head_logits
from jaxmeta.baselines.transfer import head_optimizer
from jaxmeta.baselines.transfer import init_head
from jaxmeta.baselines.transfer import transfer_accuracy
from jaxmeta.baselines.transfer import trunk_params

__all__ = ["HEADS", "Head", "fine_tune_head", "head_logits", "head_optimizer", "init_head", "transfer_accuracy",
           "trunk_params"]
