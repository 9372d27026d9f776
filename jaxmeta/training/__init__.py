"""Training loops over the functional core.

:func:`fit` runs meta steps in memory; :func:`train` runs them in a
:class:`RunDirectory` (atomic orbax checkpoints, exact resume, a metrics log
and its learning curve), with validation and a wall-time budget; :func:`restore_run` reads a
finished or stopped run back.
"""

from jaxmeta.training.checkpoint import RunDirectory
from jaxmeta.training.fit import FitResult
from jaxmeta.training.fit import NonFiniteLossError
from jaxmeta.training.fit import fit
from jaxmeta.training.loop import TrainResult
from jaxmeta.training.loop import restore_run
from jaxmeta.training.loop import train
from jaxmeta.training.metrics_log import MetricsLog
from jaxmeta.training.metrics_log import plot_learning_curve

__all__ = ["FitResult", "MetricsLog", "NonFiniteLossError", "RunDirectory", "TrainResult", "fit",
           "plot_learning_curve", "restore_run", "train"]
