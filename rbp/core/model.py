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

import math

import numpy as np

from .losses import accuracy, encode_targets
from .results import DivergenceError, apply_failure_policy
from .threads import blas_threads, thread_limit
from .validation import check_array, check_dtype, check_int, check_real  # noqa: F401 (re-exported)

__all__ = ["Model", "check_array", "check_int", "check_dtype", "check_real"]


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

    on_failure = "warn"
    #: BLAS threads for a direct :meth:`loss_and_grad` call ("auto", an int, or None: leave them).
    threads = "auto"

    def blas_work(self, batch: int) -> float:
        """Multiply-adds of the largest matrix product for ``batch`` samples (for ``threads="auto"``)."""
        return float(batch) * float(self.params.size)

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

        Raises
        ------
        rbp.DivergenceError
            When the loss or the gradient is not finite (the model overflowed).
        rbp.NonConvergenceError
            When a solver missed its threshold and ``on_failure="raise"``
            (``"warn"`` and ``"skip"`` issue a :class:`rbp.ConvergenceWarning`).
        """
        with blas_threads(thread_limit(self.threads, self.blas_work(len(X)))):
            loss, grad, info = self.loss_grad_info(theta, X, Y, *args, check=check, **kwargs)
        self._report(info, None)
        if not math.isfinite(loss) or not np.all(np.isfinite(grad)):
            raise DivergenceError(
                f"{type(self).__name__}.loss_and_grad: the loss ({loss}) or the gradient is not finite at theta: "
                "the model overflowed; rescale the inputs or start from smaller weights"
            )
        return loss, grad

    def _report(self, info: dict, on_failure) -> None:
        """Apply the failure policy (``on_failure`` or the model's) to the failures listed in ``info``."""
        apply_failure_policy(info, on_failure or self.on_failure)

    def evaluate(self, theta, *data, on_failure=None) -> dict:
        """Forward-only metrics on prepared data.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
        *data : ndarrays from :meth:`prepare`
        on_failure : str, optional
            Overrides the model's policy for solver failures (a trainer passes
            ``"ignore"`` and reports the counts itself).

        Returns
        -------
        dict
            ``loss`` and, for classification, ``accuracy``; models with a
            relaxation add ``n_unconverged``, the samples whose metrics come
            from states that missed the threshold.
        """
        scores, loss, info = self._forward_loss(theta, *data)
        out = {"loss": loss}
        if self.loss.classification:
            out["accuracy"] = self._accuracy(scores, *data)
        if "n_unconverged" in info:
            out["n_unconverged"] = info["n_unconverged"]
        self._report(info, on_failure)
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
        """Classification accuracy on raw ``X, Y`` (fraction correct); ``on_failure`` applies to failed relaxations."""
        data = self.prepare(X, Y, *args)
        scores, _, info = self._forward_loss(self.check_theta(theta), *data)
        self._report(info, None)
        return self._accuracy(scores, *data)
