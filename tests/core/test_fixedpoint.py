"""rbp.core.fixedpoint: relax() on contractions, per-sample bookkeeping,
reported failures, and spectrum()."""

import numpy as np
import pytest

from rbp.core.fixedpoint import METHODS, relax, spectrum
from rbp.core.results import Status

B, N = 6, 5
NORM_W = 0.8  # ||W||_2 < 1 and Lip(tanh) = 1: x -> tanh(xW + c) is a contraction

def _problem(gen, b=B, n=N, norm=NORM_W):
    W = gen.normal(size=(n, n))
    W *= norm / np.linalg.norm(W, 2)
    # Drives of very different sizes, so the samples need different iteration counts.
    C = gen.normal(size=(b, n)) * np.geomspace(0.05, 3.0, b)[:, None]
    return W, C


class Recorder:
    """F(x, rows) = tanh(xW + C[rows]); records each call's rows and states."""

    def __init__(self, W, C, activation=np.tanh):
        self.W, self.C, self.f = W, C, activation
        self.calls = []

    def __call__(self, x, rows):
        self.calls.append((rows.copy(), x.copy()))
        return self.f(x @ self.W + self.C[rows])

    def counts(self):
        return np.bincount(np.concatenate([r for r, _ in self.calls]), minlength=len(self.C))

    def full(self, x):
        return self.f(x @ self.W + self.C)


def _reference(W, C):
    """The fixed point by plain iteration to machine precision (the oracle)."""
    x = np.zeros_like(C)
    for _ in range(2000):
        x_new = np.tanh(x @ W + C)
        if np.array_equal(x_new, x):
            break
        x = x_new
    return x


def _rel_residual(x, fx):
    return np.linalg.norm(fx - x, axis=1) / np.maximum(1.0, np.linalg.norm(x, axis=1))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_converges_to_the_same_fixed_point(method, rng):
    W, C = _problem(rng)
    x_ref = _reference(W, C)
    F = Recorder(W, C)
    tol = 1e-10
    x0 = rng.normal(size=(B, N))
    x0_copy = x0.copy()
    # max_iter bounds the evaluations of F for every method; the ODE integrator needs more of them
    res = relax(F, x0, method=method, tol=tol, max_iter=2000 if method == "ode" else 500)
    assert res.success, res.message
    assert res.status == Status.SUCCESS
    assert res.converged.all()
    np.testing.assert_array_equal(x0, x0_copy)  # the input is not modified
    r = _rel_residual(res.x, F.full(res.x))
    assert np.all(r <= tol * (1 + 1e-6))
    np.testing.assert_allclose(res.residual, r, rtol=1e-6, atol=1e-15)
    # Residual tol of a contraction with constant L: ||x - x*|| <= tol * max(1, ||x||) / (1 - L).
    scale = np.maximum(1.0, np.linalg.norm(x_ref, axis=1))
    err = np.linalg.norm(res.x - x_ref, axis=1)
    assert np.all(err <= 1.01 * tol * scale / (1 - NORM_W))
    assert res.nit >= 1 and len(res.residuals) >= 1
    assert res.nit_per_sample.shape == (B,)


@pytest.mark.parametrize("damping", [1.0, 0.7, 0.3])
@pytest.mark.parametrize("method", ["picard", "anderson"])
def test_damping_changes_the_path_not_the_fixed_point(method, damping, rng):
    W, C = _problem(rng)
    res = relax(Recorder(W, C), np.zeros((B, N)), method=method, damping=damping, tol=1e-12, max_iter=2000)
    assert res.success, res.message
    np.testing.assert_allclose(res.x, _reference(W, C), atol=1e-11 / (1 - NORM_W))


def test_picard_rate_follows_damping(rng):
    """Damped iteration contracts at about |1 - tau + tau lambda| per step: slower for small tau."""
    W, C = _problem(rng)
    nits = [relax(Recorder(W, C), np.zeros((B, N)), damping=t, tol=1e-10, max_iter=5000).nit for t in (1.0, 0.5, 0.25)]
    assert nits[0] < nits[1] < nits[2]


@pytest.mark.parametrize("method", ["picard", "anderson"])
def test_converged_samples_stop_being_updated(method, rng):
    W, C = _problem(rng)
    F = Recorder(W, C)
    res = relax(F, np.zeros((B, N)), method=method, tol=1e-10, max_iter=500)
    assert res.success
    counts = F.counts()
    # Samples need different numbers of iterations ...
    assert len(set(res.nit_per_sample.tolist())) > 1
    assert len(set(counts.tolist())) > 1
    # ... and each is evaluated exactly once more than it is updated: the last
    # evaluation only tests convergence.
    np.testing.assert_array_equal(counts, res.nit_per_sample + 1)
    # Rows passed to F are always a subset of range(B), in increasing order,
    # and shrink monotonically: a converged sample never comes back.
    prev = set(range(B))
    for rows, x in F.calls:
        assert set(rows.tolist()) <= prev
        assert np.all(np.diff(rows) > 0)
        assert x.shape == (len(rows), N)
        prev = set(rows.tolist())
    # The state returned for a sample is exactly the state at its last
    # evaluation: it was not updated after it converged.
    for i in range(B):
        last = [x[list(rows).index(i)] for rows, x in F.calls if i in rows][-1]
        np.testing.assert_array_equal(res.x[i], last)
    assert res.n_fev == counts.sum()


