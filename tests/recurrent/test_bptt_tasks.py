"""ElmanRNN trained by BPTT learns the classic sequence tasks, clearly beating their baselines.

Each task: a small seeded training set, the core Trainer unchanged (Adam, mini-batches, the
mask passed through), and the score measured on a held-out set drawn with another seed, in
the task's own metric against ``dataset.baseline`` (rbp.data.sequences).
"""

import numpy as np
import pytest

from rbp.core.loop import Trainer
from rbp.data import sequences as S
from rbp.recurrent.elman import ElmanRNN
from rbp.recurrent.stream import fit_stream


def score(net, theta, ds):
    """The task's metric (``ds.metric``) on a data set."""
    P = net.predict(theta, ds.X)
    m = ds.mask
    if ds.metric == "mse":
        return float(np.mean((P[m] - ds.Y[m]) ** 2))
    if ds.metric == "error_rate":
        return float(np.mean((P[m][:, 0] > 0.5) != (ds.Y[m][:, 0] > 0.5)))
    if ds.metric == "fraction_solved":
        return float(S.reber_solved(P, ds).mean())
    if ds.metric == "cross_entropy":
        return float(net.evaluate(theta, *net.prepare(ds.X, ds.Y, ds.mask))["loss"])
    raise AssertionError(ds.metric)


def train(net, ds, *, learning_rate, epochs, batch_size=16, clip_norm=None):
    trainer = Trainer(net, "adam", learning_rate=learning_rate, epochs=epochs, batch_size=batch_size,
                      clip_norm=clip_norm, progress=False)
    result = trainer.fit(ds.X, ds.Y, mask=ds.mask, rng=0)
    assert result.success, result.message
    return result.x


def report(record_property, name, value, baseline):
    record_property(name, value)
    record_property(f"{name}_baseline", baseline)
    print(f"{name}: {value:.4f} (baseline {baseline:.4f})")


def test_adding_problem(record_property):
    train_set, test_set = S.adding(256, 20, rng=0), S.adding(512, 20, rng=1)
    net = ElmanRNN(2, 16, 1)
    theta = train(net, train_set, learning_rate=0.01, epochs=60, batch_size=32, clip_norm=1.0)
    mse = score(net, theta, test_set)
    report(record_property, "adding_T20_mse", mse, test_set.baseline)
    assert mse < 0.25 * test_set.baseline  # baseline: predict 1, MSE 1/6


@pytest.mark.parametrize("truncation", [None, (3, 3)], ids=["full", "truncated_3_3"])
def test_temporal_xor(truncation, record_property):
    train_set, test_set = S.temporal_xor(64, 20, rng=0), S.temporal_xor(128, 20, rng=1)
    net = ElmanRNN(1, 8, 1, loss="binary_cross_entropy", truncation=truncation)
    theta = train(net, train_set, learning_rate=0.03, epochs=60)
    error = score(net, theta, test_set)
    report(record_property, f"temporal_xor_error_{'full' if truncation is None else 'tbptt'}", error, test_set.baseline)
    assert error < 0.05  # baseline 1/2 without memory


def test_embedded_reber(record_property):
    train_set, test_set = S.reber(256, rng=0), S.reber(256, rng=1)
    net = ElmanRNN(7, 16, 7, loss="cross_entropy")
    theta = train(net, train_set, learning_rate=0.01, epochs=60)
    solved = score(net, theta, test_set)
    report(record_property, "embedded_reber_fraction_solved", solved, test_set.baseline)
    assert solved > 0.9  # baseline: 1/2 of the strings without memory of the second symbol


def test_running_parity(record_property):
    train_set, test_set = S.parity(128, 8, rng=0), S.parity(256, 8, rng=1)
    net = ElmanRNN(1, 8, 1, loss="binary_cross_entropy")
    theta = train(net, train_set, learning_rate=0.03, epochs=60)
    error = score(net, theta, test_set)
    report(record_property, "parity_T8_error", error, test_set.baseline)
    assert error < 0.1  # baseline 1/2 (memoryless: 7/16)


def test_copy_memory(record_property):
    kw = dict(T=5, n_symbols=3, n_copy=2)
    train_set, test_set = S.copy_memory(128, rng=0, **kw), S.copy_memory(256, rng=1, **kw)
    net = ElmanRNN(5, 16, 5, loss="cross_entropy")
    theta = train(net, train_set, learning_rate=0.02, epochs=60)
    ce = score(net, theta, test_set)
    report(record_property, "copy_T5_cross_entropy", ce, test_set.baseline)
    assert ce < 0.25 * test_set.baseline


def test_temporal_xor_as_one_long_stream_with_truncated_bptt(record_property):
    """fit_stream: 4 streams of 600 steps in chunks of 6 (k2 = 9), the state carried across chunks."""
    train_set, test_set = S.temporal_xor(4, 200, rng=0), S.temporal_xor(16, 50, rng=1)
    net = ElmanRNN(1, 8, 1, loss="binary_cross_entropy")
    res = fit_stream(net, None, train_set.X, train_set.Y, train_set.mask, k1=6, k2=9, learning_rate=0.01,
                     epochs=5, rng=0)
    assert res.success and res.history["n_chunks"][0] == 100
    error = score(net, res.x, test_set)
    report(record_property, "temporal_xor_stream_error", error, test_set.baseline)
    assert error < 0.05


def test_random_weight_guessing_baseline_on_temporal_xor(record_property):
    """Hochreiter & Schmidhuber's check: 1000 random guesses (uniform [-3, 3]) do not solve a short
    temporal XOR; 60 epochs of BPTT (240 gradient evaluations) do, and generalise."""
    train_set, test_set = S.temporal_xor(64, 5, rng=0), S.temporal_xor(256, 5, rng=1)
    net = ElmanRNN(1, 4, 1, loss="binary_cross_entropy")
    guess = S.random_weight_guessing(
        lambda th: score(net, th, train_set), lambda g: g.uniform(-3.0, 3.0, net.n_params), 1000, rng=0,
        solved=lambda s: s == 0.0,
    )
    guess_test = score(net, guess["best_theta"], test_set)
    theta = train(net, train_set, learning_rate=0.05, epochs=60)
    bptt_test = score(net, theta, test_set)
    record_property("rwg_trials", guess["n_trials"])
    record_property("rwg_solved", guess["solved"])
    report(record_property, "rwg_best_train_error", guess["best_score"], train_set.baseline)
    report(record_property, "rwg_best_test_error", guess_test, test_set.baseline)
    report(record_property, "bptt_test_error", bptt_test, test_set.baseline)
    assert guess["n_trials"] == 1000 and not guess["solved"]
    assert bptt_test < 0.05 and bptt_test < guess_test - 0.1
