"""Runs that survive crashes: a training process killed with SIGKILL (mid-epoch,
or in the middle of writing a checkpoint) and restarted with ``resume=True``
ends bit-identical to a run that was never interrupted; and the divergence
policy (``on_divergence="raise"`` / ``"halve"``) works from the last good
checkpoint.

The kill tests start real child processes (``subprocess.Popen``) running a
small training script written into ``tmp_path``; the model is wrapped so that
every mini-batch sleeps a little, so an epoch lasts long enough for the kill to
land inside it, and the script logs every batch, epoch and checkpoint write to
a progress file that the test watches.
"""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import rbp
from rbp.core.checkpoint import load_checkpoint, load_params, save_checkpoint
from rbp.core.loop import DivergenceError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

EPOCHS = 7

SCRIPT = textwrap.dedent(
    '''
    """Train a small model with checkpoints; log progress; save the final parameters."""
    import json
    import os
    import sys
    import time

    import numpy as np

    import rbp
    from rbp.core.checkpoint import save_params

    cfg = json.loads(sys.argv[1])


    def note(line):
        with open(cfg["progress"], "a") as fh:
            fh.write(line + "\\n")


    def slow(cls):
        class Slow(cls):
            def loss_grad_info(self, theta, *batch, check=True):
                time.sleep(cfg["delay"])  # an epoch lasts long enough for a kill to land inside it
                out = super().loss_grad_info(theta, *batch, check=check)
                note("batch")
                return out

            def loss_grad_state(self, *args, **kwargs):  # a chunk of stream training
                time.sleep(cfg["delay"])
                out = super().loss_grad_state(*args, **kwargs)
                note("batch")
                return out

        return Slow


    if cfg["stall_save"]:
        real_fsync, saves = os.fsync, [0]

        def fsync(fd):  # the temporary file is complete, the rename has not happened yet
            saves[0] += 1
            note("saving")
            if saves[0] == cfg["stall_save"]:
                time.sleep(60)
            real_fsync(fd)

        os.fsync = fsync

    gen = np.random.default_rng(123)
    X = gen.normal(size=(96, 5))
    y = ((X[:, 0] * X[:, 1] + 0.5 * X[:, 2]) > 0).astype(int)
    log_epoch = lambda res: note(f"epoch {res.nit}")
    if cfg["kind"] == "mlp":
        model = slow(rbp.MLP)([5, 8, 2], loss="cross_entropy")
        trainer = rbp.StaticTrainer(
            model, "adam", learning_rate=0.02, epochs=cfg["epochs"], batch_size=16, validation_fraction=0.25,
            callback=log_epoch,
        )
    else:
        model = slow(rbp.FixedPointNet)(5, 6, 2, loss="cross_entropy", contraction=0.9, tol=1e-10,
                                        backward_tol=1e-10)
        trainer = rbp.RecurrentTrainer(
            model, "momentum", learning_rate=0.05, epochs=cfg["epochs"], batch_size=16, callback=log_epoch,
        )
    note("start")
    if cfg["kind"] == "stream":
        S = gen.normal(size=(4, 60, 2))
        T = np.cumsum(S[..., :1], axis=1) * 0.1
        model = slow(rbp.ElmanRNN)(2, 6, 1)
        result = rbp.fit_stream(model, None, S, T, k1=10, k2=15, learning_rate=0.01, epochs=cfg["epochs"],
                                weight_decay=1e-3, callback=log_epoch, checkpoint=cfg["checkpoint"], resume=True,
                                rng=0)
    else:
        result = trainer.fit(X, y, rng=0, checkpoint=cfg["checkpoint"], resume=True)
    history = {k: [float(v) for v in result.history[k]] for k in ("epoch", "loss")}
    save_params(cfg["out"], result.x, meta={"history": history, "n_params": int(model.n_params)})
    note("done")
    '''
)


