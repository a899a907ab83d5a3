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
    ``scipy.optimize.root`` on ``x - F(x) = 0`` for the whole batch;

or any method added with :func:`register_forward_method`: every method has
one signature, ``fn(F, x0, *, tol, max_iter, **options) -> Result`` with
per-sample convergence, and every one is bounded by ``max_iter``
evaluations of ``F``.

A missed threshold is reported in the result (``success=False``, the
residual history, a message saying what to try), never raised.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from .registry import Registry
from .results import Result, Status
from .validation import check_bool, check_callable, check_int, check_real, check_real_array

__all__ = ["relax", "METHODS", "SCIPY_ROOT_METHODS", "FORWARD_METHODS", "register_forward_method",
           "method_options", "spectrum"]

SCIPY_ROOT_METHODS = ("krylov", "broyden1", "broyden2", "df-sane", "hybr")
#: The built-in methods; :data:`FORWARD_METHODS` holds every registered one.
METHODS = ("picard", "anderson", "ode") + SCIPY_ROOT_METHODS


def _check_method(name, fn):
    check_callable(fn, f"forward method {name!r}", optional=False)
    params = inspect.signature(fn).parameters
    missing = [p for p in ("tol", "max_iter") if p not in params]
    if missing and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise ValueError(
            f"forward method {name!r} must have the signature fn(F, x0, *, tol, max_iter, **options); it lacks {missing}"
        )


#: name -> relaxation function; extend it with :func:`register_forward_method`.
FORWARD_METHODS = Registry("method", check=_check_method)


def register_forward_method(name: str, fn=None, *, overwrite: bool = False):
    """Add a forward relaxation method usable by name everywhere (``FixedPointNet(forward=name)``).

    Parameters
    ----------
    name : str
    fn : callable ``fn(F, x0, *, tol, max_iter, **options) -> Result``
        ``F(x, rows)`` evaluates the map on the states ``x`` (k, n) of the
        samples ``rows`` (see :func:`relax`); ``x0`` is (B, n). Return a
        :class:`~rbp.core.results.Result` with at least ``x`` (B, n);
        ``converged`` (B,), ``residual`` (B,), ``nit_per_sample`` (B,) and
        ``residuals`` are computed by :func:`relax` when missing (one more
        evaluation of ``F``), and ``status``/``message`` follow from them.
        It must stop after ``max_iter`` evaluations of ``F`` per sample.
        Usable as a decorator when omitted.

    Examples
    --------
    >>> import numpy as np
    >>> @register_forward_method("halfstep")
    ... def halfstep(F, x0, *, tol, max_iter):
    ...     x, rows = x0.copy(), np.arange(len(x0))
    ...     for k in range(max_iter):
    ...         x = 0.5 * x + 0.5 * F(x, rows)
    ...     return Result(x=x, nit=max_iter)
    >>> c = np.array([[0.5]])
    >>> res = relax(lambda x, rows: np.tanh(0.5 * x + c[rows]), np.zeros((1, 1)), method="halfstep",
    ...             tol=1e-10, max_iter=100)
    >>> res.success
    True
    >>> FORWARD_METHODS.unregister("halfstep")
    """
    if fn is None:
        return lambda f: register_forward_method(name, f, overwrite=overwrite)
    return FORWARD_METHODS.register(name, fn, overwrite=overwrite)


def method_options(method: str) -> tuple:
    """The extra keyword options a registered forward method accepts.

    Examples
    --------
    >>> method_options("anderson")
    ('damping', 'memory', 'divergence')
    """
    fn = FORWARD_METHODS.get(method)
    return tuple(p.name for p in inspect.signature(fn).parameters.values()
                 if p.name not in ("F", "x0", "tol", "max_iter") and p.kind is p.KEYWORD_ONLY)


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
    **options,
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
        A name in :data:`FORWARD_METHODS` (see the module docstring).
    tol : float
        Threshold on the per-sample relative residual (see module docstring).
    max_iter : int
        Maximum number of evaluations of ``F`` per sample.
    **options
        Options of the method (:func:`method_options`): ``damping``
        (``picard`` step ``tau`` in ``(0, 1]``; also the mixing of
        ``anderson``), ``memory`` (``anderson`` history length),
        ``store_iterates`` (``picard`` only: keep every iterate for backprop
        through the relaxation; ``iterates[k]`` is the (B, n) state before
        step ``k`` and ``active[k]`` the (B,) mask of samples updated at that
        step), ``divergence`` (a relative residual or a state norm above
        this, or a non-finite one, stops with ``Status.DIVERGED``, keeping
        the last finite state). An option the method does not take is an error.

    Returns
    -------
    Result
        ``x`` (B, n) the relaxed states; ``success`` (all samples
        converged); ``converged`` (B,) bool; ``status``; ``message``; ``nit``
        (evaluations of F per sample, the max over samples; comparable
        across methods, diagnostics excluded); ``nit_per_sample`` (B,);
        ``residual`` (B,) final residuals; ``residuals`` (history of the
        largest residual among the samples still running); ``n_fev``
        (sample-evaluations of F); ``method``; ``iterates``/``active`` when stored.

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
    fn = FORWARD_METHODS.get(method)
    check_int(max_iter, "max_iter")
    check_real(tol, "tol")
    accepted = method_options(method)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        if "store_iterates" in unknown:
            raise ValueError(
                f"store_iterates (backprop through the relaxation) needs method='picard', got {method!r}"
            )
        raise ValueError(f"method={method!r} takes the options {list(accepted)}, got unknown {unknown}")
    raw = np.asarray(x0)
    if raw.ndim != 2 or raw.shape[0] < 1 or raw.shape[1] < 1:
        if raw.dtype != object and (np.issubdtype(raw.dtype, np.number) or raw.dtype == bool):
            raise ValueError(f"x0 must have shape (batch, n) with batch, n >= 1, got {raw.shape}")
    x0 = check_real_array(raw, "x0")
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (batch, n) with batch, n >= 1, got {x0.shape}")
    result = fn(F, x0, tol=tol, max_iter=max_iter, **options)
    return _complete(result, F, x0, tol, method)


