"""Memory-augmented meta-learners: models that learn a task within an episode through an external memory.

:class:`MANNCell` (Santoro et al. 2016, least-recently-used access) and
:class:`NTMCell` (Graves et al. 2014) are recurrent cells;
:class:`SequenceClassifier` runs one (or the :class:`LSTMCore` baseline) over
an episode of images whose labels arrive one step late, and
:func:`memory_learner` trains it with the library's meta step and training
loop. :class:`MetaNet` (Munkhdalai and Yu 2017) keeps fast weights, generated
from the support set's gradients, in a key/value memory. ``jaxmeta.memory.addressing``
holds the addressing arithmetic.
"""

from jaxmeta.memory import addressing
from jaxmeta.memory.mann import MANNCell
from jaxmeta.memory.mann import MANNState
from jaxmeta.memory.metanet import MetaNet
from jaxmeta.memory.metanet import MetaNetState
from jaxmeta.memory.ntm import NTMCell
from jaxmeta.memory.ntm import NTMState
from jaxmeta.memory.sequence import PRESENTATIONS
from jaxmeta.memory.sequence import EpisodeTrace
from jaxmeta.memory.sequence import LSTMCore
from jaxmeta.memory.sequence import SequenceClassifier
from jaxmeta.memory.sequence import episode_metrics
from jaxmeta.memory.sequence import memory_learner
from jaxmeta.memory.sequence import presentation_index
from jaxmeta.memory.sequence import previous_labels
from jaxmeta.memory.sequence import trace_episode

__all__ = [
    "EpisodeTrace", "LSTMCore", "MANNCell", "MANNState", "MetaNet", "MetaNetState", "NTMCell", "NTMState",
    "PRESENTATIONS",
    "SequenceClassifier", "addressing", "episode_metrics", "memory_learner",
    "presentation_index", "previous_labels", "trace_episode",
]