def test_too_small_max_iter_reports_which_samples_failed(rng):
    W, C = _problem(rng)
    C[0] = 0.0  # x = 0 is the fixed point of sample 0: converged at once
    F = Recorder(W, C)
    res = relax(F, np.zeros((B, N)), tol=1e-12, max_iter=5)
    assert not res.success
    assert res.status == Status.MAX_ITER
    assert res.converged.dtype == bool and res.converged.shape == (B,)
    assert res.converged[0] and not res.converged.all()
    n_bad = int((~res.converged).sum())
    assert f"did not converge for {n_bad} of {B} samples" in res.message
    assert "larger max_iter" in res.message
    assert res.nit == 5
    assert np.all(res.nit_per_sample <= 5)
    np.testing.assert_array_equal(res.nit_per_sample[~res.converged], 5)
    assert np.all(res.residual[~res.converged] > 1e-12)
    assert np.all(res.residual[res.converged] <= 1e-12)
    # The partial result is the last iterate, not the initial guess.
    assert np.all(np.isfinite(res.x))
    assert np.all(np.linalg.norm(res.x[~res.converged], axis=1) > 0)


def test_nit_per_sample_of_a_converged_sample_does_not_depend_on_max_iter(rng):
    W, C = _problem(rng)
    full = relax(Recorder(W, C), np.zeros((B, N)), tol=1e-10, max_iter=500)
    cap = int(np.sort(full.nit_per_sample)[B // 2]) + 1  # some samples converge before the cap, some do not
    short = relax(Recorder(W, C), np.zeros((B, N)), tol=1e-10, max_iter=cap)
    assert short.converged.any() and not short.converged.all()
    np.testing.assert_array_equal(short.nit_per_sample[short.converged], full.nit_per_sample[short.converged])


def test_store_iterates_consistent_with_nit_per_sample(rng):
    W, C = _problem(rng)
    x0 = rng.normal(size=(B, N))
    res = relax(Recorder(W, C), x0, tol=1e-10, max_iter=500, store_iterates=True)
    assert res.success
    _check_iterates(res, W, C, x0, damping=1.0)


def test_store_iterates_consistent_with_nit_per_sample_at_max_iter(rng):
    W, C = _problem(rng)
    full = relax(Recorder(W, C), np.zeros((B, N)), tol=1e-10, max_iter=500)
    cap = int(np.sort(full.nit_per_sample)[B // 2]) + 1
    x0 = np.zeros((B, N))
    res = relax(Recorder(W, C), x0, tol=1e-10, max_iter=cap, store_iterates=True)
    assert res.converged.any() and not res.converged.all()
    _check_iterates(res, W, C, x0, damping=1.0)


def test_store_iterates_replays_the_damped_iteration(rng):
    W, C = _problem(rng)
    x0 = rng.normal(size=(B, N))
    res = relax(Recorder(W, C), x0, tol=1e-10, max_iter=60, damping=0.5, store_iterates=True)
    _check_iterates(res, W, C, x0, damping=0.5, check_counts=False)


def _check_iterates(res, W, C, x0, damping, check_counts=True):
    its, act = res.iterates, res.active
    assert len(its) == len(act) == res.nit
    np.testing.assert_array_equal(its[0], x0)
    if check_counts:
        # Each sample was updated once per counted iteration.
        np.testing.assert_array_equal(np.sum(act, axis=0), res.nit_per_sample)
    # The active sets shrink, and replaying the steps gives the stored states and the result.
    for k in range(len(its)):
        assert its[k].shape == (B, N) and act[k].shape == (B,) and act[k].dtype == bool
        if k:
            assert np.all(act[k] <= act[k - 1])
        nxt = its[k + 1] if k + 1 < len(its) else res.x
        step = its[k] + damping * (np.tanh(its[k] @ W + C) - its[k])
        np.testing.assert_allclose(nxt[act[k]], step[act[k]], rtol=0, atol=1e-15)
        np.testing.assert_array_equal(nxt[~act[k]], its[k][~act[k]])


@pytest.mark.parametrize("method", ["picard", "ode"])
def test_divergence_is_reported_not_raised(method, rng):
    """Identity activation, W with eigenvalue 2 (||W||_2 > 1): x grows like 2^k
    (Picard) or e^t (ode), past 1e8 long before max_iter, and would overflow
    (FloatingPointError here) if the run were not stopped."""
    S = np.eye(N) + 0.3 * rng.normal(size=(N, N))
    W = S @ np.diag([2.0, 0.5, -0.3, 0.2, 0.1]) @ np.linalg.inv(S)
    assert np.linalg.norm(W, 2) > 1
    _, C = _problem(rng)
    res = relax(Recorder(W, C, activation=lambda a: a), np.zeros((B, N)), method=method, tol=1e-10, max_iter=2000)
    assert not res.success
    assert res.status == Status.DIVERGED
    assert "diverged" in res.message and "damping" in res.message
    assert np.all(np.isfinite(res.x))
    if method == "picard":
        assert res.nit < 100  # stopped when it blew up, not at max_iter


def test_non_finite_dynamics_are_reported_as_diverged(rng):
    """F returning inf for one sample: DIVERGED with the last finite state."""
    W, C = _problem(rng)

    def F(x, rows):
        out = np.tanh(x @ W + C[rows])
        if len(F.seen) == 3:
            out[rows == 2] = np.inf
        F.seen.append(rows)
        return out

    F.seen = []
    res = relax(F, np.zeros((B, N)), tol=1e-12, max_iter=500)
    assert not res.success
    assert res.status == Status.DIVERGED
    assert "diverged" in res.message
    assert np.all(np.isfinite(res.x))
    assert res.residuals[-1] == np.inf


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "picrad"}, r"method.*'picrad'.*did you mean 'picard'"),
        ({"damping": 0.0}, r"damping.*\(0, 1\]"),
        ({"damping": 1.5}, r"damping.*\(0, 1\]"),
        ({"max_iter": 0}, r"max_iter must be an integer >= 1"),
        ({"max_iter": 2.5}, r"max_iter must be an integer >= 1"),
        ({"tol": 0.0}, r"tol.*positive"),
        ({"tol": -1e-8}, r"tol.*positive"),
        ({"method": "anderson", "store_iterates": True}, r"store_iterates.*picard"),
    ],
)
def test_invalid_arguments_raise_naming_them(kwargs, match, rng):
    W, C = _problem(rng)
    with pytest.raises(ValueError, match=match):
        relax(Recorder(W, C), np.zeros((B, N)), **kwargs)


