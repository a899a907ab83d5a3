"""Full vs truncated backpropagation through time on classic sequence tasks.

An Elman net (``rbp.ElmanRNN``) is trained with the core trainer (Adam,
mini-batches) by full BPTT and by truncated BPTT(k1, k2) on

* the embedded Reber grammar (next-symbol prediction; metric: fraction of
  held-out strings solved, baseline 1/2: no memory of the second symbol),
* the adding problem (metric: held-out MSE, baseline 1/6: predict the mean),
* Elman's temporal XOR (metric: held-out error rate on the XOR bits,
  baseline 1/2), with Hochreiter & Schmidhuber's random-weight-guessing
  baseline given as many evaluations as the gradient runs use.

For every task it saves one PNG (training loss and held-out metric per
epoch, the baselines as horizontal lines) into ``--out`` and prints a table of
final and best scores against the baselines; ``results.json`` holds the
numbers. The long dependencies (Reber's second symbol, the adding problem's
first marker) lie beyond short truncation windows, so truncated BPTT with a
small ``k2`` is expected to stay near the baseline there, while temporal XOR
needs one step of memory only.

Usage::

    python experiments/bptt_sequences.py [--quick] [--out runs/bptt_sequences] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

import rbp
from rbp.data import sequences

try:
    from rbp import ElmanRNN
except ImportError:  # until it is exported at the top level
    from rbp.recurrent import ElmanRNN


# task -> generator, sizes, net, training and the variants (label, truncation)
TASKS = {
    "embedded_reber": dict(
        make=lambda n, rng, quick: sequences.reber(n, embedded=True, rng=rng),
        n_train=(256, 512), n_test=(256, 512), n_in=7, n_out=7, hidden=16, loss="cross_entropy",
        learning_rate=0.01, epochs=(40, 60), batch_size=16, clip_norm=None,
        variants=[("full BPTT", None), ("TBPTT(k1=4, k2=8)", (4, 8)), ("TBPTT(k1=2, k2=3)", (2, 3))],
        title="Embedded Reber grammar: fraction of held-out strings solved",
    ),
    "adding": dict(
        make=lambda n, rng, quick: sequences.adding(n, 20 if quick else 30, rng=rng),
        n_train=(256, 1024), n_test=(512, 1024), n_in=2, n_out=1, hidden=16, loss="squared",
        learning_rate=0.01, epochs=(40, 100), batch_size=32, clip_norm=1.0,
        variants=[("full BPTT", None), ("TBPTT(k1=5, k2=10)", (5, 10)), ("TBPTT(k1=2, k2=4)", (2, 4))],
        title="Adding problem: held-out MSE",
    ),
    "temporal_xor": dict(
        make=lambda n, rng, quick: sequences.temporal_xor(n, 20 if quick else 50, rng=rng),
        n_train=(64, 128), n_test=(128, 256), n_in=1, n_out=1, hidden=8, loss="binary_cross_entropy",
        learning_rate=0.03, epochs=(30, 60), batch_size=16, clip_norm=None,
        variants=[("full BPTT", None), ("TBPTT(k1=3, k2=3)", (3, 3)), ("TBPTT(k1=1, k2=1)", (1, 1))],
        title="Temporal XOR: held-out error rate on the XOR bits",
    ),
}


def metric(net, theta, ds):
    """The task's metric (``ds.metric``) of the net's predictions on ``ds``."""
    P = net.predict(theta, ds.X)
    m = ds.mask
    if ds.metric == "fraction_solved":
        return float(sequences.reber_solved(P, ds).mean())
    if ds.metric == "mse":
        return float(np.mean((P[m] - ds.Y[m]) ** 2))
    if ds.metric == "error_rate":
        return float(np.mean((P[m][:, 0] > 0.5) != (ds.Y[m][:, 0] > 0.5)))
    raise ValueError(f"unknown metric {ds.metric!r}")


def run_variant(spec, truncation, train, test, epochs, seed):
    """Train one net; returns the per-epoch curves (loss, held-out metric, time)."""
    net = ElmanRNN(spec["n_in"], spec["hidden"], spec["n_out"], loss=spec["loss"], truncation=truncation)
    curve = []

    def callback(intermediate):
        curve.append(metric(net, intermediate.x, test))

    trainer = rbp.Trainer(
        net, "adam", learning_rate=spec["learning_rate"], epochs=epochs, batch_size=spec["batch_size"],
        clip_norm=spec["clip_norm"], callback=callback, progress=False,
    )
    t0 = time.perf_counter()
    result = trainer.fit(train.X, train.Y, mask=train.mask, rng=seed)
    seconds = time.perf_counter() - t0
    n_batches = -(-train.X.shape[0] // spec["batch_size"])
    return {
        "loss": [float(v) for v in result.history["loss"]], "metric": curve, "seconds": seconds,
        "n_gradients": n_batches * len(curve), "status": result.status.name, "theta": result.x, "net": net,
    }


def random_guessing(spec, train, test, budget, seed):
    """Best of ``budget`` uniform [-3, 3] weight guesses on the training set, scored on ``test``."""
    net = ElmanRNN(spec["n_in"], spec["hidden"], spec["n_out"], loss=spec["loss"])
    out = sequences.random_weight_guessing(
        lambda th: metric(net, th, train), lambda g: g.uniform(-3.0, 3.0, net.n_params), budget, rng=seed,
        solved=lambda s: s == 0.0,
    )
    return {"n_trials": out["n_trials"], "solved": out["solved"], "trials_to_solve": out["trials_to_solve"],
            "train": out["best_score"], "test": metric(net, out["best_theta"], test)}


def save_figure(fig, path):
    """Write a PNG atomically (temp file + rename)."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def references(name, test):
    """Extra horizontal lines: (panel, value, label)."""
    if name == "embedded_reber":
        return [("loss", test.meta["cross_entropy_floor"], "optimal predictor's loss")]
    if name == "adding":
        # remembering only the second marked value: E[(U1 - 1/2)^2] = Var U1 = 1/12
        return [("metric", 1.0 / 12.0, "second value only (1/12)")]
    return []


