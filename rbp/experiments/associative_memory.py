"""Associative memory: which gradient method trains a recurrent net to complete corrupted patterns fastest?

Research question
    Pineda (1987) trained a recurrent net by recurrent backpropagation so
    that stored patterns become the fixed points reached from corrupted cues.
    Liao et al. (2018, "Reviving and improving recurrent back-propagation")
    revisited the task with a Hopfield-style net and compared how the
    gradient is obtained. Here: with the same net, the same data and the same
    optimizer, how do the gradient methods compare in training loss per epoch
    and per second, and in recall of held-out corruptions?

Setup
    * Patterns: 10 letters (``ACEHKLOSTX``) rendered in DejaVuSans at 10x10
      (``rbp.data.glyphs.render_glyph``) and thresholded at 0.5: 10 binary
      patterns of 100 pixels (6-20 pixels on, pairwise Hamming distance >=
      10).
    * Cue: a pattern with half of its "on" pixels switched off at random;
      target: the clean pattern. 20 corruptions per pattern for training
      (200 samples), 20 fresh ones per pattern for the held-out test.
    * Net (Pineda's form): ``FixedPointNet(100, 100, 100, activation="logistic",
      pineda=True, forward="picard", damping=0.2)`` -- 100 logistic units,
      the cue enters as input drive ``u U``, the units *are* the output,
      squared loss on their states. ``damping=0.2`` is an Euler step of
      Pineda's continuous dynamics ``dx/dt = -x + f(x W + u U + b)``, so
      the relaxation takes ~50-100 steps (tolerance 1e-6).
    * Training: Adam, lr 1e-2, batches of 20, 100 epochs, same seed for
      every method.

What is compared (the backward pass only; the forward relaxation is the same)
    * ``RBP (direct)``: adjoint system solved by batched LU -- the exact
      implicit gradient (Almeida 1987; Pineda 1987);
    * ``RBP (GMRES)``: the adjoint system solved by GMRES to 1e-6;
    * ``CG-RBP``: CG on the normal equations (Liao et al. 2018);
    * ``Neumann-RBP (K=10)``: the Neumann series truncated after 10 terms
      (Liao et al. 2018), so the adjoint threshold is missed on purpose
      (``on_failure="ignore"``; the misses are counted);
    * ``BPTT``: backprop through every stored relaxation step;
    * ``TBPTT (K=10)``: the relaxation itself is cut after 10 steps (from the
      zero state) and backprop runs through those 10 steps
      (``max_iter=10, on_failure="ignore"``): the net is trained -- and
      read out -- at step 10, not at a fixed point.

    Recall is scored on the held-out cues twice: with each net's own forward
    pass (what it was trained for), and relaxed to the fixed point (tolerance
    1e-8), which is where an associative memory's answer lives. Pixel error =
    fraction of pixels wrong after thresholding at 0.5; perfect recall =
    fraction of cues completed with no pixel wrong. The corrupted cue itself
    is given as the baseline.

How to reproduce
    ``rbp run associative_memory``             (~1.5 min; also ``python experiments/associative_memory.py``)
    ``rbp run associative_memory --seeds 3``
    ``rbp run associative_memory --quick``     (seconds)
    ``rbp run experiments/associative_memory.toml``
    ``rbp run --resume runs/<folder>``         (continue an interrupted run)

    Every training writes a checkpoint after each epoch into the run folder,
    ``checkpoints/<method>-seed<S>.train.npz`` (the per-epoch
    test curves are part of its history). ``rbp run --resume
    runs/<folder>`` (the folder of ``--out``; by default
    ``runs/associative_memory-<date>-<time>``) continues an interrupted
    run with its saved config: finished trainings are not repeated, the
    interrupted one continues from its last epoch, and every number of the
    summary is the one an uninterrupted run gives, except the timings
    (``train_seconds`` and ``ms_per_epoch`` of a resumed training add up the
    per-epoch training times of both sessions; its ``seconds``, the wall time
    of the call, counts only the last session).

    Timings were measured with ``OPENBLAS_NUM_THREADS=1`` on a shared 2-core
    machine.

Expected results (measured, seed 0, full defaults)
    The cues have 7.8 % of their pixels wrong. Every method ends with the
    same held-out recall at the fixed point: 0.015 % pixels wrong, 99.5 % of
    cues completed perfectly. The untruncated methods (direct, GMRES, CG-RBP,
    BPTT) compute the same gradient and follow the same loss curve (final
    training loss 0.0044); Neumann-RBP with 10 terms is indistinguishable
    (0.0044; the Jacobian's spectral radius is small, so 10 terms already
    leave an error of ~1e-6 despite missing the 1e-6 threshold). Cost per
    epoch: GMRES 61 ms, Neumann-RBP 64, CG-RBP 79, direct 79 (batched LU),
    BPTT 170 (backprop through all ~70 relaxation steps, 2.8x GMRES) and
    truncated BPTT 20 (10 steps). Truncated BPTT's loss at step 10 stalls at
    0.11 and its own read-out completes only 95 % of the cues perfectly, yet
    relaxed to the fixed point the same net recalls as well as the others
    (99.5 %). Winner: RBP with GMRES or Neumann-RBP (fastest to a given
    loss); BPTT reaches the same loss 2.8x later.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import rbp
from rbp.data.glyphs import render_glyph
from rbp.report import line_style, new_figure, save_figure, style_axes

from ._common import about, check_names, prepare, seeds

NAME = "associative_memory"

DEFAULTS = {
    "data": {
        "letters": "ACEHKLOSTX",  # one stored pattern per letter
        "font": "DejaVuSans",
        "size": 10,  # patterns are size x size pixels
        "threshold": 0.5,  # ink coverage above this is an "on" pixel
        "drop_fraction": 0.5,  # fraction of the "on" pixels removed from a cue
        "n_train_per_pattern": 20,
        "n_test_per_pattern": 20,
        "seed": 0,
    },
    "model": {
        "methods": ["direct", "gmres", "cg-normal", "neumann", "bptt", "tbptt"],
        "activation": "logistic",
        "hidden_units": 0,  # extra recurrent units besides the visible (pattern) ones
        "damping": 0.2,
        "tol": 1e-6,
        "max_iter": 500,
        "backward_tol": 1e-6,
        "neumann_terms": 10,  # Neumann-RBP truncation
        "tbptt_steps": 10,  # truncated BPTT: forward steps (and backprop steps)
        "eval_tol": 1e-8,  # relaxation tolerance of the fixed-point evaluation
    },
    "train": {"learning_rate": 1e-2, "epochs": 100, "batch_size": 20, "weight_decay": 0.0},
    "run": {"seeds": 1, "seed": 0},
}

QUICK = {
    "data": {"letters": "ACHX", "size": 8, "n_train_per_pattern": 5, "n_test_per_pattern": 5},
    "model": {"damping": 0.5, "max_iter": 200},
    "train": {"epochs": 3},
}

METHODS = ("direct", "gmres", "lgmres", "bicgstab", "cg-normal", "neumann", "relax", "bptt", "tbptt")
CONSTRAINTS = {"model.methods": METHODS}


def check(config: dict):
    """Build every net and trainer from ``config`` before anything is written."""
    data, model, train = config["data"], config["model"], config["train"]
    if not data["letters"] or len(set(data["letters"])) != len(data["letters"]):
        raise ValueError(f"data.letters must be a non-empty string of distinct letters, got {data['letters']!r}")
    n = data["size"] ** 2
    for method in check_names(model["methods"], METHODS, "model.methods"):
        with about("model.activation", "model.damping", "model.tol", "model.max_iter", "model.backward_tol",
                   "model.tbptt_steps" if method == "tbptt" else "model.neumann_terms", "model.hidden_units",
                   arguments={"n_units": "model.hidden_units", "backward_max_iter": "model.neumann_terms",
                              "max_iter": "model.tbptt_steps" if method == "tbptt" else "model.max_iter"}):
            net = _net(method, n, model)
        with about("train.learning_rate", "train.epochs", "train.batch_size", "train.weight_decay"):
            _trainer(net, train)
    with about("model.eval_tol", "model.max_iter"):
        _reference(n, model)


def _reference(n: int, model: dict) -> rbp.FixedPointNet:
    """The net that relaxes a trained net's parameters to the fixed point, tightly (the recall at the fixed point)."""
    return rbp.FixedPointNet(
        n, n + model["hidden_units"], n, activation=model["activation"], pineda=True, forward="picard",
        damping=model["damping"], tol=model["eval_tol"], max_iter=20 * model["max_iter"], on_failure="ignore",
    )


