"""The core training loop (rbp.core.loop.fit and Trainer): update counts per
mode, shuffling, validation, early stopping, callbacks, history, divergence,
progress output."""

import math
import warnings

import numpy as np
import pytest

import rbp
from rbp.core import optimizers as O
from rbp.core.loop import Trainer, fit
from rbp.core.optimizers import Optimizer
from rbp.core.results import ConvergenceWarning, Status

N = 13  # not a multiple of any batch size used below


class Spy:
    """Wraps a model; records (theta, batch) at every loss_grad_info call and
    optionally rewrites its output with ``hook(call_number, loss, grad, info, batch)``."""

    def __init__(self, model, hook=None):
        self._model = model
        self._hook = hook
        self.calls = []

    def __getattr__(self, name):
        return getattr(self._model, name)

    def loss_grad_info(self, theta, *batch, check=False):
        self.calls.append((theta.copy(), [b.copy() for b in batch]))
        out = self._model.loss_grad_info(theta, *batch, check=check)
        return self._hook(len(self.calls), *out, batch) if self._hook else out


def counting(opt):
    counter = {"updates": 0}

    def update(grad, state, theta):
        counter["updates"] += 1
        return opt.update(grad, state, theta)

    return Optimizer(opt.init, update, opt.name), counter


@pytest.fixture
def problem():
    gen = np.random.default_rng(42)
    X = gen.normal(size=(N, 3))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    net = rbp.MLP([3, 4, 2], hidden="tanh", loss="cross_entropy")
    return net, X, y, net.init(gen)


def _rows_to_ids(X, batch_X):
    """Which sample of X each row of batch_X is (rows of X are distinct)."""
    return [int(np.flatnonzero((X == row).all(axis=1))[0]) for row in batch_X]


# -- update counts per mode ------------------------------------------------------------


def test_online_mode_updates_after_every_tuple(problem):
    net, X, y, theta0 = problem
    spy = Spy(net)
    opt, counter = counting(O.sgd(0.1))
    data = net.prepare(X, y)
    fit(spy, theta0, data, optimizer=opt, epochs=2, batch_size=1, rng=0)
    assert counter["updates"] == 2 * N
    assert len(spy.calls) == 2 * N
    assert all(len(batch[0]) == 1 for _, batch in spy.calls)
    # the weights seen by tuple k+1 are those of tuple k moved by tuple k's own gradient
    for (theta_k, (x_k, t_k)), (theta_next, _) in zip(spy.calls, spy.calls[1:]):
        assert not np.array_equal(theta_k, theta_next)
        _, g = net.loss_and_grad(theta_k, x_k, t_k, check=False)
        np.testing.assert_allclose(theta_next, theta_k - 0.1 * g, rtol=0, atol=1e-15)


