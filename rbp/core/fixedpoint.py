"""Relax a batch of dynamics ``x = F(x)`` to a fixed-point threshold.

:func:`relax` iterates row by row (rows are samples) until every sample's
relative residual

    r_i = ||F(x)_i - x_i||_2 / max(1, ||x_i||_2)

is at most ``tol``, or ``max_iter`` is reached. Samples that have converged
stop being updated; iterations are recorded per sample. Methods:

``picard``
    damped iteration ``x <- (1 - damping) x + damping F(x)``;
``anderson``
    Anderson acceleration (type II, memory ``m``), batched per sample;
``ode``
    continuous time, ``dx/dt = F(x) - x`` with ``scipy.integrate.solve_ivp``
    and a terminal event at the threshold;
``krylov``, ``broyden1``, ``broyden2``, ``df-sane``, ``hybr``
    ``scipy.optimize.root`` on ``x - F(x) = 0`` for the whole batch.

A missed threshold is reported in the result (``success=False``, the
residual history, a message saying what to try), never raised.
"""

from __future__ import annotations

import numpy as np

from .activations import unknown_name_message
from .model import check_int, check_real
from .results import Result, Status

__all__ = ["relax", "METHODS", "SCIPY_ROOT_METHODS", "spectrum"]

SCIPY_ROOT_METHODS = ("krylov", "broyden1", "broyden2", "df-sane", "hybr")
METHODS = ("picard", "anderson", "ode") + SCIPY_ROOT_METHODS


def _residual(x, fx, *, with_norm=False):
    norm = np.linalg.norm(x, axis=1)
    r = np.linalg.norm(fx - x, axis=1) / np.maximum(1.0, norm)
    return (r, norm) if with_norm else r


def relax(
    F,
    x0: np.ndarray,
    *,
    method: str = "picard",
    tol: float = 1e-8,
    max_iter: int = 500,
    damping: float = 1.0,
    memory: int = 5,
    store_iterates: bool = False,
    divergence: float = 1e8,
) -> Result:
    """Iterate ``x <- F(x)`` (or accelerate it) until a fixed point.

    Parameters
    ----------
    F : callable ``F(x, rows) -> ndarray``
        ``x`` has shape (k, n) and holds the current states of the samples
        whose indices are ``rows`` (an int array of length k, a subset of
        ``range(B)``); returns ``F`` of those states, shape (k, n).
    x0 : ndarray, shape (B, n)
        Initial states.
    method : str
        One of :data:`METHODS`.
    tol : float
        Threshold on the per-sample relative residual (see module docstring).
    max_iter : int
        Maximum number of evaluations of ``F`` per sample.
    damping : float
        ``picard`` step ``tau`` in ``(0, 1]``; also the mixing of ``anderson``.
    memory : int
        ``anderson`` history length.
    store_iterates : bool
        Keep every iterate (``picard`` only) for backprop through the
        relaxation: ``iterates[k]`` is the (B, n) state before step ``k`` and
        ``active[k]`` the (B,) mask of samples updated at that step.
    divergence : float
        A relative residual or a state norm above this (or a non-finite
        one) stops with ``Status.DIVERGED``, keeping the last finite state.

    Returns
    -------
    Result
        ``x`` (B, n) the relaxed states; ``success`` (all samples
        converged); ``converged`` (B,) bool; ``status``; ``message``; ``nit``
        (evaluations of F per sample, the max over samples; comparable
        across methods, diagnostics excluded); ``nit_per_sample`` (B,);
        ``residual`` (B,) final residuals; ``residuals`` (history of the
        largest residual among the samples still running); ``n_fev``
        (sample-evaluations of F); ``iterates``/``active`` when stored.

    Notes
    -----
    Damped iteration converges when every eigenvalue ``lambda`` of the
    Jacobian at the fixed point has ``|1 - tau + tau lambda| < 1``: for
    ``tau = 1`` that is ``rho(J) < 1``, and for small ``tau`` only
    ``Re lambda < 1`` is needed. A contraction (``||J|| < 1`` everywhere)
    guarantees a unique fixed point and convergence from any ``x0``.

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([[0.5], [-1.0]])
    >>> res = relax(lambda x, rows: np.tanh(0.5 * x + c[rows]), np.zeros((2, 1)), tol=1e-12)
    >>> res.success, bool(np.allclose(res.x, np.tanh(0.5 * res.x + c)))
    (True, True)
    """
    if method not in METHODS:
        raise ValueError(unknown_name_message("method", method, METHODS))
    check_real(damping, "damping", high=1.0)
    check_int(max_iter, "max_iter")
    check_real(tol, "tol")
    check_int(memory, "memory")
    check_real(divergence, "divergence")
    if store_iterates and method != "picard":
        raise ValueError(f"store_iterates (backprop through the relaxation) needs method='picard', got {method!r}")
    raw = np.asarray(x0)
    if raw.dtype == object or not (np.issubdtype(raw.dtype, np.number) or raw.dtype == bool) or np.iscomplexobj(raw):
        raise ValueError(f"x0 must be a real numeric array, got dtype {raw.dtype}")
    if raw.ndim != 2 or raw.shape[0] < 1 or raw.shape[1] < 1:
        raise ValueError(f"x0 must have shape (batch, n) with batch, n >= 1, got {raw.shape}")
    x0 = raw.astype(np.float64)
    if not np.all(np.isfinite(x0)):
        raise ValueError("x0 must be finite, got NaN or inf")
    if method in SCIPY_ROOT_METHODS:
        return _relax_scipy(F, x0, method, tol, max_iter)
    if method == "ode":
        return _relax_ode(F, x0, tol, max_iter, divergence)
    return _relax_iterative(F, x0, method, tol, max_iter, damping, memory, store_iterates, divergence)


