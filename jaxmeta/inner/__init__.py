"""Inner-loop update rules with meta-learned parameters, as optax transformations built from meta-parameters.

Any fixed optax optimizer runs inside the inner loop as it is
(``jaxmeta.maml(..., inner_optimizer=optax.adam(1e-3, b1=0.0))``). A *learned*
rule is a :class:`LearnedTransform`: its parameters are meta-parameters,
trained by the outer loop through the exact meta-gradient.

Meta-train a learned rule with the meta-gradient clipped, e.g.
``optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3))``. The
outer optimizer moves the rule's parameters too, and a rule that has grown (a
large LSLR rate, a Meta-Curvature matrix far from the identity) can make the
inner loop diverge on an occasional task. That meta-batch's loss and
meta-gradient are astronomical, and one such gradient sets Adam's running RMS
to its own size: every later update shrinks by the same factor for thousands
of steps, and training stalls. The clip bounds what one meta-batch can do.
Notebook 06 measures it (sinusoids, 5 inner steps, 1,500 meta-steps):
Meta-Curvature ends at a query MSE of 0.22 with the clip and 4.0 without it
(one meta-batch's loss reached 7.6e48, and the model no longer adapts),
against 0.49 for MAML's fixed-rate SGD.
"""

from jaxmeta.inner.learned import LearnedInnerParams
from jaxmeta.inner.learned import LearnedTransform
from jaxmeta.inner.lslr import lslr
from jaxmeta.inner.meta_curvature import meta_curvature
from jaxmeta.inner.meta_curvature import precondition

__all__ = ["LearnedInnerParams", "LearnedTransform", "lslr", "meta_curvature", "precondition"]
