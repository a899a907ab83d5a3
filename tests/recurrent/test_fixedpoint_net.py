"""FixedPointNet: recurrent backprop against independent oracles.

Oracles: central differences of the forward-only loss (every backward method,
activation, loss and size), backprop through the unrolled relaxation as the
number of iterations grows, and a linear net whose fixed point and gradient
have a closed form. Plus: failures are reported (never NaN), diagnostics are
complete, and bad input raises ValueError naming the argument.
"""

import warnings

import numpy as np
import pytest

import rbp
from rbp import ConvergenceWarning, FixedPointNet, NonConvergenceError, Status
from rbp.core.fixedpoint import METHODS as FORWARD_METHODS
from rbp.recurrent.fixedpoint_net import BACKWARD_METHODS

ACTIVATIONS = ("tanh", "logistic", "softplus")  # the smooth ones: central differences apply
FORMS = (("squared", False), ("cross_entropy", False), ("squared", True))  # (loss, pineda)
SIZES = ((1, 1, 1), (2, 4, 3), (3, 9, 2))  # (n_in, n_units, n_out)
BATCHES = (1, 13)
TIGHT = dict(tol=1e-13, max_iter=5000, backward_tol=1e-12, backward_max_iter=5000)


def _cases():
    """Every backward method x activation x form; the 6 (size, batch) pairs are
    rotated so that each method meets every size and batch, and so does each
    (activation, form) pair across methods."""
    for im, method in enumerate(BACKWARD_METHODS):
        for ia, act in enumerate(ACTIVATIONS):
            for iform, (loss, pineda) in enumerate(FORMS):
                j = (ia + 3 * iform + im) % 6
                n_in, n_units, n_out = SIZES[j % 3]
                if loss == "cross_entropy":
                    n_out = max(n_out, 2)  # softmax over one output is constant
                B = BATCHES[j // 3]
                form = loss + ("-pineda" if pineda else "")
                yield pytest.param(
                    method, act, loss, pineda, (n_in, n_units, n_out), B,
                    id=f"{method}-{act}-{form}-{n_in}x{n_units}x{n_out}-B{B}",
                )


def _net(n_in, n_units, n_out, act="tanh", loss="squared", pineda=False, **kw):
    opts = dict(forward="picard", init_scale=0.9, **TIGHT)
    opts.update(kw)
    return FixedPointNet(n_in, n_units, n_out, act, loss=loss, pineda=pineda, **opts)


def _theta(net, gen):
    """Initial parameters plus random biases, so no unit sits at a special point."""
    theta = net.init(gen)
    p = net.params.unravel(theta)
    p["b"][...] = 0.5 * gen.normal(size=p["b"].shape)
    if "c" in p:
        p["c"][...] = 0.5 * gen.normal(size=p["c"].shape)
    return theta


def _data(net, B, gen):
    X = gen.normal(size=(B, net.n_in))
    if net.loss.name == "cross_entropy":
        Y = gen.integers(net.n_out, size=B)
    else:
        Y = gen.normal(size=(B, net.n_out))
    return X, Y


def _check_against_forward_differences(net, theta, X, Y, rtol=1e-6):
    """Central differences of the forward-only loss (net.evaluate: relaxation +
    readout, no backward pass at all) against the RBP gradient at theta."""
    data = net.prepare(X, Y)
    loss, grad = net.loss_and_grad(theta, X, Y)
    assert loss == pytest.approx(net.evaluate(theta, *data)["loss"], rel=1e-12)
    assert np.all(np.isfinite(grad)) and np.linalg.norm(grad) > 0

    def fun(th):
        if np.array_equal(th, theta):
            return loss, grad
        return net.evaluate(th, *data)["loss"], None

    return rbp.check_grad(fun, theta, rtol=rtol)


# -- 1. every backward method agrees with central differences -----------------------


@pytest.mark.parametrize("method, act, loss, pineda, sizes, B", list(_cases()))
def test_gradient_matches_central_differences(method, act, loss, pineda, sizes, B, rng):
    net = _net(*sizes, act, loss, pineda, backward=method)
    theta = _theta(net, rng)
    X, Y = _data(net, B, rng)
    res = _check_against_forward_differences(net, theta, X, Y)
    assert res.mode == "coordinates"
    assert res.rel_error < 1e-6


@pytest.mark.parametrize("forward", FORWARD_METHODS)
def test_gradient_for_every_forward_method(forward, rng):
    tol = 1e-10 if forward == "ode" else 1e-12  # solve_ivp's rtol floor is 2.2e-14 = tol * 1e-2
    net = _net(1, 3, 2, forward=forward, backward="direct", tol=tol, max_iter=2000)
    theta = _theta(net, rng)
    X, Y = _data(net, 4, rng)
    _check_against_forward_differences(net, theta, X, Y)


# -- 2. backprop through the unrolled relaxation converges to RBP -------------------


@pytest.mark.parametrize("damping", [1.0, 0.5])
@pytest.mark.parametrize("act", ["tanh", "logistic"])
def test_bptt_through_relaxation_converges_to_rbp(act, damping, rng):
    kw = dict(damping=damping)
    ref = _net(3, 6, 2, act, backward="direct", tol=1e-14, max_iter=10000, **kw)
    theta = _theta(ref, rng)
    X, Y = _data(ref, 5, rng)
    # A slow contraction: W = 0.8 Q / Lip(f) (Q orthogonal), small drive, units
    # near their steepest point, so the Jacobian's spectral radius is about 0.8.
    p = ref.params.unravel(theta)
    p["W"][...] = 0.8 / ref.activation.lipschitz * np.linalg.qr(rng.normal(size=(6, 6)))[0]
    p["b"][...] = 0.0 if act == "tanh" else -0.5 * p["W"].sum(axis=0)
    X *= 0.3
    _, g_rbp, info = ref.loss_grad_info(theta, X, Y)
    assert info["forward"].success

    # The rate of the damped iteration: max |1 - tau + tau lambda| over the
    # eigenvalues of the Jacobians W diag(f'(a*)) of all samples.
    a = info["forward"].x @ p["W"] + X @ p["U"] + p["b"]
    fp = ref.activation.df(a, ref.activation.f(a))
    lam = np.linalg.eigvals(p["W"][None] * fp[:, None, :])
    rate = np.abs(1 - damping + damping * lam).max()
    assert 0.7 < rate < 0.95

    Ks = [2, 4, 8, 16, 32, 64, 128, 256]
    errs = []
    for K in Ks:
        net = _net(3, 6, 2, act, backward="bptt", tol=1e-14, max_iter=K, on_failure="ignore", **kw)
        _, g, info_k = net.loss_grad_info(theta, X, Y)
        if K <= 16:  # truncated on purpose: the forward misses tol and says so
            assert not info_k["forward"].success and info_k["n_forward_failed"] == 5
        errs.append(np.linalg.norm(g - g_rbp) / np.linalg.norm(g_rbp))
    errs = np.array(errs)
    floor = 1e-11
    above = errs > floor
    # Monotone decrease as long as the error is above round-off ...
    assert np.all(np.diff(errs)[above[:-1] & above[1:]] < 0), errs
    # ... down to round-off: the unrolled gradient becomes the RBP gradient.
    assert errs[-1] < floor, errs
    assert errs[0] > 1e-1  # two steps are far from it: the check can fail
    # Geometric at the Jacobian's rate: per doubling K -> 2K the error shrinks
    # by about rate**K (measured: within 0.03 of the rate once K >= 16).
    checked = 0
    for i in range(len(Ks) - 1):
        if Ks[i] >= 16 and errs[i + 1] > 1e-9:
            observed = (errs[i + 1] / errs[i]) ** (1.0 / Ks[i])
            assert abs(observed - rate) < 0.05, (Ks[i], observed, rate)
            checked += 1
    assert checked >= 2


def test_bptt_equals_rbp_when_fully_converged(rng):
    """Once every sample has converged, backprop through the iterates (which
    stop with each sample) is the RBP gradient to round-off."""
    kw = dict(tol=1e-14, max_iter=10000)
    a = _net(2, 5, 3, "tanh", "cross_entropy", backward="bptt", **kw)
    b = _net(2, 5, 3, "tanh", "cross_entropy", backward="direct", **kw)
    theta = _theta(a, rng)
    X, Y = _data(a, 9, rng)
    la, ga, ia = a.loss_grad_info(theta, X, Y)
    lb, gb, ib = b.loss_grad_info(theta, X, Y)
    assert la == lb
    np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-14)
    # BPTT's "adjoint iterations" are the stored relaxation steps.
    assert ia["adjoint_iterations"] == ia["forward_iterations_max"]


