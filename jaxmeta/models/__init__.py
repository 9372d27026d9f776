"""Models as Flax linen modules."""

from jaxmeta.models.context import ContextConv4
from jaxmeta.models.context import ContextMLP
from jaxmeta.models.context import ContextParams
from jaxmeta.models.context import functional_with_context
from jaxmeta.models.conv import INITIALISATIONS
from jaxmeta.models.conv import Conv3x3
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

__all__ = [
    "INITIALISATIONS", "ContextConv4", "ContextMLP", "ContextParams", "Conv3x3", "Conv4", "ConvBlock",
    "ConvEmbedding", "MLP",
    "TaskBatchNorm", "functional", "functional_with_context", "max_pool_2x2", "one_query_at_a_time",
    "uses_batch_norm", "with_support_inputs",
]
