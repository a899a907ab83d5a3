"""Central-difference gradient checking, a public library function."""

from __future__ import annotations

import numpy as np

from .validation import check_int, check_real
from .validation import as_generator
from .results import Result

__all__ = ["check_grad", "GradientCheckError"]


class GradientCheckError(AssertionError):
    """The analytic gradient disagrees with central differences."""


def check_grad(
    fun,
    theta,
    args=(),
    *,
    rtol: float = 1e-7,
    atol: float | None = None,
    eps: float = 1e-5,
    max_coords: int = 400,
    n_directions: int = 24,
    rng=0,
    raise_on_failure: bool = True,
) -> Result:
    """Compare ``fun``'s analytic gradient with central differences.

    Parameters
    ----------
    fun : callable ``fun(theta, *args) -> (loss, grad)``
        For example ``model.loss_and_grad``.
    theta : ndarray, shape (n_params,)
        Where to check, converted to float64. Check models built in float64:
        a float32 model rounds ``theta`` back to float32, and central
        differences cannot resolve its gradient to ``rtol``.
    args : tuple
        Extra arguments for ``fun``, e.g. ``(X, Y)``.
    rtol : float
        Largest accepted relative error
        ``||analytic - numeric||_2 / max(||analytic||_2, ||numeric||_2)``.
    atol : float, optional
        Absolute slack: the check passes when
        ``||analytic - numeric|| <= atol + rtol * scale``. Default: the
        central-difference round-off floor,
        ``10 * eps_mach * max(1, |f(theta)|) / eps * sqrt(n_compared)``, so a
        correct gradient too small to resolve numerically (a converged model)
        is not reported as wrong.
    eps : float
        Central-difference step (absolute; about the cube root of float64 eps).
    max_coords : int
        Up to this many parameters every coordinate is checked; above it,
        ``n_directions`` random Gaussian directions ``v`` are checked
        (``grad @ v`` against ``(f(theta + eps v) - f(theta - eps v)) / 2 eps``).
    rng : numpy.random.Generator or int
        Draws the random directions.
    raise_on_failure : bool
        Raise :class:`GradientCheckError` on failure (default) instead of only
        returning ``success=False``.

    Returns
    -------
    Result
        ``success``, ``rel_error``, ``analytic`` and ``numeric`` (the compared
        values: per coordinate, or per direction), ``mode`` (``"coordinates"``
        or ``"directions"``), ``message``.

    Raises
    ------
    GradientCheckError
        If the relative error exceeds ``rtol``; the message lists the worst
        entries, analytic beside numeric.

    Notes
    -----
    The central difference ``(f(x + h) - f(x - h)) / 2h`` has truncation
    error ``O(h^2)`` and round-off ``O(eps_mach / h)``; ``h = 1e-5`` balances
    the two in float64, giving relative errors around 1e-10 for smooth losses.

    Examples
    --------
    >>> import numpy as np
    >>> f = lambda x: (0.5 * x @ x, x)
    >>> check_grad(f, np.array([1.0, -2.0])).success
    True
    >>> bad = lambda x: (0.5 * x @ x, 2 * x)
    >>> check_grad(bad, np.array([1.0, -2.0]), raise_on_failure=False).success
    False
    """
    check_real(rtol, "rtol")
    check_real(eps, "eps")
    check_int(max_coords, "max_coords", minimum=0)
    check_int(n_directions, "n_directions")
    raw = np.asarray(theta)
    if raw.dtype == object or not (np.issubdtype(raw.dtype, np.number) or raw.dtype == bool) or np.iscomplexobj(raw):
        raise ValueError(f"theta must be a real numeric array, got dtype {raw.dtype}")
    theta = raw.astype(np.float64)
    if theta.ndim != 1:
        raise ValueError(f"theta must be a 1-D array, got shape {theta.shape}")
    if not np.all(np.isfinite(theta)):
        raise ValueError("theta must be finite, got NaN or inf")
    loss, grad = fun(theta, *args)
    grad = np.asarray(grad, dtype=np.float64)
    if grad.shape != theta.shape:
        raise ValueError(f"fun must return a gradient of shape {theta.shape}, got {grad.shape}")
    if not np.all(np.isfinite(grad)) or not np.isfinite(loss):
        raise GradientCheckError(f"fun returned a non-finite loss ({loss}) or gradient at theta")

    def f(x):
        return float(fun(x, *args)[0])

    if theta.size <= max_coords:
        mode = "coordinates"
        analytic = grad
        numeric = np.empty_like(theta)
        for i in range(theta.size):
            xp = theta.copy()
            xp[i] += eps
            xm = theta.copy()
            xm[i] -= eps
            numeric[i] = (f(xp) - f(xm)) / (2 * eps)
    else:
        mode = "directions"
        gen = as_generator(rng)
        V = gen.standard_normal((n_directions, theta.size))
        V /= np.linalg.norm(V, axis=1, keepdims=True)
        analytic = V @ grad
        numeric = np.array([(f(theta + eps * v) - f(theta - eps * v)) / (2 * eps) for v in V])

    scale = max(np.linalg.norm(analytic), np.linalg.norm(numeric))
    diff = float(np.linalg.norm(analytic - numeric))
    rel_error = diff / scale if scale > 0 else 0.0
    if atol is None:
        atol = 10 * np.finfo(np.float64).eps * max(1.0, abs(float(loss))) / eps * np.sqrt(analytic.size)
    else:
        check_real(atol, "atol", low_inclusive=True)
    success = bool(diff <= atol + rtol * scale)
    if success:
        message = f"gradient check passed: relative error {rel_error:.2e} <= rtol {rtol:.0e} ({mode})"
    else:
        worst = np.argsort(-np.abs(analytic - numeric))[:8]
        label = "index" if mode == "coordinates" else "direction"
        rows = "\n".join(
            f"  {label} {i:6d}: analytic {analytic[i]: .10e}  numeric {numeric[i]: .10e}  "
            f"diff {analytic[i] - numeric[i]: .3e}"
            for i in worst
        )
        message = (
            f"gradient check failed: relative error {rel_error:.3e} > rtol {rtol:.0e} "
            f"({mode}, {analytic.size} compared); worst entries:\n{rows}"
        )
    result = Result(
        success=success, rel_error=rel_error, analytic=analytic, numeric=numeric, mode=mode, message=message
    )
    if raise_on_failure and not success:
        raise GradientCheckError(message)
    return result
