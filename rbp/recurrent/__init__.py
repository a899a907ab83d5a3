"""Recurrent backprop (:class:`FixedPointNet`) and backprop through time
(:class:`ElmanRNN`), trained by :class:`RecurrentTrainer`."""

from .fixedpoint_net import BACKWARD_METHODS, FixedPointNet
from .trainer import RecurrentTrainer

__all__ = ["FixedPointNet", "RecurrentTrainer", "BACKWARD_METHODS"]

try:  # the BPTT model lands separately
    from .elman import ElmanRNN  # noqa: F401

    __all__.append("ElmanRNN")
except ImportError:  # pragma: no cover
    pass
