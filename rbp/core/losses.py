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

import math
from typing import Callable, NamedTuple

import numpy as np
from scipy.special import expit, softmax

from .activations import ACTIVATIONS, get_activation
from .registry import Registry
from .validation import check_bool, check_callable, unknown_name_message

__all__ = [
    "Loss",
    "LOSSES",
    "get_loss",
    "register_loss",
    "output_names",
    "OUTPUTS",
    "resolve_output",
    "encode_targets",
    "output_loss",
    "output_transform",
    "accuracy",
]


class Loss(NamedTuple):
    """A loss, its output delta, and the output layers it may follow.

    Attributes
    ----------
    name : str
    outputs : tuple of str
        Valid output layers; the first is the default. ``"*"`` as the last
        entry also admits every activation registered later.
    classification : bool
        Whether predictions are class scores (accuracy is reported).
    fn : callable ``(a, T, output) -> (per_row, delta)``
        Per-row loss, shape (n,), and ``dL/da``, shape (n, n_out), for
        pre-activations ``a`` and encoded targets ``T`` (both (n, n_out)).
    target_range : (float, float) or None
        Closed interval every target value must lie in (checked by
        :func:`encode_targets`), e.g. ``(0, 1)`` for the cross-entropies.
    fn1d : callable ``(a, t, output) -> (loss, delta)``, optional
        The same for one sample, 1-D ``a`` and ``t`` (the online path of
        per-tuple training; it may overwrite ``a``); ``fn`` on a one-row
        batch when absent.
    """

    name: str
    outputs: tuple
    classification: bool
    fn: Callable = None
    target_range: tuple | None = None
    fn1d: Callable | None = None


def output_names() -> tuple:
    """Every output layer: each registered activation, plus softmax."""
    return tuple(ACTIVATIONS) + ("softmax",)


#: The built-in output layers (see :func:`output_names` for the registered ones).
OUTPUTS = output_names()


def _squared(a, T, output):
    """``L = 1/2 sum (f(a) - t)^2``, ``dL/da = (y - t) f'(a)`` (softmax: its Jacobian applied)."""
    y = output_transform(output, a)
    g = y - T
    per_row = 0.5 * np.einsum("ij,ij->i", g, g)
    if output == "softmax":
        delta = y * (g - np.einsum("ij,ij->i", g, y)[:, None])
    elif output == "identity":
        delta = g
    else:
        delta = g * get_activation(output).df(a, y)
    return per_row, delta


def _cross_entropy(a, T, output):
    """``L = -sum t log softmax(a)``, ``dL/da = p sum(t) - t`` (fused, never overflows)."""
    # log-softmax by hand: scipy.special.log_softmax spends ~6-12 us in array-API dispatch per call
    z = a - a.max(axis=-1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=-1, keepdims=True)
    tsum = T.sum(axis=-1, keepdims=True)
    # -sum_j t_j log p_j = sum(t) log(s) - sum_j t_j z_j,  with p = e / s
    per_row = tsum[:, 0] * np.log(s[:, 0]) - np.einsum("ij,ij->i", T, z)
    e *= tsum / s
    e -= T
    return per_row, e  # p sum(t) - t


def _cross_entropy_1d(a, t, output):
    """One sample of :func:`_cross_entropy` on 1-D vectors, overwriting ``a`` (the online path: every
    numpy call counts)."""
    ones = _ones(a.shape[0], a.dtype)  # sums as dot products: half the cost of .sum() on short vectors
    a -= np.maximum.reduce(a)
    e = np.exp(a)
    s = float(np.dot(e, ones))
    tsum = float(np.dot(t, ones))
    loss = tsum * math.log(s) - float(np.dot(t, a))
    e *= tsum / s
    e -= t
    return loss, e


_ONES: dict = {}


def _ones(n, dtype):
    key = (n, np.dtype(dtype).char)
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = np.ones(n, dtype=dtype)
    return ones


def _squared_1d(a, t, output):
    """One sample of :func:`_squared`; the identity output is the common online case."""
    if output != "identity":
        per_row, delta = _squared(a[None], t[None], output)
        return float(per_row[0]), delta[0]
    g = a - t
    return 0.5 * float(g @ g), g


