"""rbp.core.linsolve.solve: every method against manufactured solutions b = A @ x_true.

Each test builds batched systems whose solution is known by construction, so
the oracle is the construction itself; failures (too few iterations, an
unstable series, a singular matrix) must be reported in the result, never
raised and never hidden behind the initial guess.
"""

import numpy as np
import pytest

from rbp.core.linsolve import METHODS, BatchedOperator, solve
from rbp.core.results import Status

KRYLOV = ("gmres", "lgmres", "bicgstab", "cg-normal")
SERIES = ("neumann", "relax")  # need rho(I - A) < 1 (relax: |1 - damping * lambda(A)| < 1)
RTOL = 1e-10


class CountingOperator(BatchedOperator):
    """A dense batched operator that counts how often it is applied."""

    def __init__(self, A):
        self.A = A
        self.calls = 0
        super().__init__(self._mv, A.shape[:2], rmatvec=self._rmv, dense=lambda: self.A)

    def _mv(self, V):
        self.calls += 1
        return np.einsum("bij,bj->bi", self.A, V)

    def _rmv(self, V):
        self.calls += 1
        return np.einsum("bji,bj->bi", self.A, V)


def _apply(A, x):
    return np.einsum("bij,bj->bi", A, x)


def _contraction_system(gen, B=5, n=12, norm=0.6):
    """A = I - J with ||J_i||_2 = norm < 1: nonsymmetric, cond(A) <= (1+norm)/(1-norm),
    and rho(I - A) <= norm, so the Neumann series and the relaxation converge too."""
    J = gen.normal(size=(B, n, n))
    J *= norm / np.linalg.norm(J, 2, axis=(1, 2))[:, None, None]
    return np.eye(n) - J


def _general_system(gen, B=4, n=10, smax=8.0):
    """A_i = S_i diag(lam) S_i^{-1}, lam in [0.5, smax], S_i = I + 0.3 G/||G||:
    nonsymmetric, cond(A_i) <= 4 smax, and rho(I - A) = smax - 1 > 1, so only
    direct and Krylov methods apply."""
    G = gen.normal(size=(B, n, n))
    S = np.eye(n) + 0.3 * G / np.linalg.norm(G, 2, axis=(1, 2))[:, None, None]
    lam = np.linspace(0.5, smax, n)
    return S * lam[None, None, :] @ np.linalg.inv(S)


def _hard_system(gen, B=2, n=60, smax=1e4):
    """A_i = Q_i diag(s) R_i^T with random orthogonal Q, R: singular values in
    [1, smax] and eigenvalues around the origin, slow for every Krylov method."""
    Q = np.linalg.qr(gen.normal(size=(B, n, n)))[0]
    R = np.linalg.qr(gen.normal(size=(B, n, n)))[0]
    s = np.geomspace(1.0, smax, n)
    return Q * s[None, None, :] @ R.transpose(0, 2, 1)


def _manufactured(A, gen):
    x_true = gen.normal(size=A.shape[:2])
    return x_true, _apply(A, x_true)


def _check_solution(res, A, x_true, b, rtol):
    """x within what rtol allows (cond * rtol), and the report is complete."""
    assert res.success, res.message
    assert res.status == Status.SUCCESS
    assert "reached its tolerance" in res.message
    assert res.x.shape == b.shape
    cond = np.linalg.cond(A).max()
    err = np.linalg.norm(res.x - x_true) / np.linalg.norm(x_true)
    assert err <= 10 * cond * rtol, (res.method, err)
    # The reported final residual is the true one, and it meets the tolerance.
    true_res = np.linalg.norm(b - _apply(A, res.x)) / np.linalg.norm(b)
    assert res.residual == pytest.approx(true_res, rel=1e-6, abs=1e-15)
    assert res.residual <= rtol * (1 + 1e-6)
    assert isinstance(res.nit, int) and res.nit >= 1
    assert isinstance(res.residuals, list) and len(res.residuals) >= 1
    assert all(np.isfinite(res.residuals))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_solves_nonsymmetric_contraction_systems(method, rng):
    A = _contraction_system(rng)
    assert not np.allclose(A, A.transpose(0, 2, 1))
    assert np.abs(np.linalg.eigvals(np.eye(A.shape[1]) - A)).max() < 1
    x_true, b = _manufactured(A, rng)
    op = CountingOperator(A)
    res = solve(op, b, method=method, rtol=RTOL)
    _check_solution(res, A, x_true, b, RTOL)
    assert res.method == method
    # n_matvec counts the solver's own applications: no more than it really made.
    assert 0 <= res.n_matvec <= op.calls
    if method != "direct":
        assert res.n_matvec >= res.nit
        assert res.residuals[-1] <= res.residuals[0]