def test_neumann_rbp_with_k_terms(rng):
    """backward='neumann', backward_tol=0, backward_max_iter=K: the adjoint is the
    K-term series sum_k dL/dx* (D W^T)^k (Liao et al. 2018), reported as a success,
    and its gradient error shrinks as K grows."""
    ref = _net(3, 6, 2, "tanh", backward="direct", tol=1e-14)
    theta = _theta(ref, rng)
    X, Y = _data(ref, 5, rng)
    _, g_ref, info_ref = ref.loss_grad_info(theta, X, Y)
    p = ref.params.unravel(theta)
    x = info_ref["forward"].x
    a = x @ p["W"] + X @ p["U"] + p["b"]
    fp = 1 - np.tanh(a) ** 2
    gx = (((x @ p["V"] + p["c"]) - Y) / len(X)) @ p["V"].T
    errs = []
    for K in (1, 2, 4, 8, 16):
        net = _net(3, 6, 2, "tanh", backward="neumann", tol=1e-14, backward_tol=0.0, backward_max_iter=K)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _, g, info = net.loss_grad_info(theta, X, Y)
        series, term = np.zeros_like(gx), gx.copy()
        for _ in range(K):
            series += term
            term = (term * fp) @ p["W"].T
        np.testing.assert_allclose(info["adjoint"].x, series, rtol=1e-12, atol=1e-15)
        assert info["adjoint"].success and info["n_adjoint_failed"] == 0
        assert info["adjoint_iterations"] == K
        errs.append(np.linalg.norm(g - g_ref) / np.linalg.norm(g_ref))
    assert np.all(np.diff(errs) < 0), errs
    assert errs[-1] < 1e-6


