"""ElmanRNN: BPTT gradients against central differences and torch autograd, truncated BPTT
against an independent oracle, streams, the model contract and input validation."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import log_softmax

from rbp import check_grad
from rbp.core.activations import ACTIVATIONS
from rbp.core.loop import Trainer
from rbp.core.losses import LOSSES
from rbp.core.optimizers import sgd
from rbp.recurrent.elman import ElmanRNN
from rbp.recurrent.stream import fit_stream

# Every (loss, output) pair the core offers.
LOSS_OUTPUTS = [(loss, out) for loss, spec in LOSSES.items() for out in spec.outputs]


def make_data(net, B, T, rng, *, mask="all"):
    """Random inputs, targets valid for the net's loss, and a mask of the named kind."""
    X = rng.normal(size=(B, T, net.n_in))
    if net.loss.name == "cross_entropy":
        Y = rng.integers(0, net.n_out, size=(B, T))
    elif net.loss.name == "binary_cross_entropy":
        Y = rng.integers(0, 2, size=(B, T, net.n_out)).astype(float)
    else:
        Y = rng.normal(size=(B, T, net.n_out))
    if mask == "all":
        m = None
    elif mask == "lengths":  # variable lengths, the first sequence full, one of length 1
        lengths = np.concatenate([[T], rng.integers(1, T + 1, size=B - 2), [1]])
        m = np.arange(T) < lengths[:, None]
    elif mask == "last":  # targets only at the last step
        m = np.zeros((B, T), bool)
        m[:, -1] = True
    elif mask == "sparse":  # targets at chosen steps
        m = rng.random((B, T)) < 0.4
        m[np.arange(B), rng.integers(0, T, size=B)] = True
    return X, Y, m


def perturbed_init(net, rng, scale=0.3):
    """Initial weights plus noise, so biases and h0 are not zero."""
    return net.init(rng) + scale * rng.normal(size=net.n_params)


# -- gradients: central differences --------------------------------------------------


@pytest.mark.parametrize("learn_h0", [False, True], ids=["zero_h0", "learned_h0"])
@pytest.mark.parametrize("mask", ["all", "lengths", "last", "sparse"])
@pytest.mark.parametrize("T", [1, 2, 7, 20])
def test_bptt_gradient_matches_central_differences(T, mask, learn_h0):
    rng = np.random.default_rng(T)
    net = ElmanRNN(2, 3, 2, learn_h0=learn_h0)
    theta = perturbed_init(net, rng)
    X, Y, m = make_data(net, 3, T, rng, mask=mask)
    check_grad(net.loss_and_grad, theta, (X, Y, m), rtol=1e-7)


@pytest.mark.parametrize("loss,output", LOSS_OUTPUTS)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_bptt_gradient_every_activation_and_loss(activation, loss, output):
    rng = np.random.default_rng(1)
    net = ElmanRNN(2, 3, 3, activation, output, loss, learn_h0=True)
    theta = perturbed_init(net, rng)
    X, Y, m = make_data(net, 4, 6, rng, mask="lengths")
    check_grad(net.loss_and_grad, theta, (X, Y, m), rtol=1e-7)


def test_gradient_check_detects_a_wrong_gradient():
    """The check above can fail: drop the recurrent term of the recursion and it does."""
    rng = np.random.default_rng(0)
    net = ElmanRNN(2, 3, 2)
    theta = perturbed_init(net, rng)
    X, Y, m = make_data(net, 3, 5, rng)
    truncated = ElmanRNN(2, 3, 2, truncation=(1, 1))
    res = check_grad(truncated.loss_and_grad, theta, (X, Y, m), raise_on_failure=False)
    assert not res.success and res.rel_error > 1e-3


# -- gradients: torch autograd -------------------------------------------------------


