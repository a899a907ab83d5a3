"""Tests for the seeded sequence tasks of rbp.data.sequences."""

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbp.data._dataset import SequenceDataset
from rbp.data.sequences import (
    REBER_SYMBOLS,
    adding,
    copy_memory,
    mackey_glass,
    parity,
    random_weight_guessing,
    reber,
    reber_possible_next,
    reber_solved,
    sine,
    temporal_xor,
)

# One small call per generator: (function, args, kwargs, n_in, n_out or None for class indices).
GENERATORS = {
    "reber": (reber, (6,), {}, 7, None),
    "reber_plain": (reber, (6,), {"embedded": False}, 7, None),
    "adding": (adding, (5,), {"length": 12}, 2, 1),
    "temporal_xor": (temporal_xor, (5,), {"n_pairs": 4}, 1, 1),
    "parity_every": (parity, (5,), {"length": 7}, 1, 1),
    "parity_end": (parity, (5,), {"length": 7, "target": "end"}, 1, 1),
    "sine": (sine, (5,), {"length": 15, "noise": 0.1}, 1, 1),
    "mackey_glass": (mackey_glass, (3,), {"length": 30, "washout": 50}, 1, 1),
    "copy_memory": (copy_memory, (5,), {"T": 6}, 10, None),
}


def _arrays_equal(a, b):
    return (a.X.shape == b.X.shape and np.array_equal(a.X, b.X)
            and np.array_equal(a.Y, b.Y) and np.array_equal(a.mask, b.mask))


# ---------------------------------------------------------------------------
# common contract


@pytest.mark.parametrize("name", GENERATORS)
def test_shapes_dtypes_and_mask(name):
    fn, args, kwargs, n_in, n_out = GENERATORS[name]
    ds = fn(*args, **kwargs, rng=3)
    assert isinstance(ds, SequenceDataset)
    batch, time, features = ds.X.shape
    assert batch == args[0] and features == n_in and time >= 1
    assert ds.X.dtype == np.float64
    assert ds.mask.dtype == np.bool_ and ds.mask.shape == (batch, time)
    if n_out is None:
        assert ds.Y.dtype == np.int64 and ds.Y.shape == (batch, time)
        assert ds.loss == "cross_entropy"
    else:
        assert ds.Y.dtype == np.float64 and ds.Y.shape == (batch, time, n_out)
    assert ds.loss in ("squared", "cross_entropy", "binary_cross_entropy")
    assert np.all(np.isfinite(ds.X)) and np.all(np.isfinite(ds.Y))
    assert ds.mask.any(axis=1).all()  # every sequence carries a target
    assert isinstance(ds.baseline, float) and math.isfinite(ds.baseline)
    assert isinstance(ds.metric, str) and isinstance(ds.meta["higher_is_better"], bool)


@pytest.mark.parametrize("name", GENERATORS)
def test_determinism_per_seed(name):
    fn, args, kwargs, *_ = GENERATORS[name]
    assert _arrays_equal(fn(*args, **kwargs, rng=7), fn(*args, **kwargs, rng=7))
    assert _arrays_equal(fn(*args, **kwargs, rng=None), fn(*args, **kwargs, rng=0))
    assert _arrays_equal(fn(*args, **kwargs, rng=np.random.default_rng(7)),
                         fn(*args, **kwargs, rng=7))
    assert not _arrays_equal(fn(*args, **kwargs, rng=7), fn(*args, **kwargs, rng=8))
    # a Generator is advanced, so two draws from it differ
    gen = np.random.default_rng(1)
    assert not _arrays_equal(fn(*args, **kwargs, rng=gen), fn(*args, **kwargs, rng=gen))


@pytest.mark.parametrize("name", GENERATORS)
def test_global_numpy_state_untouched(name):
    fn, args, kwargs, *_ = GENERATORS[name]
    before = np.random.get_state()[1].copy()
    fn(*args, **kwargs, rng=None)
    assert np.array_equal(np.random.get_state()[1], before)


