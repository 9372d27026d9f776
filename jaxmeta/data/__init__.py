"""Episodic data: task distributions that produce :class:`jaxmeta.Task` batches."""

from jaxmeta.data.sinusoid import Sinusoid
from jaxmeta.data.sinusoid import SinusoidConfig
from jaxmeta.data.sinusoid import sample_sinusoid
from jaxmeta.data.sinusoid import sinusoid_examples
from jaxmeta.data.sinusoid import sinusoid_task
from jaxmeta.data.sinusoid import sinusoid_tasks

__all__ = ["Sinusoid", "SinusoidConfig", "sample_sinusoid", "sinusoid_examples", "sinusoid_task", "sinusoid_tasks"]
