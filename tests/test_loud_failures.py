"""Regression tests for the numerical findings of the robustness review: no number from a
failed relaxation, no NaN from a direct call, no hang, and messages that say the right thing."""

import time
import warnings

import numpy as np
import pytest

import rbp
from rbp.core import optimizers as O
from rbp.core.linsolve import BatchedOperator, solve


def test_score_on_unconverged_relaxations_warns_and_counts():
    """Found: with the relaxation failing on most samples, score returned 0.088 silently."""
    gen = np.random.default_rng(0)
    net = rbp.FixedPointNet(4, 8, 3, loss="cross_entropy", forward="picard", max_iter=5, tol=1e-10)
    theta = net.init(gen)
    net.params.unravel(theta)["W"][...] = 3 * np.linalg.qr(gen.normal(size=(8, 8)))[0]
    X, y = gen.normal(size=(30, 4)), gen.integers(3, size=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(rbp.ConvergenceWarning, match="unconverged states"):
            net.score(theta, X, y)
    assert net.evaluate(theta, *net.prepare(X, y), on_failure="ignore")["n_unconverged"] > 0


def test_validation_curve_counts_unconverged_samples():
    gen = np.random.default_rng(1)
    X, y = gen.normal(size=(40, 3)), gen.integers(2, size=40)
    net = rbp.FixedPointNet(3, 6, 2, loss="cross_entropy", forward="picard", max_iter=2, tol=1e-12,
                            on_failure="ignore")
    res = rbp.RecurrentTrainer(net, epochs=2, validation_fraction=0.25).fit(X, y, rng=0)
    assert all(v > 0 for v in res.history["val_n_unconverged"])


def test_mlp_overflow_from_a_direct_call_raises_instead_of_returning_nan():
    net = rbp.MLP([2, 3, 2], hidden="relu", loss="squared")
    theta = net.init(0)
    X, Y = np.full((2, 2), 1e300), np.zeros((2, 2))
    with np.errstate(all="ignore"):  # numpy's default is to warn and go on: rbp must not
        with pytest.raises(rbp.DivergenceError, match="not finite"):
            net.loss_and_grad(theta, X, Y)


def test_elman_relu_explosion_from_a_direct_call_raises_instead_of_returning_nan():
    net = rbp.ElmanRNN(1, 4, 1, activation="relu")
    theta = net.init(0)
    net.params.unravel(theta)["W_hh"][...] = 50 * np.eye(4)
    X = np.ones((2, 200, 1))
    with np.errstate(all="ignore"):
        with pytest.raises(rbp.DivergenceError):
            net.loss_and_grad(theta, X, np.zeros((2, 200)))


def test_ode_relaxation_with_an_impossible_tolerance_is_bounded_by_max_iter():
    """Found: FixedPointNet(3, 6, 2, forward="ode", tol=1e-200, max_iter=2).predict ran for minutes."""
    net = rbp.FixedPointNet(3, 6, 2, forward="ode", tol=1e-200, max_iter=2)
    t0 = time.perf_counter()
    with pytest.warns(rbp.ConvergenceWarning, match="did not converge"):
        net.predict(net.init(0), np.ones((4, 3)))
    assert time.perf_counter() - t0 < 5.0


@pytest.mark.parametrize("backward", ["gmres", "neumann", "relax", "lgmres", "bicgstab", "cg-normal"])
def test_every_backward_method_is_bounded(backward):
    net = rbp.FixedPointNet(3, 6, 2, backward=backward, backward_tol=1e-300, backward_max_iter=3, tol=1e-10)
    theta = net.init(0)
    _, grad, info = net.loss_grad_info(theta, np.ones((4, 3)), np.zeros((4, 2)))
    assert info["adjoint"].nit <= 3 * 30 and np.all(np.isfinite(grad))


def test_cross_entropy_refuses_soft_targets_outside_zero_one():
    net = rbp.MLP([2, 3, 2], loss="cross_entropy")
    with pytest.raises(ValueError, match=r"Y for cross_entropy must be in \[0, 1\].*\[-0\.5, 1\.5\]"):
        net.loss_and_grad(net.init(0), np.ones((1, 2)), np.array([[-0.5, 1.5]]))


@pytest.mark.parametrize("value", [-0.1, float("nan"), "fast", None])
def test_a_schedule_returning_a_bad_learning_rate_is_named(value):
    opt = O.sgd(lambda count: value)
    with pytest.raises(ValueError, match="learning_rate schedule must return a finite number >= 0"):
        opt.update(np.ones(2), opt.init(np.zeros(2)), np.zeros(2))


def test_early_stopping_true_is_not_a_patience():
    with pytest.raises(ValueError, match="early_stopping must be a positive integer"):
        rbp.Trainer(rbp.MLP([2, 3, 2]), early_stopping=True)


def test_a_failed_direct_solve_does_not_advise_direct():
    A = np.zeros((1, 3, 3))
    op = BatchedOperator(lambda V: np.einsum("bij,bj->bi", A, V), (1, 3), dense=lambda: A)
    res = solve(op, np.ones((1, 3)), method="direct")
    assert not res.success and "did not converge" in res.message and "method='direct'" not in res.message
    gen = np.random.default_rng(2)
    net = rbp.FixedPointNet(3, 4, 2, activation="identity", backward="direct", forward="picard", tol=1e-3,
                            max_iter=2, on_failure="ignore")
    theta = net.init(gen)
    net.params.unravel(theta)["W"][...] = np.eye(4)  # I - J singular: the adjoint system has no solution
    _, _, info = net.loss_grad_info(theta, gen.normal(size=(3, 3)), gen.normal(size=(3, 2)))
    adjoint = [m for m in info["failures"] if m.startswith("adjoint")]
    assert adjoint and "backward='direct'" not in adjoint[0] and "did not converge" in adjoint[0]
