"""Static backprop speed: rbp vs a hand-written numpy floor, scikit-learn and torch.

Claims measured (issue "Foundation"), on the scikit-learn digits (all 1797
samples, X/16), net 64-128-10, tanh hidden, softmax cross-entropy (mean over
the batch), plain SGD with learning rate 0.01, float64, reshuffled each epoch:

* mini-batch 32, one epoch: rbp (``rbp.core.loop.fit`` + ``optimizers.sgd`` on
  ``rbp.MLP``, data from ``model.prepare``) takes <= 1.3x the numpy floor and
  is >= 2x faster than ``MLPClassifier.partial_fit`` and than torch CPU;
* online (batch 1): rbp is >= 8x faster per tuple than torch CPU (issue "open
  extension points": the 1-D per-tuple path; the best numpy written for one
  tuple at a time, ``floor_epoch_1d``, reaches about 9x).

Every method does the same work per epoch: draw the permutation from its own
``numpy.random.default_rng(SEED)`` (so all see the same sequence of
permutations), gather each batch by fancy indexing, forward, loss (accumulated),
backward, SGD update. Before any timing the script asserts that the math
matches: one rbp epoch == one floor epoch (and one sklearn epoch) from the same
weights and permutation to 1e-12; one torch step == one floor step to 1e-10.

scikit-learn: ``MLPClassifier(solver="sgd", batch_size=32, momentum=0,
nesterovs_momentum=False, alpha=0, learning_rate="constant",
learning_rate_init=0.01, activation="tanh", shuffle=False)``; each
``partial_fit`` call is one epoch over its input in ``gen_batches`` order, so it
is handed ``X[perm], y[perm]`` (sklearn's own shuffle would draw a different
permutation). Setup (construction, the first initialising call) is not timed.
Two rows: "partial_fit" (public API; each call re-validates X and re-binarizes
y, ~0.7 ms) and "epoch only" (the private ``_fit_stochastic`` partial_fit runs,
on data validated once; skipped if that private signature changes). The claim
uses "epoch only": the epoch, not the setup.

torch: ``nn.Sequential(Linear, Tanh, Linear)`` in float64,
``nn.CrossEntropyLoss``, ``torch.optim.SGD``, no DataLoader: batches are
``X[perm[s:s+bs]]`` of a pre-made tensor. Timed with ``torch.set_num_threads``
= numpy's BLAS thread count and with 1 thread; the claims use the faster. (On
a 2-core box where another process holds a core, torch's 2-thread OpenMP
barriers stall for whole time slices, 100x slower; a probe drops such a row.)

Online mode also shows ``floor_epoch_1d``, the same math written for one
tuple at a time (1-D vectors, no fancy indexing): the most numpy reaches.

Timings are interleaved (see ``_common.interleaved``) and reported as medians;
ratios are medians of per-repeat ratios. Exit code 0 (a report) unless
``--check`` and a claim fails.

Usage: ``python benchmarks/static.py [--repeats N] [--quick] [--check]``
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

SIZES = (64, 128, 10)
LR = 0.01
BATCH = 32
SEED = 0
SK_PUBLIC = "sklearn partial_fit"
SK_EPOCH = "sklearn epoch only"
BARS = {"floor": 1.3, "sklearn": 2.0, "torch": 2.0, "torch_online": 8.0}


# -- data and the shared initial weights ---------------------------------------------


def load_digits():
    from sklearn.datasets import load_digits as _load

    d = _load()
    return d.data.astype(np.float64) / 16.0, d.target.astype(np.int64)


def split(theta, model):
    """(W1, b1, W2, b2) copies of rbp's flat theta."""
    p = model.params.unravel(theta)
    return tuple(p[k].copy() for k in ("W1", "b1", "W2", "b2"))


# -- the numpy floor ---------------------------------------------------------------------


