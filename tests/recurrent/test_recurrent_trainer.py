"""RecurrentTrainer driving FixedPointNet: per-epoch solver diagnostics, the
failure policies, the contraction constraint, and recurrent OCR on digits."""

import warnings

import numpy as np
import pytest

import rbp
from rbp import ConvergenceWarning, FixedPointNet, NonConvergenceError, RecurrentTrainer


class RecordingNet(FixedPointNet):
    """A FixedPointNet that keeps every info dict the training loop receives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.infos = []

    def loss_grad_info(self, theta, X, Y, check=True):
        loss, grad, info = super().loss_grad_info(theta, X, Y, check=check)
        self.infos.append(info)
        return loss, grad, info


def _blobs(gen, n=60, n_in=3, n_classes=3):
    centres = 2.0 * gen.normal(size=(n_classes, n_in))
    y = np.arange(n) % n_classes
    return centres[y] + 0.5 * gen.normal(size=(n, n_in)), y


def _oscillating_theta(net, gen):
    """W = -3 Q with Q orthogonal: the Picard iteration does not settle."""
    theta = net.init(gen)
    net.params.unravel(theta)["W"][...] = -3 * np.linalg.qr(gen.normal(size=(net.n_units,) * 2))[0]
    return theta


# -- 7. diagnostics per epoch --------------------------------------------------------


def test_history_aggregates_solver_diagnostics_per_epoch(rng):
    X, y = _blobs(rng)
    net = RecordingNet(3, 6, 3, loss="cross_entropy", spectral=True, tol=1e-8, backward_tol=1e-8)
    epochs, bs = 3, 16
    result = RecurrentTrainer(net, epochs=epochs, batch_size=bs, learning_rate=0.02).fit(X, y, rng=1)
    h = result.history
    n_batches = -(-len(X) // bs)
    assert len(net.infos) == epochs * n_batches
    for key in ("forward_iterations", "forward_iterations_max", "n_forward_failed", "adjoint_iterations",
                "adjoint_matvecs", "n_adjoint_failed", "n_skipped", "spectral_radius", "loss", "accuracy"):
        assert key in h and len(h[key]) == epochs, key
    for e in range(epochs):
        infos = net.infos[e * n_batches : (e + 1) * n_batches]
        # n_* summed, *_max maximal, the rest averaged over the epoch's batches.
        assert h["n_forward_failed"][e] == sum(i["n_forward_failed"] for i in infos) == 0
        assert h["n_adjoint_failed"][e] == 0
        assert h["n_skipped"][e] == 0
        assert h["forward_iterations"][e] == pytest.approx(np.mean([i["forward_iterations"] for i in infos]))
        assert h["forward_iterations_max"][e] == max(i["forward_iterations_max"] for i in infos)
        assert h["adjoint_iterations"][e] == pytest.approx(np.mean([i["adjoint_iterations"] for i in infos]))
        assert h["spectral_radius"][e] == pytest.approx(np.mean([i["spectral_radius"] for i in infos]))
        assert h["forward_iterations"][e] >= 1 and h["adjoint_iterations"][e] >= 1
        assert 0 < h["spectral_radius"][e] < 1
    assert result.success
    assert h["loss"][-1] < h["loss"][0]


# -- 6. failure policies under the trainer ----------------------------------------------


def test_skip_policy_skips_every_failing_update_and_counts_it(rng):
    X, y = _blobs(rng, n=40)
    net = FixedPointNet(3, 6, 3, loss="cross_entropy", forward="picard", tol=1e-8, max_iter=100, on_failure="skip")
    theta0 = _oscillating_theta(net, np.random.default_rng(5))
    epochs, bs = 2, 16
    with pytest.warns(ConvergenceWarning, match=r"updates skipped") as record:  # one report for the run
        result = RecurrentTrainer(net, epochs=epochs, batch_size=bs).fit(X, y, theta=theta0.copy(), rng=0)
    assert len(record) == 1 and record[0].filename == __file__
    h = result.history
    n_batches = -(-len(X) // bs)
    assert h["n_skipped"] == [n_batches] * epochs
    # Counted: every batch had a miss; theta never moved, so the same samples miss every epoch.
    assert 0 < h["n_forward_failed"][0] <= len(X)
    assert h["n_forward_failed"] == [h["n_forward_failed"][0]] * epochs
    # No update was applied.
    np.testing.assert_array_equal(result.x, theta0)


def test_skip_policy_leaves_converging_batches_alone(rng):
    X, y = _blobs(rng, n=40)
    net = FixedPointNet(3, 6, 3, loss="cross_entropy", on_failure="skip")
    result = RecurrentTrainer(net, epochs=2, batch_size=16, learning_rate=0.02).fit(X, y, rng=0)
    assert result.history["n_skipped"] == [0, 0]
    assert not np.array_equal(result.x, net.init(np.random.default_rng(0)))


def test_warn_policy_under_trainer_warns_counts_and_stays_finite(rng):
    X, y = _blobs(rng, n=32)
    net = FixedPointNet(3, 6, 3, loss="cross_entropy", forward="picard", tol=1e-8, max_iter=100)
    theta0 = _oscillating_theta(net, np.random.default_rng(5))
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        result = RecurrentTrainer(net, epochs=1, batch_size=16, learning_rate=1e-3).fit(X, y, theta=theta0, rng=0)
    h = result.history
    assert h["n_forward_failed"][0] > 0
    assert h["n_skipped"] == [0]
    assert np.all(np.isfinite(result.x))
    assert not np.array_equal(result.x, theta0)  # updates were applied (the policy is warn, not skip)


def test_raise_policy_under_trainer(rng):
    X, y = _blobs(rng, n=32)
    net = FixedPointNet(3, 6, 3, loss="cross_entropy", forward="picard", tol=1e-8, max_iter=100, on_failure="raise")
    theta0 = _oscillating_theta(net, np.random.default_rng(5))
    with pytest.raises(NonConvergenceError, match="did not converge"):
        RecurrentTrainer(net, epochs=1, batch_size=16).fit(X, y, theta=theta0, rng=0)


# -- 8. the contraction constraint during training ----------------------------------------


@pytest.mark.parametrize("act", ["tanh", "logistic"])
def test_contraction_holds_after_every_epoch(act, rng):
    X, y = _blobs(rng)
    gamma = 0.5

    def w_norm(net, theta):
        return np.linalg.norm(net.params.unravel(theta)["W"], 2) * net.activation.lipschitz

    def run(contraction):
        # Unconstrained, the dynamics may stop converging: that run only shows ||W|| growing.
        policy = "warn" if contraction else "ignore"
        net = FixedPointNet(3, 6, 3, act, loss="cross_entropy", contraction=contraction, init_scale=0.45,
                            on_failure=policy)
        norms = []
        cb = lambda res: norms.append(w_norm(net, res.x))  # noqa: E731
        res = RecurrentTrainer(net, epochs=6, batch_size=8, learning_rate=0.1, callback=cb).fit(X, y, rng=3)
        return net, res, norms

    free_net, free, free_norms = run(None)
    # Unconstrained, this learning rate pushes W past gamma: the constraint has work to do.
    assert max(free_norms) > gamma
    net, res, norms = run(gamma)
    assert len(norms) == 6
    assert all(v <= gamma + 1e-9 for v in norms), norms
    assert max(norms) == pytest.approx(gamma, rel=1e-9)  # it was active, pinned to the boundary
    assert w_norm(net, res.x) <= gamma + 1e-9
    # Projection is idempotent on the trained parameters.
    once = res.x.copy()
    net.project(once)
    np.testing.assert_array_equal(once, res.x)
    assert res.history["n_forward_failed"] == [0] * 6


# -- validation through the trainer ----------------------------------------------------------


@pytest.mark.parametrize(
    "case, match",
    [
        ("X_nan", r"\bX must be finite"),
        ("X_shape", r"\bX must have 3 features"),
        ("labels", r"\bY class labels must be in \[0, 2\]"),
    ],
)
def test_fit_validates_before_training(case, match, rng):
    X, y = _blobs(rng, n=12)
    if case == "X_nan":
        X[4, 0] = np.nan
    elif case == "X_shape":
        X = X[:, :2]
    else:
        y[0] = 7
    net = RecordingNet(3, 4, 3, loss="cross_entropy")
    with pytest.raises(ValueError, match=match):
        RecurrentTrainer(net, epochs=1).fit(X, y)
    assert net.infos == []  # no work started


def test_default_learning_rate_is_adam_5e_3(rng):
    net = FixedPointNet(3, 4, 3, loss="cross_entropy")
    X, y = _blobs(rng, n=8)
    a = RecurrentTrainer(net, epochs=1, batch_size=None).fit(X, y, rng=0)
    b = RecurrentTrainer(net, "adam", learning_rate=5e-3, epochs=1, batch_size=None).fit(X, y, rng=0)
    c = RecurrentTrainer(net, "adam", learning_rate=5e-2, epochs=1, batch_size=None).fit(X, y, rng=0)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)


# -- 10. recurrent OCR on the UCI digits ----------------------------------------------------


@pytest.mark.slow
def test_recurrent_backprop_learns_digits():
    ds = rbp.data.digits(rng=0)
    assert ds.X_train.shape == (898, 64) and ds.X_test.shape == (899, 64)
    net = FixedPointNet(64, 100, 10, loss="cross_entropy")
    result = RecurrentTrainer(net).fit(ds.X_train, ds.y_train, rng=0)
    h = result.history
    assert result.success and result.nit == 30
    assert sum(h["n_forward_failed"]) == 0
    assert sum(h["n_adjoint_failed"]) == 0
    assert sum(h["n_skipped"]) == 0
    accuracy = net.score(result.x, ds.X_test, ds.y_test)
    assert accuracy >= 0.96, accuracy