def _trainer(net, train: dict, *, progress=None, epoch_metrics=None) -> rbp.RecurrentTrainer:
    return rbp.RecurrentTrainer(
        net, learning_rate=train["learning_rate"], epochs=train["epochs"], batch_size=train["batch_size"],
        weight_decay=train["weight_decay"], epoch_metrics=epoch_metrics, progress=progress,
    )


def patterns(data: dict) -> np.ndarray:
    """The stored binary patterns, shape (n_patterns, size*size), values 0/1."""
    images = [render_glyph(c, data["font"], size=data["size"]) for c in data["letters"]]
    return np.array([(img > data["threshold"]).ravel() for img in images], dtype=float)


def corrupt(P: np.ndarray, n_per_pattern: int, drop_fraction: float, rng) -> tuple:
    """Cues with ``drop_fraction`` of each pattern's on pixels switched off; returns (cues, targets)."""
    cues, targets = [], []
    for _ in range(n_per_pattern):
        for p in P:
            on = np.flatnonzero(p)
            drop = rng.choice(on, size=int(round(drop_fraction * len(on))), replace=False)
            cue = p.copy()
            cue[drop] = 0.0
            cues.append(cue)
            targets.append(p)
    return np.array(cues), np.array(targets)


def _label(method: str, model: dict) -> str:
    return {
        "direct": "RBP (direct)", "gmres": "RBP (GMRES)", "lgmres": "RBP (LGMRES)", "bicgstab": "RBP (BiCGSTAB)",
        "cg-normal": "CG-RBP", "neumann": f"Neumann-RBP (K={model['neumann_terms']})",
        "relax": "RBP (Pineda relaxation)", "bptt": "BPTT", "tbptt": f"TBPTT (K={model['tbptt_steps']})",
    }[method]