def test_spectrum_exact_on_known_matrices():
    def rot(a, b):  # eigenvalues a +- i b
        return np.array([[a, -b], [b, a]])

    M = np.zeros((2, 3, 3))
    M[0, :2, :2], M[0, 2, 2] = rot(0.3, 0.4), -0.2  # |lambda| 0.5, 0.2; Re 0.3, -0.2
    M[1, :2, :2], M[1, 2, 2] = rot(-0.6, 0.0), 0.1  # |lambda| 0.6, 0.1; Re -0.6, 0.1
    S = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.0, 1.0]])  # similarity keeps the spectrum
    M = S @ M @ np.linalg.inv(S)
    rho, max_real = spectrum(M)
    assert rho == pytest.approx(0.6, abs=1e-12)
    assert max_real == pytest.approx(0.3, abs=1e-12)


def test_spectrum_arpack_agrees_with_exact(rng):
    n = 60
    M = rng.normal(size=(n, n)) / np.sqrt(n)
    rho, max_real = spectrum(M[None])
    ev = np.linalg.eigvals(M)
    assert rho == pytest.approx(np.abs(ev).max(), rel=1e-12)
    assert max_real == pytest.approx(ev.real.max(), rel=1e-12)
    calls = []
    rho_it, max_real_it = spectrum(matvec=lambda v: calls.append(1) or M @ v, n=n)
    assert calls  # the matrix-free path really ran
    assert rho_it == pytest.approx(rho, rel=1e-5)
    assert max_real_it == pytest.approx(max_real, rel=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_bounded_by_max_iter_even_with_a_tolerance_below_round_off(method, rng):
    """tol=1e-200 can never be met: each method must stop after max_iter evaluations of F and say so."""
    W, C = _problem(rng)
    F = Recorder(W, C)
    res = relax(F, np.zeros((B, N)), method=method, tol=1e-200, max_iter=3)
    assert not res.success and res.status == Status.MAX_ITER
    assert "did not converge" in res.message
    per_sample = F.counts()
    # at most max_iter evaluations by the method (hybr: per unknown, its finite-difference Jacobian),
    # plus diagnostics: the residual history (SciPy callbacks) and the final residual
    limit = {"hybr": 3 * (B * N + 2), "picard": 4, "anderson": 4, "ode": 4}.get(method, 2 * 3 + 2)
    assert per_sample.max() <= limit