@pytest.mark.parametrize("method", ("direct",) + KRYLOV)
def test_direct_and_krylov_solve_general_nonsymmetric_systems(method, rng):
    A = _general_system(rng)
    # rho(I - A) > 1: outside what the series methods can do, not outside these.
    assert np.abs(np.linalg.eigvals(np.eye(A.shape[1]) - A)).max() > 1
    x_true, b = _manufactured(A, rng)
    res = solve(CountingOperator(A), b, method=method, rtol=RTOL)
    _check_solution(res, A, x_true, b, RTOL)


@pytest.mark.parametrize("method", METHODS)
def test_residual_history_ends_at_the_final_residual(method):
    """Converged or capped, the history a report plots ends where the solver ended."""
    for seed in range(3):
        gen = np.random.default_rng(seed)
        for A in (_contraction_system(gen), _general_system(gen)):
            if method in SERIES and np.abs(np.linalg.eigvals(np.eye(A.shape[1]) - A)).max() >= 1:
                continue
            x_true, b = _manufactured(A, gen)
            for maxiter in (None, 3):
                res = solve(CountingOperator(A), b, method=method, rtol=RTOL, maxiter=maxiter)
                assert res.residuals[-1] == pytest.approx(res.residual, rel=1e-2, abs=1e-14), (seed, maxiter)


@pytest.mark.parametrize("rtol", [1e-4, 1e-8, 1e-12])
@pytest.mark.parametrize("method", METHODS)
def test_accuracy_follows_rtol(method, rtol, rng):
    A = _contraction_system(rng, B=3, n=8)
    x_true, b = _manufactured(A, rng)
    res = solve(CountingOperator(A), b, method=method, rtol=rtol)
    _check_solution(res, A, x_true, b, rtol)


@pytest.mark.parametrize("method", METHODS)
def test_initial_guess_is_used_and_result_unchanged(method, rng):
    A = _contraction_system(rng, B=3, n=8)
    x_true, b = _manufactured(A, rng)
    x0 = x_true + 1e-3 * rng.normal(size=x_true.shape)
    res = solve(CountingOperator(A), b, method=method, rtol=RTOL, x0=x0)
    _check_solution(res, A, x_true, b, RTOL)
    cold = solve(CountingOperator(A), b, method=method, rtol=RTOL)
    assert res.nit <= cold.nit


def test_relax_with_damping_needs_only_re_lambda_below_one(rng):
    """I - A with real eigenvalues in [-1.8, 0.5]: the Neumann series diverges,
    the relaxation with damping 0.5 has rate max|1 - 0.5 mu(A)| = 0.75."""
    B, n = 3, 8
    S = rng.normal(size=(B, n, n)) + 3 * np.eye(n)
    lam = np.linspace(-1.8, 0.5, n)
    J = S * lam[None, None, :] @ np.linalg.inv(S)
    A = np.eye(n) - J
    x_true, b = _manufactured(A, rng)
    res = solve(CountingOperator(A), b, method="relax", damping=0.5, rtol=RTOL, maxiter=2000)
    _check_solution(res, A, x_true, b, RTOL)
    # Geometric convergence at the predicted rate 0.75 (a few steps of slack
    # for the non-normal transient).
    assert res.nit <= np.log(RTOL) / np.log(0.75) + 40
    undamped = solve(CountingOperator(A), b, method="neumann", rtol=RTOL, maxiter=2000)
    assert not undamped.success
    assert undamped.status in (Status.DIVERGED, Status.MAX_ITER)


