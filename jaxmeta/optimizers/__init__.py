"""Learned optimizers: optimizers whose update rule is itself meta-learned.

:func:`learned_optimizer` (Andrychowicz et al. 2016) turns a trained
coordinate-wise LSTM into an optax ``GradientTransformation``;
:func:`meta_train` trains it by truncated backpropagation through unrolled
optimisation on a family of problems.
"""

from jaxmeta.optimizers.lstm_optimizer import CoordinatewiseLSTM
from jaxmeta.optimizers.lstm_optimizer import LearnedOptimizerState
from jaxmeta.optimizers.lstm_optimizer import learned_optimizer
from jaxmeta.optimizers.lstm_optimizer import make_truncation_step
from jaxmeta.optimizers.lstm_optimizer import unrolled_loss
from jaxmeta.optimizers.meta_training import MetaTrainingResult
from jaxmeta.optimizers.meta_training import meta_train
from jaxmeta.optimizers.meta_training import optimize
from jaxmeta.optimizers.meta_training import quadratic_loss
from jaxmeta.optimizers.meta_training import quadratic_problems
from jaxmeta.optimizers.preprocessing import preprocess_gradient

__all__ = [
    "CoordinatewiseLSTM", "LearnedOptimizerState", "MetaTrainingResult", "learned_optimizer",
    "make_truncation_step", "meta_train", "optimize", "preprocess_gradient", "quadratic_loss",
    "quadratic_problems", "unrolled_loss",
]