def floor_epoch(params, X, y, order, bs, lr=LR):
    """One epoch of mini-batch SGD written directly in numpy; returns (new params, mean loss).

    Same math as rbp.MLP(loss="cross_entropy", hidden="tanh"): mean softmax
    cross-entropy over the batch, W -= lr * grad after every batch.
    """
    W1, b1, W2, b2 = (p.copy() for p in params)
    n = X.shape[0]
    rows = np.arange(bs)
    total = 0.0
    for s in range(0, n, bs):
        idx = order[s : s + bs]
        x, t = X[idx], y[idx]
        m = x.shape[0]
        r = rows[:m]
        h = x @ W1
        h += b1
        np.tanh(h, out=h)
        a = h @ W2
        a += b2
        a -= a.max(axis=1, keepdims=True)
        e = np.exp(a)
        ssum = e.sum(axis=1)
        total += float((np.log(ssum) - a[r, t]).sum())
        e /= ssum[:, None]
        e[r, t] -= 1.0
        e *= 1.0 / m  # delta at the output
        dh = e @ W2.T
        dh *= 1.0 - h * h
        W2 -= lr * (h.T @ e)
        b2 -= lr * e.sum(axis=0)
        W1 -= lr * (x.T @ dh)
        b1 -= lr * dh.sum(axis=0)
    return (W1, b1, W2, b2), total / n


def floor_epoch_1d(params, X, y, order, lr=LR):
    """The online (batch 1) floor written for one tuple at a time: 1-D vectors, outer products."""
    W1, b1, W2, b2 = (p.copy() for p in params)
    total = 0.0
    for i in order:
        x, t = X[i], y[i]
        h = x @ W1
        h += b1
        np.tanh(h, out=h)
        a = h @ W2
        a += b2
        a -= a.max()
        e = np.exp(a)
        ssum = e.sum()
        total += float(np.log(ssum) - a[t])
        e /= ssum
        e[t] -= 1.0
        dh = e @ W2.T
        dh *= 1.0 - h * h
        e *= lr
        dh *= lr
        W2 -= np.outer(h, e)
        b2 -= e
        W1 -= np.outer(x, dh)
        b1 -= dh
    return (W1, b1, W2, b2), total / len(order)


# -- rbp ----------------------------------------------------------------------------------


def make_rbp(theta0, data, bs):
    from rbp.core.loop import fit
    from rbp.core.optimizers import sgd

    model = make_model()
    opt = sgd(LR)
    gen = np.random.default_rng(SEED)

    def epoch():
        return fit(model, theta0, data, optimizer=opt, epochs=1, batch_size=bs, shuffle=True, rng=gen,
                   evaluate_train=False, progress=False).x

    return epoch


def make_model():
    import rbp

    return rbp.MLP(list(SIZES), hidden="tanh", loss="cross_entropy")


# -- peers: scikit-learn ------------------------------------------------------------------


class Peer:
    """A peer framework's net: ``run(order)`` trains one epoch over ``X[order]``,
    ``epoch()`` draws the next permutation then runs, ``set``/``get`` move weights
    as (W1, b1, W2, b2) in rbp's layout."""

    def __init__(self, run, set_weights, get_weights, n):
        self.run, self.set, self.get = run, set_weights, get_weights
        self._gen, self._n = np.random.default_rng(SEED), n

    def epoch(self):
        return self.run(self._gen.permutation(self._n))


def make_sklearn(params, X, y, bs):
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=(SIZES[1],), activation="tanh", solver="sgd", alpha=0.0, batch_size=bs,
        learning_rate="constant", learning_rate_init=LR, momentum=0.0, nesterovs_momentum=False,
        shuffle=False, max_iter=1, tol=0.0, n_iter_no_change=10**9, early_stopping=False, random_state=0,
    )
    clf.partial_fit(X[:bs], y[:bs], classes=np.arange(SIZES[-1]))  # setup: builds coefs_ and the optimizer
    assert clf.coefs_[0].dtype == np.float64 and clf.out_activation_ == "softmax"

    def set_weights(p):  # in place: sklearn's optimizer holds references to these arrays
        for dst, src in zip((clf.coefs_[0], clf.intercepts_[0], clf.coefs_[1], clf.intercepts_[1]), p):
            dst[...] = src

    def get_weights():
        return tuple(a.copy() for a in (clf.coefs_[0], clf.intercepts_[0], clf.coefs_[1], clf.intercepts_[1]))

    def run(order):
        clf.partial_fit(X[order], y[order])  # one epoch, batches in order (shuffle=False)

    set_weights(params)
    peer = Peer(run, set_weights, get_weights, X.shape[0])
    peer.epoch_only = _sklearn_epoch_only(clf, X, y, set_weights, get_weights)
    return peer