def torch_loss_grad(net, theta, X, Y, mask):
    """Loss and gradient by torch autograd of a straightforward Elman forward pass."""
    torch = pytest.importorskip("torch")
    _, T, mask = net.prepare(X, Y, mask)
    p = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in net.params.unravel(theta).items()}
    acts = {
        "identity": lambda a: a, "tanh": torch.tanh, "logistic": torch.sigmoid, "relu": torch.relu,
        "softplus": lambda a: torch.logaddexp(torch.zeros_like(a), a),
    }
    f = acts[net.activation.name]
    Xt, Tt, mt = torch.tensor(X), torch.tensor(T), torch.tensor(mask, dtype=torch.float64)
    B, n_steps = X.shape[:2]
    h = p["h0"].expand(B, -1) if net.learn_h0 else torch.zeros(B, net.n_hidden, dtype=torch.float64)
    total = 0.0
    for t in range(n_steps):
        h = f(Xt[:, t] @ p["W_in"] + h @ p["W_hh"] + p["b_h"])
        o = h @ p["W_out"] + p["b_out"]
        tt = Tt[:, t]
        if net.loss.name == "cross_entropy":
            step = -(tt * torch.log_softmax(o, dim=-1)).sum(-1)
        elif net.loss.name == "binary_cross_entropy":
            step = (torch.logaddexp(torch.zeros_like(o), o) - tt * o).sum(-1)
        else:
            y = torch.softmax(o, dim=-1) if net.output == "softmax" else acts[net.output](o)
            step = 0.5 * ((y - tt) ** 2).sum(-1)
        total = total + (step * mt[:, t]).sum()
    total = total / mt.sum()
    total.backward()
    grad = np.concatenate([p[k].grad.numpy().ravel() for k in net.params.names])
    return float(total.detach()), grad


TORCH_CASES = [("tanh", loss, out) for loss, out in LOSS_OUTPUTS] + [
    (act, "squared", "identity") for act in sorted(ACTIVATIONS) if act != "tanh"
]


@pytest.mark.parametrize("activation,loss,output", TORCH_CASES)
def test_bptt_gradient_matches_torch_autograd(activation, loss, output):
    rng = np.random.default_rng(2)
    net = ElmanRNN(3, 16, 4, activation, output, loss, learn_h0=True)
    theta = perturbed_init(net, rng, scale=0.1)
    X, Y, m = make_data(net, 5, 20, rng, mask="lengths")
    loss_value, grad = net.loss_and_grad(theta, X, Y, m)
    ref_loss, ref_grad = torch_loss_grad(net, theta, X, Y, m)
    assert loss_value == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-10 * np.abs(ref_grad).max())


