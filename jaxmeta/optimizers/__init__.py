"""Learned optimizers: optimizers whose update rule is itself meta-learned.

:func:`learned_optimizer` (Andrychowicz et al. 2016) turns a trained
coordinate-wise LSTM into an optax ``GradientTransformation``;
:func:`meta_train` trains it by truncated backpropagation through unrolled
optimisation on a family of problems. :func:`lstm_meta_learner` (Ravi and
Larochelle 2017) is a meta-learner whose LSTM cell state is the learner's
parameters.
"""

from jaxmeta.optimizers.lstm_optimizer import CoordinatewiseLSTM
from jaxmeta.optimizers.lstm_optimizer import LearnedOptimizerState
from jaxmeta.optimizers.lstm_optimizer import learned_optimizer
from jaxmeta.optimizers.lstm_optimizer import make_truncation_step
from jaxmeta.optimizers.lstm_optimizer import unrolled_loss
from jaxmeta.optimizers.meta_lstm import MetaLSTMCell
from jaxmeta.optimizers.meta_lstm import MetaLSTMParams
from jaxmeta.optimizers.meta_lstm import MetaLSTMState
from jaxmeta.optimizers.meta_lstm import lstm_meta_learner
from jaxmeta.optimizers.meta_training import MetaTrainingResult
from jaxmeta.optimizers.meta_training import classification_problems
from jaxmeta.optimizers.meta_training import meta_train
from jaxmeta.optimizers.meta_training import mlp_classifier_loss
from jaxmeta.optimizers.meta_training import optimize
from jaxmeta.optimizers.meta_training import quadratic_loss
from jaxmeta.optimizers.meta_training import quadratic_problems
from jaxmeta.optimizers.preprocessing import preprocess_gradient

__all__ = [
    "CoordinatewiseLSTM", "LearnedOptimizerState", "MetaLSTMCell", "MetaLSTMParams", "MetaLSTMState",
    "MetaTrainingResult", "classification_problems", "learned_optimizer", "lstm_meta_learner",
    "make_truncation_step", "meta_train", "mlp_classifier_loss", "optimize", "preprocess_gradient", "quadratic_loss",
    "quadratic_problems", "unrolled_loss",
]
