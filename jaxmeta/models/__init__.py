"""Models as Flax linen modules."""

from jaxmeta.models.conv import Conv4
from jaxmeta.models.conv import ConvBlock
from jaxmeta.models.conv import ConvEmbedding
from jaxmeta.models.conv import TaskBatchNorm
from jaxmeta.models.conv import max_pool_2x2
from jaxmeta.models.mlp import MLP
from jaxmeta.models.mlp import functional

__all__ = ["Conv4", "ConvBlock", "ConvEmbedding", "MLP", "TaskBatchNorm", "functional", "max_pool_2x2"]