@pytest.mark.parametrize("K", [1, 3, 10])
def test_neumann_with_zero_tolerance_sums_exactly_k_terms(K, rng):
    """rtol = atol = 0: the truncated series of Neumann-RBP, x = sum_{j<K} J^j b, a success by request."""
    A = _contraction_system(rng, B=3, n=6)
    J = np.eye(6) - A
    b = rng.normal(size=(3, 6))
    op = CountingOperator(A)
    res = solve(op, b, method="neumann", rtol=0.0, atol=0.0, maxiter=K)
    expected, term = np.zeros_like(b), b.copy()
    for _ in range(K):
        expected += term
        term = _apply(J, term)
    np.testing.assert_allclose(res.x, expected, rtol=1e-13, atol=1e-14)
    assert res.success and res.status == Status.SUCCESS
    assert res.nit == K == res.n_matvec
    assert len(res.residuals) == K + 1
    assert res.residual == pytest.approx(np.linalg.norm(term) / np.linalg.norm(b), rel=1e-10)  # r_K = J^K b


@pytest.mark.parametrize("method", SERIES)
def test_series_on_unstable_system_reports_failure(method, rng):
    """rho(I - A) = 1.5: the series grows; it must not claim success."""
    B, n = 3, 8
    J = rng.normal(size=(B, n, n))
    J *= 1.5 / np.abs(np.linalg.eigvals(J)).max(axis=1)[:, None, None]
    A = np.eye(n) - J
    x_true, b = _manufactured(A, rng)
    res = solve(CountingOperator(A), b, method=method, rtol=RTOL)
    assert not res.success
    assert res.status in (Status.DIVERGED, Status.MAX_ITER)
    assert "did not" in res.message or "diverged" in res.message or "max_iter" in res.message
    assert np.all(np.isfinite(res.x))
    assert res.residual > RTOL
    # The residual history shows the growth it stopped on.
    assert res.residuals[-1] > res.residuals[0]


@pytest.mark.parametrize("method", [m for m in METHODS if m != "direct"])
def test_too_small_maxiter_reports_max_iter(method, rng):
    A = _contraction_system(rng)
    x_true, b = _manufactured(A, rng)
    x0 = rng.normal(size=b.shape)
    res0 = np.linalg.norm(b - _apply(A, x0)) / np.linalg.norm(b)
    res = solve(CountingOperator(A), b, method=method, rtol=RTOL, maxiter=2, x0=x0)
    assert not res.success
    assert res.status == Status.MAX_ITER
    assert "larger maxiter" in res.message and "did not converge" in res.message  # says what to try
    assert 1 <= res.nit <= 2  # the cap is honoured
    # Not the initial guess returned silently: the iterations made progress.
    assert not np.allclose(res.x, x0)
    assert res.residual < res0
    assert res.residual == pytest.approx(np.linalg.norm(b - _apply(A, res.x)) / np.linalg.norm(b), rel=1e-6)


@pytest.mark.parametrize("method", KRYLOV)
def test_krylov_on_hard_system_with_one_iteration_reports_max_iter(method, rng):
    """cond 1e4 and n = 60: no Krylov method reaches 1e-10 in one cycle."""
    A = _hard_system(rng)
    x_true, b = _manufactured(A, rng)
    res = solve(CountingOperator(A), b, method=method, rtol=RTOL, maxiter=1)
    assert not res.success
    assert res.status == Status.MAX_ITER
    assert "maxiter" in res.message
    assert np.all(np.isfinite(res.x))
    assert res.residual > RTOL
    assert np.any(res.x != 0.0)  # it iterated: not the initial guess x0 = 0


def test_direct_on_singular_system_reports_breakdown(rng):
    B, n = 3, 6
    A = rng.normal(size=(B, n, n))
    A[1, :, 0] = 0.0  # sample 1 is singular
    b = rng.normal(size=(B, n))
    res = solve(CountingOperator(A), b, method="direct")
    assert not res.success
    assert res.status == Status.BREAKDOWN
    assert "singular" in res.message and "try" in res.message
    assert np.all(np.isfinite(res.x))
    assert np.isfinite(res.residual)


