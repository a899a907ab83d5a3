"""Static (feed-forward) backpropagation: the MLP and its trainer."""

from .mlp import MLP
from .trainer import StaticTrainer

__all__ = ["MLP", "StaticTrainer"]