def test_forward_matches_torch_nn_rnn():
    """Same weights in torch.nn.RNN (tanh) give the same hidden states."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    net = ElmanRNN(3, 8, 2)
    theta = perturbed_init(net, rng)
    p = net.params.unravel(theta)
    X = rng.normal(size=(4, 12, 3))
    rnn = torch.nn.RNN(3, 8, nonlinearity="tanh", batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(p["W_in"].T))
        rnn.weight_hh_l0.copy_(torch.tensor(p["W_hh"].T))
        rnn.bias_ih_l0.copy_(torch.tensor(p["b_h"]))
        rnn.bias_hh_l0.zero_()
        states, _ = rnn(torch.tensor(X))
    _, H = net.run(theta, X)
    np.testing.assert_allclose(H, states.numpy(), rtol=0, atol=1e-13)


# -- truncated BPTT -------------------------------------------------------------------


@pytest.mark.parametrize("k1,k2", [(1, 7), (3, 7), (7, 7), (2, 30), (1, 100)])
def test_truncated_with_k2_at_least_T_is_full_bptt_exactly(k1, k2):
    rng = np.random.default_rng(4)
    full = ElmanRNN(2, 4, 3, loss="cross_entropy", learn_h0=True)
    trunc = ElmanRNN(2, 4, 3, loss="cross_entropy", learn_h0=True, truncation=(k1, k2))
    theta = perturbed_init(full, rng)
    X, Y, m = make_data(full, 4, 7, rng, mask="lengths")
    lf, gf = full.loss_and_grad(theta, X, Y, m)
    lt, gt = trunc.loss_and_grad(theta, X, Y, m)
    assert lf == lt
    np.testing.assert_array_equal(gt, gf)


def slow_states(net, theta, X):
    """h_t for every sequence and step (t = -1 .. T-1) by plain per-sample loops."""
    p = net.params.unravel(theta)
    f = net.activation.f
    B, T, _ = X.shape
    hs = np.zeros((B, T + 1, net.n_hidden))
    for b in range(B):
        h = p["h0"].copy() if net.learn_h0 else np.zeros(net.n_hidden)
        hs[b, 0] = h
        for t in range(T):
            h = f(X[b, t] @ p["W_in"] + h @ p["W_hh"] + p["b_h"])
            hs[b, t + 1] = h
    return hs


def slow_window_loss(net, theta, X, T, mask, start, end, lo, h_frozen, n_masked):
    """sum_{s in [start, end)} m_s l_s / N, run from the frozen state h_{lo-1} (h0(theta) if lo == 0)."""
    p = net.params.unravel(theta)
    total = 0.0
    for b in range(X.shape[0]):
        if lo == 0:
            h = p["h0"].copy() if net.learn_h0 else np.zeros(net.n_hidden)
        else:
            h = h_frozen[b, lo]  # slow_states index lo is h_{lo-1}
        for t in range(lo, end):
            h = np.tanh(X[b, t] @ p["W_in"] + h @ p["W_hh"] + p["b_h"])
            if t >= start and mask[b, t]:
                o = h @ p["W_out"] + p["b_out"]
                if net.loss.name == "cross_entropy":
                    total -= T[b, t] @ log_softmax(o)
                else:
                    total += 0.5 * np.sum((o - T[b, t]) ** 2)
    return total / n_masked


def truncated_oracle(net, theta, X, Y, mask, k1, k2, eps=1e-5):
    """Williams & Peng's truncated gradient, by its definition: for every window of k1 steps,
    the central-difference gradient of the window's loss with the state k2 steps back frozen."""
    X, T, mask = net.prepare(X, Y, mask)
    n_steps, n_masked = X.shape[1], mask.sum()
    frozen = slow_states(net, theta, X)
    grad = np.zeros_like(theta)
    for start in range(0, n_steps, k1):
        end = min(start + k1, n_steps)
        lo = max(0, end - k2)
        for i in range(theta.size):
            e = np.zeros_like(theta)
            e[i] = eps
            fp = slow_window_loss(net, theta + e, X, T, mask, start, end, lo, frozen, n_masked)
            fm = slow_window_loss(net, theta - e, X, T, mask, start, end, lo, frozen, n_masked)
            grad[i] += (fp - fm) / (2 * eps)
    return grad


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
@pytest.mark.parametrize("k1,k2", [(1, 1), (1, 3), (2, 3), (3, 3), (2, 5), (4, 6)])
def test_truncated_matches_independent_oracle_and_differs_from_full(k1, k2, loss):
    rng = np.random.default_rng(5)
    kw = dict(loss=loss, learn_h0=True)
    full = ElmanRNN(2, 3, 2, **kw)
    trunc = ElmanRNN(2, 3, 2, **kw, truncation=(k1, k2))
    W = perturbed_init(full, rng, scale=0.5)
    X, Y, m = make_data(full, 3, 7, rng, mask="sparse")
    lt, gt = trunc.loss_and_grad(W, X, Y, m)
    lf, gf = full.loss_and_grad(W, X, Y, m)
    assert lt == lf  # the loss is the full one; only the gradient is truncated
    oracle = truncated_oracle(trunc, W, X, Y, m, k1, k2)
    assert np.linalg.norm(gt - oracle) / np.linalg.norm(oracle) < 1e-7
    assert np.linalg.norm(gt - gf) / np.linalg.norm(gf) > 1e-3
    # the readout gradient is never truncated
    sl = slice(full.params.slices["W_out"].start, full.params.slices["b_out"].stop)
    np.testing.assert_allclose(gt[sl], gf[sl], rtol=0, atol=1e-15)


def test_truncation_is_validated():
    for bad, match in [
        ((3, 1), "k2 >= k1"),
        ((0, 2), r"truncation\[0\] \(k1\) must be an integer >= 1, got 0"),
        ("ab", "pair"),
        (5, "pair"),
        ((2.0, 3), "k1"),
    ]:
        with pytest.raises(ValueError, match=match):
            ElmanRNN(1, 2, 1, truncation=bad)


# -- streams --------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 29), max_size=5, unique=True), learn_h0=st.booleans())
def test_stream_in_chunks_gives_the_same_states_as_one_pass(cuts, learn_h0):
    rng = np.random.default_rng(6)
    net = ElmanRNN(3, 5, 2, loss="cross_entropy", learn_h0=learn_h0)
    theta = perturbed_init(net, rng)
    X = rng.normal(size=(4, 30, 3))
    Yhat, H = net.run(theta, X)
    bounds = [0] + sorted(cuts) + [30]
    parts, outs, h = [], [], None
    for a, b in zip(bounds[:-1], bounds[1:]):
        y, s = net.run(theta, X[:, a:b], h0=h)
        parts.append(s)
        outs.append(y)
        h = s[:, -1]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), H, rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), Yhat, rtol=0, atol=1e-14)