# -- 3. a linear net against its closed form ------------------------------------------


def _linear_closed_form(net, theta, X, T):
    """x* = (XU + b)(I - W)^{-1}, the squared loss and its gradient, by hand."""
    p = net.params.unravel(theta)
    n, B = net.n_units, X.shape[0]
    M = np.linalg.inv(np.eye(n) - p["W"])
    S = X @ p["U"] + p["b"]
    xs = S @ M
    if net.pineda:
        y = xs[:, -net.n_out :]
    else:
        y = xs @ p["V"] + p["c"]
    d = (y - T) / B
    loss = 0.5 * np.sum((y - T) ** 2) / B
    g = {}
    if net.pineda:
        gx = np.zeros_like(xs)
        gx[:, -net.n_out :] = d
    else:
        g["V"], g["c"] = xs.T @ d, d.sum(axis=0)
        gx = d @ p["V"].T
    z = gx @ M.T  # dL/dS, since x* = S M
    g["W"], g["U"], g["b"] = xs.T @ z, X.T @ z, z.sum(axis=0)  # dM = M dW M
    grad = np.zeros_like(theta)
    for k, v in net.params.unravel(grad).items():
        v[...] = g[k]
    return xs, loss, grad


@pytest.mark.parametrize("pineda", [False, True])
@pytest.mark.parametrize("backward", BACKWARD_METHODS)
def test_linear_net_matches_closed_form(backward, pineda, rng):
    net = _net(3, 5, 2, "identity", pineda=pineda, backward=backward)
    theta = _theta(net, rng)
    W = net.params.unravel(theta)["W"]
    assert np.linalg.norm(W, 2) < 1  # so the iteration converges
    X, Y = _data(net, 7, rng)
    xs, loss_cf, grad_cf = _linear_closed_form(net, theta, X, Y)
    fwd = net.relax(theta, X)
    assert fwd.success
    np.testing.assert_allclose(fwd.x, xs, rtol=0, atol=1e-12 * max(1.0, np.abs(xs).max()) / (1 - np.linalg.norm(W, 2)))
    loss, grad = net.loss_and_grad(theta, X, Y)
    assert loss == pytest.approx(loss_cf, rel=1e-11)
    np.testing.assert_allclose(grad, grad_cf, rtol=1e-9, atol=1e-12 * np.abs(grad_cf).max())