def _sklearn_epoch_only(clf, X, y, set_weights, get_weights):
    """The epoch without partial_fit's per-call input validation: the private
    ``_fit_stochastic`` that partial_fit runs, on data validated once. None if
    this sklearn's private signature is not the one we know (then only the
    public partial_fit is timed)."""
    import inspect

    known = ["X", "y", "sample_weight", "activations", "deltas", "coef_grads", "intercept_grads",
             "layer_units", "incremental"]
    try:
        if list(inspect.signature(clf._fit_stochastic).parameters) != known:
            return None
        Xv, Yv = clf._validate_input(X, y, True, reset=False)  # X as float64, Y one-hot
    except Exception:  # noqa: BLE001 - a private API: any change means "not available"
        return None
    units = [X.shape[1], SIZES[1], SIZES[2]]
    coef_grads = [np.empty((m, k)) for m, k in zip(units[:-1], units[1:])]
    intercept_grads = [np.empty(k) for k in units[1:]]

    def run(order):
        Xb = Xv[order]
        clf._fit_stochastic(Xb, Yv[order], None, [Xb, None, None], [None, None], coef_grads, intercept_grads,
                            units, True)

    return Peer(run, set_weights, get_weights, X.shape[0])


# -- peers: torch -------------------------------------------------------------------------


def make_torch(torch, params, X, y, bs, threads=None):
    """A torch peer; ``threads`` (if given) is passed to torch.set_num_threads before every epoch."""
    nn = torch.nn
    torch.manual_seed(SEED)
    net = nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.Tanh(), nn.Linear(SIZES[1], SIZES[2])).double()
    layers = (net[0].weight, net[0].bias, net[2].weight, net[2].bias)

    def set_weights(p):
        with torch.no_grad():
            for dst, src in zip(layers, p):
                dst.copy_(torch.from_numpy(src.T if src.ndim == 2 else src))

    def get_weights():
        return tuple((t.detach().numpy().T if t.ndim == 2 else t.detach().numpy()).copy() for t in layers)

    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y)
    n = X.shape[0]

    def run(order):
        if threads is not None:
            torch.set_num_threads(threads)
        order = torch.from_numpy(order)
        total = 0.0
        for s in range(0, n, bs):
            idx = order[s : s + bs]
            opt.zero_grad()
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        return total / n

    set_weights(params)
    return Peer(run, set_weights, get_weights, n)


# -- checks ------------------------------------------------------------------------------


def max_diff(p, q):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(p, q))


def check_math(model, theta0, data, X, y, torch, sklearn):
    """Assert that every method does the same arithmetic as the floor; return report lines."""
    from rbp.core.loop import fit
    from rbp.core.optimizers import sgd

    params = split(theta0, model)
    n = X.shape[0]
    order = np.random.default_rng(SEED).permutation(n)  # what every method draws first
    lines = []
    for bs in (BATCH, 1):
        ref, _ = floor_epoch(params, X, y, order, bs)
        assert max_diff(ref, params) > 1e-3, "the weights barely moved: the check would be vacuous"
        res = fit(model, theta0, data, optimizer=sgd(LR), epochs=1, batch_size=bs,
                  rng=np.random.default_rng(SEED), evaluate_train=False, progress=False)
        d = max_diff(split(res.x, model), ref)
        assert d <= 1e-12, f"rbp and the numpy floor differ by {d:.3g} after one epoch (batch {bs})"
        lines.append(f"rbp     == floor, one epoch, batch {bs:2d}: max|dW| = {d:.1e} (tol 1e-12)")
    if sklearn is not None:
        ref, _ = floor_epoch(params, X, y, order, BATCH)
        peer = make_sklearn(params, X, y, BATCH)
        peer.run(order)
        d = max_diff(peer.get(), ref)
        assert d <= 1e-12, f"sklearn and the numpy floor differ by {d:.3g} after one epoch"
        lines.append(f"sklearn == floor, one epoch, batch {BATCH:2d}: max|dW| = {d:.1e} (tol 1e-12)")
        if peer.epoch_only is not None:
            peer.set(params)
            peer.epoch_only.run(order)
            d = max_diff(peer.get(), ref)
            assert d <= 1e-12, f"sklearn (epoch only) and the numpy floor differ by {d:.3g} after one epoch"
            lines.append(f"sklearn == floor, one epoch, batch {BATCH:2d}, epoch-only call: max|dW| = {d:.1e}")
    ref, _ = floor_epoch(params, X, y, order, 1)
    d = max_diff(floor_epoch_1d(params, X, y, order)[0], ref)
    assert d <= 1e-12, f"the 1-D floor and the numpy floor differ by {d:.3g} after one epoch"
    lines.append(f"floor 1-D == floor, one epoch, batch  1: max|dW| = {d:.1e} (tol 1e-12)")
    if torch is not None:
        for bs in (BATCH, 1):
            first = order[:bs]
            ref, _ = floor_epoch(params, X[first], y[first], np.arange(bs), bs)
            peer = make_torch(torch, params, X[first], y[first], bs)
            peer.run(np.arange(bs))
            d = max_diff(peer.get(), ref)
            assert d <= 1e-10, f"torch and the numpy floor differ by {d:.3g} after one step (batch {bs})"
            lines.append(f"torch   == floor, one step,  batch {bs:2d}: max|dW| = {d:.1e} (tol 1e-10)")
    return lines


