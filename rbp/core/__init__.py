"""The shared gradient core. It imports nothing else from rbp.

Static backprop (:mod:`rbp.static`), recurrent backprop and backprop
through time (:mod:`rbp.recurrent`) are clients of this package and add no
numerical machinery of their own.
"""

from . import activations, losses, optimizers
from .activations import ACTIVATIONS, Activation, get_activation
from .gradcheck import GradientCheckError, check_grad
from .loop import History, Trainer, TrainResult, fit, split_validation
from .losses import LOSSES, encode_targets, get_loss, output_loss
from .model import Model, check_array
from .optimizers import Optimizer, get_optimizer, scipy_minimize
from .params import ParamSpec, as_generator, glorot_uniform, he_normal
from .results import ConvergenceWarning, NonConvergenceError, Result, Status

__all__ = [
    "ACTIVATIONS", "Activation", "ConvergenceWarning", "GradientCheckError", "History", "LOSSES", "Model",
    "NonConvergenceError", "Optimizer", "ParamSpec", "Result", "Status", "TrainResult", "Trainer",
    "activations", "as_generator", "check_array", "check_grad", "encode_targets", "fit", "get_activation",
    "get_loss", "get_optimizer", "glorot_uniform", "he_normal", "losses", "optimizers", "output_loss",
    "scipy_minimize", "split_validation",
]