def test_fit_stream_single_chunk_is_one_full_bptt_step():
    rng = np.random.default_rng(7)
    net = ElmanRNN(2, 4, 2, learn_h0=True)
    theta = perturbed_init(net, rng)
    X, Y, m = make_data(net, 3, 12, rng, mask="sparse")
    res = fit_stream(net, theta, X, Y, m, k1=12, k2=12, optimizer=sgd(0.1), epochs=1)
    _, g = net.loss_and_grad(theta, X, Y, m)
    np.testing.assert_array_equal(res.x, theta + g * -0.1)
    assert res.history["n_chunks"] == [1]


def test_fit_stream_carries_the_state_and_updates_after_every_chunk():
    """Replays BPTT(k2=3; k1=2) on 6 steps by hand: windows [0,2), [2,4), [4,6)
    backpropagated through [0,2), [1,4), [3,6)."""
    rng = np.random.default_rng(8)
    net = ElmanRNN(2, 4, 2, loss="cross_entropy", learn_h0=True)
    theta = perturbed_init(net, rng)
    X, Y, m = make_data(net, 3, 6, rng)
    res = fit_stream(net, theta, X, Y, m, k1=2, k2=3, optimizer=sgd(0.05), epochs=1)
    Xp, T, mask = net.prepare(X, Y, m)

    def window(theta, lo, start, end, h):
        mw = mask[:, lo:end].copy()
        mw[:, : start - lo] = False
        _, g, states = net.loss_grad_state(theta, Xp[:, lo:end], T[:, lo:end], mw, h0=h)
        return theta + g * -0.05, states

    th, s1 = window(theta, 0, 0, 2, None)  # states h_0, h_1
    th, s2 = window(th, 1, 2, 4, s1[:, 0])  # from h_0 (frozen): states h_1', h_2', h_3'
    th, s3 = window(th, 3, 4, 6, s2[:, 1])  # from h_2'
    np.testing.assert_array_equal(res.x, th)
    np.testing.assert_array_equal(res.final_state, s3[:, -1])


def test_fit_stream_validates_its_arguments():
    net = ElmanRNN(1, 2, 1)
    X, Y = np.zeros((2, 5, 1)), np.zeros((2, 5, 1))
    with pytest.raises(ValueError, match="k1 must be given"):
        fit_stream(net, None, X, Y)
    with pytest.raises(ValueError, match="k2 >= k1"):
        fit_stream(net, None, X, Y, k1=3, k2=2)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        fit_stream(net, None, X, Y, k1=2, epochs=0)
    with pytest.raises(ValueError, match="mask must have shape"):
        fit_stream(net, None, X, Y, np.ones((2, 4), bool), k1=2)


# -- the model contract ---------------------------------------------------------------


def test_parameter_names_shapes_and_views():
    net = ElmanRNN(3, 5, 2, learn_h0=True)
    theta = net.init(np.random.default_rng(0))
    p = net.params.unravel(theta)
    assert {k: v.shape for k, v in p.items()} == {
        "W_in": (3, 5), "W_hh": (5, 5), "b_h": (5,), "W_out": (5, 2), "b_out": (2,), "h0": (5,)
    }
    assert theta.shape == (net.n_params,) == (15 + 25 + 5 + 10 + 2 + 5,)
    np.testing.assert_allclose(p["W_hh"] @ p["W_hh"].T, np.eye(5), atol=1e-12)  # orthogonal init
    p["h0"][0] = 7.0
    assert theta[net.params.slices["h0"]][0] == 7.0
    assert "h0" not in ElmanRNN(3, 5, 2).params.names
    np.testing.assert_array_equal(net.init(np.random.default_rng(0)), net.init(np.random.default_rng(0)))
    assert set(net.params.decay) == {"W_in", "W_hh", "W_out"}


def test_loss_is_the_mean_of_the_per_step_losses_over_masked_steps():
    rng = np.random.default_rng(9)
    net = ElmanRNN(2, 4, 3, loss="cross_entropy")
    theta = net.init(rng)
    X, Y, m = make_data(net, 4, 9, rng, mask="lengths")
    P = net.predict(theta, X)
    b, t = np.nonzero(m)
    expected = -np.mean(np.log(P[b, t, Y[b, t]]))
    assert net.loss_and_grad(theta, X, Y, m)[0] == pytest.approx(expected, rel=1e-12)
    data = net.prepare(X, Y, m)
    assert net.evaluate(theta, *data)["loss"] == pytest.approx(expected, rel=1e-12)