def plot_task(name, spec, runs, baseline, higher_is_better, metric_name, rwg, refs, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, run in runs.items():
        epochs = np.arange(1, len(run["loss"]) + 1)
        ax_loss.plot(epochs, run["loss"], label=label)
        ax_metric.plot(epochs, run["metric"], label=label)
    ax_loss.set_xlabel("epoch")
    axes = {"loss": ax_loss, "metric": ax_metric}
    for panel, value, label in refs:
        axes[panel].axhline(value, color="tab:purple", linestyle="-.", label=f"{label} ({value:.3g})")
    ax_loss.set_ylabel(f"training loss ({spec['loss']} per step)")
    ax_loss.set_yscale("log")
    ax_loss.set_title("training loss (running mean over the epoch)")
    ax_loss.legend()
    ax_metric.axhline(baseline, color="0.4", linestyle="--", label=f"baseline ({baseline:.3g})")
    if rwg is not None:
        ax_metric.axhline(rwg["test"], color="tab:red", linestyle=":",
                          label=f"random weight guessing, {rwg['n_trials']} guesses ({rwg['test']:.3g})")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(f"held-out {metric_name} ({'higher' if higher_is_better else 'lower'} is better)")
    lo, hi = ax_metric.get_ylim()
    ax_metric.set_ylim(lo, hi + 0.06 * (hi - lo))  # keep a baseline at the top edge visible
    ax_metric.set_title("held-out score")
    ax_metric.legend()
    fig.suptitle(spec["title"])
    fig.tight_layout()
    path = os.path.join(out, f"{name}.png")
    save_figure(fig, path)
    plt.close(fig)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/bptt_sequences", help="folder for the PNGs and results.json")
    ap.add_argument("--quick", action="store_true", help="small data and few epochs (seconds instead of a minute)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the training data and of the runs")
    ap.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS), help="tasks to run")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    q = 0 if args.quick else 1

    rows, results = [], {}
    for name in args.tasks:
        spec = TASKS[name]
        train = spec["make"](spec["n_train"][q], args.seed, args.quick)
        test = spec["make"](spec["n_test"][q], args.seed + 1000, args.quick)
        higher = bool(test.meta.get("higher_is_better", False))
        runs = {label: run_variant(spec, trunc, train, test, spec["epochs"][q], args.seed)
                for label, trunc in spec["variants"]}
        rwg = None
        if name == "temporal_xor":  # as many guesses as the full-BPTT run computed gradients
            rwg = random_guessing(spec, train, test, runs["full BPTT"]["n_gradients"], args.seed)
        refs = references(name, test)
        path = plot_task(name, spec, runs, test.baseline, higher, test.metric, rwg, refs, args.out)
        best = max if higher else min
        results[name] = {"metric": test.metric, "higher_is_better": higher, "baseline": test.baseline,
                         "references": {label: value for _, value, label in refs},
                         "figure": path, "random_weight_guessing": rwg, "variants": {}}
        for label, run in runs.items():
            final, top = run["metric"][-1], best(run["metric"])
            margin = (final - test.baseline) if higher else (test.baseline - final)
            beats = margin > 0.1 * abs(test.baseline)
            rows.append([name, label, test.metric, f"{final:.4f}", f"{top:.4f}", f"{test.baseline:.4f}",
                         "yes" if beats else "no", f"{run['seconds']:.1f}"])
            results[name]["variants"][label] = {k: run[k] for k in ("loss", "metric", "seconds", "n_gradients",
                                                                     "status")}
            results[name]["variants"][label]["beats_baseline"] = beats
        if rwg is not None:
            beats = test.baseline - rwg["test"] > 0.1 * test.baseline
            rows.append([name, f"random guessing ({rwg['n_trials']})", test.metric, f"{rwg['test']:.4f}", "",
                         f"{test.baseline:.4f}", "yes" if beats else "no", ""])

    headers = ["task", "variant", "metric", "final", "best", "baseline", "beats", "seconds"]
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print('("beats": the final held-out score is better than the baseline by more than 10% of it)')

    fd, tmp = tempfile.mkstemp(suffix=".json", dir=args.out)
    with os.fdopen(fd, "w") as f:
        json.dump({"seed": args.seed, "quick": args.quick, "tasks": results}, f, indent=1)
    os.replace(tmp, os.path.join(args.out, "results.json"))
    print(f"figures and results.json written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
