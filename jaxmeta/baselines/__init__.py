"""The baselines a meta-learner is measured against: transfer learning from a pretrained trunk."""

from jaxmeta.baselines.transfer import HEADS
from jaxmeta.baselines.transfer import Head
from jaxmeta.baselines.transfer import fine_tune_head
from jaxmeta.baselines.transfer import head_logits
from jaxmeta.baselines.transfer import head_optimizer
from jaxmeta.baselines.transfer import init_head

__all__ = ["HEADS", "Head", "fine_tune_head", "head_logits", "head_optimizer", "init_head"]