def test_padding_after_the_end_does_not_affect_loss_or_gradient():
    rng = np.random.default_rng(10)
    net = ElmanRNN(2, 4, 2, learn_h0=True)
    theta = perturbed_init(net, rng)
    X, Y, m = make_data(net, 4, 8, rng, mask="lengths")
    l1, g1 = net.loss_and_grad(theta, X, Y, mask=m)
    X2, Y2 = X.copy(), Y.copy()
    X2[~m] = 1e3 * rng.normal(size=X2[~m].shape)  # steps after each sequence's end
    Y2[~m] = -5.0
    l2, g2 = net.loss_and_grad(theta, X2, Y2, m)
    assert l1 == l2
    np.testing.assert_array_equal(g1, g2)


def test_accuracy_counts_only_masked_steps():
    net = ElmanRNN(1, 2, 3, loss="cross_entropy")
    theta = net.init(0)
    X = np.zeros((2, 4, 1))
    pred = net.predict_classes(theta, X)  # the same class at every step (zero input)
    Y = (pred + 1) % 3
    m = np.zeros((2, 4), bool)
    m[:, 1] = True
    Y[:, 1] = pred[:, 1]  # right only where masked
    assert net.score(theta, X, Y, m) == 1.0
    assert net.score(theta, X, Y) == 0.25
    assert net.metrics == ("loss", "accuracy")


def test_scipy_minimize_trains_it_unchanged():
    rng = np.random.default_rng(11)
    net = ElmanRNN(2, 4, 1)
    X, Y, m = make_data(net, 8, 6, rng, mask="last")
    theta = net.init(rng)
    res = minimize(net.loss_and_grad, theta, args=(X, Y, m), jac=True, method="L-BFGS-B", options={"maxiter": 30})
    assert res.fun < 0.5 * net.loss_and_grad(theta, X, Y, m)[0]


def test_core_trainer_fits_it_unchanged_and_reproducibly():
    from rbp.data.sequences import temporal_xor

    ds = temporal_xor(32, 8, rng=0)
    net = ElmanRNN(1, 6, 1, loss="binary_cross_entropy")
    trainer = Trainer(net, "adam", learning_rate=0.05, epochs=15, batch_size=8, clip_norm=5.0, progress=False)
    r1 = trainer.fit(ds.X, ds.Y, mask=ds.mask, rng=0)
    r2 = trainer.fit(ds.X, ds.Y, mask=ds.mask, rng=0)
    np.testing.assert_array_equal(r1.x, r2.x)
    h = r1.history
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["n_steps"] == [32 * 8] * 15  # masked steps, summed per epoch
    assert "accuracy" in h
    val = Trainer(net, "adam", learning_rate=0.05, epochs=2, validation_fraction=0.25, progress=False)
    assert "val_accuracy" in val.fit(ds.X, ds.Y, mask=ds.mask, rng=0).history


def test_float32_follows_float64():
    rng = np.random.default_rng(12)
    n64 = ElmanRNN(2, 4, 3, loss="cross_entropy", learn_h0=True)
    n32 = ElmanRNN(2, 4, 3, loss="cross_entropy", learn_h0=True, dtype=np.float32)
    theta = perturbed_init(n64, rng)
    X, Y, m = make_data(n64, 3, 10, rng, mask="lengths")
    l64, g64 = n64.loss_and_grad(theta, X, Y, m)
    l32, g32 = n32.loss_and_grad(theta.astype(np.float32), X, Y, m)
    assert g32.dtype == np.float32 and n32.predict(theta, X).dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5)


def test_explicit_h0_replaces_the_initial_state_and_gets_no_gradient():
    rng = np.random.default_rng(13)
    net = ElmanRNN(2, 3, 2, learn_h0=True)
    theta = perturbed_init(net, rng)
    X, Y, m = make_data(net, 2, 5, rng)
    h0 = net.params.unravel(theta)["h0"]
    l1, g1 = net.loss_and_grad(theta, X, Y, m)
    l2, g2, _ = net.loss_grad_info(theta, X, Y, m, h0=np.tile(h0, (2, 1)))
    assert l1 == l2
    assert np.all(g2[net.params.slices["h0"]] == 0)
    np.testing.assert_array_equal(g1[: net.params.slices["h0"].start], g2[: net.params.slices["h0"].start])


# -- invalid input --------------------------------------------------------------------


