"""One linear-solve interface over scipy.linalg and scipy.sparse.linalg.

Recurrent backprop needs, for every mini-batch, the solution of ``B``
independent ``n x n`` systems (one per sample): the adjoint system of the
fixed point. :class:`BatchedOperator` describes such a block-diagonal
operator acting on the rows of a ``(B, n)`` array, matrix-free;
:func:`solve` solves it by any of

============  =================================================================
``direct``    batched LU (LAPACK ``gesv`` through ``numpy.linalg.solve``); needs
              ``op.dense``
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

All share one signature and report, never raise, a missed tolerance: the
result has ``success=False``, the residual history and a message.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse.linalg as spla

from .activations import unknown_name_message
from .model import check_int, check_real
from .results import Result, Status

__all__ = ["BatchedOperator", "solve", "METHODS"]

METHODS = ("direct", "gmres", "lgmres", "bicgstab", "cg-normal", "neumann", "relax")


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


class _Counter:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, v):
        self.n += 1
        return self.f(v)


def solve(
    op: BatchedOperator,
    b: np.ndarray,
    *,
    method: str = "gmres",
    rtol: float = 1e-10,
    atol: float = 0.0,
    maxiter: int | None = None,
    x0: np.ndarray | None = None,
    damping: float = 1.0,
    restart: int = 30,
    record_history: bool = False,
) -> Result:
    """Solve ``A_i x_i = b_i`` for every row ``i``.

    Parameters
    ----------
    op : BatchedOperator
        The maps ``A_i``, shape (B, n).
    b : ndarray, shape (B, n)
    method : str
        One of ``METHODS`` (see the module docstring).
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
    damping : float
        Step of the ``relax`` iteration.
    restart : int
        GMRES restart length.
    record_history : bool
        Record the residual after every iteration for ``lgmres``,
        ``bicgstab`` and ``cg-normal``, whose SciPy callbacks only see the
        iterate: each entry costs one extra application of ``A`` (counted in
        ``n_matvec_diagnostic``, not in ``n_matvec``). ``gmres``, ``neumann``
        and ``relax`` record it for free. Otherwise the history holds the
        initial and the final residual.

    Returns
    -------
    Result
        ``x`` (B, n); ``success``; ``status``; ``message``; ``nit``;
        ``n_matvec`` (applications of ``A`` or ``A^T`` by the solver, the
        work it needed); ``n_matvec_diagnostic`` (applications spent only on
        recording the history and the final residual);
        ``residuals`` (history of ``||b - A x|| / ||b||`` as the method
        reports it); ``residual`` (final relative residual, recomputed).

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
    if method not in METHODS:
        raise ValueError(unknown_name_message("method", method, METHODS))
    B, n = op.shape
    b = _real_array(b, "b", (B, n))
    if x0 is not None:
        x0 = _real_array(x0, "x0", (B, n))
    check_real(rtol, "rtol", low_inclusive=True)
    check_real(atol, "atol", low_inclusive=True)
    check_real(damping, "damping")
    check_int(restart, "restart")
    if maxiter is not None:
        check_int(maxiter, "maxiter")
    bnorm = float(np.linalg.norm(b))
    threshold = max(rtol * bnorm, atol)
    matvec = _Counter(op.matvec)
    if bnorm == 0.0:
        return _result(np.zeros_like(b), 0.0, 0, 0, [0.0], Status.SUCCESS, method)

    if method == "direct":
        if op.dense is None and op.dense_sample is None:
            raise ValueError("method='direct' needs an operator with dense matrices (op.dense)")
        try:
            if op.dense_sample is not None and (op.dense is None or B * n * n * 8 > 64 * 2**20):
                # One LU at a time: memory O(n^2) instead of O(B n^2).
                from scipy.linalg import LinAlgWarning
                from scipy.linalg import solve as dense_solve

                x = np.empty_like(b)
                with warnings.catch_warnings():
                    warnings.simplefilter("error", LinAlgWarning)
                    for i in range(B):
                        x[i] = dense_solve(op.dense_sample(i), b[i], overwrite_a=True, check_finite=False)
            else:
                x = np.linalg.solve(op.dense(), b[..., None])[..., 0]
            status = Status.SUCCESS
        except (np.linalg.LinAlgError, Warning):
            x, status = np.zeros_like(b), Status.BREAKDOWN
        res = _rel_residual(op, x, b, bnorm)
        if status == Status.SUCCESS and not np.isfinite(res):
            status = Status.BREAKDOWN
        result = _result(x, res, 1, 0, [1.0, res], status, method)
        result["n_matvec_diagnostic"] = 1
        return result

    if method in ("neumann", "relax"):
        maxiter = 1000 if maxiter is None else maxiter
        fixed_terms = rtol == 0 and atol == 0  # Neumann-RBP as in Liao et al.: exactly maxiter terms
        step = 1.0 if method == "neumann" else damping
        x = np.zeros_like(b) if x0 is None else np.array(x0, dtype=np.float64)
        r = b - matvec(x) if x0 is not None else b.copy()
        history = [float(np.linalg.norm(r)) / bnorm]
        status = Status.MAX_ITER
        it = 0
        for it in range(1, maxiter + 1):
            # Neumann: x_k = sum_{j<k} J^j b and r_k = J^k b, with J = I - A;
            # relax: x <- x + damping * r, the same recursion with a step.
            x += step * r
            r = b - matvec(x)
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
        return _result(x, history[-1], it, matvec.n, history, status, method)

    # Krylov methods through scipy.sparse.linalg on the flattened batch.
    maxiter = 10 * n if maxiter is None else maxiter
    history = []
    iterations = [0]

    def track(xk):
        iterations[0] += 1
        if record_history:
            history.append(_rel_residual_flat(flat_ref, xk, rhs, bnorm))
    A = spla.LinearOperator((B * n, B * n), matvec=lambda v: matvec(v.reshape(B, n)).ravel(), dtype=np.float64)
    rhs = b.ravel()
    guess = None if x0 is None else np.asarray(x0, dtype=np.float64).ravel()
    flat_ref = op.flat()
    if method == "cg-normal":
        if op.rmatvec is None:
            raise ValueError("method='cg-normal' needs an operator with rmatvec (the transposed maps)")
        rmatvec = _Counter(op.rmatvec)
        N = spla.LinearOperator(
            (B * n, B * n), matvec=lambda v: rmatvec(matvec(v.reshape(B, n))).ravel(), dtype=np.float64
        )
        normal_rhs = rmatvec(b).ravel()
        # The normal equations square the condition number; ask for the
        # residual of the original system by tightening rtol on A^T r.
        xk, info = spla.cg(
            N, normal_rhs, x0=guess, rtol=0.0, atol=threshold * 1e-3 * _norm_bound(op, b), maxiter=maxiter,
            callback=track,
        )
        n_matvec = matvec.n + rmatvec.n - 1
    elif method == "gmres":
        inner = min(restart, maxiter)
        xk, info = spla.gmres(
            A, rhs, x0=guess, rtol=rtol, atol=atol, restart=inner, maxiter=-(-maxiter // inner),
            callback=lambda pr: (history.append(float(pr)), iterations.__setitem__(0, iterations[0] + 1)),
            callback_type="pr_norm",
        )
        n_matvec = matvec.n
    elif method == "lgmres":
        xk, info = spla.lgmres(
            A, rhs, x0=guess, rtol=rtol, atol=atol, maxiter=-(-maxiter // min(restart, maxiter)),
            inner_m=min(restart, maxiter),
            callback=track,
        )
        n_matvec = matvec.n
    else:  # bicgstab
        xk, info = spla.bicgstab(
            A, rhs, x0=guess, rtol=rtol, atol=atol, maxiter=maxiter,
            callback=track,
        )
        n_matvec = matvec.n
    x = xk.reshape(B, n)
    res = _rel_residual(op, x, b, bnorm)
    if not np.isfinite(res):
        status = Status.BREAKDOWN
    elif res * bnorm <= threshold * (1 + 1e-6) or (info == 0 and method != "cg-normal"):
        status = Status.SUCCESS
    elif info < 0:
        status = Status.BREAKDOWN
    else:
        status = Status.MAX_ITER
    nit = iterations[0]
    if not history:
        history.append(1.0 if x0 is None else _rel_residual(op, x0, b, bnorm))
    if history[-1] != res:
        history.append(res)  # SciPy's callbacks can miss the final iterate
    result = _result(x, res, nit, n_matvec, history, status, method)
    result["n_matvec_diagnostic"] = 1 + (nit if record_history and method in ("lgmres", "bicgstab", "cg-normal") else 0)
    return result


def _real_array(a, argument, shape):
    raw = np.asarray(a)
    if raw.dtype == object or not (np.issubdtype(raw.dtype, np.number) or raw.dtype == bool) or np.iscomplexobj(raw):
        raise ValueError(f"{argument} must be a real numeric array, got dtype {raw.dtype}")
    if raw.shape != shape:
        raise ValueError(f"{argument} must have shape {shape} to match the operator, got {raw.shape}")
    out = raw.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{argument} must be finite, got NaN or inf")
    return out


def _norm_bound(op, b):
    # ||A^T r|| <= ||A|| ||r||: scale the normal-equation tolerance by an
    # estimate of ||A|| (cheap: one application to b).
    Ab = op.rmatvec(b)
    return max(float(np.linalg.norm(Ab) / max(np.linalg.norm(b), 1e-300)), 1e-12)


def _rel_residual(op, x, b, bnorm):
    return float(np.linalg.norm(b - op.matvec(x)) / bnorm)


def _rel_residual_flat(A, xk, rhs, bnorm):
    return float(np.linalg.norm(rhs - A.matvec(xk)) / bnorm)


def _result(x, residual, nit, n_matvec, history, status, method):
    return Result(
        x=x, success=status == Status.SUCCESS, status=status,
        message=status.message(f"linear solve ({method})")
        + ("" if status == Status.SUCCESS else " For the adjoint system try method='gmres' or 'direct', or a "
           "larger maxiter; neumann/relax need the Jacobian's spectral radius below 1."), nit=int(nit), n_matvec=int(n_matvec),
        residuals=history, residual=float(residual), method=method, n_matvec_diagnostic=0,
    )