def _relax_iterative(F, x, method, tol, max_iter, damping, memory, store, divergence):
    B, n = x.shape
    rows = np.arange(B)
    nit = np.zeros(B, dtype=np.int64)
    residual = np.full(B, np.inf)
    converged = np.zeros(B, dtype=bool)
    history, iterates, active_masks = [], [], []
    status = Status.MAX_ITER
    anderson = _Anderson(B, n, memory, damping) if method == "anderson" else None
    xr = x  # states of the running samples, rows of x in the order of `rows`
    for k in range(max_iter + 1):
        fx = F(xr, rows)
        nit[rows] += 1
        r, size = _residual(xr, fx, with_norm=True)
        residual[rows] = r
        # A state that grows without bound diverges even when its relative
        # residual stays moderate (a linear map with an eigenvalue > 1).
        if not np.all(np.isfinite(r)) or r.max() > divergence or size.max() > divergence:
            status = Status.DIVERGED
            history.append(float(np.max(r)) if np.all(np.isfinite(r)) else float("inf"))
            break
        history.append(float(r.max()))
        done = r <= tol
        if k == max_iter:
            converged[rows[done]] = True
            nit[rows] -= 1  # the last evaluation only measured the residual
            break
        if done.any():
            converged[rows[done]] = True
            nit[rows[done]] -= 1  # their last evaluation only confirmed convergence
            x[rows] = xr
            if done.all():
                status = Status.SUCCESS
                break
            keep = ~done
            rows, xr, fx = rows[keep], xr[keep], fx[keep]
            if anderson is not None:
                anderson.keep(keep)
        if store:
            x[rows] = xr
            mask = np.zeros(B, dtype=bool)
            mask[rows] = True
            iterates.append(x.copy())
            active_masks.append(mask)
        if anderson is not None:
            xr = anderson.step(xr, fx, k, r if not done.any() else r[keep])
        elif damping != 1.0:
            xr = xr + damping * (fx - xr)
        else:
            xr = fx
    x[rows] = xr
    result = Result(
        x=x, success=bool(converged.all()), converged=converged, status=status,
        message=_message(status, converged, "forward relaxation (" + method + ")"),
        nit=int(nit.max()), nit_per_sample=nit, residual=residual, residuals=history, n_fev=int(nit.sum() + B),
        method=method,
    )
    if store:
        result["iterates"], result["active"] = iterates, active_masks
    return result