def _binary_cross_entropy(a, T, output):
    """``L = sum softplus(a) - t a``, ``dL/da = sigmoid(a) - t`` (fused, stable)."""
    return (np.logaddexp(0.0, a) - T * a).sum(axis=-1), expit(a) - T


def _check_loss(name, loss):
    if not isinstance(loss, Loss) or not callable(loss.fn):
        raise ValueError(f"loss {name!r} must be a Loss with a callable fn, got {loss!r}")


#: name -> :class:`Loss`; extend it with :func:`register_loss`.
LOSSES = Registry("loss", check=_check_loss)
LOSSES.register("squared", Loss("squared", ("identity",) + tuple(o for o in OUTPUTS if o != "identity"), False,
                                _squared, fn1d=_squared_1d))
LOSSES.register("cross_entropy", Loss("cross_entropy", ("softmax",), True, _cross_entropy, (0.0, 1.0),
                                      _cross_entropy_1d))
LOSSES.register(
    "binary_cross_entropy", Loss("binary_cross_entropy", ("logistic",), True, _binary_cross_entropy, (0.0, 1.0))
)


def register_loss(name: str, fn, *, outputs=("identity",), classification: bool = False, target_range=None,
                  overwrite: bool = False) -> Loss:
    """Add a loss that every model then accepts by name.

    Parameters
    ----------
    name : str
    fn : callable ``(a, T, output) -> (per_row, delta)``
        Per-row loss (n,) and its gradient ``dL/da`` (n, n_out) for output
        pre-activations ``a`` and encoded targets ``T``; ``output`` is the
        output layer's name (apply :func:`output_transform` to get ``y``).
    outputs : tuple of str
        Output layers it may follow, the default first (``"*"``: any).
    classification : bool
        Report accuracy for it.
    target_range : (float, float), optional
        Closed interval the targets must lie in.

    Returns
    -------
    Loss

    Examples
    --------
    >>> import numpy as np
    >>> def absolute(a, T, output):
    ...     return np.abs(a - T).sum(axis=-1), np.sign(a - T)
    >>> _ = register_loss("l1", absolute)
    >>> L, delta = output_loss("l1", "identity", np.array([[1.0, -2.0]]), np.zeros((1, 2)))
    >>> L, delta.tolist()
    (3.0, [[1.0, -1.0]])
    >>> LOSSES.unregister("l1")
    """
    check_callable(fn, "fn", optional=False)
    check_bool(classification, "classification")
    outputs = tuple(outputs)
    if not outputs or not all(isinstance(o, str) for o in outputs):
        raise ValueError(f"outputs must be a non-empty tuple of output-layer names, got {outputs!r}")
    if target_range is not None:
        lo, hi = (float(v) for v in target_range)
        target_range = (lo, hi)
    return LOSSES.register(name, Loss(name, outputs, classification, fn, target_range), overwrite=overwrite)


def get_loss(name: str | Loss, *, argument: str = "loss") -> Loss:
    """Look a loss up by name (``squared``, ``cross_entropy``, ``binary_cross_entropy``).

    Examples
    --------
    >>> get_loss("cross_entropy").outputs
    ('softmax',)
    """
    if isinstance(name, Loss):
        return name
    return LOSSES.get(name, argument=argument)


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
    valid = output_names()
    if output not in valid:
        raise ValueError(unknown_name_message("output", output, valid))
    allowed = valid if loss.name == "squared" else tuple(o for o in loss.outputs if o != "*")
    if "*" in loss.outputs:
        allowed = valid
    if output not in allowed:
        raise ValueError(
            f"output={output!r} cannot be used with loss={loss.name!r}: expected one of "
            f"{list(allowed)}; use output={loss.outputs[0]!r} or another loss"
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
    if loss.target_range is not None and T.size:
        lo, hi = loss.target_range
        if T.min() < lo or T.max() > hi:
            raise ValueError(
                f"{argument} for {loss.name} must be in [{lo:g}, {hi:g}] (class indices, one-hot rows or "
                f"probabilities), got values in [{T.min():g}, {T.max():g}]"
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
    per_row, delta = get_loss(loss).fn(a, T, output)
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