# ---------------------------------------------------------------------------
# Reber grammar

# An independent oracle: the Reber language as a regular expression.
# r2 = (X T* V P)* (S | X T* V V) is everything from the node after "T S* X" to E.
_R2 = r"(?:XT*VP)*(?:S|XT*VV)"
_INNER = rf"B(?:TS*X{_R2}|PT*V(?:V|P{_R2}))E"
_PLAIN_RE = re.compile(rf"^{_INNER}$")
_EMBEDDED_RE = re.compile(rf"^B([TP]){_INNER}\1E$")


def test_regex_oracle_on_known_strings():
    for s in ["BTXSE", "BPVVE", "BTSSXXTVVE", "BPTVPSE", "BPVPXVVE", "BTXXVPSE"]:
        assert _PLAIN_RE.match(s), s
    for s in ["BTSE", "BPVE", "BTXSEE", "BTXVE"]:
        assert not _PLAIN_RE.match(s), s
    assert _EMBEDDED_RE.match("BTBTXSETE") and _EMBEDDED_RE.match("BPBPVVEPE")
    assert not _EMBEDDED_RE.match("BTBTXSEPE")


@pytest.mark.parametrize("embedded", [True, False])
def test_reber_strings_are_grammatical_and_encoded(embedded):
    ds = reber(400, embedded=embedded, rng=11)
    oracle = _EMBEDDED_RE if embedded else _PLAIN_RE
    strings = ds.meta["strings"]
    assert all(oracle.match(s) for s in strings)
    assert len(set(strings)) > 50  # the grammar's branches are really explored
    lengths = ds.meta["lengths"]
    assert np.array_equal(lengths, [len(s) for s in strings])
    assert ds.X.shape[1] == lengths.max() - 1
    for b, s in enumerate(strings):
        n = len(s) - 1
        assert ds.mask[b, :n].all() and not ds.mask[b, n:].any()
        assert "".join(REBER_SYMBOLS[i] for i in ds.X[b, :n].argmax(axis=1)) == s[:-1]
        assert "".join(REBER_SYMBOLS[i] for i in ds.Y[b, :n]) == s[1:]
    # padding: X all zero, Y zero
    assert not ds.X[~ds.mask].any() and not ds.Y[~ds.mask].any()
    assert np.all(ds.X[ds.mask].sum(axis=1) == 1.0)


@pytest.mark.parametrize("embedded", [True, False])
def test_reber_possible_next_contains_actual_next(embedded):
    ds = reber(300, embedded=embedded, rng=5)
    possible = reber_possible_next(ds)
    assert possible.shape == ds.X.shape and possible.dtype == np.bool_
    assert np.array_equal(possible, ds.meta["possible_next"])
    b, t = np.nonzero(ds.mask)
    assert possible[b, t, ds.Y[b, t]].all()
    assert not possible[~ds.mask].any()
    n_legal = possible.sum(axis=2)[ds.mask]
    assert set(np.unique(n_legal)) <= {1, 2}


def test_reber_possible_next_by_hand():
    # B T B T X S E T E: after B {T,P}; after T {B}; inner: after B {T,P},
    # after T {S,X}, after X {S,X}, after S {E}; after inner E only T; after T {E}.
    ds = reber(500, rng=2)
    b = ds.meta["strings"].index("BTBTXSETE")
    expected = ["TP", "B", "TP", "SX", "SX", "E", "T", "E"]
    got = ["".join(REBER_SYMBOLS[i] for i in np.flatnonzero(row))
           for row in reber_possible_next(ds)[b, :8]]
    assert got == expected


