r"""MAML++ (Antoniou, Edwards and Storkey, "How to train your MAML", ICLR 2019): MAML with its training options on.

MAML++ is :func:`jaxmeta.maml` with

* per-layer, per-step learned inner learning rates (LSLR, :func:`jaxmeta.inner.lslr`);
* the multi-step loss :math:`\sum_{j=1}^{k} w_j(t) L^q(\phi_j)`, its weights
  annealed from uniform to the last step (:func:`jaxmeta.algorithms.multi_step_loss_weights`);
* derivative-order annealing: first-order meta-gradients for the first
  meta-steps, second-order after;
* per-step batch-norm weights and biases (BNWB): one set for each inner step,
  meta-learned, not adapted.

Batch norm here always uses the statistics of the batch it sees (no running
averages: :class:`jaxmeta.models.conv.TaskBatchNorm`), so the paper's per-step
running statistics (BNRS) have nothing to apply to. Cosine annealing of the
outer learning rate is an optax schedule (``optax.cosine_decay_schedule``).
"""

from jaxmeta.algorithms.maml import maml, multi_step_loss_weights
from jaxmeta.core.adapt import Mask
from jaxmeta.core.learner import MetaLearner
from jaxmeta.core.types import LossFn
from jaxmeta.inner.lslr import lslr


def maml_plus_plus(
    loss_fn: LossFn,
    *,
    inner_steps: int = 5,
    lr_init: float = 0.1,
    anneal_steps: int,
    first_order_steps: int,
    per_step: Mask = lambda path: "norm" in path,
    learned_rates: bool = True,
    adapt_mask: Mask = None,
    remat: bool = False,
) -> MetaLearner:
    r"""MAML++: MAML with LSLR, the annealed multi-step loss, derivative-order annealing and per-step batch norm.

    Args:
      loss_fn: ``loss_fn(params, batch, *, key) -> (loss, aux)``.
      inner_steps: :math:`k` (the paper uses 5); evaluation must use the same number.
      lr_init: the inner learning rate every LSLR rate starts at (or the fixed
        rate, with ``learned_rates=False``).
      anneal_steps: meta-steps over which the multi-step loss anneals to the
        last step's loss (afterwards only that counts).
      first_order_steps: meta-steps trained with the first-order meta-gradient
        before switching to the exact one (0: exact throughout).
      per_step: the parameters with one value per inner step (default: every
        parameter whose path contains ``"norm"``, the conv-4's batch norms);
        ``None`` turns BNWB off.
      learned_rates: LSLR on (default) or a fixed ``lr_init``.
      adapt_mask: adapt only these parameters in the inner loop.
      remat: rematerialise each inner step in the backward pass.

    Returns:
      A :class:`~jaxmeta.core.learner.MetaLearner` with ``at_step`` (its
      schedules follow the meta-step).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from jaxmeta import init_state, make_meta_step, regression_loss, Task
      >>> apply = lambda p, x: x * p["w"] * p["norm"]
      >>> learner = maml_plus_plus(regression_loss(apply), inner_steps=2, anneal_steps=10, first_order_steps=5)
      >>> meta = learner.init({"w": jnp.array(0.5), "norm": jnp.array(1.0)})
      >>> meta.params["norm"].shape, meta.rule["w"].shape  # 3 per-step norms; 2 learned rates per parameter
      ((3,), (2,))
      >>> x = jnp.ones((4, 3))
      >>> step = make_meta_step(learner, optax.adam(1e-3))
      >>> state, metrics = step(init_state(learner, optax.adam(1e-3), {"w": jnp.array(0.5), "norm": jnp.array(1.0)}),
      ...                       Task((x, 2 * x), (x, 2 * x)), jax.random.key(0))
      >>> int(state.step)
      1

    References:
      Antoniou, Edwards and Storkey, "How to train your MAML", ICLR 2019, section 4.
    """
    return maml(
        loss_fn,
        inner_lr=None if learned_rates else lr_init,
        inner_optimizer=lslr(inner_steps, lr_init) if learned_rates else None,
        inner_steps=inner_steps,
        step_weights=multi_step_loss_weights(inner_steps, anneal_steps),
        first_order_steps=first_order_steps,
        per_step=per_step,
        adapt_mask=adapt_mask,
        remat=remat,
    )
