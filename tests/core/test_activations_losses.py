"""Activations and losses: every derivative against central differences,
every loss value against an independent formula."""

import numpy as np
import pytest

from rbp.core import activations, losses
from rbp.core.activations import ACTIVATIONS, Activation, get_activation
from rbp.core.losses import LOSSES, OUTPUTS, encode_targets, get_loss, output_loss, resolve_output

H = 1e-6  # central-difference step for elementwise checks on O(1) values

# Every valid (loss, output) pair, straight from the registry.
LOSS_OUTPUT_PAIRS = [(loss, out) for loss, spec in LOSSES.items() for out in spec.outputs]


def _grid():
    # Values on both sides of 0, away from the relu kink, plus a tail.
    a = np.linspace(-4.0, 4.0, 81) + 0.0137
    return np.concatenate([a, [-12.5, 9.25]]).reshape(-1, 1) * np.array([[1.0, 0.5]])


# -- activations ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivative_matches_central_differences(name):
    act = ACTIVATIONS[name]
    a = _grid()
    assert np.min(np.abs(a)) > 1e-3  # no kink inside [a - H, a + H]
    numeric = (act.f(a + H) - act.f(a - H)) / (2 * H)
    analytic = act.df(a, act.f(a))
    assert analytic.shape == a.shape
    # truncation ~ H^2 |f'''| / 6 ~ 1e-13, round-off ~ 1e-16 / H ~ 1e-10
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_is_pure_and_keeps_dtype(name):
    act = ACTIVATIONS[name]
    for dtype in (np.float64, np.float32):
        a = _grid().astype(dtype)
        a_before = a.copy()
        y = act.f(a)
        y_before = y.copy()
        d = act.df(a, y)
        np.testing.assert_array_equal(a, a_before)
        np.testing.assert_array_equal(y, y_before)
        assert not np.shares_memory(y, a)
        assert y.dtype == dtype and d.dtype == dtype, (y.dtype, d.dtype)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_lipschitz_bound_and_no_overflow(name):
    act = ACTIVATIONS[name]
    # conftest makes overflow raise: the extremes must be handled stably.
    a = np.concatenate([np.linspace(-30, 30, 6001), [-1e3, 1e3, -800.0, 800.0]])
    y = act.f(a)
    d = act.df(a, y)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(d))
    assert np.max(np.abs(d)) <= act.lipschitz + 1e-12
    # the bound is tight (it is the sup), so the contraction test is not over-conservative
    assert np.max(np.abs(d)) >= 0.99 * act.lipschitz


def test_activation_values_against_closed_forms():
    a = _grid()
    np.testing.assert_allclose(ACTIVATIONS["logistic"].f(a), 1 / (1 + np.exp(-a)), rtol=1e-14)
    np.testing.assert_allclose(ACTIVATIONS["tanh"].f(a), np.tanh(a), rtol=1e-15)
    np.testing.assert_allclose(ACTIVATIONS["softplus"].f(a), np.log1p(np.exp(a)), rtol=1e-13)
    np.testing.assert_array_equal(ACTIVATIONS["relu"].f(a), np.where(a > 0, a, 0.0))
    np.testing.assert_array_equal(ACTIVATIONS["identity"].f(a), a)


def test_get_activation_unknown_name_suggests_nearest():
    with pytest.raises(ValueError, match=r"hidden must be one of \[.*'tanh'.*\], got 'tahn'; did you mean 'tanh'"):
        get_activation("tahn", argument="hidden")
    with pytest.raises(ValueError, match=r"activation must be one of .*got 42"):
        get_activation(42)


def test_get_activation_passes_instances_through():
    custom = Activation("cube", lambda a: a**3, lambda a, y: 3 * a**2, np.inf)
    assert get_activation(custom) is custom
    assert get_activation("relu") is ACTIVATIONS["relu"]


# -- losses: values ------------------------------------------------------------------


def _softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _reference_output(output, a):
    return {
        "identity": lambda: a,
        "tanh": lambda: np.tanh(a),
        "logistic": lambda: 1 / (1 + np.exp(-a)),
        "relu": lambda: np.maximum(a, 0),
        "softplus": lambda: np.log1p(np.exp(a)),
        "softmax": lambda: _softmax(a),
    }[output]()