@pytest.mark.parametrize("method", KRYLOV + SERIES)
def test_iterative_methods_on_singular_inconsistent_system_fail_finitely(method, rng):
    B, n = 2, 6
    A = rng.normal(size=(B, n, n)) * 0.2
    A[0, :, 0] = 0.0  # column of zeros: b with a component off the range has no solution
    b = rng.normal(size=(B, n))
    res = solve(CountingOperator(A), b, method=method, rtol=RTOL, maxiter=200)
    assert not res.success
    assert res.status in (Status.MAX_ITER, Status.DIVERGED, Status.BREAKDOWN)
    assert np.all(np.isfinite(res.x))


def test_zero_rhs_gives_zero_solution(rng):
    A = _contraction_system(rng, B=2, n=4)
    for method in METHODS:
        res = solve(CountingOperator(A), np.zeros((2, 4)), method=method)
        assert res.success and res.status == Status.SUCCESS
        np.testing.assert_array_equal(res.x, 0.0)


def test_shape_mismatch_raises_naming_b(rng):
    A = _contraction_system(rng, B=3, n=4)
    with pytest.raises(ValueError, match=r"\bb\b.*\(3, 4\).*\(2, 4\)"):
        solve(CountingOperator(A), rng.normal(size=(2, 4)))
    with pytest.raises(ValueError, match=r"\bb\b"):
        solve(CountingOperator(A), rng.normal(size=(12,)))


def test_unknown_method_suggests_the_nearest(rng):
    A = _contraction_system(rng, B=1, n=3)
    with pytest.raises(ValueError, match=r"method.*'gmress'.*did you mean 'gmres'"):
        solve(CountingOperator(A), np.ones((1, 3)), method="gmress")


def test_methods_needing_more_than_matvec_say_so(rng):
    A = _contraction_system(rng, B=2, n=3)
    bare = BatchedOperator(lambda V: _apply(A, V), (2, 3))
    b = np.ones((2, 3))
    with pytest.raises(ValueError, match="cg-normal.*rmatvec"):
        solve(bare, b, method="cg-normal")
    # The matrix-free Krylov and series methods need only matvec; direct builds
    # the small matrices from n products (counted as its work).
    for method in ("gmres", "lgmres", "bicgstab", "neumann", "relax", "direct"):
        assert solve(bare, b, method=method, rtol=RTOL).success
    assert solve(bare, b, method="direct").n_matvec == 3


def test_direct_refuses_a_huge_matrix_free_operator_naming_the_krylov_methods():
    n = 100_000
    op = BatchedOperator(lambda V: 2.0 * V, (1, n))
    with pytest.raises(ValueError, match="direct.*'gmres', 'lgmres', 'bicgstab' or 'cg-normal'"):
        solve(op, np.ones((1, n)), method="direct")
    assert solve(op, np.ones((1, n)), method="gmres", maxiter=5).success


def test_batch_rows_are_independent(rng):
    """Row i of the solution depends only on A_i and b_i."""
    A = _general_system(rng, B=3, n=5)
    x_true, b = _manufactured(A, rng)
    full = solve(CountingOperator(A), b, method="direct").x
    for i in range(3):
        one = solve(CountingOperator(A[i : i + 1]), b[i : i + 1], method="gmres", rtol=1e-12).x
        np.testing.assert_allclose(one[0], full[i], rtol=1e-9, atol=1e-12)


def test_flat_operator_is_block_diagonal(rng):
    A = _general_system(rng, B=2, n=3)
    op = CountingOperator(A)
    dense = np.zeros((6, 6))
    dense[:3, :3], dense[3:, 3:] = A[0], A[1]
    v = rng.normal(size=6)
    np.testing.assert_allclose(op.flat() @ v, dense @ v)
    np.testing.assert_allclose(op.flat(transpose=True) @ v, dense.T @ v)