def _bad_inputs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 5, 2))
    Y = rng.integers(0, 3, size=(3, 5))
    nan_X = X.copy()
    nan_X[1, 2, 0] = np.nan
    float_Y = rng.normal(size=(3, 5, 3))
    nan_Y = float_Y.copy()
    nan_Y[0, 0, 1] = np.nan
    empty_row = np.ones((3, 5), bool)
    empty_row[1] = False
    S = r"got shape \("  # every shape message ends with what it received
    return [
        ("mask shape", (X, Y, np.ones((3, 4), bool)),
         r"mask must have shape \(batch, time\) = \(3, 5\).*" + S + r"3, 4\)"),
        ("mask transposed", (X, Y, np.ones((5, 3), bool)), r"mask.*\(3, 5\).*" + S + r"5, 3\)"),
        ("mask values", (X, Y, np.full((3, 5), 2)), r"mask must be boolean .*got dtype int64"),
        ("zero length", (X[:, :0], Y[:, :0], None),
         r"X must have at least one time step .*length 0.*" + S + r"3, 0, 2\)"),
        ("empty sequence", (X, Y, empty_row), r"mask must select at least one step of every sequence.*\[1\]"),
        ("no sequences", (X[:0], Y[:0], None), r"X must contain at least one sequence, " + S + r"0, 5, 2\)"),
        ("Y too short", (X, Y[:, :4], None),
         r"Y must have shape \(batch, time\) = \(3, 5\).*\(3, 5, 3\).*" + S + r"3, 4\)"),
        ("Y wrong n_out", (X, float_Y[..., :2], None), r"Y must have shape .*\(3, 5, 3\).*" + S + r"3, 5, 2\)"),
        ("Y 1-D", (X, Y[:, 0], None), r"Y must have shape .*" + S + r"3,\)"),
        ("X features", (X[..., :1], Y, None), r"X must have 2 features \(last axis\), " + S + r"3, 5, 1\)"),
        ("X 2-D", (X[:, :, 0], Y, None),
         r"X must be a 3-D array of shape \(batch, time, features\), " + S + r"3, 5\)"),
        ("X NaN", (nan_X, Y, None), r"X must be finite, got nan at index \(1, 2, 0\)"),
        ("Y NaN", (X, nan_Y, None), r"Y must be finite, got NaN"),
        ("label out of range", (X, np.where(Y == 0, 3, Y), None),
         r"Y class labels must be in \[0, 2\] for 3 output units, got \[3"),
        ("negative label", (X, Y - 1, None), r"Y class labels must be in \[0, 2\].*got \[-1"),
        ("non-integer labels", (X, Y + 0.5, None), r"Y must hold class indices"),
    ]


@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda c: c[0])
def test_invalid_input_raises_naming_argument_expected_and_received(case):
    _, (X, Y, mask), match = case
    net = ElmanRNN(2, 3, 3, loss="cross_entropy")
    theta = net.init(0)
    with pytest.raises(ValueError, match=match):
        net.loss_and_grad(theta, X, Y, mask)
    with pytest.raises(ValueError, match=match):
        Trainer(net, epochs=1, progress=False).fit(X, Y, mask=mask)


def test_invalid_theta_h0_and_constructor_arguments():
    net = ElmanRNN(2, 3, 1)
    X, Y = np.zeros((2, 4, 2)), np.zeros((2, 4))
    theta = net.init(0)
    with pytest.raises(ValueError, match=rf"theta must be a 1-D array of {net.n_params} parameters.*got shape \(5,\)"):
        net.loss_and_grad(np.zeros(5), X, Y)
    expected = "h0 must have shape (n_hidden,) = (3,) or (batch, n_hidden) = (2, 3), got shape (2, 4)"
    with pytest.raises(ValueError, match=re.escape(expected)):
        net.run(theta, X, h0=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="h0 must be finite"):
        net.loss_grad_info(theta, X, Y, h0=np.full(3, np.inf))
    with pytest.raises(ValueError, match="n_hidden must be an integer >= 1, got 0"):
        ElmanRNN(2, 0, 1)
    with pytest.raises(ValueError, match="activation must be one of .*did you mean 'tanh'"):
        ElmanRNN(2, 3, 1, activation="tahn")
    with pytest.raises(ValueError, match="output='softmax' cannot be used with loss='binary_cross_entropy'"):
        ElmanRNN(2, 3, 1, output="softmax", loss="binary_cross_entropy")
    with pytest.raises(ValueError, match="learn_h0 must be a bool, got 1"):
        ElmanRNN(2, 3, 1, learn_h0=1)
    with pytest.raises(ValueError, match="dtype must be float64 or float32, got int64"):
        ElmanRNN(2, 3, 1, dtype=np.int64)
