"""Backprop-through-time speed: rbp's ElmanRNN vs a hand-written numpy floor and torch.

Claims measured (issue "Backpropagation through time"): the loss and full-BPTT
gradient of one mini-batch for an Elman net with n_in 8, 128 tanh hidden units,
8 linear outputs, squared loss averaged over every step, T = 100 steps,
batch 32, float64:

* rbp (``ElmanRNN.loss_grad_info(theta, *model.prepare(X, Y), check=False)``,
  exactly what the training loop calls) takes <= 1.3x the numpy floor;
* rbp is >= 1.5x faster than ``torch.nn.RNN(nonlinearity="tanh",
  batch_first=True, dtype=float64)`` + ``nn.Linear`` readout, forward and
  ``backward()`` by autograd (gradients zeroed with ``set_to_none``), when
  torch is installed (skipped otherwise).

The floor is the most straightforward efficient numpy BPTT: time-major data
prepared outside the timing, the input projections of all steps in one
product, a ``tanh`` loop forward, one readout product, ``1 - h^2`` for all
steps at once, a delta loop backward, and the weight gradients each as one
product. Before timing, the script asserts that rbp, the floor and torch give
the same loss and gradient (to 1e-12 relative). Also reported, with no claim:
targets only at the last step (adding-problem style), truncated BPTT(10, 20),
and float32.

Timings are interleaved (see ``_common.interleaved``) and reported as medians;
ratios are medians of per-repeat ratios. ``torch.set_num_threads`` is set to
numpy's BLAS thread count. Exit code 0 (a report) unless ``--check`` and a
claim fails.

Usage: ``python benchmarks/bptt.py [--repeats N] [--quick] [--check]``
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    blas_threads, claim, header, interleaved, median, optional_import, paired_ratio, table,
)

from rbp.recurrent.elman import ElmanRNN  # noqa: E402

N_IN, N_HIDDEN, N_OUT, T_STEPS, BATCH = 8, 128, 8, 100, 32
SEED = 0
BARS = {"floor": 1.3, "torch": 1.5}


def make_problem():
    rng = np.random.default_rng(SEED)
    model = ElmanRNN(N_IN, N_HIDDEN, N_OUT)
    theta = model.init(rng)
    theta[model.params.slices["b_h"]] = 0.1 * rng.normal(size=N_HIDDEN)
    X = rng.normal(size=(BATCH, T_STEPS, N_IN))
    Y = rng.normal(size=(BATCH, T_STEPS, N_OUT))
    return model, theta, X, Y


# -- the numpy floor ------------------------------------------------------------------------


def floor_loss_grad(W_in, W_hh, b_h, W_out, b_out, Xt, Yt):
    """Full BPTT, tanh Elman net, squared loss averaged over all steps; Xt, Yt time-major (T, B, .)."""
    T, B, F = Xt.shape
    H = W_hh.shape[0]
    n = T * B
    Xf = Xt.reshape(n, F)
    A = (Xf @ W_in + b_h).reshape(T, B, H)
    Hs = np.zeros((T + 1, B, H))
    for t in range(T):
        Hs[t + 1] = np.tanh(A[t] + Hs[t] @ W_hh)
    Hf = Hs[1:].reshape(n, H)
    R = Hf @ W_out + b_out - Yt.reshape(n, -1)
    loss = 0.5 * np.sum(R * R) / n
    E = R / n
    gW_out, gb_out = Hf.T @ E, E.sum(axis=0)
    dH = (E @ W_out.T).reshape(T, B, H)
    Fp = 1.0 - Hs[1:] ** 2
    D = np.empty((T, B, H))
    dh = np.zeros((B, H))
    for t in range(T - 1, -1, -1):
        D[t] = (dH[t] + dh) * Fp[t]
        dh = D[t] @ W_hh.T
    Df = D.reshape(n, H)
    gW_in, gW_hh, gb_h = Xf.T @ Df, Hs[:-1].reshape(n, H).T @ Df, Df.sum(axis=0)
    return loss, np.concatenate([gW_in.ravel(), gW_hh.ravel(), gb_h, gW_out.ravel(), gb_out])


def make_floor(model, theta, X, Y):
    p = {k: v.copy() for k, v in model.params.unravel(theta).items()}
    Xt = np.ascontiguousarray(X.transpose(1, 0, 2))
    Yt = np.ascontiguousarray(Y.transpose(1, 0, 2))
    return lambda: floor_loss_grad(p["W_in"], p["W_hh"], p["b_h"], p["W_out"], p["b_out"], Xt, Yt)


# -- torch ----------------------------------------------------------------------------------


def make_torch(torch, model, theta, X, Y):
    nn = torch.nn
    p = model.params.unravel(theta)
    rnn = nn.RNN(N_IN, N_HIDDEN, nonlinearity="tanh", batch_first=True, dtype=torch.float64)
    lin = nn.Linear(N_HIDDEN, N_OUT, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["W_in"].T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["W_hh"].T.copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["b_h"].copy()))
        rnn.bias_hh_l0.zero_()
        lin.weight.copy_(torch.from_numpy(p["W_out"].T.copy()))
        lin.bias.copy_(torch.from_numpy(p["b_out"].copy()))
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    params = list(rnn.parameters()) + list(lin.parameters())
    n = X.shape[0] * X.shape[1]

    def step():
        for q in params:
            q.grad = None
        out, _ = rnn(Xt)
        loss = 0.5 * ((lin(out) - Yt) ** 2).sum() / n
        loss.backward()
        return loss

    def gradient():
        loss = step()
        g = [rnn.weight_ih_l0.grad.T, rnn.weight_hh_l0.grad.T, rnn.bias_ih_l0.grad, lin.weight.grad.T, lin.bias.grad]
        assert torch.allclose(rnn.bias_ih_l0.grad, rnn.bias_hh_l0.grad, rtol=1e-12, atol=0)
        return float(loss.detach()), np.concatenate([x.numpy().ravel() for x in g])

    return step, gradient


# -- checks and timing ----------------------------------------------------------------------


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check_math(model, theta, data, floor, torch_gradient):
    lines = []
    loss, grad, _ = model.loss_grad_info(theta, *data, check=False)
    fl, fg = floor()
    assert abs(loss - fl) <= 1e-12 * abs(fl) and rel(grad, fg) <= 1e-12, "rbp and the numpy floor disagree"
    lines.append(f"rbp   == floor: |dloss|/loss = {abs(loss - fl) / fl:.1e}, |dgrad|/|grad| = {rel(grad, fg):.1e}"
                 " (tol 1e-12)")
    if torch_gradient is not None:
        tl, tg = torch_gradient()
        assert abs(loss - tl) <= 1e-12 * abs(tl) and rel(grad, tg) <= 1e-12, "rbp and torch disagree"
        lines.append(f"rbp   == torch: |dloss|/loss = {abs(loss - tl) / tl:.1e}, |dgrad|/|grad| = {rel(grad, tg):.1e}"
                     " (tol 1e-12)")
    return lines


def report(title, samples, skipped=()):
    rows = []
    for name, xs in samples.items():
        med = median(xs)
        rows.append([name, f"{med * 1e3:.3f}", f"{(max(xs) - min(xs)) / med * 100:.0f}%",
                     f"{paired_ratio(xs, samples['numpy floor']):.2f}x" if "numpy floor" in samples else "",
                     f"{paired_ratio(xs, samples['rbp']):.2f}x"])
    for name in skipped:
        rows.append([name, "skipped (not installed)", "", "", ""])
    out = f"\n{title}\n" + table(["method", "median ms", "spread", "/ floor", "/ rbp"], rows)
    if any((max(xs) - min(xs)) > 0.25 * median(xs) for xs in samples.values()):
        out += "\n(noisy: some spread (max-min)/median > 25%; the paired ratios are the robust numbers)"
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help="samples per method (default 11, quick 3)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats, shorter samples")
    ap.add_argument("--check", action="store_true", help="exit 1 if a claim fails")
    args = ap.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 11)
    min_time = 0.05 if args.quick else 0.2

    torch = optional_import("torch")
    threads = blas_threads()
    if torch is not None and threads:
        torch.set_num_threads(threads)
    print(header("benchmarks/bptt.py: rbp ElmanRNN full BPTT vs numpy floor and torch.nn.RNN"))
    model, theta, X, Y = make_problem()
    data = model.prepare(X, Y)
    print(f"problem: Elman net {N_IN}-{N_HIDDEN}-{N_OUT}, tanh hidden, linear output, squared loss (mean over "
          f"steps), T={T_STEPS}, batch {BATCH}, float64, loss + full-BPTT gradient of one batch; "
          f"{repeats} repeats, samples >= {min_time * 1e3:.0f} ms, interleaved; ratios = median of paired ratios")

    floor = make_floor(model, theta, X, Y)
    torch_step = torch_gradient = None
    if torch is not None:
        torch_step, torch_gradient = make_torch(torch, model, theta, X, Y)
    for line in check_math(model, theta, data, floor, torch_gradient):
        print("check: " + line)

    methods = {
        "numpy floor": floor,
        "rbp": lambda: model.loss_grad_info(theta, *data, check=False),
    }
    if torch_step is not None:
        methods["torch nn.RNN+Linear autograd"] = torch_step
    main_samples = interleaved(methods, repeats, min_time=min_time)
    print(report("full BPTT, targets at every step", main_samples, [] if torch is not None else ["torch"]))

    # Reported without a claim: other modes of the same net.
    mask_last = np.zeros((BATCH, T_STEPS), bool)
    mask_last[:, -1] = True
    data_last = model.prepare(X, Y, mask_last)
    trunc = ElmanRNN(N_IN, N_HIDDEN, N_OUT, truncation=(10, 20))
    m32 = ElmanRNN(N_IN, N_HIDDEN, N_OUT, dtype=np.float32)
    data32, theta32 = m32.prepare(X, Y), theta.astype(np.float32)
    extra = interleaved({
        "rbp": methods["rbp"],
        "rbp, targets at the last step only": lambda: model.loss_grad_info(theta, *data_last, check=False),
        "rbp, truncated BPTT(k1=10, k2=20)": lambda: trunc.loss_grad_info(theta, *data, check=False),
        "rbp, float32": lambda: m32.loss_grad_info(theta32, *data32, check=False),
    }, max(3, repeats // 2), min_time=min_time)
    print(report("other modes (no claim)", extra))

    print()
    ratio_floor = paired_ratio(main_samples["rbp"], main_samples["numpy floor"])
    ratio_torch = None
    if torch_step is not None:
        ratio_torch = paired_ratio(main_samples["torch nn.RNN+Linear autograd"], main_samples["rbp"])
    results = [
        claim(f"rbp time / numpy floor time, T={T_STEPS}, H={N_HIDDEN}, batch {BATCH}", ratio_floor, BARS["floor"],
              higher_is_better=False),
        claim("torch nn.RNN (autograd) time / rbp time", ratio_torch, BARS["torch"], higher_is_better=True),
    ]
    for line, _ in results:
        print(line)
    failed = any(ok is False for _, ok in results)
    return 1 if (args.check and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