class _Anderson:
    """Batched Anderson acceleration (type II) with memory ``m`` and mixing ``beta``.

    For each sample, with residuals ``g_i = F(x_i) - x_i`` of its last ``m``
    iterates, ``alpha = argmin ||sum alpha_i g_i||`` subject to
    ``sum alpha_i = 1`` and ``x_new = sum alpha_i (x_i + beta g_i)``
    (Walker & Ni 2011). Safeguard: a sample whose residual grew restarts its
    history, so its next step is a plain (damped) Picard step. Histories are
    kept only for the running samples.
    """

    BIG = 1e300

    def __init__(self, B, n, memory, beta):
        self.m = max(1, int(memory))
        self.beta = beta
        self.X = np.zeros((B, self.m, n))
        self.G = np.zeros((B, self.m, n))
        self.valid = np.zeros((B, self.m), dtype=bool)
        self.last_r = np.full(B, np.inf)

    def keep(self, mask):
        self.X, self.G, self.valid, self.last_r = self.X[mask], self.G[mask], self.valid[mask], self.last_r[mask]

    def step(self, x, fx, k, r, lam=1e-10):
        grew = r > self.last_r
        self.valid[grew] = False
        self.last_r = r
        slot = k % self.m
        self.X[:, slot] = x
        self.G[:, slot] = fx - x
        self.valid[:, slot] = True
        used = min(k + 1, self.m)
        Xs, G, valid = self.X[:, :used], self.G[:, :used], self.valid[:, :used]
        H = G @ G.transpose(0, 2, 1)
        scale = lam * np.einsum("bii->b", H) / used + 1e-300
        H += np.eye(used) * (scale[:, None] + np.where(valid, 0.0, 1.0) * 1e12 * (scale[:, None] / lam + 1.0))[:, None, :]
        try:
            w = np.linalg.solve(H, np.ones((len(x), used, 1)))[..., 0]
        except np.linalg.LinAlgError:
            return x + self.beta * (fx - x)
        alpha = w / w.sum(axis=1, keepdims=True)
        return (alpha[:, None, :] @ (Xs + self.beta * G))[:, 0]


def _message(status, converged, what):
    if status == Status.SUCCESS:
        return status.message(what)
    bad = int((~converged).sum())
    return (
        f"{bad} of {converged.size} samples did not converge: " + status.message(what)
        + " For recurrent dynamics try forward='anderson', damping < 1 or contraction=0.9; a residual that "
        "stalls or grows means the dynamics may have no stable fixed point."
    )


def _relax_scipy(F, x0, method, tol, max_iter):
    from scipy.optimize import root

    B, n = x0.shape
    rows = np.arange(B)
    history = []

    n_eval = [0]

    def g(v):
        n_eval[0] += 1
        x = v.reshape(B, n)
        fx = F(x, rows)
        return (x - fx).ravel()

    def callback(*args):
        v = args[0]
        x = v.reshape(B, n)
        history.append(float(_residual(x, F(x, rows)).max()))

    options = {"maxiter": max_iter}
    if method in ("krylov", "broyden1", "broyden2"):
        options["fatol"] = tol * 1e-2  # absolute max-norm; the per-sample test below decides
    elif method == "df-sane":
        options.update(fatol=tol * 1e-2, ftol=0.0, maxfev=max_iter * 2)
        options.pop("maxiter")
    elif method == "hybr":
        options = {"maxfev": max_iter * (B * n + 1), "xtol": tol * 1e-2}
    try:
        sol = root(g, x0.ravel(), method=method, options=options,
                   callback=None if method in ("hybr", "df-sane") else callback)
        x = sol.x.reshape(B, n)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError, OverflowError) as exc:
        x = x0
        history.append(float("inf"))
        _ = exc
    fx = F(x, rows)
    residual = _residual(x, fx)
    converged = residual <= tol
    finite = np.all(np.isfinite(residual))
    status = Status.SUCCESS if converged.all() else (Status.MAX_ITER if finite else Status.DIVERGED)
    history.append(float(residual.max()) if finite else float("inf"))
    return Result(
        x=x, success=bool(converged.all()), converged=converged, status=status,
        message=_message(status, converged, f"forward relaxation (scipy.optimize.root {method})"),
        nit=n_eval[0], nit_per_sample=np.full(B, n_eval[0]), residual=residual, residuals=history,
        n_fev=n_eval[0] * B, method=method,
    )