def test_reber_penultimate_step_has_only_the_second_symbol():
    ds = reber(300, rng=9)
    possible = reber_possible_next(ds)
    rows = np.arange(300)
    penult = ds.meta["penultimate_step"]
    assert np.array_equal(penult, ds.meta["lengths"] - 3)
    at = possible[rows, penult]
    assert np.all(at.sum(axis=1) == 1)
    second = np.array([REBER_SYMBOLS.index(s[1]) for s in ds.meta["strings"]])
    assert np.array_equal(at.argmax(axis=1), second)
    assert np.array_equal(ds.Y[rows, penult], second)
    # it is the second-to-last masked step
    assert np.array_equal(penult, ds.mask.sum(axis=1) - 2)


def test_reber_possible_next_after_slicing_and_rejects_bad_strings():
    ds = reber(20, rng=4)
    sub = SequenceDataset(X=ds.X[5:9], Y=ds.Y[5:9], mask=ds.mask[5:9], loss=ds.loss,
                          baseline=ds.baseline, metric=ds.metric, meta={})  # no meta: inferred
    assert np.array_equal(reber_possible_next(sub), ds.meta["possible_next"][5:9])
    X = ds.X.copy()
    X[0, 1] = 0.0
    X[0, 1, REBER_SYMBOLS.index("E")] = 1.0  # "BE..." is not grammatical
    bad = SequenceDataset(X=X, Y=ds.Y, mask=ds.mask, loss=ds.loss, baseline=0.5,
                          metric=ds.metric, meta=ds.meta)
    with pytest.raises(ValueError, match="illegal symbol 'E' at sequence 0, step 1"):
        reber_possible_next(bad)
    with pytest.raises(ValueError, match="dataset must be"):
        reber_possible_next(adding(2, rng=0))


def _no_branch_memory_predictor(ds):
    """Knows the grammar, forgets the second symbol: always guesses T at the penultimate."""
    probs = reber_possible_next(ds) / 2.0
    rows = np.arange(ds.X.shape[0])
    pen = ds.meta["penultimate_step"]
    probs[rows, pen] = 0.0
    probs[rows, pen, REBER_SYMBOLS.index("T")] = 0.5
    probs[rows, pen, REBER_SYMBOLS.index("P")] = 0.5
    return probs


def test_reber_solved_and_embedded_baseline():
    ds = reber(4000, rng=21)
    assert ds.baseline == 0.5 and ds.metric == "fraction_solved"
    oracle = reber_possible_next(ds) / 2.0
    assert reber_solved(oracle, ds).all()
    assert reber_solved(oracle, ds, threshold=0.3).all()
    # the baseline predictor solves exactly the strings whose guess happens to be right
    guess = _no_branch_memory_predictor(ds)
    solved = reber_solved(guess, ds)
    second_is_t = np.array([s[1] == "T" for s in ds.meta["strings"]])
    assert np.array_equal(solved, second_is_t)  # argmax ties go to T (index 1)
    assert abs(solved.mean() - ds.baseline) < 0.03
    # under the threshold and most-active criteria hedging on T and P solves nothing ...
    assert not reber_solved(guess, ds, threshold=0.3).any()
    assert not reber_solved(guess, ds, most_active=True).any()
    # ... but committing to T still solves exactly half
    rows, pen = np.arange(4000), ds.meta["penultimate_step"]
    guess[rows, pen, REBER_SYMBOLS.index("T")] = 0.6
    assert np.array_equal(reber_solved(guess, ds, most_active=True), second_is_t)
    assert reber_solved(oracle, ds, most_active=True).all()
    # one-hot on the actual next symbol: argmax-right, threshold-wrong at 2-way branches
    one_hot = np.eye(7)[ds.Y] * ds.mask[:, :, None]
    assert reber_solved(one_hot, ds).all()
    assert not reber_solved(one_hot, ds, threshold=0.3).all()
    assert not reber_solved(one_hot, ds, most_active=True).all()
    # padding is ignored whatever it holds
    assert reber_solved(np.where(ds.mask[:, :, None], oracle, 1.0), ds).all()


