"""What every rbp model shares: the contract, input validation, evaluation.

A model is a function of one flat parameter vector ``theta``::

    theta = model.init(rng)
    loss, grad = model.loss_and_grad(theta, X, Y)
    Yhat = model.predict(theta, X)
    model.params.unravel(theta)      # dict name -> view into theta

Subclasses set ``self.params`` (a :class:`~rbp.core.params.ParamSpec`),
``self.loss``/``self.output`` (from :func:`~rbp.core.losses.resolve_output`)
and ``self.dtype``, and implement ``init``, ``prepare`` and
``loss_grad_info``; this base class supplies the rest.
"""

from __future__ import annotations

import numpy as np

from .losses import accuracy, encode_targets

__all__ = ["Model", "check_array", "check_int", "check_dtype", "check_real"]


def check_int(value, argument: str, *, minimum: int = 1) -> int:
    """An integer >= ``minimum``, or a ValueError naming ``argument``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(value, argument: str, *, low: float = 0.0, low_inclusive: bool = False, high: float | None = None,
               high_inclusive: bool = True) -> float:
    """A finite real number in the given range, or a ValueError naming ``argument``.

    Examples
    --------
    >>> check_real(0.5, "damping", high=1.0)
    0.5
    """
    import numbers

    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and np.isfinite(value)
    if ok:
        ok = value >= low if low_inclusive else value > low
        if ok and high is not None:
            ok = value <= high if high_inclusive else value < high
    if not ok:
        if low == 0 and high is None:
            what = "a positive finite number" if not low_inclusive else "a finite number >= 0"
        else:
            lo = ("[" if low_inclusive else "(") + f"{low:g}"
            hi = "inf)" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")
            what = f"a finite real number in {lo}, {hi}"
        raise ValueError(f"{argument} must be {what}, got {value!r}")
    return float(value)


def check_dtype(dtype, argument: str = "dtype"):
    """``numpy.float64`` or ``numpy.float32``, or a ValueError naming ``argument``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"{argument} must be float64 or float32, got {str(dt) if dt is not None else repr(dtype)}")
    return dt.type


def check_array(X, argument: str, *, ndim: int, last: int | None = None, dtype=np.float64) -> np.ndarray:
    """A finite float array with ``ndim`` dimensions (and ``last`` features).

    Raises ValueError naming ``argument``, the expected and the received
    shape/values, before any work starts.

    Examples
    --------
    >>> check_array([[1, 2]], "X", ndim=2, last=2)
    array([[1., 2.]])
    """
    try:
        A = np.asarray(X)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{argument} must be a rectangular numeric array: {exc}") from None
    if A.dtype == object or not (np.issubdtype(A.dtype, np.number) or A.dtype == bool):
        raise ValueError(f"{argument} must be a numeric array, got dtype {A.dtype}")
    if np.issubdtype(A.dtype, np.complexfloating):
        raise ValueError(f"{argument} must be real, got dtype {A.dtype}")
    if A.ndim != ndim:
        want = {2: "(n_samples, n_features)", 3: "(batch, time, features)"}.get(ndim, f"{ndim} dimensions")
        raise ValueError(f"{argument} must be a {ndim}-D array of shape {want}, got shape {A.shape}")
    if last is not None and A.shape[-1] != last:
        raise ValueError(f"{argument} must have {last} features (last axis), got shape {A.shape}")
    A = A.astype(dtype, copy=False)
    if not np.all(np.isfinite(A)):
        bad = np.argwhere(~np.isfinite(A))[0]
        raise ValueError(f"{argument} must be finite, got {A[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return A


class Model:
    """Base class supplying the parts of the model contract that do not depend
    on the architecture."""

    params = None
    dtype = np.float64

    @property
    def n_params(self) -> int:
        """Length of ``theta``."""
        return self.params.size

    @property
    def metrics(self) -> tuple:
        """Names reported by :meth:`evaluate`."""
        return ("loss", "accuracy") if self.loss.classification else ("loss",)

    def prepare(self, X, Y):
        """Validate inputs and encode targets once (the loop then calls the model unchecked).

        Parameters
        ----------
        X : array_like, shape (n_samples, n_in)
        Y : array_like, shape (n_samples,) of class indices, or (n_samples, n_out)

        Returns
        -------
        (X, T) : ndarrays of shapes (n_samples, n_in) and (n_samples, n_out), the model's dtype
        """
        X = check_array(X, "X", ndim=2, last=self.n_in, dtype=self.dtype)
        T = encode_targets(Y, self.n_out, self.loss).astype(self.dtype, copy=False)
        if T.shape[0] != X.shape[0]:
            raise ValueError(f"Y must have one target per sample of X ({X.shape[0]}), got {T.shape[0]}")
        if X.shape[0] == 0:
            raise ValueError("X must contain at least one sample, got 0 rows")
        return X, T

    def check_theta(self, theta) -> np.ndarray:
        """``theta`` as a 1-D finite array of this model's dtype and size."""
        theta = np.asarray(theta)
        if theta.dtype == object or not (np.issubdtype(theta.dtype, np.number) or theta.dtype == bool):
            raise ValueError(f"theta must be a real numeric array, got dtype {theta.dtype}")
        if np.iscomplexobj(theta):
            raise ValueError(f"theta must be real, got dtype {theta.dtype}")
        if theta.ndim != 1 or theta.shape[0] != self.params.size:
            raise ValueError(
                f"theta must be a 1-D array of {self.params.size} parameters for {self!r}, got shape {theta.shape}"
            )
        if not np.all(np.isfinite(theta)):
            raise ValueError("theta must be finite, got NaN or inf")
        return theta.astype(self.dtype, copy=False)

    def loss_and_grad(self, theta, X, Y, *args, check: bool = True, **kwargs):
        """Loss and gradient, the contract's training entry point.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
        X, Y : array_like
            Inputs and targets (see the model's docstring for their shapes).
        *args, **kwargs
            Further data the model takes (for example a sequence ``mask``).
        check : bool
            Validate and encode ``X, Y`` first (default). The training loop
            passes data prepared once by :meth:`prepare` and ``check=False``.

        Returns
        -------
        loss : float
            Mean loss over the samples.
        grad : ndarray, shape (n_params,)
            Its gradient with respect to ``theta``.
        """
        loss, grad, _ = self.loss_grad_info(theta, X, Y, *args, check=check, **kwargs)
        return loss, grad

    def evaluate(self, theta, *data) -> dict:
        """Forward-only metrics on prepared data: ``loss`` and, for
        classification, ``accuracy``."""
        scores, loss = self._forward_loss(theta, *data)
        out = {"loss": loss}
        if self.loss.classification:
            out["accuracy"] = self._accuracy(scores, *data)
        return out

    def _accuracy(self, scores, X, T, *rest):
        return accuracy(scores, T)

    def predict_classes(self, theta, X) -> np.ndarray:
        """Predicted class index per sample (per step for sequences): the
        argmax of the outputs, or ``output > 0.5`` for a single output unit.

        Returns
        -------
        ndarray of int64, shape ``predict(theta, X).shape[:-1]``
        """
        Yhat = self.predict(theta, X)
        if Yhat.shape[-1] == 1:
            return (Yhat[..., 0] > 0.5).astype(np.int64)
        return Yhat.argmax(axis=-1)

    def score(self, theta, X, Y, *args) -> float:
        """Classification accuracy on raw ``X, Y`` (fraction correct)."""
        data = self.prepare(X, Y, *args)
        scores, _ = self._forward_loss(self.check_theta(theta), *data)
        return self._accuracy(scores, *data)