def _net(method: str, n_pixels: int, model: dict) -> rbp.FixedPointNet:
    kw = dict(
        activation=model["activation"], pineda=True, forward="picard", damping=model["damping"], tol=model["tol"],
        max_iter=model["max_iter"], backward_tol=model["backward_tol"],
    )
    if method == "neumann":
        kw.update(backward="neumann", backward_max_iter=model["neumann_terms"], on_failure="ignore")
    elif method == "tbptt":
        kw.update(backward="bptt", max_iter=model["tbptt_steps"], on_failure="ignore")
    else:
        kw.update(backward=method)
    return rbp.FixedPointNet(n_pixels, n_pixels + model["hidden_units"], n_pixels, **kw)


def _recall(Y: np.ndarray, T: np.ndarray) -> tuple:
    wrong = (Y > 0.5) != (T > 0.5)
    return float(wrong.mean()), float((~wrong.any(axis=1)).mean())


def _train(method, data_arrays, config, seed, progress, checkpoint, resume=False):
    """Train one net (checkpoint every epoch; continue from it if ``resume``); returns the run dict."""
    Xtr, Ttr, Xte, Tte = data_arrays
    model = config["model"]
    n = Xtr.shape[1]
    net = _net(method, n, model)
    reference = _reference(n, model)
    test_data = net.prepare(Xte, Tte)

    def measure(theta):
        return {"test_loss": net.evaluate(theta, *test_data)["loss"],
                "test_pixel_error": _recall(net.predict(theta, Xte), Tte)[0]}

    trainer = _trainer(net, config["train"], progress=progress, epoch_metrics=measure)
    t0 = time.perf_counter()
    result = trainer.fit(Xtr, Ttr, rng=seed, checkpoint=checkpoint, resume=resume)
    seconds = time.perf_counter() - t0
    theta = result.x
    own_err, own_perfect = _recall(net.predict(theta, Xte), Tte)
    relaxed = reference.relax(theta, Xte)
    fp_err, fp_perfect = _recall(relaxed.x[:, -n:], Tte)
    history = result.history
    curves = history  # test_loss / test_pixel_error per epoch come from epoch_metrics
    # the "time" column excludes the per-epoch test evaluation (epoch_metrics)
    return {
        "label": _label(method, model), "method": method, "seed": int(seed), "history": history,
        "final_train_loss": float(history["loss"][-1]), "test_loss": float(curves["test_loss"][-1]),
        "test_pixel_error": own_err, "test_perfect_recall": own_perfect,
        "fixed_point_pixel_error": fp_err, "fixed_point_perfect_recall": fp_perfect,
        "fixed_point_unconverged": int((~relaxed.converged).sum()),
        "seconds": seconds, "train_seconds": float(history["time"][-1]),
        "forward_iterations": float(history["forward_iterations"][-1]),
        "adjoint_iterations": float(history["adjoint_iterations"][-1]),
        "n_forward_failed": int(np.nansum(history["n_forward_failed"])),
        "n_adjoint_failed": int(np.nansum(history["n_adjoint_failed"])),
        "theta": theta,
    }


