"""rbp: backpropagation research toolkit.

Static backprop (:class:`MLP`, :class:`StaticTrainer`), recurrent backprop
in the Almeida-Pineda form (:class:`FixedPointNet`) and backprop through time
(:class:`ElmanRNN`), trained by :class:`RecurrentTrainer`, all on one shared
gradient core (:mod:`rbp.core`).
"""

from . import data, report
from .core import ConvergenceWarning, NonConvergenceError, Status, check_grad
from .core.loop import Trainer
from .core.results import DivergenceError
from .recurrent import ElmanRNN, FixedPointNet, RecurrentTrainer, fit_stream
from .static import MLP, StaticTrainer

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "FixedPointNet",
    "ElmanRNN",
    "fit_stream",
    "RecurrentTrainer",
    "StaticTrainer",
    "Trainer",
    "check_grad",
    "ConvergenceWarning",
    "NonConvergenceError",
    "DivergenceError",
    "Status",
    "data",
    "report",
]