def _reference_per_row(loss, output, a, T):
    if loss == "squared":
        return 0.5 * ((_reference_output(output, a) - T) ** 2).sum(axis=1)
    if loss == "cross_entropy":
        return -(T * np.log(_softmax(a))).sum(axis=1)
    p = 1 / (1 + np.exp(-a))
    return -(T * np.log(p) + (1 - T) * np.log(1 - p)).sum(axis=1)


def _targets(loss, n, k, gen):
    if loss == "squared":
        return gen.normal(size=(n, k))
    if loss == "cross_entropy":
        return np.eye(k)[gen.integers(k, size=n)]
    return gen.integers(0, 2, size=(n, k)).astype(float)


def _pre_activations(n, k, gen):
    a = gen.normal(scale=1.5, size=(n, k))
    # keep the relu output away from its kink so central differences are valid
    return np.where(np.abs(a) < 0.05, a + 0.1, a)


@pytest.mark.parametrize("loss,output", LOSS_OUTPUT_PAIRS)
@pytest.mark.parametrize("weighted", [False, True], ids=["sum", "weights"])
def test_output_loss_value_matches_reference(loss, output, weighted):
    gen = np.random.default_rng(1)
    a = _pre_activations(6, 3, gen)
    T = _targets(loss, 6, 3, gen)
    w = gen.uniform(0.1, 2.0, size=6) if weighted else None
    L, delta = output_loss(loss, output, a, T, weights=w)
    per_row = _reference_per_row(loss, output, a, T)
    expected = per_row.sum() if w is None else per_row @ w
    assert isinstance(L, float)
    assert delta.shape == a.shape
    np.testing.assert_allclose(L, expected, rtol=1e-12)


@pytest.mark.parametrize(
    "loss,output,n_out",
    # a softmax over one unit is constant, so it only appears with 3 outputs
    [(loss, out, k) for loss, out in LOSS_OUTPUT_PAIRS for k in (1, 3) if not (out == "softmax" and k == 1)],
)
@pytest.mark.parametrize("weighted", [False, True], ids=["sum", "weights"])
def test_output_loss_delta_matches_central_differences(loss, output, n_out, weighted):
    gen = np.random.default_rng(2 + n_out)
    a = _pre_activations(5, n_out, gen)
    T = _targets(loss, 5, n_out, gen)
    w = gen.uniform(0.1, 2.0, size=5) if weighted else None
    a_before, T_before = a.copy(), T.copy()
    _, delta = output_loss(loss, output, a, T, weights=w)
    np.testing.assert_array_equal(a, a_before)  # pure
    np.testing.assert_array_equal(T, T_before)
    h = 1e-5
    numeric = np.empty_like(a)
    for idx in np.ndindex(*a.shape):
        ap, am = a.copy(), a.copy()
        ap[idx] += h
        am[idx] -= h
        numeric[idx] = (output_loss(loss, output, ap, T, w)[0] - output_loss(loss, output, am, T, w)[0]) / (2 * h)
    rel = np.linalg.norm(delta - numeric) / max(np.linalg.norm(delta), np.linalg.norm(numeric))
    assert rel < 1e-8, (rel, delta, numeric)


def test_cross_entropy_delta_with_soft_unnormalised_targets():
    # dL/da = p * sum(t) - t: the sum(t) factor only shows when rows do not sum to 1
    gen = np.random.default_rng(3)
    a = gen.normal(size=(4, 3))
    T = gen.uniform(0, 2, size=(4, 3))
    _, delta = output_loss("cross_entropy", "softmax", a, T)
    np.testing.assert_allclose(delta, _softmax(a) * T.sum(axis=1, keepdims=True) - T, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss,output", [("cross_entropy", "softmax"), ("binary_cross_entropy", "logistic")])
def test_fused_cross_entropies_are_stable_at_extreme_logits(loss, output):
    # conftest turns overflow / log(0) into errors: the fused forms must avoid both.
    a = np.array([[1000.0, 0.0, -1000.0], [-800.0, 800.0, 0.0]])
    T = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    L, delta = output_loss(loss, output, a, T)
    assert np.isfinite(L) and np.all(np.isfinite(delta))
    assert L > 1000.0  # confidently wrong: a large but exact loss, not inf


def test_output_loss_docstring_example():
    L, delta = output_loss("squared", "identity", np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))
    assert L == 2.5 and delta.tolist() == [[1.0, 2.0]]