def _mean(values):
    return float(np.mean(values))


def _table(runs, methods, baseline):
    rows = []
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        epochs = len(mine[0]["history"]["epoch"])
        rows.append({
            "method": mine[0]["label"], "seeds": len(mine),
            "final_train_loss": _mean([r["final_train_loss"] for r in mine]),
            "test_pixel_error": _mean([r["test_pixel_error"] for r in mine]),
            "test_perfect_recall": _mean([r["test_perfect_recall"] for r in mine]),
            "fixed_point_pixel_error": _mean([r["fixed_point_pixel_error"] for r in mine]),
            "fixed_point_perfect_recall": _mean([r["fixed_point_perfect_recall"] for r in mine]),
            "train_seconds": _mean([r["train_seconds"] for r in mine]),
            "ms_per_epoch": 1e3 * _mean([r["train_seconds"] for r in mine]) / epochs,
            "forward_iterations": _mean([r["forward_iterations"] for r in mine]),
            "adjoint_iterations": _mean([r["adjoint_iterations"] for r in mine]),
            "n_adjoint_failed": int(sum(r["n_adjoint_failed"] for r in mine)),
        })
    rows.append({"method": "corrupted cue (no network)", "seeds": 0, "test_pixel_error": baseline[0],
                 "test_perfect_recall": baseline[1], "fixed_point_pixel_error": baseline[0],
                 "fixed_point_perfect_recall": baseline[1]})
    return rows