def _complete(result, F, x0, tol, method) -> Result:
    """Fill what a method left out (a user's method may return only ``x``) and write the message."""
    if not isinstance(result, dict) or "x" not in result:
        raise TypeError(f"forward method {method!r} must return a Result with x, got {type(result).__name__}")
    B = x0.shape[0]
    x = np.asarray(result["x"], dtype=np.float64)
    if x.shape != x0.shape:
        raise ValueError(f"forward method {method!r} returned x of shape {x.shape}, expected {x0.shape}")
    if "residual" not in result or "converged" not in result:
        with np.errstate(over="ignore", invalid="ignore"):
            r = _residual(x, F(x, np.arange(B)))
        r = np.where(np.isfinite(r), r, np.inf)
        result.setdefault("residual", r)
        result.setdefault("converged", r <= tol)
        result.setdefault("residuals", [float(r.max())])
    converged = np.asarray(result["converged"], dtype=bool)
    nit = int(result.get("nit", 0))
    result.setdefault("nit_per_sample", np.full(B, nit))
    result.setdefault("n_fev", int(np.sum(result["nit_per_sample"])))
    status = result.get("status")
    if status is None:
        finite = np.all(np.isfinite(result["residual"]))
        status = Status.SUCCESS if converged.all() else (Status.MAX_ITER if finite else Status.DIVERGED)
    result.update(
        x=x, converged=converged, success=bool(converged.all()), status=Status(status), nit=nit, method=method,
        message=result.get("message") or _message(Status(status), converged, method),
    )
    return Result(result)


@register_forward_method("picard")
def _picard(F, x0, *, tol, max_iter, damping=1.0, store_iterates=False, divergence=1e8):
    """Damped Picard iteration ``x <- (1 - damping) x + damping F(x)``."""
    check_real(damping, "damping", high=1.0)
    check_bool(store_iterates, "store_iterates")
    check_real(divergence, "divergence")
    return _relax_iterative(F, x0.copy(), "picard", tol, max_iter, damping, 1, store_iterates, divergence)


@register_forward_method("anderson")
def _anderson(F, x0, *, tol, max_iter, damping=1.0, memory=5, divergence=1e8):
    """Anderson acceleration (type II) with a restart when a sample's residual grows."""
    check_real(damping, "damping", high=1.0)
    check_int(memory, "memory")
    check_real(divergence, "divergence")
    return _relax_iterative(F, x0.copy(), "anderson", tol, max_iter, damping, memory, False, divergence)


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
        x=x, converged=converged, status=status, nit=int(nit.max()), nit_per_sample=nit, residual=residual,
        residuals=history, n_fev=int(nit.sum() + B),
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


def _message(status, converged, method):
    """What happened, in the relaxation's own terms; a model adds which of its options to change."""
    what = f"forward relaxation ({method})"
    if status == Status.SUCCESS:
        return status.message(what)
    bad = int((~converged).sum())
    other = "anderson" if method != "anderson" else "picard with damping < 1"
    cause = {
        Status.MAX_ITER: "stopped at max_iter before reaching tol; try a larger max_iter, a looser tol, or "
                         f"method={other!r}",
        Status.DIVERGED: "diverged (non-finite or growing states); try damping < 1 or a contractive map",
    }.get(status, status.message(what))
    return (
        f"{what} did not converge for {bad} of {converged.size} samples: {cause}. A residual that stalls or "
        "grows means the dynamics may have no stable fixed point."
    )


class _Budget(Exception):
    """Raised inside a method's evaluation of F when ``max_iter`` evaluations are spent."""