# -- the registry and its validation ---------------------------------------------------


def test_registry_pairs():
    assert set(LOSSES) == {"squared", "cross_entropy", "binary_cross_entropy"}
    for spec in LOSSES.values():
        assert set(spec.outputs) <= set(OUTPUTS)
    assert {"identity", "logistic", "tanh", "softmax"} <= set(LOSSES["squared"].outputs)
    assert LOSSES["squared"].outputs[0] == "identity"
    assert LOSSES["cross_entropy"].outputs == ("softmax",)
    assert LOSSES["binary_cross_entropy"].outputs == ("logistic",)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_resolve_output_default_is_first(loss):
    spec, out = resolve_output(loss, None)
    assert spec is LOSSES[loss] and out == LOSSES[loss].outputs[0]


def test_resolve_output_rejects_incompatible_and_unknown():
    with pytest.raises(ValueError, match=r"output='identity' cannot be used with loss='cross_entropy'.*\['softmax'\]"):
        resolve_output("cross_entropy", "identity")
    with pytest.raises(ValueError, match=r"output must be one of .*got 'sofmax'; did you mean 'softmax'"):
        resolve_output("squared", "sofmax")
    with pytest.raises(ValueError, match=r"loss must be one of .*got 'cross_entropie'; did you mean 'cross_entropy'"):
        get_loss("cross_entropie")


def test_encode_targets_class_indices_and_one_hot():
    np.testing.assert_array_equal(encode_targets([2, 0], 3, "cross_entropy"), [[0, 0, 1], [1, 0, 0]])
    one_hot = np.eye(3)[[1, 2]]
    np.testing.assert_array_equal(encode_targets(one_hot, 3, "cross_entropy"), one_hot)
    # integer-valued floats are accepted as labels
    np.testing.assert_array_equal(encode_targets(np.array([1.0, 0.0]), 2, "squared"), [[0, 1], [1, 0]])
    # one logistic output: 0/1 labels as a column; one real output: values as a column
    np.testing.assert_array_equal(encode_targets([0, 1, 1], 1, "binary_cross_entropy"), [[0], [1], [1]])
    np.testing.assert_array_equal(encode_targets([0.5, -2.0], 1, "squared"), [[0.5], [-2.0]])
    assert encode_targets([0, 1], 2, "cross_entropy").dtype == np.float64


@pytest.mark.parametrize(
    "Y,n_out,loss,pattern",
    [
        ([0, 3, 1], 3, "cross_entropy", r"Y class labels must be in \[0, 2\].*got \[3\]"),
        ([0, -1, 1], 3, "cross_entropy", r"Y class labels must be in \[0, 2\].*got \[-1\]"),
        ([0, 1.5, 1], 3, "cross_entropy", r"Y must hold class indices \(integers\).*1\.5"),
        ([0, np.nan], 3, "cross_entropy", r"Y must hold class indices \(integers\).*nan"),
        (np.ones((2, 2)), 3, "cross_entropy", r"Y must have shape \(n_samples,\).*\(n_samples, 3\), got shape \(2, 2\)"),
        ([[0.5], [np.inf]], 1, "squared", r"Y must be finite, got NaN or inf"),
        ([0.0, 2.0], 1, "binary_cross_entropy", r"Y for binary_cross_entropy must be in \[0, 1\].*got values in \[0, 2\]"),
        (np.array(["a", "b"]), 2, "cross_entropy", r"Y must be a numeric array, got dtype <U1"),
    ],
)
def test_encode_targets_rejects_bad_targets(Y, n_out, loss, pattern):
    with pytest.raises(ValueError, match=pattern):
        encode_targets(Y, n_out, loss)


def test_accuracy():
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    T = np.array([[0, 1], [0, 1], [0, 1]])
    assert losses.accuracy(scores, T) == pytest.approx(2 / 3)
    assert losses.accuracy(np.array([[0.7], [0.2]]), np.array([[1.0], [1.0]])) == 0.5


def test_output_transform_softmax_rows_sum_to_one():
    a = np.random.default_rng(0).normal(size=(5, 4))
    y = losses.output_transform("softmax", a)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(losses.output_transform("tanh", a), np.tanh(a))
    assert activations.ACTIVATIONS is ACTIVATIONS