def _plot_loss(runs, methods, path):
    fig, (ax_ep, ax_t) = new_figure(1, 2, figsize=(10, 4.2), sharey=True)
    for i, method in enumerate(methods):
        mine = [r for r in runs if r["method"] == method]
        for j, r in enumerate(mine):
            h = r["history"]
            ep = np.asarray(h["epoch"])
            every = max(1, len(ep) // 8)
            kw = dict(**line_style(i), markevery=(i % every, every), ms=5, lw=1.6, alpha=1.0 if j == 0 else 0.35,
                      label=r["label"] if j == 0 else None)
            ax_ep.plot(ep, h["loss"], **kw)
            ax_t.plot(h["time"], h["loss"], **kw)
    ax_ep.set(xlabel="epoch", ylabel="training loss (1/2 sum of squared pixel errors per cue)", yscale="log",
              title="per epoch")
    ax_t.set(xlabel="training wall time (s)", xscale="log", title="against wall time")
    for ax in (ax_ep, ax_t):
        style_axes(ax)
    handles, labels = ax_ep.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=9, frameon=False)
    fig.suptitle("Associative memory: training loss by gradient method (same net, data, optimizer, seed)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path, dpi=150)


def _plot_recall(runs, methods, baseline, n_cells, path):
    labels = [next(r["label"] for r in runs if r["method"] == m) for m in methods]
    own = np.array([_mean([r["test_pixel_error"] for r in runs if r["method"] == m]) for m in methods])
    fixed = np.array([_mean([r["fixed_point_pixel_error"] for r in runs if r["method"] == m]) for m in methods])
    ms = np.array([1e3 * _mean([r["train_seconds"] / len(r["history"]["epoch"]) for r in runs if r["method"] == m])
                   for m in methods])
    fig, (ax_err, ax_cost) = new_figure(1, 2, figsize=(10, 4.4))
    x = np.arange(len(methods))
    floor = 0.5 / n_cells  # half a pixel: exact zeros are drawn at this floor of the log scale
    ax_err.bar(x - 0.2, np.maximum(own, floor), 0.4, color="C0", label="own forward pass (as trained)")
    ax_err.bar(x + 0.2, np.maximum(fixed, floor), 0.4, color="C1", label="relaxed to the fixed point")
    ax_err.axhline(baseline[0], color="k", ls="--", lw=1, label=f"corrupted cue ({baseline[0]:.3f})")
    ax_err.set(yscale="log", ylabel="held-out pixel error (fraction wrong)", title="recall of held-out cues",
               ylim=(floor / 2, 1.0))
    ax_err.set_xticks(x, labels, rotation=25, ha="right")
    ax_err.legend(fontsize=8, loc="upper left")
    bars = ax_cost.bar(x, ms, 0.6, color=[f"C{i}" for i in range(len(methods))])
    for bar, m in zip(bars, methods):
        r = next(r for r in runs if r["method"] == m)
        ax_cost.text(bar.get_x() + bar.get_width() / 2, bar.get_height(),
                     f"{r['adjoint_iterations']:.0f} back\n{r['forward_iterations']:.0f} fwd", ha="center",
                     va="bottom", fontsize=7)
    ax_cost.set(ylabel="training time per epoch (ms)", title="cost (steps per batch, last epoch)",
                ylim=(0, ms.max() * 1.25))
    ax_cost.set_xticks(x, labels, rotation=25, ha="right")
    from matplotlib.patches import Patch

    ax_cost.legend(handles=[Patch(color="0.6", label="bar: ms per epoch; text: backward\n"
                                                      "iterations / forward steps per sample")],
                   fontsize=8, loc="upper left")
    fig.suptitle("Associative memory: recall and cost per gradient method", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, dpi=150)


def _plot_examples(runs, methods, arrays, data, path, n_show=5):
    """Clean pattern, cue, and each method's completion (at the fixed point) for a few held-out cues."""
    _, _, Xte, Tte = arrays
    size = data["size"]
    n_patterns = len(data["letters"])
    picks = [i * n_patterns + i % n_patterns for i in range(n_show)]  # different letters, different corruptions
    rows = ["target", "cue"] + [next(r["label"] for r in runs if r["method"] == m) for m in methods]
    fig, axes = new_figure(len(picks), len(rows), figsize=(1.15 * len(rows), 1.2 * len(picks) + 0.6))
    axes = np.atleast_2d(axes)
    for col, m in enumerate([None, None] + list(methods)):
        for row, k in enumerate(picks):
            ax = axes[row, col]
            if col == 0:
                img = Tte[k]
            elif col == 1:
                img = Xte[k]
            else:
                img = next(r for r in runs if r["method"] == m)["examples"][row]
            ax.imshow(np.asarray(img).reshape(size, size), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(rows[col], fontsize=7)
    fig.suptitle("Held-out cues and their completions (relaxed to the fixed point; black = on)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=150)


def run(config: dict, out_dir, *, progress=None, resume=False) -> dict:
    """Train one net per gradient method and seed; figures into the run folder's ``figures/``; return the summary.

    ``resume=True`` continues from the per-epoch checkpoints (see :mod:`rbp.experiments`).
    """
    config, folder = prepare(sys.modules[__name__], config, out_dir, resume=resume)
    data, model = config["data"], config["model"]
    methods = list(model["methods"])
    P = patterns(data)
    rng = np.random.default_rng(data["seed"])
    Xtr, Ttr = corrupt(P, data["n_train_per_pattern"], data["drop_fraction"], rng)
    Xte, Tte = corrupt(P, data["n_test_per_pattern"], data["drop_fraction"], rng)
    arrays = (Xtr, Ttr, Xte, Tte)
    baseline = _recall(Xte, Tte)
    first_seed = seeds(config)[0]

    runs = []
    for method in methods:
        for seed in seeds(config):
            runs.append(_train(method, arrays, config, seed, progress, folder.checkpoint(f"{method}-seed{seed}"),
                               resume))

    # completions at the fixed point for the example figure (first seed of each method)
    n = P.shape[1]
    reference = _reference(n, model)
    n_patterns = len(data["letters"])
    picks = [i * n_patterns + i % n_patterns for i in range(min(5, len(Xte) // n_patterns))]
    for r in runs:
        if r["seed"] == first_seed:
            r["examples"] = reference.relax(r["theta"], Xte[picks]).x[:, -n:]
    figures = [
        {"file": "figures/training_loss.png", "caption": (
            "Training loss per epoch and against training wall time for each gradient method; the untruncated "
            "methods compute the same gradient, so their curves lie on top of each other (markers tell them "
            "apart).")},
        {"file": "figures/recall.png", "caption": (
            "Held-out pixel error of each trained net, read out by its own forward pass and relaxed to the "
            "fixed point (log scale; the dashed line is the corrupted cue), and the training time per epoch "
            "with backward iterations and forward steps per sample.")},
        {"file": "figures/completions.png", "caption": (
            "Five held-out cues (half of the on pixels removed), their targets and each method's completion "
            "at the fixed point.")},
    ]
    _plot_loss(runs, methods, folder.figure("training_loss.png"))
    _plot_recall(runs, methods, baseline, Tte.size, folder.figure("recall.png"))
    _plot_examples(runs, methods, arrays, data, folder.figure("completions.png"), n_show=len(picks))
    for r in runs:
        r.pop("theta")
        r.pop("examples", None)
    notes = [
        f"{len(P)} patterns of {n} pixels ({int(P.sum(1).min())}-{int(P.sum(1).max())} on); "
        f"{len(Xtr)} training and {len(Xte)} held-out cues; cue pixel error {baseline[0]:.4f}.",
        "train_seconds/ms_per_epoch: the trainer's wall time (gradients and updates), without the per-epoch "
        "test evaluation.",
        "Neumann-RBP and TBPTT miss their thresholds by design (on_failure='ignore'); n_adjoint_failed counts "
        "the mini-batches whose adjoint solve stopped before backward_tol.",
    ]
    if resume:
        notes.append("Resumed run (rbp run --resume): trainings finished before the interruption were loaded from "
                     "checkpoints/ instead of repeated, an interrupted one continued from its last epoch; losses, "
                     "recall and iteration counts are those of an uninterrupted run. train_seconds and ms_per_epoch "
                     "add up the per-epoch training times recorded in each session; each run's seconds (the wall "
                     "time of its call) counts only this session, so it is meaningless for a resumed training.")
    return {"experiment": NAME, "table": _table(runs, methods, baseline), "runs": runs, "figures": figures,
            "notes": notes}

