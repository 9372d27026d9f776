"""jaxmeta: meta-learning in JAX, built on exact higher-order gradients.

The functional API in one screen::

    import jax, optax, jaxmeta
    model = jaxmeta.models.MLP((40, 40, 1))
    params = model.init(jax.random.key(0), jax.numpy.zeros((1, 1)))["params"]
    loss_fn = jaxmeta.regression_loss(jaxmeta.models.functional(model))
    learner = jaxmeta.maml(loss_fn, inner_lr=0.01, inner_steps=1)
    optimizer = optax.adam(1e-3)
    step = jaxmeta.make_meta_step(learner, optimizer)
    state = jaxmeta.init_state(learner, optimizer, params)
    tasks = jaxmeta.sinusoid_tasks(jax.random.key(1), 25, shots=10)
    state, metrics = step(state, tasks, jax.random.key(2))
"""

from jaxmeta import bilevel
from jaxmeta import inner
from jaxmeta import models
from jaxmeta import registry
from jaxmeta.algorithms.adml import adml
from jaxmeta.algorithms.adml import adversarial_score
from jaxmeta.algorithms.anil import anil
from jaxmeta.algorithms.cavia import cavia
from jaxmeta.algorithms.imaml import imaml
from jaxmeta.algorithms.maml import fomaml
from jaxmeta.algorithms.maml import maml
from jaxmeta.algorithms.maml_plus_plus import maml_plus_plus
from jaxmeta.algorithms.metasgd import MetaSGDParams
from jaxmeta.algorithms.metasgd import metasgd
from jaxmeta.algorithms.reptile import reptile
from jaxmeta.algorithms.taml import taml_entropy
from jaxmeta.algorithms.taml import taml_inequality
from jaxmeta.core.adapt import Adaptation
from jaxmeta.core.aggregation import gradient_agreement
from jaxmeta.core.adapt import adapt
from jaxmeta.core.adapt import gradient_step
from jaxmeta.core.evaluate import Evaluation
from jaxmeta.core.evaluate import confidence_interval
from jaxmeta.core.evaluate import evaluate
from jaxmeta.core.learner import MetaLearner
from jaxmeta.core.losses import classification_loss
from jaxmeta.core.losses import regression_loss
from jaxmeta.core.meta_step import MetaTrainState
from jaxmeta.core.meta_step import init_state
from jaxmeta.core.meta_step import make_meta_step
from jaxmeta.core.meta_step import meta_gradient
from jaxmeta.core.types import Task
from jaxmeta.data.sinusoid import sinusoid_task
from jaxmeta.data.sinusoid import sinusoid_tasks
from jaxmeta.training.fit import NonFiniteLossError
from jaxmeta.training.fit import fit

__version__ = "0.1.0"

__all__ = [
    "Adaptation", "Evaluation", "MetaLearner", "MetaSGDParams", "MetaTrainState", "NonFiniteLossError", "Task",
    "adapt", "adml", "adversarial_score", "anil", "bilevel", "cavia", "classification_loss", "confidence_interval",
    "evaluate", "fit", "fomaml", "gradient_agreement", "gradient_step", "imaml", "init_state", "inner",
    "make_meta_step", "maml", "maml_plus_plus", "meta_gradient", "metasgd", "models", "registry",
    "regression_loss", "reptile", "sinusoid_task", "sinusoid_tasks", "taml_entropy", "taml_inequality",
]
