"""Training loops over the functional core.

:func:`~jaxmeta.fit` runs meta steps in memory; :func:`train` runs them in a
:class:`RunDirectory` (atomic orbax checkpoints, exact resume, a metrics log
and its learning curve), with validation and a wall-time budget; :func:`restore_run` reads a
finished or stopped run back. ``jaxmeta.training.classifier`` writes ordinary supervised training
as such a step, so the same loops train the baselines' classifiers.
"""

from jaxmeta.training.checkpoint import RunDirectory
from jaxmeta.training.classifier import ImageBatches
from jaxmeta.training.classifier import classify_accuracy
from jaxmeta.training.classifier import init_classifier
from jaxmeta.training.classifier import make_classifier_step
from jaxmeta.training.fit import FitResult
from jaxmeta.training.fit import NonFiniteLossError
from jaxmeta.training.fit import fit
from jaxmeta.training.loop import TrainResult
from jaxmeta.training.loop import restore_run
from jaxmeta.training.loop import train
from jaxmeta.training.metrics_log import MetricsLog
from jaxmeta.training.metrics_log import plot_learning_curve

__all__ = ["FitResult", "ImageBatches", "MetricsLog", "NonFiniteLossError", "RunDirectory", "TrainResult",
           "classify_accuracy", "fit", "init_classifier", "make_classifier_step", "plot_learning_curve",
           "restore_run", "train"]
