"""Losses with their gradients, and the output layer they are paired with.

A loss is evaluated on the pre-activation ``a`` of the output units and the
encoded targets ``T``; :func:`output_loss` returns the loss and its gradient
``dL/da`` (the output *delta* of backpropagation) in one pass.

===================== ======================== ==================================
loss                  output (default first)    dL/da per sample
===================== ======================== ==================================
squared               identity, any activation  ``(y - t) * f'(a)``
                      or softmax                (softmax: ``y * (g - sum(g*y))``)
cross_entropy         softmax                   ``p - t``  (fused, stable)
binary_cross_entropy  logistic                  ``sigmoid(a) - t`` (fused, stable)
===================== ======================== ==================================

``squared`` is the classic backpropagation error ``1/2 sum (y - t)**2``.
The cross-entropies are only offered with their canonical output because the
fused gradient is exact and never overflows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import expit, softmax

from .activations import ACTIVATIONS, get_activation, unknown_name_message

__all__ = [
    "Loss",
    "LOSSES",
    "OUTPUTS",
    "get_loss",
    "resolve_output",
    "encode_targets",
    "output_loss",
    "output_transform",
    "accuracy",
]


class Loss(NamedTuple):
    """A loss and the output layers it may follow.

    Attributes
    ----------
    name : str
    outputs : tuple of str
        Valid output layers; the first is the default.
    classification : bool
        Whether predictions are class scores (accuracy is reported).
    """

    name: str
    outputs: tuple
    classification: bool


#: Output layers: every activation, plus softmax (for the cross-entropy).
OUTPUTS = tuple(ACTIVATIONS) + ("softmax",)

LOSSES: dict[str, Loss] = {
    "squared": Loss("squared", ("identity",) + tuple(n for n in OUTPUTS if n != "identity"), False),
    "cross_entropy": Loss("cross_entropy", ("softmax",), True),
    "binary_cross_entropy": Loss("binary_cross_entropy", ("logistic",), True),
}


def get_loss(name: str | Loss, *, argument: str = "loss") -> Loss:
    """Look a loss up by name (``squared``, ``cross_entropy``, ``binary_cross_entropy``).

    Examples
    --------
    >>> get_loss("cross_entropy").outputs
    ('softmax',)
    """
    if isinstance(name, Loss):
        return name
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(unknown_name_message(argument, name, LOSSES)) from None


def resolve_output(loss: str | Loss, output: str | None, n_out: int | None = None) -> tuple[Loss, str]:
    """Validate a (loss, output) pair; ``output=None`` picks the loss's default.

    A softmax over a single unit is identically 1 (a model that cannot
    learn), so softmax needs ``n_out >= 2`` when ``n_out`` is given.

    Examples
    --------
    >>> resolve_output("cross_entropy", None)[1]
    'softmax'
    """
    loss = get_loss(loss)
    if output is None:
        output = loss.outputs[0]
    if output not in OUTPUTS:
        raise ValueError(unknown_name_message("output", output, OUTPUTS))
    if output not in loss.outputs:
        raise ValueError(
            f"output={output!r} cannot be used with loss={loss.name!r}: expected one of "
            f"{list(loss.outputs)}; use output={loss.outputs[0]!r} or another loss"
        )
    if output == "softmax" and n_out is not None and n_out < 2:
        raise ValueError(
            f"output='softmax' needs at least 2 output units, got n_out={n_out}; "
            "for one output use loss='binary_cross_entropy' (logistic) or loss='squared'"
        )
    return loss, output


def encode_targets(Y, n_out: int, loss: str | Loss, *, argument: str = "Y") -> np.ndarray:
    """Turn targets into a float array of shape (n_samples, n_out).

    Parameters
    ----------
    Y : array_like, shape (n_samples,) or (n_samples, n_out)
        Class indices (integers in ``range(n_out)``; for a single logistic
        output, 0/1 labels) or target values / one-hot rows.
    n_out : int
        Number of output units.
    loss : str or Loss

    Returns
    -------
    T : ndarray, shape (n_samples, n_out), float64

    Raises
    ------
    ValueError
        Wrong shape, non-finite values, or class indices out of range.

    Examples
    --------
    >>> encode_targets([2, 0], 3, "cross_entropy")
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    loss = get_loss(loss)
    if isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer)) or n_out < 1:
        raise ValueError(f"n_out must be an integer >= 1, got {n_out!r}")
    try:
        Y = np.asarray(Y)
    except ValueError as exc:
        raise ValueError(f"{argument} must be a rectangular numeric array: {exc}") from None
    if Y.dtype == object or not (np.issubdtype(Y.dtype, np.number) or Y.dtype == bool):
        raise ValueError(f"{argument} must be a numeric array, got dtype {Y.dtype}")
    if np.iscomplexobj(Y):
        raise ValueError(f"{argument} must be real, got dtype {Y.dtype}")
    if Y.ndim == 1 and (n_out > 1 or loss.name == "cross_entropy"):
        if not _is_integral(Y):
            raise ValueError(
                f"{argument} must hold class indices (integers) when 1-D with {n_out} outputs, "
                f"got non-integer values such as {Y.ravel()[~_integral_mask(Y)][:3].tolist()}"
            )
        out_of_range = (Y < 0) | (Y >= n_out)
        if out_of_range.any():
            raise ValueError(
                f"{argument} class labels must be in [0, {n_out - 1}] for {n_out} output units, "
                f"got {Y[out_of_range][:5].tolist()}"
            )
        labels = Y.astype(np.int64)
        T = np.zeros((labels.shape[0], n_out))
        T[np.arange(labels.shape[0]), labels] = 1.0
        return T
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[1] != n_out:
        raise ValueError(
            f"{argument} must have shape (n_samples,) of class indices or (n_samples, {n_out}), "
            f"got shape {Y.shape}"
        )
    T = Y.astype(np.float64)
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{argument} must be finite, got NaN or inf")
    if loss.name == "binary_cross_entropy" and T.size and (T.min() < 0 or T.max() > 1):
        raise ValueError(
            f"{argument} for binary_cross_entropy must be in [0, 1], "
            f"got values in [{T.min():g}, {T.max():g}]"
        )
    return T


