"""Containers returned by every data set in :mod:`rbp.data`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Dataset", "SequenceDataset"]


@dataclass(frozen=True)
class Dataset:
    """A classification data set already split into train and test parts.

    Attributes
    ----------
    X_train : ndarray, shape (n_train, n_features)
        Training inputs, float64, scaled to [0, 1].
    y_train : ndarray of int, shape (n_train,)
        Training class indices in ``range(len(classes))``.
    X_test : ndarray, shape (n_test, n_features)
    y_test : ndarray of int, shape (n_test,)
    classes : tuple of str
        Human-readable name of each class index (``"A"``, ``"7"``...).
    image_shape : tuple of int or None
        ``(height, width)`` when each row of ``X`` is a flattened image.
    meta : dict
        Provenance: generator arguments, fonts used for each split, source.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    image_shape: tuple | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


@dataclass(frozen=True)
class SequenceDataset:
    """A sequence task: inputs, targets and a mask, with its trivial baseline.

    Attributes
    ----------
    X : ndarray, shape (batch, time, n_in)
    Y : ndarray, shape (batch, time, n_out) or (batch, time) of int class indices
        Targets at every step; steps that carry no target are masked out.
    mask : ndarray of bool, shape (batch, time)
        True where the step carries a target that enters the loss.
    loss : str
        The loss the task is scored with (``"squared"``, ``"cross_entropy"``,
        ``"binary_cross_entropy"``).
    baseline : float
        The trivial baseline for the task's metric (for example MSE 1/6 for the
        adding problem from predicting the mean), reported beside results.
    metric : str
        Name of the metric ``baseline`` is expressed in.
    meta : dict
        Generator arguments and task-specific extras.
    """

    X: np.ndarray
    Y: np.ndarray
    mask: np.ndarray
    loss: str
    baseline: float
    metric: str
    meta: dict = field(default_factory=dict)