def test_reber_one_wrong_step_fails_the_string():
    ds = reber(10, rng=3)
    probs = reber_possible_next(ds) / 2.0
    probs[4, 0] = np.eye(7)[REBER_SYMBOLS.index("E")]  # after B, E is illegal
    solved = reber_solved(probs, ds)
    assert not solved[4] and solved[np.arange(10) != 4].all()


def test_reber_plain_baseline_is_best_memoryless_predictor():
    ds = reber(8000, embedded=False, rng=13)
    assert ds.baseline == pytest.approx(1 / 8, abs=1e-12)
    assert reber(3, rng=0).meta["baseline_memoryless"] == pytest.approx(0.0, abs=1e-12)
    # the optimal memoryless map: B->P, T->S, X->S, S->E, P->S, V->E (solves B T X S E)
    pred = {"B": "P", "T": "S", "X": "S", "S": "E", "P": "S", "V": "E"}
    table = np.zeros((7, 7))
    for a, c in pred.items():
        table[REBER_SYMBOLS.index(a), REBER_SYMBOLS.index(c)] = 1.0
    probs = table[ds.X.argmax(axis=2)]
    solved = reber_solved(probs, ds)
    assert np.array_equal(solved, [s == "BTXSE" for s in ds.meta["strings"]])
    assert abs(solved.mean() - ds.baseline) < 0.015


def test_reber_uniform_chance_and_entropy_floor():
    ds = reber(200, rng=0)
    n_legal = reber_possible_next(ds).sum(axis=2)[ds.mask]
    assert ds.meta["chance_per_step_uniform"] == pytest.approx(n_legal.mean() / 7)
    assert ds.meta["chance_exact_uniform"] == pytest.approx(1 / 7)
    assert 0 < ds.meta["solved_fraction_uniform"] < 1e-3
    assert ds.meta["cross_entropy_floor"] == pytest.approx(np.log(n_legal).mean())


def test_reber_solved_rejects_bad_probabilities():
    ds = reber(3, rng=0)
    with pytest.raises(ValueError, match=r"probabilities must have shape \(3, "):
        reber_solved(np.zeros((3, 2, 7)), ds)
    bad = reber_possible_next(ds) / 2.0
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="probabilities must be finite"):
        reber_solved(bad, ds)
    with pytest.raises(ValueError, match="threshold must be a finite real"):
        reber_solved(reber_possible_next(ds) / 2.0, ds, threshold="high")
    with pytest.raises(ValueError, match="threshold must be None when most_active=True"):
        reber_solved(reber_possible_next(ds) / 2.0, ds, threshold=0.3, most_active=True)
    with pytest.raises(ValueError, match="most_active must be a bool, got 'yes'"):
        reber_solved(reber_possible_next(ds) / 2.0, ds, most_active="yes")


# ---------------------------------------------------------------------------
# adding, temporal XOR, parity


def test_adding_layout():
    ds = adding(200, length=21, rng=1)
    values, markers = ds.X[:, :, 0], ds.X[:, :, 1]
    assert np.all((values >= 0) & (values <= 1))
    assert np.all(markers.sum(axis=1) == 2) and set(np.unique(markers)) == {0.0, 1.0}
    assert np.all(markers[:, :10].sum(axis=1) == 1) and np.all(markers[:, 10:].sum(axis=1) == 1)
    assert np.array_equal(np.sort(np.flatnonzero(markers[0])), ds.meta["markers"][0])
    assert np.allclose(ds.Y[:, -1, 0], (values * markers).sum(axis=1))
    assert not ds.Y[:, :-1].any()
    assert ds.mask[:, -1].all() and not ds.mask[:, :-1].any()
    assert (ds.loss, ds.metric) == ("squared", "mse")


