"""Recurrent backprop (:class:`FixedPointNet`) and backprop through time
(:class:`ElmanRNN`, :func:`fit_stream`), trained by :class:`RecurrentTrainer`."""

from .elman import ElmanRNN
from .fixedpoint_net import BACKWARD_METHODS, FixedPointNet
from .stream import fit_stream
from .trainer import RecurrentTrainer

__all__ = ["FixedPointNet", "ElmanRNN", "RecurrentTrainer", "fit_stream", "BACKWARD_METHODS"]
