"""Models as Flax linen modules."""

from jaxmeta.models.conv import Conv4
from jaxmeta.models.conv import ConvBlock
from jaxmeta.models.conv import ConvEmbedding
from jaxmeta.models.conv import TaskBatchNorm
from jaxmeta.models.conv import max_pool_2x2
from jaxmeta.models.mlp import MLP
from jaxmeta.models.mlp import functional
from jaxmeta.models.transduction import one_query_at_a_time
from jaxmeta.models.transduction import uses_batch_norm
from jaxmeta.models.transduction import with_support_inputs

__all__ = ["Conv4", "ConvBlock", "ConvEmbedding", "MLP", "TaskBatchNorm", "functional", "max_pool_2x2",
           "one_query_at_a_time", "uses_batch_norm", "with_support_inputs"]
