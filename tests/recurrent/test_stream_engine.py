"""fit_stream on the one training engine: early stopping, epoch metrics, validation streams,
weight decay, checkpoints and resume (the SIGKILL case is in tests/test_resume_kill.py)."""

import numpy as np
import pytest

import rbp
from rbp.data.sequences import sine


def _data(seed=0):
    ds = sine(4, length=120, rng=seed)
    return ds.X, ds.Y


def test_epoch_metrics_and_validation_stream_join_the_history():
    X, Y = _data()
    Xv, Yv = _data(1)
    net = rbp.ElmanRNN(1, 6, 1)
    seen = []
    res = rbp.fit_stream(net, None, X, Y, k1=10, k2=20, learning_rate=0.01, epochs=3, rng=0,
                         validation_data=(Xv, Yv), epoch_metrics=lambda th: seen.append(1) or {"norm": float(th @ th)})
    h = res.history
    assert h["epoch"] == [1, 2, 3] and len(h["val_loss"]) == 3 and len(h["norm"]) == 3 and len(seen) == 3
    assert res.success and res.final_state.shape == (4, 6)


def test_early_stopping_restores_the_best_epoch():
    X, Y = _data()
    Xv, Yv = _data(1)
    net = rbp.ElmanRNN(1, 6, 1)
    # a learning rate far too large: the validation loss gets worse, early stopping must end the run
    res = rbp.fit_stream(net, None, X, Y, k1=10, k2=20, learning_rate=0.5, epochs=30, rng=0,
                         validation_data=(Xv, Yv), early_stopping=2)
    best = int(np.argmin(res.history["val_loss"])) + 1
    assert res.best_epoch == best and res.nit < 30
    assert "early stopping" in res.message


def test_weight_decay_changes_the_parameters_and_zero_changes_nothing():
    X, Y = _data()
    net = rbp.ElmanRNN(1, 6, 1)
    kw = dict(k1=10, k2=20, learning_rate=0.01, epochs=2, rng=0)
    plain = rbp.fit_stream(net, None, X, Y, **kw).x
    assert np.array_equal(rbp.fit_stream(net, None, X, Y, weight_decay=0.0, **kw).x, plain)
    assert not np.array_equal(rbp.fit_stream(net, None, X, Y, weight_decay=0.1, **kw).x, plain)


def test_resume_from_a_checkpoint_is_bit_identical(tmp_path):
    X, Y = _data()
    net = rbp.ElmanRNN(1, 6, 1)
    kw = dict(k1=10, k2=20, learning_rate=0.01, rng=0)
    whole = rbp.fit_stream(net, None, X, Y, epochs=5, **kw)
    ckpt = tmp_path / "stream.npz"
    rbp.fit_stream(net, None, X, Y, epochs=2, checkpoint=ckpt, **kw)
    resumed = rbp.fit_stream(net, None, X, Y, epochs=5, checkpoint=ckpt, resume=True, **kw)
    assert np.array_equal(resumed.x, whole.x)
    assert resumed.history["loss"] == whole.history["loss"]
    done = rbp.fit_stream(net, None, X, Y, epochs=5, checkpoint=ckpt, resume=True, **kw)
    assert np.array_equal(done.x, whole.x) and done.final_state is None  # nothing left to train


def test_a_directory_as_checkpoint_is_refused_before_training(tmp_path):
    X, Y = _data()
    with pytest.raises(ValueError, match="checkpoint must be a file path"):
        rbp.fit_stream(rbp.ElmanRNN(1, 4, 1), None, X, Y, k1=10, epochs=1, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        rbp.fit_stream(rbp.ElmanRNN(1, 4, 1), None, X, Y, k1=10, epochs=1, resume=True)