def test_linear_closed_form_gradient_is_itself_right(rng):
    """The by-hand gradient above against central differences of the closed form
    (numpy.linalg only), so that oracle does not share a mistake with rbp."""
    net = _net(2, 4, 3, "identity")
    theta = _theta(net, rng)
    X, Y = _data(net, 6, rng)
    _, _, grad_cf = _linear_closed_form(net, theta, X, Y)

    def fun(th):
        return _linear_closed_form(net, th, X, Y)[1], grad_cf

    assert rbp.check_grad(fun, theta, rtol=1e-8).success


# -- 6. dynamics that do not converge: reported, never NaN --------------------------


def _oscillating(backward="gmres", forward="picard", **kw):
    """W = -3 Q (Q random orthogonal): ||W||_2 = 3, the Picard iteration does not settle."""
    net = FixedPointNet(3, 6, 3, loss="cross_entropy", forward=forward, backward=backward, tol=1e-8, max_iter=200, **kw)
    gen = np.random.default_rng(0)
    theta = net.init(gen)
    net.params.unravel(theta)["W"][...] = -3 * np.linalg.qr(gen.normal(size=(6, 6)))[0]
    X, y = gen.normal(size=(7, 3)), gen.integers(3, size=7)
    return net, theta, X, y


@pytest.mark.parametrize("backward", BACKWARD_METHODS)
def test_non_convergent_dynamics_warn_count_and_stay_finite(backward):
    net, theta, X, y = _oscillating(backward)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the model lists its failures; it never warns by itself
        loss, grad, info = net.loss_grad_info(theta, X, y)
    assert not info["forward"].success
    assert info["forward"].status == Status.MAX_ITER
    assert info["n_forward_failed"] > 0
    assert info["n_forward_failed"] == int((~info["forward"].converged).sum())
    assert info["forward_residual_max"] > net.tol
    assert any("did not converge" in m and "max_iter" in m for m in info["failures"])
    assert np.isfinite(loss)
    assert np.all(np.isfinite(grad))
    with pytest.warns(ConvergenceWarning, match="did not converge.*max_iter") as record:
        net.loss_and_grad(theta, X, y)  # the edge a user calls applies on_failure, once
    assert len(record) == 1


def test_too_few_forward_iterations_warn():
    net = _net(2, 4, 2, max_iter=3, tol=1e-12)
    gen = np.random.default_rng(1)
    theta = _theta(net, gen)
    X, Y = _data(net, 5, gen)
    with pytest.warns(ConvergenceWarning) as record:
        loss, grad = net.loss_and_grad(theta, X, Y)
    assert record[0].filename == __file__  # stacklevel points at the user's line
    assert np.all(np.isfinite(grad))


