"""One linear-solve interface over scipy.linalg and scipy.sparse.linalg, with a registry of methods.

Recurrent backprop needs, for every mini-batch, the solution of ``B``
independent ``n x n`` systems (one per sample): the adjoint system of the
fixed point. :class:`BatchedOperator` describes such a block-diagonal
operator acting on the rows of a ``(B, n)`` array, matrix-free;
:func:`solve` validates the arguments and dispatches by name to one of

============  =================================================================
``direct``    batched LU (LAPACK ``gesv`` through ``numpy.linalg.solve``); uses
              ``op.dense`` or builds the matrices from ``n`` products
``gmres``     ``scipy.sparse.linalg.gmres`` on the whole batch
``lgmres``    ``scipy.sparse.linalg.lgmres``
``bicgstab``  ``scipy.sparse.linalg.bicgstab``
``cg-normal`` ``scipy.sparse.linalg.cg`` on the normal equations ``A^T A x = A^T b``
              (CG-RBP, Liao et al. 2018); needs ``op.rmatvec``
``neumann``   the series ``x = sum_k (I - A)^k b`` (Neumann-RBP); needs
              ``rho(I - A) < 1``
``relax``     damped Richardson iteration ``x <- x + damping (b - A x)``
              (Pineda's adjoint relaxation); needs ``Re lambda(I - A) < 1``
              with a small enough damping
============  =================================================================

or any method added with :func:`register_linear_solver`. Every method has
one signature, ``fn(op, b, *, rtol, atol, maxiter, x0, **options) -> Result``,
and reports, never raises, a missed tolerance: the result has
``success=False``, the residual history and a message.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import scipy.sparse.linalg as spla

from .registry import Registry
from .results import Result, Status
from .validation import check_bool, check_callable, check_int, check_real, check_real_array

__all__ = ["BatchedOperator", "solve", "METHODS", "LINEAR_SOLVERS", "register_linear_solver", "method_options"]

#: The built-in methods (see the module docstring); :data:`LINEAR_SOLVERS` holds every registered one.
METHODS = ("direct", "gmres", "lgmres", "bicgstab", "cg-normal", "neumann", "relax")

#: Building dense matrices from products (``direct`` without ``op.dense``) stops at this many bytes.
DENSE_FROM_PRODUCTS_BYTES = 256 * 2**20


class BatchedOperator:
    """``B`` independent linear maps acting on the rows of a ``(B, n)`` array.

    Parameters
    ----------
    matvec : callable ``(V) -> ndarray``
        ``V`` has shape (B, n); row ``i`` of the output is ``A_i`` applied to
        row ``i`` of ``V``.
    shape : tuple (B, n)
    rmatvec : callable, optional
        The transposed maps ``A_i^T``, row by row (for ``cg-normal``).
    dense : callable ``() -> ndarray of shape (B, n, n)``, optional
        The matrices, with ``out[i] @ v == matvec(v[None])[0]`` (for ``direct``).
    dense_sample : callable ``(i) -> ndarray of shape (n, n)``, optional
        Sample ``i``'s matrix alone; ``direct`` uses it instead of ``dense``
        when the whole stack would exceed 64 MiB, solving one system at a time.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[[2.0, 0.0], [0.0, 4.0]]])
    >>> op = BatchedOperator(lambda V: np.einsum("bij,bj->bi", A, V), (1, 2), dense=lambda: A)
    >>> solve(op, np.array([[2.0, 4.0]]), method="gmres").x
    array([[1., 1.]])
    """

    def __init__(self, matvec, shape, *, rmatvec=None, dense=None, dense_sample=None):
        self.matvec = matvec
        self.rmatvec = rmatvec
        self.dense = dense
        self.dense_sample = dense_sample
        self.shape = tuple(shape)

    def flat(self, transpose=False) -> spla.LinearOperator:
        """The block-diagonal operator on flattened ``(B*n,)`` vectors."""
        B, n = self.shape
        f = self.rmatvec if transpose else self.matvec

        def mv(v):
            return f(v.reshape(B, n)).ravel()

        return spla.LinearOperator((B * n, B * n), matvec=mv, dtype=np.float64)


class _Counted(BatchedOperator):
    """The operator a method sees: the same maps, with every application counted."""

    def __init__(self, op: BatchedOperator):
        self.n_matvec = 0
        self.inner = op
        super().__init__(self._mv, op.shape, rmatvec=None if op.rmatvec is None else self._rmv,
                         dense=op.dense, dense_sample=op.dense_sample)

    def _mv(self, V):
        self.n_matvec += 1
        return self.inner.matvec(V)

    def _rmv(self, V):
        self.n_matvec += 1
        return self.inner.rmatvec(V)


def _check_solver(name, fn):
    check_callable(fn, f"linear solver {name!r}", optional=False)
    params = inspect.signature(fn).parameters
    missing = [p for p in ("rtol", "atol", "maxiter", "x0") if p not in params]
    if missing and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise ValueError(
            f"linear solver {name!r} must have the signature fn(op, b, *, rtol, atol, maxiter, x0, **options); "
            f"it lacks {missing}"
        )


#: name -> solver function; extend it with :func:`register_linear_solver`.
LINEAR_SOLVERS = Registry("method", check=_check_solver)


def register_linear_solver(name: str, fn=None, *, overwrite: bool = False):
    """Add a linear (adjoint) solver usable by name everywhere (``FixedPointNet(backward=name)``).

    Parameters
    ----------
    name : str
    fn : callable ``fn(op, b, *, rtol, atol, maxiter, x0, **options) -> Result``
        ``op`` is a :class:`BatchedOperator` of shape (B, n), ``b`` a (B, n)
        array; ``maxiter`` may be None (choose a default); ``x0`` is None or
        a (B, n) initial guess. Return a :class:`~rbp.core.results.Result`
        with at least ``x`` (B, n); ``status``, ``nit`` and ``residuals``
        (relative residual history) are filled in by :func:`solve` when
        missing, and the final residual is always recomputed. Extra keyword
        options in the signature can then be passed to :func:`solve`.
        Usable as a decorator when omitted.

    Examples
    --------
    >>> import numpy as np
    >>> from rbp.core.results import Result
    >>> @register_linear_solver("jacobi")
    ... def jacobi(op, b, *, rtol, atol, maxiter, x0):
    ...     A = op.dense()
    ...     d = np.einsum("bii->bi", A)
    ...     x = np.zeros_like(b) if x0 is None else x0.copy()
    ...     for k in range(maxiter or 200):
    ...         x = x + (b - op.matvec(x)) / d
    ...     return Result(x=x, nit=maxiter or 200)
    >>> A = np.array([[[4.0, 1.0], [1.0, 3.0]]])
    >>> op = BatchedOperator(lambda V: np.einsum("bij,bj->bi", A, V), (1, 2), dense=lambda: A)
    >>> res = solve(op, np.array([[1.0, 2.0]]), method="jacobi", rtol=1e-10)
    >>> res.success, res.method
    (True, 'jacobi')
    >>> LINEAR_SOLVERS.unregister("jacobi")
    """
    if fn is None:
        return lambda f: register_linear_solver(name, f, overwrite=overwrite)
    return LINEAR_SOLVERS.register(name, fn, overwrite=overwrite)


def method_options(method: str) -> tuple:
    """The extra keyword options a registered method accepts (beyond the common signature).

    Examples
    --------
    >>> method_options("relax"), method_options("gmres")
    (('damping',), ('restart',))
    """
    fn = LINEAR_SOLVERS.get(method)
    common = ("op", "b", "rtol", "atol", "maxiter", "x0")
    return tuple(p.name for p in inspect.signature(fn).parameters.values()
                 if p.name not in common and p.kind is p.KEYWORD_ONLY)


def solve(
    op: BatchedOperator,
    b: np.ndarray,
    *,
    method: str = "gmres",
    rtol: float = 1e-10,
    atol: float = 0.0,
    maxiter: int | None = None,
    x0: np.ndarray | None = None,
    **options,
) -> Result:
    """Solve ``A_i x_i = b_i`` for every row ``i``.

    Parameters
    ----------
    op : BatchedOperator
        The maps ``A_i``, shape (B, n).
    b : ndarray, shape (B, n)
    method : str
        A name in :data:`LINEAR_SOLVERS` (see the module docstring).
    rtol, atol : float
        Stop when ``||b - A x|| <= max(rtol * ||b||, atol)`` (norms over the
        whole batch), passed explicitly to SciPy (SciPy >= 1.12 names). For
        ``neumann`` and ``relax``, ``rtol = atol = 0`` means "exactly
        ``maxiter`` terms", the truncated series of Neumann-RBP, reported as
        a success with its final residual.
    maxiter : int, optional
        Iteration cap (Krylov iterations, series terms or relaxation sweeps).
        Default: ``10 * n`` for Krylov methods, 1000 for ``neumann``/``relax``.
    x0 : ndarray, shape (B, n), optional
        Initial guess (iterative methods).
    **options
        Options of the method (:func:`method_options`): ``damping`` (the step
        of ``relax``), ``restart`` (``gmres``/``lgmres``), ``record_history``
        (``lgmres``, ``bicgstab``, ``cg-normal``: record the residual after
        every iteration, one extra application of ``A`` each, counted in
        ``n_matvec_diagnostic``; ``gmres``, ``neumann`` and ``relax`` record
        it for free). An option the method does not take is an error.

    Returns
    -------
    Result
        ``x`` (B, n); ``success``; ``status``; ``message``; ``nit``;
        ``n_matvec`` (applications of ``A`` or ``A^T`` by the solver, the
        work it needed); ``n_matvec_diagnostic`` (applications spent only on
        recording the history and the final residual);
        ``residuals`` (history of ``||b - A x|| / ||b||`` as the method
        reports it, ending at the final residual); ``residual`` (final
        relative residual, recomputed); ``method``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A = np.eye(3)[None] + 0.1 * rng.normal(size=(4, 3, 3))
    >>> x_true = rng.normal(size=(4, 3))
    >>> b = np.einsum("bij,bj->bi", A, x_true)
    >>> op = BatchedOperator(lambda V: np.einsum("bij,bj->bi", A, V), (4, 3), dense=lambda: A)
    >>> res = solve(op, b, method="direct")
    >>> res.success, bool(np.allclose(res.x, x_true))
    (True, True)
    """
    fn = LINEAR_SOLVERS.get(method)
    B, n = op.shape
    b = check_real_array(b, "b", (B, n))
    if x0 is not None:
        x0 = check_real_array(x0, "x0", (B, n))
    check_real(rtol, "rtol", low_inclusive=True)
    check_real(atol, "atol", low_inclusive=True)
    if maxiter is not None:
        check_int(maxiter, "maxiter")
    accepted = method_options(method)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"method={method!r} takes the options {list(accepted)}, got unknown {unknown}")
    for name, check in (("restart", check_int), ("damping", check_real), ("record_history", check_bool)):
        if name in options:  # checked here too: a zero right-hand side returns before the method runs
            check(options[name], name)
    bnorm = float(np.linalg.norm(b))
    if bnorm == 0.0:
        return _result(np.zeros_like(b), 0.0, 0, 0, [0.0], Status.SUCCESS, method)
    counted = _Counted(op)
    result = fn(counted, b, rtol=rtol, atol=atol, maxiter=maxiter, x0=x0, **options)
    return _complete(result, op, counted, b, bnorm, max(rtol * bnorm, atol), method)


def _complete(result, op, counted, b, bnorm, threshold, method) -> Result:
    """Fill what a method left out (a user's method may return only ``x``) and check what it returned."""
    if not isinstance(result, dict) or "x" not in result:
        raise TypeError(f"linear solver {method!r} must return a Result with x, got {type(result).__name__}")
    x = np.asarray(result["x"], dtype=np.float64)
    if x.shape != b.shape:
        raise ValueError(f"linear solver {method!r} returned x of shape {x.shape}, expected {b.shape}")
    diagnostic = int(result.get("n_matvec_diagnostic", 0))
    res = result.get("residual")
    if res is None:
        res = _rel_residual(op, x, b, bnorm)
        diagnostic += 1
    status = result.get("status")
    if status is None:
        status = Status.SUCCESS if res * bnorm <= threshold * (1 + 1e-6) else Status.MAX_ITER
    if not np.isfinite(res) and status == Status.SUCCESS:
        status = Status.BREAKDOWN
    history = [float(v) for v in (result.get("residuals") or [1.0])]
    if history[-1] != res:
        history.append(float(res))
    n_matvec = result.get("n_matvec", counted.n_matvec)
    out = _result(x, res, result.get("nit", 0), n_matvec, history, Status(status), method)
    out["n_matvec_diagnostic"] = diagnostic
    return out


# -- the built-in methods, one function each ---------------------------------------------


@register_linear_solver("direct")
def _direct(op, b, *, rtol, atol, maxiter, x0):
    """Batched LU; one system at a time above 64 MiB; dense matrices built from products when needed."""
    B, n = op.shape
    dense, dense_sample, n_built = op.dense, op.dense_sample, 0
    if dense is None and dense_sample is None:
        if B * n * n * 8 > DENSE_FROM_PRODUCTS_BYTES:
            raise ValueError(
                f"method='direct' needs the dense matrices: this operator has none, and building them from "
                f"{n} products would take {B * n * n * 8 / 2**20:.0f} MiB for {B} systems of size {n}; use a "
                "matrix-free Krylov method: 'gmres', 'lgmres', 'bicgstab' or 'cg-normal'"
            )
        dense, n_built = (lambda: _dense_from_products(op)), n
    try:
        if dense_sample is not None and (dense is None or B * n * n * 8 > 64 * 2**20):
            # One LU at a time: memory O(n^2) instead of O(B n^2).
            from scipy.linalg import LinAlgWarning
            from scipy.linalg import solve as dense_solve

            x = np.empty_like(b)
            with warnings.catch_warnings():
                warnings.simplefilter("error", LinAlgWarning)
                for i in range(B):
                    x[i] = dense_solve(dense_sample(i), b[i], overwrite_a=True, check_finite=False)
        else:
            x = np.linalg.solve(dense(), b[..., None])[..., 0]
        status = Status.SUCCESS
    except (np.linalg.LinAlgError, Warning):
        x, status = np.zeros_like(b), Status.BREAKDOWN
    res = _rel_residual(op.inner, x, b, float(np.linalg.norm(b)))
    return Result(x=x, status=status, nit=1, n_matvec=n_built, residuals=[1.0, res], residual=res,
                  n_matvec_diagnostic=1)


def _dense_from_products(op):
    """The (B, n, n) matrices from n applications of the operator to the unit vectors."""
    B, n = op.shape
    A = np.empty((B, n, n))
    E = np.zeros((B, n))
    for j in range(n):
        E[:, j] = 1.0
        A[:, :, j] = op.matvec(E)
        E[:, j] = 0.0
    return A


def _series(op, b, *, rtol, atol, maxiter, x0, step):
    """Neumann / Richardson: ``x <- x + step (b - A x)`` with the residual recorded every sweep."""
    bnorm = float(np.linalg.norm(b))
    threshold = max(rtol * bnorm, atol)
    maxiter = 1000 if maxiter is None else maxiter
    fixed_terms = rtol == 0 and atol == 0  # Neumann-RBP as in Liao et al.: exactly maxiter terms
    x = np.zeros_like(b) if x0 is None else np.array(x0, dtype=np.float64)
    r = b - op.matvec(x) if x0 is not None else b.copy()
    history = [float(np.linalg.norm(r)) / bnorm]
    status = Status.MAX_ITER
    it = 0
    for it in range(1, maxiter + 1):
        # Neumann: x_k = sum_{j<k} J^j b and r_k = J^k b, with J = I - A;
        # relax: x <- x + damping * r, the same recursion with a step.
        x += step * r
        r = b - op.matvec(x)
        rn = float(np.linalg.norm(r))
        history.append(rn / bnorm)
        if not np.isfinite(rn) or rn > 1e12 * bnorm:
            status = Status.DIVERGED
            break
        if rn <= threshold:
            status = Status.SUCCESS
            break
    if fixed_terms and status == Status.MAX_ITER:
        status = Status.SUCCESS
    return Result(x=x, status=status, nit=it, residuals=history, residual=history[-1])


@register_linear_solver("neumann")
def _neumann(op, b, *, rtol, atol, maxiter, x0):
    """The truncated Neumann series (Neumann-RBP)."""
    return _series(op, b, rtol=rtol, atol=atol, maxiter=maxiter, x0=x0, step=1.0)


@register_linear_solver("relax")
def _relax(op, b, *, rtol, atol, maxiter, x0, damping=1.0):
    """Pineda's adjoint relaxation: damped Richardson iteration."""
    check_real(damping, "damping")
    return _series(op, b, rtol=rtol, atol=atol, maxiter=maxiter, x0=x0, step=damping)


class _Krylov:
    """Shared plumbing of the SciPy Krylov methods: the flat operator, the iteration
    counter and the optional residual history, and the status of what SciPy returned."""

    def __init__(self, op, b, rtol, atol, maxiter, x0, record_history):
        B, n = op.shape
        self.op, self.b, self.B, self.n = op, b, B, n
        self.bnorm = float(np.linalg.norm(b))
        self.threshold = max(rtol * self.bnorm, atol)
        self.maxiter = 10 * n if maxiter is None else maxiter
        self.record = check_bool(record_history, "record_history")
        self.history, self.nit = [], 0
        self.A = spla.LinearOperator((B * n, B * n), matvec=lambda v: op.matvec(v.reshape(B, n)).ravel(),
                                     dtype=np.float64)
        self.rhs = b.ravel()
        self.guess = None if x0 is None else np.asarray(x0, dtype=np.float64).ravel()
        self.x0 = x0
        self._plain = op.inner  # uncounted: residuals recorded for the history are diagnostics

    def track(self, xk):
        self.nit += 1
        if self.record:
            r = self.rhs - self._plain.matvec(xk.reshape(self.B, self.n)).ravel()
            self.history.append(float(np.linalg.norm(r) / self.bnorm))

    def result(self, xk, info, n_matvec, *, trust_info=True):
        x = xk.reshape(self.B, self.n)
        res = _rel_residual(self._plain, x, self.b, self.bnorm)
        if not np.isfinite(res):
            status = Status.BREAKDOWN
        elif res * self.bnorm <= self.threshold * (1 + 1e-6) or (info == 0 and trust_info):
            status = Status.SUCCESS
        elif info < 0:
            status = Status.BREAKDOWN
        else:
            status = Status.MAX_ITER
        history = self.history or [1.0 if self.x0 is None else _rel_residual(self._plain, self.x0, self.b, self.bnorm)]
        return Result(x=x, status=status, nit=self.nit, n_matvec=n_matvec, residuals=history, residual=res,
                      n_matvec_diagnostic=1 + (self.nit if self.record else 0))


@register_linear_solver("gmres")
def _gmres(op, b, *, rtol, atol, maxiter, x0, restart=30):
    """Restarted GMRES; its preconditioned residual norms are the history, for free."""
    check_int(restart, "restart")
    k = _Krylov(op, b, rtol, atol, maxiter, x0, False)
    inner = min(restart, k.maxiter)

    def callback(pr):
        k.history.append(float(pr))
        k.nit += 1

    xk, info = spla.gmres(k.A, k.rhs, x0=k.guess, rtol=rtol, atol=atol, restart=inner,
                          maxiter=-(-k.maxiter // inner), callback=callback, callback_type="pr_norm")
    out = k.result(xk, info, op.n_matvec)
    out["n_matvec_diagnostic"] = 1
    return out


@register_linear_solver("lgmres")
def _lgmres(op, b, *, rtol, atol, maxiter, x0, restart=30, record_history=False):
    """Loose GMRES (``scipy.sparse.linalg.lgmres``)."""
    check_int(restart, "restart")
    k = _Krylov(op, b, rtol, atol, maxiter, x0, record_history)
    inner = min(restart, k.maxiter)
    xk, info = spla.lgmres(k.A, k.rhs, x0=k.guess, rtol=rtol, atol=atol, maxiter=-(-k.maxiter // inner),
                           inner_m=inner, callback=k.track)
    return k.result(xk, info, op.n_matvec)


@register_linear_solver("bicgstab")
def _bicgstab(op, b, *, rtol, atol, maxiter, x0, record_history=False):
    """BiCGStab (``scipy.sparse.linalg.bicgstab``)."""
    k = _Krylov(op, b, rtol, atol, maxiter, x0, record_history)
    xk, info = spla.bicgstab(k.A, k.rhs, x0=k.guess, rtol=rtol, atol=atol, maxiter=k.maxiter, callback=k.track)
    return k.result(xk, info, op.n_matvec)


@register_linear_solver("cg-normal")
def _cg_normal(op, b, *, rtol, atol, maxiter, x0, record_history=False):
    """CG on the normal equations ``A^T A x = A^T b`` (CG-RBP, Liao et al. 2018)."""
    if op.rmatvec is None:
        raise ValueError("method='cg-normal' needs an operator with rmatvec (the transposed maps)")
    k = _Krylov(op, b, rtol, atol, maxiter, x0, record_history)
    B, n = op.shape
    N = spla.LinearOperator((B * n, B * n), matvec=lambda v: op.rmatvec(op.matvec(v.reshape(B, n))).ravel(),
                            dtype=np.float64)
    normal_rhs = op.rmatvec(b).ravel()
    # The normal equations square the condition number; ask for the residual
    # of the original system by tightening the tolerance on A^T r by ||A||.
    xk, info = spla.cg(N, normal_rhs, x0=k.guess, rtol=0.0, atol=k.threshold * 1e-3 * _norm_bound(op.inner, b),
                       maxiter=k.maxiter, callback=k.track)
    return k.result(xk, info, op.n_matvec - 1, trust_info=False)


def _norm_bound(op, b):
    # ||A^T r|| <= ||A|| ||r||: scale the normal-equation tolerance by an
    # estimate of ||A|| (cheap: one application to b).
    Ab = op.rmatvec(b)
    return max(float(np.linalg.norm(Ab) / max(np.linalg.norm(b), 1e-300)), 1e-12)


def _rel_residual(op, x, b, bnorm):
    return float(np.linalg.norm(b - op.matvec(x)) / bnorm)


def _result(x, residual, nit, n_matvec, history, status, method):
    return Result(
        x=x, success=status == Status.SUCCESS, status=status, message=_message(status, method, residual),
        nit=int(nit), n_matvec=int(n_matvec), residuals=history, residual=float(residual), method=method,
        n_matvec_diagnostic=0,
    )


def _message(status, method, residual) -> str:
    """What happened, in the solver's own terms; a model adds which of its options to change."""
    what = f"linear solve ({method})"
    if status == Status.SUCCESS:
        return status.message(what)
    others = [m for m in ("gmres", "direct") if m != method]
    hints = {
        Status.MAX_ITER: f"{what} did not converge: it stopped at its iteration cap with relative residual "
                         f"{residual:.3g}; try a larger maxiter, a looser rtol, or method={others[0]!r}.",
        Status.DIVERGED: f"{what} did not converge: the series diverged (relative residual {residual:.3g}); "
                         f"it needs the spectral radius of I - A below 1: try method={others[0]!r}.",
        Status.BREAKDOWN: f"{what} did not converge: it broke down (a singular or ill-posed system, relative "
                          f"residual {residual:.3g}); check the operator, or try method={others[0]!r}.",
    }
    return hints.get(status, status.message(what))