def test_adding_baseline_is_one_sixth_empirically():
    ds = adding(200_000, length=2, rng=0)
    assert ds.baseline == pytest.approx(1 / 6)
    y = ds.Y[:, -1, 0]
    assert np.mean((y - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.003)
    assert ds.meta["baseline_empirical"] == pytest.approx(1 / 6, abs=0.003)
    assert y.mean() == pytest.approx(1.0, abs=0.005)  # 1 is the best constant


def test_temporal_xor_rule_and_mask():
    ds = temporal_xor(50, n_pairs=30, rng=2)
    x = ds.X[:, :, 0].astype(int)
    assert set(np.unique(x)) == {0, 1}
    assert np.all(x[:, 2::3] == x[:, 0::3] ^ x[:, 1::3])
    assert np.array_equal(ds.Y[:, :-1, 0], ds.X[:, 1:, 0]) and not ds.Y[:, -1].any()
    t = np.arange(90)
    assert np.array_equal(ds.mask[0], t % 3 == 1) and (ds.mask == ds.mask[0]).all()
    # every masked target is the XOR of the current and the previous input
    b, tt = np.nonzero(ds.mask)
    assert np.all(ds.Y[b, tt, 0] == x[b, tt] ^ x[b, tt - 1])
    assert np.array_equal(ds.meta["has_target"][0], t < 89)
    # a memoryless predictor (best guess from the current bit) is at chance on the masked bits
    y, cur = ds.Y[b, tt, 0], x[b, tt]
    assert abs(np.mean(y == cur) - 0.5) < 0.05 and ds.baseline == 0.5


@given(length=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_parity_targets(length, seed):
    every = parity(8, length, rng=seed)
    bits = every.X[:, :, 0].astype(int)
    running = np.cumsum(bits, axis=1) % 2
    assert np.array_equal(every.Y[:, :, 0], running) and every.mask.all()
    end = parity(8, length, target="end", rng=seed)
    assert np.array_equal(end.X, every.X)
    assert np.array_equal(end.Y[:, -1, 0], bits.sum(axis=1) % 2)
    assert not end.Y[:, :-1].any() and end.mask[:, -1].all() and not end.mask[:, :-1].any()
    assert every.baseline == end.baseline == 0.5
    assert every.meta["baseline_memoryless"] == pytest.approx((length - 1) / (2 * length))


# ---------------------------------------------------------------------------
# sine and Mackey-Glass


def test_sine_next_step_and_persistence_baseline():
    ds = sine(300, length=60, rng=3)
    assert np.array_equal(ds.X[:, 1:], ds.Y[:, :-1]) and ds.mask.all()
    assert ds.baseline == pytest.approx(np.mean((ds.Y - ds.X) ** 2))
    f = ds.meta["frequency"]
    assert np.all((f >= 0.01) & (f <= 0.1))
    # noiseless persistence MSE per sequence averages 1 - cos(2 pi f)
    assert ds.baseline == pytest.approx(np.mean(1 - np.cos(2 * np.pi * f)), rel=0.1)
    assert ds.meta["baseline_mean"] == pytest.approx(np.var(ds.Y))
    assert ds.baseline < ds.meta["baseline_mean"]
    t = np.arange(61)
    s0 = np.sin(2 * np.pi * f[0] * t + ds.meta["phase"][0])
    assert np.allclose(ds.X[0, :, 0], s0[:-1]) and np.allclose(ds.Y[0, :, 0], s0[1:])


def test_sine_noise():
    clean = sine(50, length=40, rng=4)
    noisy = sine(50, length=40, noise=0.3, rng=4)
    resid = noisy.X - clean.X
    assert resid.std() == pytest.approx(0.3, rel=0.1)
    assert noisy.baseline > clean.baseline


def _local_maxima(x):
    return x[1:-1][(x[1:-1] > x[:-2]) & (x[1:-1] > x[2:])]


def test_mackey_glass_bounded_positive_and_chaotic_looking():
    raw = mackey_glass(4, length=600, normalise=False, rng=6)
    x = np.concatenate([raw.X[:, :1, 0], raw.Y[:, :, 0]], axis=1)
    assert np.all(x > 0.2) and np.all(x < 1.5)  # attractor of tau = 17 lies in ~(0.4, 1.35)
    assert x.std() > 0.15  # not a fixed point
    assert raw.meta["raw_min"] == pytest.approx(x.min())
    for row in x:
        peaks = _local_maxima(row)
        assert len(peaks) > 10 and peaks.std() > 0.01  # peaks of varying height, no limit cycle
    # different random histories end on different trajectories of the attractor
    assert abs(np.corrcoef(x[0], x[1])[0, 1]) < 0.9
    assert np.array_equal(raw.X[:, 1:], raw.Y[:, :-1])
    assert raw.baseline == pytest.approx(np.mean((raw.Y - raw.X) ** 2))
    assert raw.baseline < 0.1 * raw.meta["baseline_mean"]


def test_mackey_glass_normalised():
    ds = mackey_glass(4, length=600, rng=6)
    raw = mackey_glass(4, length=600, normalise=False, rng=6)
    mean, std = ds.meta["mean"], ds.meta["std"]
    assert np.allclose(ds.X * std + mean, raw.X)
    series = np.concatenate([ds.X[:, :1, 0], ds.Y[:, :, 0]], axis=1)
    assert abs(series.mean()) < 1e-10 and series.std() == pytest.approx(1.0)
    assert 0.85 < mean < 1.0 and 0.18 < std < 0.28  # the classic tau = 17 statistics
    assert ds.baseline == pytest.approx(raw.baseline / std**2)


class _ConstantHistory:
    """Stands in for a Generator: a constant initial history x(s) = 1.2."""

    def uniform(self, low, high, size):
        return np.full(size, 1.2)


def test_mackey_glass_integration_converged_in_dt():
    from rbp.data.sequences import _mackey_glass_raw

    coarse = _mackey_glass_raw(1, 300, 17.0, 0, _ConstantHistory())
    fine = _mackey_glass_raw(1, 300, 17.0, 0, _ConstantHistory(), dt=0.05, substeps=20)
    assert np.max(np.abs(coarse - fine)) < 1e-3
    assert np.all(np.abs(np.diff(coarse[0, 50:])) < 0.2)  # smooth at Delta t = 1


# ---------------------------------------------------------------------------
# copy memory


def _memoryless_cross_entropy(ds):
    n_symbols, n_copy, T = ds.meta["n_symbols"], ds.meta["n_copy"], ds.meta["T"]
    batch, time = ds.Y.shape
    probs = np.zeros((batch, time, n_symbols + 2))
    probs[:, : T + n_copy, ds.meta["blank"]] = 1.0
    probs[:, T + n_copy:, :n_symbols] = 1.0 / n_symbols
    p_true = np.take_along_axis(probs, ds.Y[:, :, None], axis=2)[..., 0]
    return float(-np.log(p_true[ds.mask]).mean())


def test_copy_memory_layout():
    ds = copy_memory(30, T=7, rng=5)
    assert ds.X.shape == (30, 27, 10) and ds.Y.shape == (30, 27)
    inputs = ds.X.argmax(axis=2)
    assert np.all(ds.X.sum(axis=2) == 1.0)
    data = inputs[:, :10]
    assert np.all(data < 8)
    assert np.all(inputs[:, 10:16] == 8) and np.all(inputs[:, 16] == 9)  # T-1 blanks, delimiter
    assert np.all(inputs[:, 17:] == 8)
    assert np.all(ds.Y[:, :17] == 8) and np.array_equal(ds.Y[:, 17:], data)
    assert ds.mask.all() and (ds.meta["blank"], ds.meta["delimiter"]) == (8, 9)
    assert (ds.loss, ds.metric) == ("cross_entropy", "cross_entropy")


@pytest.mark.parametrize("T", [1, 10, 100])
def test_copy_memory_baseline_formula_and_memoryless_predictor(T):
    ds = copy_memory(40, T=T, rng=0)
    assert ds.baseline == pytest.approx(10 * math.log(8) / (T + 20))
    assert _memoryless_cross_entropy(ds) == pytest.approx(ds.baseline, rel=1e-12)


@given(T=st.integers(1, 30), n_symbols=st.integers(2, 12), n_copy=st.integers(1, 8))
@settings(max_examples=25, deadline=None)
def test_copy_memory_baseline_any_size(T, n_symbols, n_copy):
    ds = copy_memory(3, T=T, n_symbols=n_symbols, n_copy=n_copy, rng=1)
    assert ds.Y.shape == (3, T + 2 * n_copy) and ds.X.shape[2] == n_symbols + 2
    assert ds.baseline == pytest.approx(n_copy * math.log(n_symbols) / (T + 2 * n_copy))
    assert _memoryless_cross_entropy(ds) == pytest.approx(ds.baseline, rel=1e-12)


# ---------------------------------------------------------------------------
# invalid arguments


@pytest.mark.parametrize("call, match", [
    (lambda: reber(0), r"n_sequences must be an integer >= 1, got 0"),
    (lambda: reber(2.0), r"n_sequences must be an integer >= 1, got 2\.0"),
    (lambda: reber(True), r"n_sequences must be an integer >= 1, got True"),
    (lambda: reber(2, embedded="yes"), r"embedded must be a bool, got 'yes'"),
    (lambda: reber(2, rng=-1), r"rng must be a numpy\.random\.Generator.*got -1"),
    (lambda: reber(2, rng=np.random.RandomState(0)), r"rng must be a numpy\.random\.Generator"),
    (lambda: adding(2, length=1), r"length must be an integer >= 2, got 1"),
    (lambda: adding(2, length=0), r"length must be an integer >= 2, got 0"),
    (lambda: temporal_xor(2, n_pairs=0), r"n_pairs must be an integer >= 1, got 0"),
    (lambda: parity(2, length=0), r"length must be an integer >= 1, got 0"),
    (lambda: parity(2, target="middle"), r"target must be \"every\" or \"end\", got 'middle'"),
    (lambda: sine(2, length=1), r"length must be an integer >= 2, got 1"),
    (lambda: sine(2, freq_range=(0.2, 0.1)), r"freq_range must be a pair.*got \(0\.2, 0\.1\)"),
    (lambda: sine(2, freq_range=(0.1, 0.9)), r"freq_range must be a pair.*<= 0\.5"),
    (lambda: sine(2, freq_range=0.1), r"freq_range must be a pair"),
    (lambda: sine(2, noise=-0.1), r"noise must be a finite real number >= 0\.0, got -0\.1"),
    (lambda: sine(2, noise=float("nan")), r"noise must be a finite real number"),
    (lambda: mackey_glass(2, length=1), r"length must be an integer >= 2, got 1"),
    (lambda: mackey_glass(2, tau=0), r"tau must be a finite real number > 0\.0, got 0"),
    (lambda: mackey_glass(2, tau=17.05), r"tau must be a multiple of the integration step 0\.1"),
    (lambda: mackey_glass(2, washout=-5), r"washout must be an integer >= 0, got -5"),
    (lambda: mackey_glass(2, normalise="no"), r"normalise must be a bool"),
    (lambda: copy_memory(2, T=0), r"T must be an integer >= 1, got 0"),
    (lambda: copy_memory(2, n_symbols=1), r"n_symbols must be an integer >= 2, got 1"),
    (lambda: copy_memory(2, n_copy=0), r"n_copy must be an integer >= 1, got 0"),
    (lambda: random_weight_guessing(1, np.zeros, 5), r"evaluate must be callable"),
    (lambda: random_weight_guessing(sum, None, 5), r"init must be callable"),
    (lambda: random_weight_guessing(sum, np.zeros, 0), r"n_trials must be an integer >= 1, got 0"),
    (lambda: random_weight_guessing(sum, np.zeros, 3, solved=0.1),
     r"solved must be None or callable"),
])
def test_invalid_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_numpy_integer_sizes_accepted():
    ds = adding(np.int64(3), length=np.int32(4), rng=np.int64(2))
    assert ds.X.shape == (3, 4, 2) and ds.meta["seed"] == 2


# ---------------------------------------------------------------------------
# random weight guessing


def _toy_separable(rng, n=40):
    """Points in 2-D labelled by a hidden line through the origin, with a margin."""
    w_true = np.array([1.0, -2.0]) / math.sqrt(5.0)
    X = rng.uniform(-1, 1, size=(400, 2))
    X = X[np.abs(X @ w_true) > 0.1][:n]
    return X, np.sign(X @ w_true)


def test_random_weight_guessing_solves_linear_toy():
    X, y = _toy_separable(np.random.default_rng(0))

    def error_rate(theta):  # linear scoring function sign(x . theta)
        return float(np.mean(np.sign(X @ theta) != y))

    out = random_weight_guessing(error_rate, lambda g: g.uniform(-1, 1, size=2), 500, rng=3,
                                 solved=lambda s: s == 0.0)
    assert out["solved"] and 1 <= out["trials_to_solve"] == out["n_trials"] <= 500
    assert out["best_score"] == 0.0 and error_rate(out["best_theta"]) == 0.0
    assert np.array_equal(out["solution"], out["best_theta"])
    assert out["scores"].shape == (out["n_trials"],) and out["scores"][-1] == 0.0
    assert np.all(out["scores"][:-1] > 0.0)
    again = random_weight_guessing(error_rate, lambda g: g.uniform(-1, 1, size=2), 500, rng=3,
                                   solved=lambda s: s == 0.0)
    assert again["trials_to_solve"] == out["trials_to_solve"]  # deterministic per seed


def test_random_weight_guessing_flag_from_evaluate_and_full_budget():
    target = np.array([0.3, -0.2, 0.1])

    def evaluate(theta):
        score = float(np.sum((theta - target) ** 2))
        return score, score < 0.05

    out = random_weight_guessing(evaluate, lambda g: g.uniform(-1, 1, size=3), 300, rng=0,
                                 stop_when_solved=False)
    assert out["n_trials"] == 300 and out["solved"]
    assert out["best_score"] == pytest.approx(out["scores"].min())
    assert out["trials_to_solve"] == 1 + int(np.argmax(out["scores"] < 0.05))
    assert evaluate(out["solution"])[1]


def test_random_weight_guessing_unsolved_and_nan():
    out = random_weight_guessing(lambda th: float(abs(th[0]) + 1.0),
                                 lambda g: g.standard_normal(1), 20, rng=None,
                                 solved=lambda s: s < 1.0)
    assert not out["solved"] and out["trials_to_solve"] is None and out["solution"] is None
    assert out["n_trials"] == 20 and out["best_score"] == pytest.approx(out["scores"].min())
    with pytest.raises(ValueError, match="evaluate must return a number.*NaN at trial 1"):
        random_weight_guessing(lambda th: float("nan"), lambda g: g.standard_normal(1), 5)
    with pytest.raises(ValueError, match="got a tuple of length 3"):
        random_weight_guessing(lambda th: (1.0, True, 0), lambda g: g.standard_normal(1), 5)


def test_random_weight_guessing_runs_on_a_task():
    # plugged into a data set: guess a 1-step-memory linear rule for temporal XOR bits is
    # impossible (XOR is not linear), so guessing must report failure, not success
    ds = temporal_xor(20, n_pairs=5, rng=0)
    b, t = np.nonzero(ds.mask)
    feats = np.stack([ds.X[b, t, 0], ds.X[b, t - 1, 0], np.ones(len(b))], axis=1)
    y = ds.Y[b, t, 0]

    def error(theta):
        return float(np.mean((feats @ theta > 0) != y))

    out = random_weight_guessing(error, lambda g: g.uniform(-1, 1, size=3), 200, rng=1,
                                 solved=lambda s: s == 0.0)
    assert not out["solved"] and out["best_score"] >= 0.2