def test_failure_message_never_suggests_an_option_already_in_use():
    gen = np.random.default_rng(1)
    for forward in ("anderson", "picard"):
        net = _net(2, 4, 2, max_iter=3, tol=1e-12, forward=forward)
        theta = _theta(net, gen)
        X, Y = _data(net, 5, gen)
        _, _, info = net.loss_grad_info(theta, X, Y)
        (message,) = info["failures"]
        assert f"forward relaxation ({forward}) did not converge" in message
        assert f"forward='{forward}'" not in message
        assert "max_iter=3" in message and "contraction=0.9" in message
    net = _net(2, 4, 2, max_iter=3, tol=1e-12, forward="anderson", contraction=0.5)
    _, _, info = net.loss_grad_info(_theta(net, gen), X, Y)
    assert "contraction=0.9" not in info["failures"][0] and "smaller contraction" in info["failures"][0]


def test_adjoint_failure_is_reported_too():
    """A converged forward but an adjoint capped at one sweep: the miss is counted and warned."""
    net = _net(2, 6, 2, backward="neumann", backward_max_iter=1)
    gen = np.random.default_rng(2)
    theta = _theta(net, gen)
    X, Y = _data(net, 5, gen)
    _, grad, info = net.loss_grad_info(theta, X, Y)
    assert info["forward"].success and info["n_forward_failed"] == 0
    assert info["n_adjoint_failed"] == 1 and not info["adjoint"].success
    assert np.all(np.isfinite(grad))
    (message,) = info["failures"]
    assert "adjoint solve (neumann) did not converge" in message and "backward_max_iter (now 1)" in message
    assert "backward='neumann'" not in message
    with pytest.warns(ConvergenceWarning, match=r"adjoint solve \(neumann\) did not converge"):
        net.loss_and_grad(theta, X, Y)


def test_on_failure_raise():
    net, theta, X, y = _oscillating(on_failure="raise")
    with pytest.raises(NonConvergenceError, match="did not converge"):
        net.loss_and_grad(theta, X, y)