def _relax_scipy(F, x0, *, tol, max_iter, method):
    """``scipy.optimize.root`` on ``x - F(x) = 0`` for the whole batch, bounded by ``max_iter``."""
    from scipy.optimize import root

    B, n = x0.shape
    rows = np.arange(B)
    history = []
    n_eval = [0]
    last = [x0.ravel().copy()]

    def g(v):
        if n_eval[0] >= max_iter:  # line searches included: at most max_iter evaluations of F
            raise _Budget
        n_eval[0] += 1
        last[0] = v.copy()
        x = v.reshape(B, n)
        fx = F(x, rows)
        return (x - fx).ravel()

    def callback(*args):
        v = args[0]
        x = v.reshape(B, n)
        history.append(float(_residual(x, F(x, rows)).max()))

    floor = max(tol * 1e-2, 1e-15)  # a tolerance below round-off never stops
    options = {"maxiter": max_iter}
    if method in ("krylov", "broyden1", "broyden2"):
        options["fatol"] = floor  # absolute max-norm; the per-sample test below decides
    elif method == "df-sane":
        options.update(fatol=floor, ftol=0.0, maxfev=max_iter * 2)
        options.pop("maxiter")
    elif method == "hybr":
        options = {"maxfev": max_iter * (B * n + 1), "xtol": floor}
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            sol = root(g, x0.ravel(), method=method, options=options,
                       callback=None if method in ("hybr", "df-sane") else callback)
        x = sol.x.reshape(B, n)
    except _Budget:
        x = last[0].reshape(B, n)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError, OverflowError):
        x = x0
        history.append(float("inf"))
    if not np.all(np.isfinite(x)):
        x = x0
    with np.errstate(over="ignore", invalid="ignore"):
        residual = _residual(x, F(x, rows))
    converged = residual <= tol
    finite = np.all(np.isfinite(residual))
    status = Status.SUCCESS if converged.all() else (Status.MAX_ITER if finite else Status.DIVERGED)
    history.append(float(residual.max()) if finite else float("inf"))
    return Result(
        x=x, converged=converged, status=status, nit=n_eval[0], nit_per_sample=np.full(B, n_eval[0]),
        residual=residual, residuals=history, n_fev=n_eval[0] * B,
    )


for _name in SCIPY_ROOT_METHODS:
    register_forward_method(_name, functools.partial(_relax_scipy, method=_name))


@register_forward_method("ode")
def _ode(F, x0, *, tol, max_iter, divergence=1e8):
    """Continuous time ``dx/dt = F(x) - x`` (LSODA) to the threshold; at most ``max_iter`` evaluations of F."""
    from scipy.integrate import solve_ivp

    check_real(divergence, "divergence")
    B, n = x0.shape
    rows = np.arange(B)
    history = []
    n_eval = [0]
    last = [x0.ravel().copy()]

    def call(v):
        if n_eval[0] >= max_iter:
            raise _Budget
        n_eval[0] += 1
        last[0] = v.copy()
        x = v.reshape(B, n)
        return x, F(x, rows)

    def rhs(t, v):
        x, fx = call(v)
        return (fx - x).ravel()

    def event(t, v):
        x, fx = call(v)
        r = float(_residual(x, fx).max())
        history.append(r)
        return r - tol

    def blowup(t, v):
        return float(np.abs(v).max()) - divergence

    event.terminal = True
    event.direction = -1
    blowup.terminal = True
    blowup.direction = 1
    # LSODA's tolerances have a floor: below ~1e-13 it cannot step, and a smaller tol could never stop.
    rtol, atol = max(tol * 1e-2, 1e-13), max(tol * 1e-3, 1e-15)
    diverged, t_end = False, 0.0
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            sol = solve_ivp(rhs, (0.0, float(max_iter)), x0.ravel(), method="LSODA", events=(event, blowup),
                            rtol=rtol, atol=atol)
        x = sol.y[:, -1].reshape(B, n).copy()
        diverged, t_end = len(sol.t_events[1]) > 0, float(sol.t[-1])
    except _Budget:
        x = last[0].reshape(B, n).copy()
    if not np.all(np.isfinite(x)):
        x, diverged = x0.copy(), True
    with np.errstate(over="ignore", invalid="ignore"):
        residual = _residual(x, F(x, rows))
    converged = residual <= tol * (1 + 1e-6)
    diverged = diverged or not np.all(np.isfinite(residual))
    status = Status.SUCCESS if converged.all() else (Status.DIVERGED if diverged else Status.MAX_ITER)
    message = None if status == Status.SUCCESS else _message(status, converged, "ode") + f" (t_end={t_end:.3g})"
    return Result(
        x=x, converged=converged, status=status, message=message, nit=n_eval[0],
        nit_per_sample=np.full(B, n_eval[0]), residual=residual, residuals=history or [float(residual.max())],
        n_fev=n_eval[0] * B,
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