class Child:
    """One run of the training script in a child process."""

    def __init__(self, tmp_path, name, *, kind, checkpoint, delay=0.02, stall_save=0, epochs=EPOCHS):
        self.progress = tmp_path / f"{name}.log"
        self.out = tmp_path / f"{name}.out.npz"
        script = tmp_path / "train.py"
        if not script.exists():
            script.write_text(SCRIPT)
        cfg = {
            "kind": kind, "checkpoint": str(checkpoint), "out": str(self.out), "progress": str(self.progress),
            "delay": delay, "stall_save": stall_save, "epochs": epochs,
        }
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(cfg)], cwd=tmp_path, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def lines(self):
        try:
            return self.progress.read_text().splitlines()
        except FileNotFoundError:
            return []

    def wait_until(self, condition, timeout=60.0):
        """Poll the progress log until ``condition(lines)`` holds; fail if the child ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if condition(lines):
                return lines
            if self.proc.poll() is not None:
                _, err = self.proc.communicate()
                pytest.fail(f"child ended (rc {self.proc.returncode}) before the condition held:\n{err.decode()}")
            time.sleep(0.002)
        self.proc.kill()
        pytest.fail(f"timed out waiting for the child; progress: {self.lines()[-5:]}")

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL

    def finish(self, timeout=120.0):
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail("the child hung")
        assert self.proc.returncode == 0, err.decode()
        theta, meta = load_params(self.out)
        return theta, meta

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _epochs_logged(lines):
    return [int(line.split()[1]) for line in lines if line.startswith("epoch ")]


def _batches_after_epoch(lines, epoch):
    """Batches logged after the line ``epoch <epoch>`` (None before it)."""
    marker = f"epoch {epoch}"
    if marker not in lines:
        return None
    return lines[lines.index(marker) + 1 :].count("batch")


@pytest.fixture
def children():
    started = []
    yield started
    for child in started:
        child.cleanup()


def _start(children, *args, **kwargs):
    child = Child(*args, **kwargs)
    children.append(child)
    return child


@pytest.mark.parametrize("kind", ["mlp", "fixedpoint", "stream"])
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, children, kind):
    reference = _start(children, tmp_path, "reference", kind=kind, checkpoint=tmp_path / "ref.npz", delay=0.0)
    ckpt = tmp_path / "run.npz"

    first = _start(children, tmp_path, "first", kind=kind, checkpoint=ckpt)
    # Kill two mini-batches into epoch 4 (an epoch has 5 or 6 of them).
    first.wait_until(lambda lines: (_batches_after_epoch(lines, 3) or 0) >= 2)
    first.kill()
    assert not first.out.exists()
    done = max(_epochs_logged(first.lines()))
    assert 3 <= done < EPOCHS and first.lines()[-1] == "batch", "the kill did not land inside an epoch"

    # The checkpoint of the last completed epoch survived the kill and loads (the epoch is written
    # before it is logged, so a kill between the two leaves one more).
    n_params = {"mlp": rbp.MLP([5, 8, 2]), "fixedpoint": rbp.FixedPointNet(5, 6, 2),
                "stream": rbp.ElmanRNN(2, 6, 1)}[kind].n_params
    ck = load_checkpoint(ckpt, n_params=n_params)
    assert ck["epoch"] in (done, done + 1)
    assert ck["history"]["epoch"] == list(range(1, ck["epoch"] + 1))
    assert np.all(np.isfinite(ck["theta"]))

    second = _start(children, tmp_path, "second", kind=kind, checkpoint=ckpt)
    theta, meta = second.finish()
    # It resumed (the remaining epochs only), it did not start over.
    assert _epochs_logged(second.lines()) == list(range(ck["epoch"] + 1, EPOCHS + 1))

    theta_ref, meta_ref = reference.finish()
    assert np.array_equal(theta, theta_ref), f"max |diff| = {np.max(np.abs(theta - theta_ref))}"
    assert meta["history"]["epoch"] == meta_ref["history"]["epoch"] == list(range(1, EPOCHS + 1))
    assert meta["history"]["loss"] == meta_ref["history"]["loss"]
    assert load_checkpoint(ckpt)["epoch"] == EPOCHS
    assert sorted(p.name for p in tmp_path.glob("*.tmp")) == []


def test_sigkill_while_writing_the_checkpoint_keeps_the_previous_one(tmp_path, children):
    """Killed after the new checkpoint's temporary file is written but before the rename:
    the previous checkpoint is intact and resuming from it is still bit-identical."""
    reference = _start(children, tmp_path, "reference", kind="mlp", checkpoint=tmp_path / "ref.npz", delay=0.0)
    ckpt = tmp_path / "run.npz"
    # The third checkpoint write (end of epoch 3) stalls between writing its temporary file and the rename.
    first = _start(children, tmp_path, "first", kind="mlp", checkpoint=ckpt, delay=0.0, stall_save=3)
    first.wait_until(lambda lines: lines.count("saving") >= 3)
    first.kill()

    ck = load_checkpoint(ckpt, n_params=rbp.MLP([5, 8, 2]).n_params)
    assert ck["epoch"] == 2  # the stalled write was epoch 3's
    # SIGKILL leaves the unfinished temporary file behind (no handler can run); it is a hidden
    # sibling, never the checkpoint itself.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.npz.")]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")

    second = _start(children, tmp_path, "second", kind="mlp", checkpoint=ckpt, delay=0.0)
    theta, meta = second.finish()
    assert _epochs_logged(second.lines()) == list(range(3, EPOCHS + 1))
    theta_ref, meta_ref = reference.finish()
    assert np.array_equal(theta, theta_ref)
    assert meta["history"]["loss"] == meta_ref["history"]["loss"]


def test_two_kills_then_resume_is_bit_identical(tmp_path, children):
    reference = _start(children, tmp_path, "reference", kind="mlp", checkpoint=tmp_path / "ref.npz", delay=0.0)
    ckpt = tmp_path / "run.npz"
    first = _start(children, tmp_path, "first", kind="mlp", checkpoint=ckpt)
    first.wait_until(lambda lines: (_batches_after_epoch(lines, 1) or 0) >= 3)
    first.kill()
    assert load_checkpoint(ckpt)["epoch"] in (1, 2)
    second = _start(children, tmp_path, "second", kind="mlp", checkpoint=ckpt)
    second.wait_until(lambda lines: (_batches_after_epoch(lines, 4) or 0) >= 1)
    second.kill()
    assert load_checkpoint(ckpt)["epoch"] in (4, 5)
    third = _start(children, tmp_path, "third", kind="mlp", checkpoint=ckpt, delay=0.0)
    theta, _ = third.finish()
    theta_ref, _ = reference.finish()
    assert np.array_equal(theta, theta_ref)


def test_restarting_a_finished_run_changes_nothing(tmp_path, children):
    ckpt = tmp_path / "run.npz"
    theta1, _ = _start(children, tmp_path, "first", kind="mlp", checkpoint=ckpt, delay=0.0).finish()
    second = _start(children, tmp_path, "second", kind="mlp", checkpoint=ckpt, delay=0.0)
    theta2, _ = second.finish()
    assert np.array_equal(theta1, theta2)
    assert "batch" not in second.lines()  # no training happened


# -- in-process interruptions: every optimizer and option --------------------------------------------


class Crash(Exception):
    """Stands in for the process dying right after a checkpoint was written."""


def _data(n=64):
    gen = np.random.default_rng(0)
    X = gen.normal(size=(n, 4))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(dict(optimizer="sgd", learning_rate=0.1), id="sgd"),
        pytest.param(dict(optimizer="momentum", learning_rate=0.05), id="momentum"),
        pytest.param(dict(optimizer="nesterov", learning_rate=0.05, clip_norm=0.5), id="nesterov-clip"),
        pytest.param(dict(optimizer="adam", learning_rate=0.02, validation_fraction=0.25), id="adam-validation"),
        pytest.param(dict(optimizer="rprop", batch_size=None), id="rprop-full-batch"),
        pytest.param(dict(optimizer="adam", learning_rate=0.02, batch_size=1), id="adam-online"),
    ],
)
@pytest.mark.parametrize("checkpoint_every", [1, 2])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, options, checkpoint_every):
    X, y = _data()
    options = {"batch_size": 16, "weight_decay": 1e-3, **options}

    def trainer(callback=None):
        return rbp.StaticTrainer(rbp.MLP([4, 6, 2], loss="cross_entropy"), epochs=6, callback=callback, **options)

    whole = trainer().fit(X, y, rng=1)

    def crash_at_5(res):
        if res.nit == 5:
            raise Crash

    path = tmp_path / "ck.npz"
    with pytest.raises(Crash):
        trainer(crash_at_5).fit(X, y, rng=1, checkpoint=path, checkpoint_every=checkpoint_every)
    assert load_checkpoint(path)["epoch"] == (5 if checkpoint_every == 1 else 4)
    resumed = trainer().fit(X, y, rng=1, checkpoint=path, checkpoint_every=checkpoint_every, resume=True)
    np.testing.assert_array_equal(resumed.x, whole.x)
    assert resumed.history["loss"] == whole.history["loss"]
    assert resumed.history["epoch"] == whole.history["epoch"]
    for a, b in zip(resumed.optimizer_state, whole.optimizer_state):
        np.testing.assert_array_equal(a, b)


def test_resume_with_early_stopping_is_bit_identical(tmp_path):
    X, y = _data()

    def trainer(callback=None):
        return rbp.StaticTrainer(rbp.MLP([4, 6, 2], loss="cross_entropy"), "adam", learning_rate=0.05, epochs=30,
                                 batch_size=16, early_stopping=3, validation_fraction=0.25, callback=callback)

    whole = trainer().fit(X, y, rng=0)
    assert whole.nit < 30, "the test needs a run that stops early"

    def crash(res):
        if res.nit == whole.nit - 1:
            raise Crash

    path = tmp_path / "ck.npz"
    with pytest.raises(Crash):
        trainer(crash).fit(X, y, rng=0, checkpoint=path)
    resumed = trainer().fit(X, y, rng=0, checkpoint=path, resume=True)
    assert resumed.best_epoch == whole.best_epoch
    np.testing.assert_array_equal(resumed.x, whole.x)


# -- the divergence policy ---------------------------------------------------------------------------


class NaNAt(rbp.MLP):
    """An MLP whose ``loss_grad_info`` returns a NaN loss and gradient at the given call numbers."""

    def __init__(self, *args, nan_at=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.nan_at, self.calls = nan_at, 0

    def loss_grad_info(self, theta, *batch, check=True):
        self.calls += 1
        loss, grad, info = super().loss_grad_info(theta, *batch, check=check)
        if self.nan_at == "always" or self.calls in self.nan_at:
            return math.nan, np.full_like(grad, np.nan), info
        return loss, grad, info


BATCHES = 4  # 64 samples in batches of 16
NAN_CALL = 2 * BATCHES + 3  # the third batch of epoch 3


def _nan_trainer(nan_at, policy, *, learning_rate=0.1, callback=None, **kwargs):
    net = NaNAt([4, 6, 2], loss="cross_entropy", nan_at=nan_at)
    return rbp.StaticTrainer(net, "sgd", learning_rate=learning_rate, epochs=6, batch_size=16,
                             on_divergence=policy, callback=callback, **kwargs)


def test_nan_loss_with_raise_names_the_last_good_checkpoint(tmp_path):
    X, y = _data()
    path = tmp_path / "run.npz"
    with pytest.raises(DivergenceError, match=r"epoch 3: the loss or gradient became non-finite") as info:
        _nan_trainer((NAN_CALL,), "raise").fit(X, y, rng=0, checkpoint=path)
    assert isinstance(info.value, RuntimeError)
    assert str(path) in str(info.value)
    ck = load_checkpoint(path)
    assert ck["epoch"] == 2 and np.all(np.isfinite(ck["theta"]))


def test_nan_loss_with_raise_and_no_checkpoint_says_so():
    X, y = _data()
    with pytest.raises(DivergenceError, match=r"Last good checkpoint: none was written"):
        _nan_trainer((NAN_CALL,), "raise").fit(X, y, rng=0)


def test_nan_loss_with_warn_returns_the_last_finite_parameters(tmp_path):
    X, y = _data()
    with pytest.warns(rbp.ConvergenceWarning, match=r"epoch 3: the loss or gradient became non-finite"):
        res = _nan_trainer((NAN_CALL,), "warn").fit(X, y, rng=0, checkpoint=tmp_path / "run.npz")
    assert res.status == rbp.Status.DIVERGED and not res.success
    assert np.all(np.isfinite(res.x))


def test_halve_retries_from_the_last_good_checkpoint_with_half_the_learning_rate(tmp_path):
    X, y = _data()
    path = tmp_path / "run.npz"
    with pytest.warns(rbp.ConvergenceWarning, match=r"Retrying from epoch 2 with the learning rate scaled by 0\.5"):
        res = _nan_trainer((NAN_CALL,), "halve").fit(X, y, rng=0, checkpoint=path)
    assert res.success and res.status == rbp.Status.SUCCESS
    assert res.history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert np.all(np.isfinite(res.x))
    assert load_checkpoint(path)["epoch"] == 6

    # What the retry must equal: epochs 1-2 at learning rate 0.1, then epochs 3-6 at 0.05 from the
    # epoch-2 checkpoint (same model, minus the injected NaN).
    def stop_after_2(r):
        if r.nit == 2:
            raise Crash

    expected_path = tmp_path / "expected.npz"
    with pytest.raises(Crash):
        _nan_trainer((), "raise", callback=stop_after_2).fit(X, y, rng=0, checkpoint=expected_path)
    expected = _nan_trainer((), "raise", learning_rate=0.05).fit(X, y, rng=0, checkpoint=expected_path, resume=True)
    np.testing.assert_array_equal(res.x, expected.x)
    assert res.history["loss"] == expected.history["loss"]


def test_halve_without_a_checkpoint_restarts_from_the_beginning():
    X, y = _data()
    with pytest.warns(rbp.ConvergenceWarning, match=r"Retrying from epoch 0 with the learning rate scaled by 0\.5"):
        res = _nan_trainer((NAN_CALL,), "halve").fit(X, y, rng=0)
    assert res.success and res.history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert np.all(np.isfinite(res.x))


def test_halve_gives_up_after_max_retries(tmp_path):
    X, y = _data()
    path = tmp_path / "run.npz"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DivergenceError, match=r"Last good checkpoint: none was written"):
            _nan_trainer("always", "halve", max_retries=2).fit(X, y, rng=0, checkpoint=path)
    retries = [w for w in caught if "Retrying" in str(w.message)]
    assert [str(w.message).split("scaled by ")[1] for w in retries] == ["0.5.", "0.25."]
    assert not path.exists()  # no epoch ever finished, so nothing was written


def test_resume_after_a_halving_retry_keeps_the_halved_learning_rate(tmp_path):
    X, y = _data()
    with pytest.warns(rbp.ConvergenceWarning):
        whole = _nan_trainer((NAN_CALL,), "halve").fit(X, y, rng=0, checkpoint=tmp_path / "whole.npz")

    def crash_at_4(r):
        if r.nit == 4:
            raise Crash

    path = tmp_path / "run.npz"
    with pytest.warns(rbp.ConvergenceWarning), pytest.raises(Crash):
        _nan_trainer((NAN_CALL,), "halve", callback=crash_at_4).fit(X, y, rng=0, checkpoint=path)
    resumed = _nan_trainer((), "halve").fit(X, y, rng=0, checkpoint=path, resume=True)
    np.testing.assert_array_equal(resumed.x, whole.x)


def test_a_stale_checkpoint_of_another_run_is_not_the_last_good_one(tmp_path):
    X, y = _data()
    net = rbp.MLP([4, 6, 2], loss="cross_entropy")
    path = tmp_path / "run.npz"
    stale = rbp.core.optimizers.sgd(0.1).init(np.zeros(net.n_params))._replace(count=999)
    save_checkpoint(path, np.full(net.n_params, 0.5), optimizer_state=stale, rng=np.random.default_rng(9), epoch=5,
                    history={"epoch": [1, 2, 3, 4, 5], "loss": [9.0] * 5})
    # NaN in the first epoch: this run has written no checkpoint of its own.
    with pytest.raises(DivergenceError, match=r"Last good checkpoint: none was written"):
        _nan_trainer((3,), "raise").fit(X, y, rng=0, checkpoint=path)


def test_halve_without_an_explicit_learning_rate_halves_the_default():
    trainer = rbp.StaticTrainer(rbp.MLP([4, 6, 2]), "sgd", on_divergence="halve")
    grad = np.ones(trainer.model.n_params)
    state = trainer._build_optimizer(0.5).init(grad)
    step, _ = trainer._build_optimizer(0.5).update(grad, state, np.zeros_like(grad))
    default = rbp.core.optimizers.sgd().update(grad, state, np.zeros_like(grad))[0]
    np.testing.assert_allclose(step, 0.5 * default)


def _exploding_problem():
    gen = np.random.default_rng(0)
    X = 3.0 * gen.normal(size=(30, 3))
    return rbp.MLP([3, 8, 1], hidden="identity"), X, 100.0 * gen.normal(size=(30, 1))


@pytest.mark.parametrize("policy", ["warn", "raise"])
def test_a_real_blow_up_is_handled_by_the_policy(tmp_path, policy):
    """Not an injected NaN: sgd with learning rate 1 on an unscaled linear net overflows to inf."""
    net, X, y = _exploding_problem()
    trainer = rbp.StaticTrainer(net, "sgd", learning_rate=1.0, epochs=20, batch_size=5, on_divergence=policy)
    with np.errstate(over="ignore", invalid="ignore"):
        if policy == "raise":
            with pytest.raises(DivergenceError, match=r"non-finite.*Last good checkpoint: none was written"):
                trainer.fit(X, y, rng=0, checkpoint=tmp_path / "run.npz")
        else:
            with pytest.warns(rbp.ConvergenceWarning, match=r"non-finite"):
                res = trainer.fit(X, y, rng=0)
            assert res.status == rbp.Status.DIVERGED and np.all(np.isfinite(res.x))


def test_a_real_blow_up_under_strict_floating_point_is_handled_by_the_policy():
    net, X, y = _exploding_problem()
    trainer = rbp.StaticTrainer(net, "sgd", learning_rate=1.0, epochs=20, batch_size=5, on_divergence="raise")
    with pytest.raises(DivergenceError):
        trainer.fit(X, y, rng=0)


def test_resuming_with_another_optimizer_is_refused(tmp_path):
    X, y = _data()
    net = rbp.MLP([4, 6, 2], loss="cross_entropy")
    path = tmp_path / "run.npz"
    rbp.StaticTrainer(net, "momentum", learning_rate=0.05, epochs=2).fit(X, y, rng=0, checkpoint=path)
    with pytest.raises(ValueError, match=r"written by optimizer 'momentum'.*'nesterov'"):
        rbp.StaticTrainer(net, "nesterov", learning_rate=0.05, epochs=4).fit(X, y, rng=0, checkpoint=path, resume=True)


def test_resuming_a_finished_early_stopping_run_returns_its_best_parameters(tmp_path):
    X, y = _data()

    def trainer():
        return rbp.StaticTrainer(rbp.MLP([4, 6, 2], loss="cross_entropy"), "adam", learning_rate=0.05, epochs=12,
                                 batch_size=16, early_stopping=50, validation_fraction=0.25)

    path = tmp_path / "run.npz"
    whole = trainer().fit(X, y, rng=0, checkpoint=path)
    assert whole.best_epoch < 12, "the test needs a run whose best epoch is not its last"
    again = trainer().fit(X, y, rng=0, checkpoint=path, resume=True)
    np.testing.assert_array_equal(again.x, whole.x)


def test_epoch_metrics_join_the_history_and_survive_a_resume(tmp_path):
    X, y = _data()
    net = rbp.MLP([4, 6, 2], loss="cross_entropy")
    probe = net.prepare(X[:5], y[:5])
    calls = []

    def measure(theta):
        calls.append(1)
        return {"probe_loss": net.evaluate(theta, *probe)["loss"]}

    def trainer(callback=None):
        return rbp.StaticTrainer(net, "adam", learning_rate=0.05, epochs=6, epoch_metrics=measure, callback=callback)

    whole = trainer().fit(X, y, rng=0)
    assert len(whole.history["probe_loss"]) == 6 and len(calls) == 6

    def crash_at_3(res):
        if res.nit == 3:
            raise Crash

    path = tmp_path / "run.npz"
    with pytest.raises(Crash):
        trainer(crash_at_3).fit(X, y, rng=0, checkpoint=path)
    calls.clear()
    resumed = trainer().fit(X, y, rng=0, checkpoint=path, resume=True)
    assert len(calls) == 3  # measured only for the epochs trained again
    assert resumed.history["probe_loss"] == whole.history["probe_loss"]
    assert resumed.nit == 6 and resumed.history["epoch"] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(resumed.x, whole.x)