def test_on_failure_skip_and_ignore():
    for policy in ("skip", "ignore"):
        net, theta, X, y = _oscillating(on_failure=policy)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _, grad, info = net.loss_grad_info(theta, X, y)
        assert info["n_forward_failed"] > 0  # still counted
        assert info.get("skip", False) == (policy == "skip")
        assert np.all(np.isfinite(grad))
    # a direct caller cannot skip an update: "skip" warns there; "ignore" stays quiet
    net, theta, X, y = _oscillating(on_failure="skip")
    with pytest.warns(ConvergenceWarning):
        net.loss_and_grad(theta, X, y)
    net, theta, X, y = _oscillating(on_failure="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.loss_and_grad(theta, X, y)


def test_evaluation_follows_on_failure_and_counts_unconverged_samples():
    """issue 10.5: accuracy from failed relaxations is never reported silently."""
    net, theta, X, y = _oscillating("gmres")
    data = net.prepare(X, y)
    with pytest.warns(ConvergenceWarning, match="evaluation on 7 samples.*unconverged"):
        out = net.evaluate(theta, *data)
    assert out["n_unconverged"] > 0
    with pytest.warns(ConvergenceWarning):
        net.score(theta, X, y)
    with pytest.warns(ConvergenceWarning):
        net.predict(theta, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert net.evaluate(theta, *data, on_failure="ignore")["n_unconverged"] == out["n_unconverged"]
    strict, theta, X, y = _oscillating("gmres", on_failure="raise")
    with pytest.raises(NonConvergenceError):
        strict.score(theta, X, y)


# -- 7. diagnostics -----------------------------------------------------------------


@pytest.mark.parametrize("backward", ["gmres", "neumann", "relax", "bicgstab", "lgmres", "cg-normal", "direct"])
def test_diagnostics_report_iterations_and_residual_histories(backward, rng):
    net = _net(3, 6, 3, "tanh", "cross_entropy", backward=backward, tol=1e-10, backward_tol=1e-10, spectral=True)
    theta = _theta(net, rng)
    X, Y = _data(net, 8, rng)
    _, _, info = net.loss_grad_info(theta, X, Y)
    fwd, adj = info["forward"], info["adjoint"]
    for key in ("forward_iterations", "forward_iterations_max", "n_forward_failed", "forward_residual_max",
                "adjoint_iterations", "adjoint_matvecs", "adjoint_residual", "n_adjoint_failed",
                "spectral_radius", "max_real_eigenvalue"):
        assert key in info, key
    assert fwd.success and adj.success
    assert info["n_forward_failed"] == 0 and info["n_adjoint_failed"] == 0
    assert info["forward_iterations"] == pytest.approx(fwd.nit_per_sample.mean())
    assert 1 <= info["forward_iterations"] <= info["forward_iterations_max"] == fwd.nit
    assert info["adjoint_iterations"] == adj.nit >= 1
    # Forward: a contraction, so the largest residual falls step by step below tol.
    h = np.array(fwd.residuals)
    assert h[-1] <= net.tol < h[0]
    assert np.all(np.diff(h) < 0)
    assert info["forward_residual_max"] <= net.tol
    # Adjoint: the final residual meets backward_tol and the history ends lower than it starts.
    assert info["adjoint_residual"] == adj.residual <= net.backward_tol * (1 + 1e-6)
    assert len(adj.residuals) >= 1
    if backward != "direct":
        assert adj.residuals[-1] < adj.residuals[0]
    if backward in ("gmres", "neumann", "relax"):
        assert np.all(np.diff(adj.residuals) <= 0)
        assert adj.residuals[-1] <= net.backward_tol
    # The adjoint solution solves z (I - D W^T) = dL/dx*, checked here directly.
    p = net.params.unravel(theta)
    x = fwd.x
    a = x @ p["W"] + X @ p["U"] + p["b"]
    fp = 1 - np.tanh(a) ** 2
    z = adj.x
    lhs = z - (z * fp) @ p["W"].T
    T = np.eye(3)[Y]
    P = np.exp(x @ p["V"] + p["c"])
    P /= P.sum(axis=1, keepdims=True)
    rhs = ((P - T) / len(X)) @ p["V"].T
    assert np.linalg.norm(lhs - rhs) <= 1e-9 * np.linalg.norm(rhs)


def test_spectral_radius_of_a_contractive_net(rng):
    net = _net(3, 7, 2, "tanh", spectral=True, tol=1e-12)
    theta = _theta(net, rng)
    X, Y = _data(net, 5, rng)
    _, _, info = net.loss_grad_info(theta, X, Y)
    p = net.params.unravel(theta)
    a = info["forward"].x @ p["W"] + X @ p["U"] + p["b"]
    J = p["W"][None] * (1 - np.tanh(a) ** 2)[:, None, :]  # dx -> dx W D, per sample
    ev = np.linalg.eigvals(J)
    assert info["spectral_radius"] == pytest.approx(np.abs(ev).max(), rel=1e-10)
    assert info["max_real_eigenvalue"] == pytest.approx(ev.real.max(), rel=1e-10)
    assert info["spectral_radius"] < 1
    assert info["spectral_radius"] <= np.linalg.norm(p["W"], 2)  # |f'| <= 1
    # Without spectral=True nothing is computed.
    net.spectral = False
    assert "spectral_radius" not in net.loss_grad_info(theta, X, Y)[2]


def test_spectral_radius_large_net_uses_arpack(rng):
    net = _net(2, 130, 2, "tanh", spectral=True, tol=1e-10, init_scale=0.8)
    theta = _theta(net, rng)
    X, Y = _data(net, 3, rng)
    _, _, info = net.loss_grad_info(theta, X, Y)
    p = net.params.unravel(theta)
    a = info["forward"].x @ p["W"] + X @ p["U"] + p["b"]
    ev = np.linalg.eigvals(p["W"] * (1 - np.tanh(a[0]) ** 2)[None, :])  # first sample, as documented
    assert info["spectral_radius"] == pytest.approx(np.abs(ev).max(), rel=1e-4)
    assert info["spectral_radius"] < 1


# -- 8. the contraction projection ----------------------------------------------------


@pytest.mark.parametrize("act", ["tanh", "logistic", "softplus"])
def test_project_enforces_contraction_and_is_idempotent(act, rng):
    gamma = 0.7
    net = FixedPointNet(3, 8, 2, act, contraction=gamma, init_scale=3.0)
    theta = net.init(rng)
    lip = net.activation.lipschitz
    W = net.params.unravel(theta)["W"]
    assert np.linalg.norm(W, 2) * lip > gamma  # the projection has work to do
    other = theta.copy()
    net.project(theta)
    assert np.linalg.norm(W, 2) * lip == pytest.approx(gamma, rel=1e-12)  # in place, onto the boundary
    once = theta.copy()
    net.project(theta)
    np.testing.assert_array_equal(theta, once)
    # Only W changes, and only by a scalar factor.
    mask = np.zeros_like(theta, dtype=bool)
    net.params.unravel(mask)["W"][...] = True
    np.testing.assert_array_equal(theta[~mask], other[~mask])
    ratio = theta[mask] / other[mask]
    np.testing.assert_allclose(ratio, ratio[0])
    # Inside the ball nothing moves.
    inner = theta.copy()
    net.params.unravel(inner)["W"][...] *= 0.5
    before = inner.copy()
    net.project(inner)
    np.testing.assert_array_equal(inner, before)


def test_project_without_contraction_is_a_no_op(rng):
    net = FixedPointNet(3, 8, 2, init_scale=3.0)
    theta = net.init(rng)
    before = theta.copy()
    net.project(theta)
    np.testing.assert_array_equal(theta, before)


# -- 9. bad input raises ValueError naming the argument --------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"forward": "andersen"}, r"forward.*'andersen'.*did you mean 'anderson'"),
        ({"backward": "gmress"}, r"backward.*'gmress'.*did you mean 'gmres'"),
        ({"activation": "tahn"}, r"activation.*'tahn'.*did you mean 'tanh'"),
        ({"loss": "squard"}, r"loss.*'squard'.*did you mean 'squared'"),
        ({"on_failure": "wran"}, r"on_failure.*'wran'.*did you mean 'warn'"),
        ({"output": "softmx", "loss": "squared"}, r"output.*'softmx'.*did you mean 'softmax'"),
        ({"loss": "cross_entropy", "output": "identity"}, r"output='identity'.*cross_entropy"),
        ({"forward": "anderson", "backward": "bptt"}, r"bptt.*forward='picard'.*'anderson'"),
        ({"pineda": True, "loss": "cross_entropy"}, r"pineda.*loss='squared'"),
        ({"pineda": True, "n_out": 9}, r"pineda.*n_out <= n_units"),
        ({"tol": 0.0}, r"\btol must be"),
        ({"tol": -1e-6}, r"\btol must be"),
        ({"tol": float("nan")}, r"\btol must be"),
        ({"tol": "1e-6"}, r"\btol must be"),
        ({"backward_tol": -1e-6}, r"backward_tol must be"),
        ({"backward_tol": 0.0}, r"backward_tol"),  # 0 would mean "never stop" for gmres
        ({"damping": 0.0}, r"\bdamping must be .*in \(0, 1\]"),
        ({"damping": 1.5}, r"\bdamping must be .*in \(0, 1\]"),
        ({"damping": float("nan")}, r"\bdamping must be"),
        ({"backward_damping": -0.5}, r"backward_damping must be"),
        ({"contraction": 1.0}, r"contraction must be .*in \(0, 1\)"),
        ({"contraction": 0.0}, r"contraction must be .*in \(0, 1\)"),
        ({"contraction": 1.5}, r"contraction must be"),
        ({"max_iter": 0}, r"max_iter must be"),
        ({"max_iter": 2.5}, r"max_iter must be"),
        ({"backward_max_iter": 0}, r"backward_max_iter must be"),
        ({"n_units": 0}, r"n_units must be"),
        ({"n_in": -1}, r"n_in must be"),
    ],
)
def test_bad_configuration_raises_naming_the_argument(kwargs, match):
    args = dict(n_in=3, n_units=5, n_out=2, activation="tanh", loss="squared")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        FixedPointNet(**args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"damping": "0.5"}, r"\bdamping must be"),
        ({"backward_damping": "1"}, r"backward_damping must be"),
        ({"contraction": "0.9"}, r"contraction must be"),
        ({"tol": float("inf")}, r"\btol must be"),
        ({"backward_tol": float("inf")}, r"backward_tol must be"),
        ({"memory": 0}, r"\bmemory must be"),
        ({"memory": 2.5}, r"\bmemory must be"),
    ],
)
def test_bad_configuration_types_raise_value_error(kwargs, match):
    args = dict(n_in=3, n_units=5, n_out=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        FixedPointNet(**args)


@pytest.mark.parametrize(
    "case, match",
    [
        ("X_features", r"\bX must have 3 features"),
        ("X_1d", r"\bX must be a 2-D array"),
        ("X_nan", r"\bX must be finite.*nan"),
        ("X_inf", r"\bX must be finite.*inf"),
        ("labels_high", r"\bY class labels must be in \[0, 2\].*\[3\]"),
        ("labels_negative", r"\bY class labels must be in \[0, 2\].*-1"),
        ("labels_float", r"\bY must hold class indices"),
        ("Y_count", r"\bY must have one target per sample"),
        ("theta_size", r"\btheta must be a 1-D array of"),
        ("theta_nan", r"\btheta must be finite"),
    ],
)
def test_bad_data_raises_naming_the_argument(case, match, rng):
    net = FixedPointNet(3, 5, 3, loss="cross_entropy")
    theta = net.init(rng)
    X, y = rng.normal(size=(6, 3)), rng.integers(3, size=6)
    if case == "X_features":
        X = X[:, :2]
    elif case == "X_1d":
        X = X[:, 0]
    elif case == "X_nan":
        X[2, 1] = np.nan
    elif case == "X_inf":
        X[0, 0] = np.inf
    elif case == "labels_high":
        y[3] = 3
    elif case == "labels_negative":
        y[1] = -1
    elif case == "labels_float":
        y = y + 0.5
    elif case == "Y_count":
        y = y[:5]
    elif case == "theta_size":
        theta = theta[:-1]
    elif case == "theta_nan":
        theta = theta.copy()
        theta[0] = np.nan
    with pytest.raises(ValueError, match=match):
        net.loss_and_grad(theta, X, y)


def test_predict_validates_and_reads_out_at_the_fixed_point(rng):
    net = _net(3, 5, 3, "tanh", "cross_entropy", tol=1e-12)
    theta = _theta(net, rng)
    X = rng.normal(size=(4, 3))
    P = net.predict(theta, X)
    p = net.params.unravel(theta)
    x = net.relax(theta, X).x
    np.testing.assert_allclose(x, np.tanh(x @ p["W"] + X @ p["U"] + p["b"]), atol=1e-11)
    S = np.exp(x @ p["V"] + p["c"])
    np.testing.assert_allclose(P, S / S.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(net.predict_classes(theta, X), P.argmax(axis=1))
    with pytest.raises(ValueError, match=r"\bX must have 3 features"):
        net.predict(theta, X[:, :1])


def test_params_layout_is_documented(rng):
    net = FixedPointNet(3, 5, 2)
    assert {k: v.shape for k, v in net.params.unravel(net.init(rng)).items()} == {
        "W": (5, 5), "U": (3, 5), "b": (5,), "V": (5, 2), "c": (2,)
    }
    pin = FixedPointNet(3, 5, 2, pineda=True)
    assert set(pin.params.unravel(pin.init(rng))) == {"W", "U", "b"}
    # init: ||W||_2 * Lip(f) about init_scale (Gaussian matrix estimate), a contraction by default
    for act in ("tanh", "logistic"):
        n = FixedPointNet(3, 40, 2, act, init_scale=0.5)
        W = n.params.unravel(n.init(rng))["W"]
        assert 0.3 < np.linalg.norm(W, 2) * n.activation.lipschitz < 0.7