def _integral_mask(Y):
    if np.issubdtype(Y.dtype, np.integer) or Y.dtype == bool:
        return np.ones(Y.shape, bool)
    return np.isfinite(Y) & (Y == np.round(Y))


def _is_integral(Y):
    return bool(np.all(_integral_mask(Y)))


def output_transform(output: str, a: np.ndarray) -> np.ndarray:
    """The output layer's values ``y`` for pre-activations ``a`` (n, n_out)."""
    if output == "softmax":
        return softmax(a, axis=-1)
    return get_activation(output, argument="output").f(a)


def output_loss(loss, output: str, a: np.ndarray, T: np.ndarray, weights=None):
    """Loss and output delta for pre-activations ``a``.

    Parameters
    ----------
    loss : str or Loss
    output : str
        The output layer (validated by :func:`resolve_output`).
    a : ndarray, shape (n, n_out)
        Pre-activations of the output units.
    T : ndarray, shape (n, n_out)
        Encoded targets (:func:`encode_targets`).
    weights : ndarray, shape (n,), optional
        Per-row weights (for example ``1/n`` for a mean, or a sequence mask
        divided by its count). Default: every row weight 1 (a sum).

    Returns
    -------
    L : float
        ``sum_i weights[i] * loss(row i)``.
    delta : ndarray, shape (n, n_out)
        ``dL/da``.

    Notes
    -----
    For ``squared`` with output ``f``: ``L = 1/2 sum (f(a) - t)^2`` and
    ``dL/da = (y - t) f'(a)``. For ``cross_entropy`` with softmax:
    ``L = -sum t log softmax(a)`` and ``dL/da = p sum(t) - t``. For
    ``binary_cross_entropy`` with the logistic:
    ``L = sum softplus(a) - t a`` and ``dL/da = sigmoid(a) - t``.

    Examples
    --------
    >>> import numpy as np
    >>> L, delta = output_loss("squared", "identity", np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))
    >>> float(L), delta.tolist()
    (2.5, [[1.0, 2.0]])
    """
    name = loss.name if isinstance(loss, Loss) else loss
    if name == "cross_entropy":
        # log-softmax by hand: scipy.special.log_softmax spends ~6-12 us in array-API dispatch per call
        z = a - a.max(axis=-1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=-1, keepdims=True)
        tsum = T.sum(axis=-1, keepdims=True)
        # -sum_j t_j log p_j = sum(t) log(s) - sum_j t_j z_j,  with p = e / s
        per_row = tsum[:, 0] * np.log(s[:, 0]) - np.einsum("ij,ij->i", T, z)
        e *= tsum / s
        e -= T
        delta = e  # p sum(t) - t
    elif name == "binary_cross_entropy":
        per_row = (np.logaddexp(0.0, a) - T * a).sum(axis=-1)
        delta = expit(a) - T
    elif name == "squared":
        y = output_transform(output, a)
        g = y - T
        per_row = 0.5 * np.einsum("ij,ij->i", g, g)
        if output == "softmax":
            delta = y * (g - np.einsum("ij,ij->i", g, y)[:, None])
        elif output == "identity":
            delta = g
        else:
            delta = g * get_activation(output).df(a, y)
    else:  # pragma: no cover - guarded by get_loss
        raise ValueError(unknown_name_message("loss", name, LOSSES))
    if weights is None:
        return float(per_row.sum()), delta
    return float(per_row @ weights), delta * weights[:, None]


def accuracy(scores: np.ndarray, T: np.ndarray) -> float:
    """Fraction of rows whose predicted class matches the target.

    ``scores`` and ``T`` are (n, n_out); with one output unit the class is
    ``score > 0.5`` (a probability) against ``T > 0.5``.

    Examples
    --------
    >>> import numpy as np
    >>> accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([[0, 1], [0, 1]]))
    0.5
    """
    if scores.shape[0] == 0:
        return float("nan")
    if scores.shape[-1] == 1:
        return float(np.mean((scores[:, 0] > 0.5) == (T[:, 0] > 0.5)))
    return float(np.mean(scores.argmax(axis=-1) == T.argmax(axis=-1)))
