"""Inner-loop update rules with meta-learned parameters, as optax transformations built from meta-parameters.

Any fixed optax optimizer runs inside the inner loop as it is
(``jaxmeta.maml(..., inner_optimizer=optax.adam(1e-3, b1=0.0))``). A *learned*
rule is a :class:`LearnedTransform`: its parameters are meta-parameters,
trained by the outer loop through the exact meta-gradient.
"""

from jaxmeta.inner.learned import LearnedInnerParams
from jaxmeta.inner.learned import LearnedTransform
from jaxmeta.inner.lslr import lslr
from jaxmeta.inner.meta_curvature import meta_curvature
from jaxmeta.inner.meta_curvature import precondition

__all__ = ["LearnedInnerParams", "LearnedTransform", "lslr", "meta_curvature", "precondition"]