def _relax_ode(F, x0, tol, max_iter, divergence):
    from scipy.integrate import solve_ivp

    B, n = x0.shape
    rows = np.arange(B)
    history = []

    def rhs(t, v):
        x = v.reshape(B, n)
        return (F(x, rows) - x).ravel()

    def event(t, v):
        x = v.reshape(B, n)
        r = float(_residual(x, F(x, rows)).max())
        history.append(r)
        return r - tol

    def blowup(t, v):
        return float(np.abs(v).max()) - divergence

    event.terminal = True
    event.direction = -1
    blowup.terminal = True
    blowup.direction = 1
    t_max = float(max_iter)
    sol = solve_ivp(
        rhs, (0.0, t_max), x0.ravel(), method="LSODA", events=(event, blowup), rtol=tol * 1e-2, atol=tol * 1e-3
    )
    x = sol.y[:, -1].reshape(B, n).copy()
    residual = _residual(x, F(x, rows))
    converged = residual <= tol * (1 + 1e-6)
    diverged = len(sol.t_events[1]) > 0 or not np.all(np.isfinite(residual))
    status = Status.SUCCESS if converged.all() else (Status.DIVERGED if diverged else Status.MAX_ITER)
    return Result(
        x=x, success=bool(converged.all()), converged=converged, status=status,
        message=_message(status, converged, "forward relaxation (ode, solve_ivp)") + f" (t_end={sol.t[-1]:.3g})",
        nit=int(sol.nfev), nit_per_sample=np.full(B, int(sol.nfev)), residual=residual, residuals=history,
        n_fev=int(sol.nfev) * B, method="ode",
    )


def spectrum(matrices: np.ndarray | None = None, *, matvec=None, n: int | None = None):
    """Spectral radius and largest real part of the eigenvalues of a Jacobian.

    Parameters
    ----------
    matrices : ndarray, shape (B, n, n), optional
        Exact: ``numpy.linalg.eigvals`` per sample (for small ``n``).
    matvec : callable ``(n,) -> (n,)``, optional
        Iterative alternative for one large Jacobian (ARPACK through
        ``scipy.sparse.linalg.eigs``).
    n : int
        Dimension for ``matvec``.

    Returns
    -------
    rho, max_real : float
        Maxima over the samples.

    Examples
    --------
    >>> import numpy as np
    >>> spectrum(np.array([[[0.5, 0.0], [0.0, -0.9]]]))
    (0.9, 0.5)
    """
    if matrices is not None:
        ev = np.linalg.eigvals(matrices)
        return float(np.abs(ev).max()), float(ev.real.max())
    import scipy.sparse.linalg as spla

    op = spla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    lm = spla.eigs(op, k=1, which="LM", return_eigenvectors=False, maxiter=2000, tol=1e-6)
    lr = spla.eigs(op, k=1, which="LR", return_eigenvectors=False, maxiter=2000, tol=1e-6)
    return float(np.abs(lm).max()), float(lr.real.max())