# -- main ---------------------------------------------------------------------------------


def measure(methods, repeats, min_time, unit_div=1.0):
    samples = interleaved(methods, repeats, min_time=min_time)
    return {k: [v / unit_div for v in vs] for k, vs in samples.items()}


def report(title, samples, unit, scale, skipped):
    """Table rows: median time, spread, ratio to the floor and vs rbp (paired medians)."""
    rows = []
    for name, xs in samples.items():
        med = median(xs)
        spread = (max(xs) - min(xs)) / med * 100
        rows.append([name, f"{med * scale:.4g}", f"{spread:.0f}%",
                     f"{paired_ratio(xs, samples['numpy floor']):.2f}x",
                     f"{paired_ratio(xs, samples['rbp']):.2f}x"])
    for name in skipped:
        rows.append([name, "skipped (not installed)", "", "", ""])
    out = f"\n{title}\n" + table(["method", f"median {unit}", "spread", "/ floor", "/ rbp"], rows)
    if any((max(xs) - min(xs)) > 0.25 * median(xs) for xs in samples.values()):
        out += "\n(noisy: some spread (max-min)/median > 25%; the paired ratios are the robust numbers)"
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help="samples per method (default 9)")
    ap.add_argument("--quick", action="store_true", help="3 repeats, 20 ms samples, online epochs of 300 tuples")
    ap.add_argument("--check", action="store_true", help="exit 1 if a claim fails")
    args = ap.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 9)
    min_time = 0.02 if args.quick else 0.1

    torch = optional_import("torch")
    sklearn = optional_import("sklearn")
    threads = blas_threads() or 1
    if torch is not None:
        torch.set_num_threads(threads)  # match numpy's BLAS pool
    print(header("benchmarks/static.py: rbp static backprop vs numpy floor, scikit-learn, torch"))
    if sklearn is None:
        print("scikit-learn is not installed: it ships the digits data this benchmark uses; nothing to do.")
        return 0

    import rbp

    print(f"rbp {rbp.__version__} from {os.path.dirname(rbp.__file__)}")
    X, y = load_digits()
    model = make_model()
    theta0 = model.init(np.random.default_rng(SEED))
    data = model.prepare(X, y)
    params = split(theta0, model)
    n = X.shape[0]
    print(f"data: digits {X.shape}, net {'-'.join(map(str, SIZES))} tanh/softmax-CE, SGD lr={LR}, float64; "
          f"{repeats} repeats, samples >= {min_time * 1e3:.0f} ms, interleaved; ratios = median of paired ratios")

    for line in check_math(model, theta0, data, X, y, torch, sklearn):
        print("check: " + line)

    # torch at numpy's BLAS thread count (as asked) and at 1 thread: with small ops and a
    # busy 2-core machine, torch's OpenMP pool can stall badly; the claims use the faster one.
    torch_threads = sorted({threads, 1}, reverse=True)
    skipped = [] if torch is not None else ["torch"]

    def torch_rows(Xs, ys, bs):
        """The torch rows to time; a thread setting that stalls (> 5x the other in a probe) is dropped."""
        if torch is None:
            return {}
        rows = {f"torch ({k} thread{'s' * (k > 1)})": make_torch(torch, params, Xs, ys, bs, threads=k).epoch
                for k in torch_threads}
        if len(rows) > 1:
            m = 2 * max(bs, 32)  # probe on a few steps only: a stalled setting can take ~10 ms per step
            probes = {name: make_torch(torch, params, Xs[:m], ys[:m], bs, threads=k).epoch
                      for name, k in zip(rows, torch_threads)}
            probe = {name: min(interleaved({name: fn}, 3, min_time=0.0)[name]) / (m // bs)
                     for name, fn in probes.items()}
            fastest = min(probe.values())
            for name, t in probe.items():
                if t > 5 * fastest:
                    print(f"note: {name} dropped from the batch-{bs} timing: it stalls on this machine "
                          f"({t * 1e6:.4g} us vs {fastest * 1e6:.4g} us per step in a probe; when another "
                          "process holds a core, OpenMP barriers wait for time slices)")
                    del rows[name]
        return rows

    def best_torch(samples):
        rows = [k for k in samples if k.startswith("torch")]
        return min(rows, key=lambda k: median(samples[k])) if rows else None

    # mini-batch 32, one epoch
    floor_gen = np.random.default_rng(SEED)
    sk = make_sklearn(params, X, y, BATCH)
    methods = {
        "numpy floor": lambda: floor_epoch(params, X, y, floor_gen.permutation(n), BATCH),
        "rbp": make_rbp(theta0, data, BATCH),
        SK_PUBLIC: sk.epoch,
    }
    if sk.epoch_only is not None:
        methods[SK_EPOCH] = sk.epoch_only.epoch
    methods.update(torch_rows(X, y, BATCH))
    batch = measure(methods, repeats, min_time)
    print(report(f"mini-batch {BATCH}, one epoch over {n} samples", batch, "ms/epoch", 1e3, skipped))

    # online, batch 1
    n_on = 300 if args.quick else 600
    Xo, yo = X[:n_on], y[:n_on]
    data_o = model.prepare(Xo, yo)
    floor_gen_o = np.random.default_rng(SEED)
    floor_gen_1d = np.random.default_rng(SEED)
    methods = {
        "numpy floor": lambda: floor_epoch(params, Xo, yo, floor_gen_o.permutation(n_on), 1),
        "numpy floor, 1-D tuple code": lambda: floor_epoch_1d(params, Xo, yo, floor_gen_1d.permutation(n_on)),
        "rbp": make_rbp(theta0, data_o, 1),
    }
    methods.update(torch_rows(Xo, yo, 1))
    online = measure(methods, repeats, min_time, unit_div=n_on)
    print(report(f"online (batch 1), per tuple, epochs of {n_on} tuples", online, "us/tuple", 1e6, skipped))

    print("\nclaims (ratios are medians of per-repeat ratios; torch = its faster thread setting)")
    sk_row = SK_EPOCH if SK_EPOCH in batch else SK_PUBLIC
    tb, to = best_torch(batch), best_torch(online)
    checks = [
        (f"batch {BATCH}: rbp / numpy floor (time)", paired_ratio(batch["rbp"], batch["numpy floor"]),
         BARS["floor"], False),
        (f"batch {BATCH}: {sk_row} / rbp (rbp speed-up)", paired_ratio(batch[sk_row], batch["rbp"]),
         BARS["sklearn"], True),
        (f"batch {BATCH}: {tb or 'torch'} / rbp (rbp speed-up)",
         paired_ratio(batch[tb], batch["rbp"]) if tb else None, BARS["torch"], True),
        (f"online: {to or 'torch'} per tuple / rbp per tuple (rbp speed-up)",
         paired_ratio(online[to], online["rbp"]) if to else None, BARS["torch_online"], True),
    ]
    results = []
    for text, value, bar, higher in checks:
        line, ok = claim(text, value, bar, higher_is_better=higher)
        print(line)
        results.append(ok)
    if sk_row != SK_PUBLIC:
        print(f"info  batch {BATCH}: {SK_PUBLIC} / rbp = {paired_ratio(batch[SK_PUBLIC], batch['rbp']):.2f}x "
              "(includes partial_fit's per-call input validation)")
    if to:
        print(f"info  online: {to} / numpy floor = {paired_ratio(online[to], online['numpy floor']):.2f}x, "
              f"/ 1-D floor = {paired_ratio(online[to], online['numpy floor, 1-D tuple code']):.2f}x "
              "(the most any numpy implementation reached here)")
    failed = sum(1 for ok in results if ok is False)
    print(f"{failed} claim(s) failed" if failed else "all measured claims pass")
    return 1 if (args.check and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