@pytest.mark.parametrize("batch_size", [1, 4, 5, N, 20, None])
def test_updates_per_epoch_and_batch_sizes(problem, batch_size):
    net, X, y, theta0 = problem
    spy = Spy(net)
    opt, counter = counting(O.adam(0.01))
    epochs = 3
    fit(spy, theta0, net.prepare(X, y), optimizer=opt, epochs=epochs, batch_size=batch_size, rng=1)
    per_epoch = 1 if batch_size is None else math.ceil(N / batch_size)
    assert counter["updates"] == epochs * per_epoch
    sizes = [len(batch[0]) for _, batch in spy.calls]
    bs = N if batch_size is None else min(batch_size, N)
    expected = ([bs] * (N // bs) + ([N % bs] if N % bs else [])) * epochs
    assert sizes == expected
    # every sample exactly once per epoch
    for e in range(epochs):
        rows = np.concatenate([b[0] for _, b in spy.calls[e * per_epoch : (e + 1) * per_epoch]])
        assert sorted(_rows_to_ids(X, rows)) == list(range(N))


def test_trainer_full_batch_is_one_update_per_epoch(problem):
    net, X, y, theta0 = problem
    opt, counter = counting(O.sgd(0.05))
    res = Trainer(net, opt, epochs=4, batch_size=None).fit(X, y, rng=0, theta=theta0)
    assert counter["updates"] == 4 and res.nit == 4


# -- shuffling ----------------------------------------------------------------------------


def _epoch_orders(spy, X, epochs):
    ids = [i for _, batch in spy.calls for i in _rows_to_ids(X, batch[0])]
    return [ids[e * N : (e + 1) * N] for e in range(epochs)]


def test_shuffling_uses_the_given_rng(problem):
    net, X, y, theta0 = problem
    spy = Spy(net)
    fit(spy, theta0, net.prepare(X, y), optimizer=O.sgd(0.1), epochs=3, batch_size=4, rng=np.random.default_rng(5))
    ref = np.random.default_rng(5)
    assert _epoch_orders(spy, X, 3) == [ref.permutation(N).tolist() for _ in range(3)]


def test_trainer_draws_init_then_shuffles_from_one_rng(problem):
    net, X, y, _ = problem
    spy = Spy(net)
    res = Trainer(spy, "sgd", learning_rate=0.1, epochs=2, batch_size=5).fit(X, y, rng=np.random.default_rng(9))
    ref = np.random.default_rng(9)
    theta_init = net.init(ref)
    np.testing.assert_array_equal(spy.calls[0][0], theta_init)
    assert _epoch_orders(spy, X, 2) == [ref.permutation(N).tolist() for _ in range(2)]
    assert res.nit == 2


def test_no_shuffle_keeps_order(problem):
    net, X, y, theta0 = problem
    spy = Spy(net)
    fit(spy, theta0, net.prepare(X, y), optimizer=O.sgd(0.1), epochs=2, batch_size=3, shuffle=False, rng=123)
    assert _epoch_orders(spy, X, 2) == [list(range(N))] * 2


# -- validation ---------------------------------------------------------------------------


def test_validation_fraction_adds_val_metrics(problem):
    net, X, y, _ = problem
    spy = Spy(net)
    res = Trainer(spy, "adam", learning_rate=0.01, epochs=3, batch_size=4, validation_fraction=0.25).fit(X, y, rng=0)
    h = res.history
    for key in ("val_loss", "val_accuracy"):
        assert len(h[key]) == 3 and all(np.isfinite(h[key]))
    assert all(0.0 <= a <= 1.0 for a in h["val_accuracy"])
    n_val = round(0.25 * N)
    seen = {i for _, batch in spy.calls for i in _rows_to_ids(X, batch[0])}
    assert len(seen) == N - n_val  # the held-out rows never reach the gradient


def test_validation_data_metrics_are_those_of_the_final_weights(problem):
    net, X, y, theta0 = problem
    gen = np.random.default_rng(8)
    Xv = gen.normal(size=(7, 3))
    yv = (Xv[:, 0] > 0).astype(int)
    res = Trainer(net, "adam", learning_rate=0.05, epochs=3, batch_size=4).fit(
        X, y, rng=0, theta=theta0, validation_data=(Xv, yv)
    )
    h = res.history
    assert h["val_loss"][-1] == pytest.approx(net.loss_and_grad(res.x, Xv, yv)[0], rel=1e-12)
    assert h["val_accuracy"][-1] == net.score(res.x, Xv, yv)
    assert h["accuracy"][-1] == net.score(res.x, X, y)


# -- early stopping -------------------------------------------------------------------------


def test_early_stopping_restores_best_weights():
    # A tiny noisy regression set and a 1-32-32-1 net: the training loss keeps
    # falling while the validation loss turns up (overfitting).
    gen = np.random.default_rng(0)
    Xt = gen.uniform(-1, 1, (12, 1))
    yt = np.sin(3 * Xt[:, 0]) + 0.3 * gen.normal(size=12)
    Xv = gen.uniform(-1, 1, (40, 1))
    yv = np.sin(3 * Xv[:, 0]) + 0.3 * gen.normal(size=40)
    net = rbp.MLP([1, 32, 32, 1], hidden="tanh", loss="squared")
    snapshots = {}

    def snapshot(r):
        snapshots[r.nit] = r.x.copy()

    patience, epochs = 50, 2000
    res = Trainer(
        net, "adam", learning_rate=0.02, epochs=epochs, batch_size=None, early_stopping=patience, callback=snapshot
    ).fit(Xt, yt, rng=0, validation_data=(Xv, yv))
    h = res.history
    best = res.best_epoch
    assert res.status == Status.SUCCESS and res.success
    assert "early stopping" in res.message
    assert res.nit < epochs and res.nit - best == patience
    val = np.array(h["val_loss"])
    assert val[best - 1] == val.min()
    assert val[-1] > val.min()  # validation loss rose ...
    assert h["loss"][-1] < h["loss"][best - 1]  # ... while the training loss kept falling
    np.testing.assert_array_equal(res.x, snapshots[best])
    assert not np.array_equal(res.x, snapshots[res.nit])
    assert net.loss_and_grad(res.x, Xv, yv)[0] == pytest.approx(val.min(), rel=1e-12)


# -- callback -------------------------------------------------------------------------------


def test_callback_stop_iteration_ends_run(problem):
    net, X, y, theta0 = problem
    opt, counter = counting(O.adam(0.01))
    seen = []

    def stop_after_three(r):
        seen.append((r.nit, r.fun, len(r.history["epoch"])))
        if r.nit == 3:
            raise StopIteration

    res = Trainer(net, opt, epochs=10, batch_size=4, callback=stop_after_three).fit(X, y, rng=0, theta=theta0)
    assert res.status == Status.CALLBACK and res.success
    assert res.nit == 3 and len(res.history["epoch"]) == 3
    assert counter["updates"] == 3 * math.ceil(N / 4)
    assert [s[0] for s in seen] == [1, 2, 3] and [s[2] for s in seen] == [1, 2, 3]
    assert [s[1] for s in seen] == res.history["loss"]
    assert "callback" in res.message


def test_callback_x_is_a_snapshot_not_the_live_array(problem):
    net, X, y, theta0 = problem
    xs = []
    res = fit(net, theta0, net.prepare(X, y), optimizer=O.adam(0.05), epochs=3, callback=lambda r: xs.append(r.x))
    assert not np.array_equal(xs[0], res.x)


# -- history ----------------------------------------------------------------------------------


def test_history_columns(problem):
    net, X, y, theta0 = problem
    epochs = 5
    res = Trainer(net, "sgd", learning_rate=0.1, epochs=epochs, batch_size=None, shuffle=False).fit(
        X, y, rng=0, theta=theta0
    )
    h = res.history
    for key in ("epoch", "loss", "accuracy", "grad_norm", "seconds", "time"):
        assert len(h[key]) == epochs, key
        assert all(np.isfinite(h[key])), key
    assert h["epoch"] == list(range(1, epochs + 1))
    assert all(s > 0 for s in h["seconds"])
    np.testing.assert_allclose(h["time"], np.cumsum(h["seconds"]), rtol=1e-12)
    # full batch: epoch 1's loss and gradient norm are those at the initial weights
    loss0, grad0 = net.loss_and_grad(theta0, X, y)
    assert h["loss"][0] == pytest.approx(loss0, rel=1e-14)
    assert h["grad_norm"][0] == pytest.approx(np.linalg.norm(grad0), rel=1e-14)
    assert h["loss"][-1] < h["loss"][0]
    assert res.nit == epochs and res.status == Status.SUCCESS and res.success


def test_minibatch_epoch_loss_is_the_sample_weighted_mean_of_batch_losses(problem):
    net, X, y, theta0 = problem
    spy = Spy(net)
    res = fit(spy, theta0, net.prepare(X, y), optimizer=O.adam(0.05), epochs=2, batch_size=5, rng=0)
    per_epoch = math.ceil(N / 5)
    for e in range(2):
        calls = spy.calls[e * per_epoch : (e + 1) * per_epoch]
        total = sum(net.loss_and_grad(t, *b, check=False)[0] * len(b[0]) for t, b in calls)
        assert res.history["loss"][e] == pytest.approx(total / N, rel=1e-12)


def test_info_is_aggregated_and_skip_is_honoured(problem):
    net, X, y, theta0 = problem

    def hook(k, loss, grad, info, batch):
        return loss, grad, {"n_iter": 2, "res_max": float(k), "mean_res": float(k), "skip": k % 3 == 0}

    spy = Spy(net, hook)
    opt, counter = counting(O.sgd(0.1))
    res = fit(spy, theta0, net.prepare(X, y), optimizer=opt, epochs=1, batch_size=1, shuffle=False)
    h = res.history
    assert h["n_iter"] == [2.0 * N]
    assert h["res_max"] == [float(N)]
    assert h["mean_res"] == [pytest.approx(np.mean(np.arange(1, N + 1)))]
    assert h["n_skipped"] == [N // 3]
    assert counter["updates"] == N - N // 3


def test_epoch_loss_with_skipped_short_last_batch(problem):
    net, X, y, theta0 = problem

    def hook(k, loss, grad, info, batch):
        # every batch has mean loss exactly 1; the short last one (N % 4 == 1 row) is skipped
        return 1.0, grad, {"skip": len(batch[0]) < 4}

    res = fit(Spy(net, hook), theta0, net.prepare(X, y), optimizer=O.sgd(0.1), epochs=1, batch_size=4)
    assert res.history["n_skipped"] == [1]
    assert res.history["loss"] == [pytest.approx(1.0)]


# -- resuming, purity ----------------------------------------------------------------------------


def test_resume_from_optimizer_state_is_bit_identical(problem):
    net, X, y, theta0 = problem
    data = net.prepare(X, y)
    opt = O.adam(0.05)
    whole = fit(net, theta0, data, optimizer=opt, epochs=4, batch_size=4, rng=np.random.default_rng(3))
    gen = np.random.default_rng(3)
    first = fit(net, theta0, data, optimizer=opt, epochs=2, batch_size=4, rng=gen)
    second = fit(
        net, first.x, data, optimizer=opt, epochs=2, batch_size=4, rng=gen,
        optimizer_state=first.optimizer_state, start_epoch=2,
    )
    np.testing.assert_array_equal(second.x, whole.x)
    assert second.history["epoch"] == [3, 4]
    assert second.history["loss"] == whole.history["loss"][2:]


def test_fit_does_not_modify_inputs(problem):
    net, X, y, theta0 = problem
    data = net.prepare(X, y)
    copies = theta0.copy(), [d.copy() for d in data]
    res = fit(net, theta0, data, optimizer=O.adam(0.05), epochs=2, batch_size=4)
    np.testing.assert_array_equal(theta0, copies[0])
    for d, c in zip(data, copies[1]):
        np.testing.assert_array_equal(d, c)
    assert not np.shares_memory(res.x, theta0)


def test_fit_rejects_empty_data(problem):
    net, *_ = problem
    with pytest.raises(ValueError, match=r"data must contain at least one sample, got 0"):
        fit(net, net.init(0), (np.empty((0, 3)), np.empty((0, 2))), optimizer=O.sgd())


# -- divergence ------------------------------------------------------------------------------------


def test_nan_loss_gives_diverged_and_warning_with_last_finite_weights(problem):
    net, X, y, theta0 = problem

    def nan_at_fifth(k, loss, grad, info, batch):
        return (float("nan"), grad, info) if k == 5 else (loss, grad, info)

    spy = Spy(net, nan_at_fifth)
    with pytest.warns(ConvergenceWarning, match=r"non-finite.*Lower the learning rate") as record:
        res = Trainer(spy, "adam", learning_rate=0.01, epochs=10, batch_size=4).fit(X, y, rng=0, theta=theta0)
    assert record[0].filename == __file__  # points at the user's line
    assert res.status == Status.DIVERGED and not res.success
    assert res.nit == 2  # batches 1-4 are epoch 1, batch 5 opens epoch 2
    assert len(res.history["epoch"]) == 1
    assert np.all(np.isfinite(res.x))
    np.testing.assert_array_equal(res.x, spy.calls[4][0])  # the weights before the bad batch


def test_nan_gradient_gives_diverged(problem):
    net, X, y, theta0 = problem

    def nan_grad(k, loss, grad, info, batch):
        return loss, (grad * np.nan if k == 2 else grad), info

    with pytest.warns(ConvergenceWarning):
        res = Trainer(Spy(net, nan_grad), "sgd", epochs=3, batch_size=None).fit(X, y, rng=0, theta=theta0)
    assert res.status == Status.DIVERGED and np.all(np.isfinite(res.x))


def test_real_divergence_from_a_huge_learning_rate():
    gen = np.random.default_rng(1)
    X = gen.normal(size=(20, 2)) * 10
    y = X.sum(axis=1)
    net = rbp.MLP([2, 8, 1], hidden="identity", loss="squared")
    with np.errstate(all="ignore"), pytest.warns(ConvergenceWarning, match="non-finite"):
        res = Trainer(net, "sgd", learning_rate=10.0, epochs=50, batch_size=None).fit(X, y, rng=0)
    assert res.status == Status.DIVERGED and res.nit < 50
    assert np.all(np.isfinite(res.x))


@pytest.mark.parametrize("dtype,lr", [(np.float64, 1e308), (np.float32, 3e38)])
def test_overflowing_step_never_returns_non_finite_theta(dtype, lr):
    # a finite gradient times a huge rate: the step itself overflows
    gen = np.random.default_rng(1)
    X = gen.normal(size=(20, 2))
    y = 5 * X.sum(axis=1)
    net = rbp.MLP([2, 3, 1], hidden="tanh", loss="squared", dtype=dtype)
    theta0 = net.init(gen)
    _, grad0 = net.loss_and_grad(theta0, X, y)
    assert np.all(np.isfinite(grad0)) and np.abs(grad0).max() > 2  # lr * 2 overflows
    with np.errstate(all="ignore"):
        res = fit(net, theta0, net.prepare(X, y), optimizer=O.sgd(lr), epochs=5, batch_size=None)
    assert res.status == Status.DIVERGED
    assert np.all(np.isfinite(res.x))


# -- progress output --------------------------------------------------------------------------------


def test_progress_bar_is_quiet_without_a_terminal(problem, capsys):
    net, X, y, theta0 = problem
    Trainer(net, "adam", epochs=3).fit(X, y, rng=0, theta=theta0)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_bar_shows_when_asked(problem, capsys):
    # proves the capture above would have seen a bar
    net, X, y, theta0 = problem
    Trainer(net, "adam", epochs=3, progress=True).fit(X, y, rng=0, theta=theta0)
    assert "MLP" in capsys.readouterr().err


def test_no_warnings_on_a_normal_run(problem):
    net, X, y, theta0 = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = Trainer(net, "adam", epochs=2).fit(X, y, rng=0, theta=theta0)
    assert res.success


# -- the 1-D online path ----------------------------------------------------------------------


@pytest.mark.parametrize("opt", [O.sgd(0.05), O.adam(0.01), O.momentum(0.05)])
@pytest.mark.parametrize("loss,hidden,sizes", [("cross_entropy", "tanh", [3, 5, 2]), ("squared", "relu", [3, 4, 3, 2]),
                                               ("binary_cross_entropy", "logistic", [3, 4, 1])])
def test_online_path_trains_as_the_general_path(problem, opt, loss, hidden, sizes):
    """batch_size=1 runs the model's 1-D path (online_loss_grad); a wrapper that overrides
    loss_grad_info runs the general path. Both give the same training to round-off."""
    _, X, y, _ = problem
    net = rbp.MLP(sizes, hidden=hidden, loss=loss)
    Y = y if loss != "squared" else np.stack([X[:, 0], X[:, 1] * X[:, 2]], axis=1)
    data = net.prepare(X, Y)
    theta0 = net.init(np.random.default_rng(5))
    fast = fit(net, theta0, data, optimizer=opt, epochs=3, batch_size=1, rng=0)
    spy = Spy(net)
    general = fit(spy, theta0, data, optimizer=opt, epochs=3, batch_size=1, rng=0)
    assert len(spy.calls) == 3 * N  # the wrapper's override was honoured: general path
    np.testing.assert_allclose(fast.x, general.x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast.history["loss"], general.history["loss"], rtol=1e-10)
    np.testing.assert_allclose(fast.history["grad_norm"], general.history["grad_norm"], rtol=1e-10)


def test_online_path_keeps_the_last_finite_parameters_when_a_step_overflows(problem):
    _, X, y, _ = problem
    net = rbp.MLP([3, 4, 2], loss="cross_entropy")
    theta0 = net.init(0)
    with pytest.warns(ConvergenceWarning, match="non-finite"):
        res = Trainer(net, "sgd", learning_rate=1e308, epochs=2, batch_size=1).fit(X, y, theta=theta0, rng=0)
    assert res.status == Status.DIVERGED and np.all(np.isfinite(res.x))


def test_online_loss_grad_matches_loss_and_grad_for_one_sample():
    gen = np.random.default_rng(3)
    for net in (rbp.MLP([4, 6, 3], hidden="softplus", loss="cross_entropy"),
                rbp.MLP([4, 6, 5, 2], hidden="tanh", output="logistic", loss="squared"),
                rbp.MLP([4, 3, 2], loss="cross_entropy", dtype=np.float32)):
        theta = net.init(gen)
        X, T = net.prepare(gen.normal(size=(1, 4)), [1])
        if net.loss.name == "squared":
            X, T = net.prepare(gen.normal(size=(1, 4)), gen.uniform(size=(1, 2)))
        grad = np.empty_like(theta)
        loss = net.online_loss_grad(theta, grad)(X[0].copy(), T[0])
        ref_loss, ref_grad = net.loss_and_grad(theta, X, T, check=False)
        tol = 1e-5 if net.dtype == np.float32 else 1e-12
        assert loss == pytest.approx(ref_loss, rel=tol)
        np.testing.assert_allclose(grad, ref_grad, rtol=tol, atol=tol)


def test_test_data_is_recorded_every_epoch_and_decides_nothing(problem):
    net, X, y, theta0 = problem
    gen = np.random.default_rng(9)
    Xt, yt = gen.normal(size=(7, 3)), gen.integers(2, size=7)
    kw = dict(epochs=4, validation_fraction=0.3, early_stopping=2)
    with_test = Trainer(net, "adam", **kw).fit(X, y, rng=0, theta=theta0, test_data=(Xt, yt))
    without = Trainer(net, "adam", **kw).fit(X, y, rng=0, theta=theta0)
    assert len(with_test.history["test_accuracy"]) == len(with_test.history["epoch"])
    assert np.array_equal(with_test.x, without.x) and with_test.best_epoch == without.best_epoch
    with pytest.raises(ValueError, match="test_data: X must have 3 features"):
        Trainer(net, "adam").fit(X, y, test_data=(Xt[:, :2], yt))
