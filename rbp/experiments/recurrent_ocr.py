"""Recurrent backprop OCR: does a fixed-point net trained by recurrent backprop match an MLP, and at what solver cost?

Research question
    A ``FixedPointNet`` relaxes ``x <- tanh(x W + u U + b)`` to a fixed point
    ``x*`` and reads the class out of ``x*``; recurrent backpropagation
    (Almeida 1987; Pineda 1987) gets the gradient from one adjoint linear
    solve at ``x*``. On the same OCR tasks as ``static_ocr.py``, does it
    reach the accuracy of an MLP with the same number of parameters, and how
    much solver work (forward relaxation steps, adjoint iterations) does it
    cost as training strengthens the recurrent weights?

What is compared (per task, same data, same seeds)
    * ``MLP`` -- ``MLP([n_in, h, n_out], hidden="relu", loss="cross_entropy")``
      with ``h`` chosen so that its parameter count matches the recurrent net
      (both counts are printed), trained with the ``StaticTrainer`` defaults
      (Adam lr 2e-3, 60 epochs, batches of 32, weight decay 1e-4).
    * ``FixedPointNet`` -- ``FixedPointNet(n_in, 100, n_out,
      loss="cross_entropy")``: tanh units, Anderson forward relaxation to a
      per-sample relative residual of 1e-6 (at most 500 steps), GMRES adjoint
      solve to 1e-6, trained with the ``RecurrentTrainer`` defaults (Adam lr
      5e-3, 30 epochs, batches of 32).

    Tasks: ``digits`` (UCI 8x8 handwritten digits, stratified 50/50 split)
    and ``glyphs`` (36 printed characters, 16x16, 10 samples per character
    and typeface, three typefaces held out for the test set). On glyphs both
    models hold out 10 % of the training data for validation and stop early
    (patience 8 epochs, best weights restored).

    Per epoch the history records the solver diagnostics
    (``forward_iterations``: mean relaxation steps per sample;
    ``forward_iterations_max``; ``adjoint_iterations``: GMRES iterations per
    mini-batch; ``adjoint_matvecs``; ``n_forward_failed`` /
    ``n_adjoint_failed``: samples / batches that missed the threshold) and,
    on a probe batch of 8 training samples after each epoch, the spectral
    radius of the Jacobian ``W diag(f'(a*))`` at the fixed point
    (``spectral_radius``; cheap, unlike ``spectral=True`` on every
    mini-batch, which made training ~3.5x slower). A missed threshold is
    reported as an ``rbp.ConvergenceWarning`` and counted in the table.

How to reproduce
    ``rbp run recurrent_ocr``            (1 seed, ~1 min; also ``python experiments/recurrent_ocr.py``)
    ``rbp run recurrent_ocr --seeds 5``
    ``rbp run recurrent_ocr --quick``    (seconds; smoke test)
    ``rbp run experiments/recurrent_ocr.toml``
    ``rbp run --resume runs/<folder>``   (continue an interrupted run)

    Every training writes a checkpoint after each epoch into the run folder,
    ``checkpoints/<task>-<mlp|fpn>-seed<S>.train.npz`` (the per-epoch
    test curve and spectral radius are part of its history).
    ``rbp run --resume runs/<folder>`` (the folder of ``--out``; by default
    ``runs/recurrent_ocr-<date>-<time>``)
    continues an interrupted run with its saved config: finished trainings
    are not repeated, the interrupted one continues from its last epoch, and
    every number of the summary is the one an uninterrupted run gives, except
    the timings (the seconds of a resumed training add up the per-epoch
    training times of both sessions).

    Timings were measured with ``OPENBLAS_NUM_THREADS=1`` on a shared 2-core
    machine (multithreaded BLAS on these small matrices was 5x slower there).

Expected results (measured, seed 0, full defaults)
    digits: FixedPointNet 0.9677 test accuracy (17510 parameters) against
    0.9711 for the MLP (64-233-10, 17485 parameters); training took 7.8 s
    against 0.4 s. Per sample the Anderson relaxation needs 14 -> 20 steps
    (first -> last epoch) and GMRES 18 -> 25 iterations per mini-batch, as
    the spectral radius at the fixed point grows to ~0.68; no threshold
    missed.
    glyphs: FixedPointNet 0.805 on the held-out typefaces against 0.806 for
    the MLP (256-134-36), 24 s against 1.5 s (early stopping after 18 and 24
    epochs). Training drives the spectral radius toward 1 (0.68 -> 0.84, one
    probe above 1): from epoch 9 on, a few samples per epoch (50 in all)
    miss the 1e-6 threshold within 500 Anderson steps (a ConvergenceWarning
    is raised and the counts are in the table), and GMRES needs 26 -> 33
    iterations. With ``--set model.contraction=0.9`` (||W||_2 <= 0.9) no
    sample misses, relaxation takes 7-10 steps, training is ~2-4x faster
    and the accuracy is 0.790.
    Timings vary with the machine's load (the same runs took 14 s and 50 s
    for the FixedPointNet on a busier moment).
"""

from __future__ import annotations

import math
import sys

import numpy as np

import rbp
from rbp.report import new_figure, save_figure, style_axes

from ._common import about, check_names, check_split, prepare, seeds

NAME = "recurrent_ocr"

DEFAULTS = {
    "data": {
        "tasks": ["digits", "glyphs"],
        "seed": 0,  # fixes the digits split and the glyph distortions
        "n_train": 0,  # train on a seeded random subset of this many samples (0 = all)
        "digits_test_size": 0.5,
        "glyphs_charset": "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "glyphs_size": 16,
        "glyphs_n_per_font": 10,
        "glyphs_n_test_fonts": 3,
    },
    "model": {
        "units": 100,  # recurrent units of the FixedPointNet
        "activation": "tanh",
        "forward": "anderson",
        "backward": "gmres",
        "tol": 1e-6,
        "max_iter": 500,
        "backward_tol": 1e-6,
        "on_failure": "warn",
        "contraction": 0.0,  # 0 = off; gamma in (0, 1) keeps ||W||_2 Lip(f) <= gamma after every update
        "mlp_activation": "relu",
    },
    "train": {
        "batch_size": 32,
        "fpn_learning_rate": 5e-3,
        "fpn_epochs": 30,
        "fpn_weight_decay": 0.0,
        "mlp_learning_rate": 2e-3,
        "mlp_epochs": 60,
        "mlp_weight_decay": 1e-4,
        "digits_early_stopping": 0,  # patience in epochs; 0 = off (all epochs, no validation split)
        "glyphs_early_stopping": 8,
        "validation_fraction": 0.1,  # held out of the training set where early stopping is on
    },
    "run": {"seeds": 1, "seed": 0, "spectral_probe": 8},  # probe batch size for the spectral radius; 0 = off
}

QUICK = {
    "data": {"n_train": 200, "glyphs_charset": "AXO7", "glyphs_n_per_font": 2},
    "model": {"units": 24},
    "train": {"fpn_epochs": 2, "mlp_epochs": 3, "batch_size": 50},
}

TASKS = ("digits", "glyphs")
CONSTRAINTS = {"data.tasks": TASKS, "model.on_failure": ("warn", "raise", "skip", "ignore")}
# model.contraction: 0 (off) or in (0, 1); FixedPointNet validates the value (check builds the models)

_MODEL_KEYS = ("model.units", "model.activation", "model.forward", "model.backward", "model.tol", "model.max_iter",
               "model.backward_tol", "model.contraction", "model.mlp_activation")


def _shape(task: str, data: dict):
    """(inputs, classes) of a task, without loading it."""
    if task == "digits":
        return 64, 10
    return data["glyphs_size"] ** 2, len(data["glyphs_charset"])


def check(config: dict):
    """Build every net and trainer (and the digits split, and the validation split of a subset) from
    ``config`` before anything is written."""
    data, train = config["data"], config["train"]
    for task in check_names(data["tasks"], TASKS, "data.tasks"):
        with about(*_MODEL_KEYS, arguments={"n_units": "model.units", "hidden": "model.mlp_activation"}):
            fpn, _, mlp = _models(*_shape(task, data), config["model"])
        for kind, net in (("MLP", mlp), ("FixedPointNet", fpn)):
            prefix = "fpn" if kind == "FixedPointNet" else "mlp"
            with about(f"train.{prefix}_learning_rate", f"train.{prefix}_epochs", f"train.{prefix}_weight_decay",
                       "train.batch_size", f"train.{task}_early_stopping", "train.validation_fraction",
                       arguments={name: f"train.{prefix}_{name}" for name in ("learning_rate", "epochs", "weight_decay")}
                       | {"early_stopping": f"train.{task}_early_stopping"}):
                _trainer(kind, net, task, train)
        if data["n_train"] and train[f"{task}_early_stopping"]:
            check_split(data["n_train"], train["validation_fraction"], "data.n_train / train.validation_fraction")
        if task == "digits":
            with about("data.digits_test_size"):
                rbp.data.digits(test_size=data["digits_test_size"], rng=data["seed"])


def _load(task: str, data: dict):
    if task == "digits":
        ds = rbp.data.digits(test_size=data["digits_test_size"], rng=data["seed"])
    else:
        ds = rbp.data.glyphs(
            data["glyphs_charset"], size=data["glyphs_size"], n_per_font=data["glyphs_n_per_font"],
            n_test_fonts=data["glyphs_n_test_fonts"], rng=data["seed"],
        )
    n = data["n_train"]
    if n:
        # glyph rows are ordered by font and class: take a seeded random subset, not the first rows
        idx = np.sort(np.random.default_rng(data["seed"]).permutation(ds.X_train.shape[0])[:n])
        return ds.X_train[idx], ds.y_train[idx], ds.X_test, ds.y_test, ds.n_classes
    return ds.X_train, ds.y_train, ds.X_test, ds.y_test, ds.n_classes


def _models(n_in, n_out, model_cfg):
    fpn_kwargs = dict(
        activation=model_cfg["activation"], loss="cross_entropy", forward=model_cfg["forward"],
        backward=model_cfg["backward"], tol=model_cfg["tol"], max_iter=model_cfg["max_iter"],
        backward_tol=model_cfg["backward_tol"], on_failure=model_cfg["on_failure"],
        contraction=model_cfg["contraction"] or None,
    )
    fpn = rbp.FixedPointNet(n_in, model_cfg["units"], n_out, **fpn_kwargs)
    probe = rbp.FixedPointNet(n_in, model_cfg["units"], n_out, spectral=True, **{**fpn_kwargs, "on_failure": "ignore"})
    # one hidden layer with (about) the same number of parameters: n_in*h + h + h*n_out + n_out
    hidden = max(1, round((fpn.n_params - n_out) / (n_in + 1 + n_out)))
    mlp = rbp.MLP([n_in, hidden, n_out], hidden=model_cfg["mlp_activation"], loss="cross_entropy")
    return fpn, probe, mlp


def _trainer(kind, net, task, train_cfg, *, progress=None, epoch_metrics=None):
    patience = train_cfg[f"{task}_early_stopping"] or None
    common = dict(
        batch_size=train_cfg["batch_size"], validation_fraction=train_cfg["validation_fraction"] if patience else None,
        early_stopping=patience, epoch_metrics=epoch_metrics, progress=progress,
    )
    if kind == "FixedPointNet":
        return rbp.RecurrentTrainer(net, learning_rate=train_cfg["fpn_learning_rate"], epochs=train_cfg["fpn_epochs"],
                                    weight_decay=train_cfg["fpn_weight_decay"], **common)
    return rbp.StaticTrainer(net, learning_rate=train_cfg["mlp_learning_rate"], epochs=train_cfg["mlp_epochs"],
                             weight_decay=train_cfg["mlp_weight_decay"], **common)


def _fit(kind, net, probe, task, data, config, seed, progress, checkpoint, resume=False):
    """Train one net (checkpoint every epoch; continue from it if ``resume``); returns the run dict."""
    X, y, X_test, y_test, _ = data
    train_cfg = config["train"]
    test_data = net.prepare(X_test, y_test)
    keys = ["test_loss", "test_accuracy"]
    n_probe = config["run"]["spectral_probe"] if probe is not None else 0
    if n_probe:
        keys.append("spectral_radius")
        pick = np.random.default_rng(0).choice(len(X), size=min(n_probe, len(X)), replace=False)
        Xp, yp = X[pick], y[pick]

    def measure(theta):
        metrics = net.evaluate(theta, *test_data)
        out = {"test_loss": metrics["loss"], "test_accuracy": metrics["accuracy"]}
        if n_probe:
            _, _, info = probe.loss_grad_info(theta, Xp, yp)
            out["spectral_radius"] = info["spectral_radius"]
        return out

    trainer = _trainer(kind, net, task, train_cfg, progress=progress, epoch_metrics=measure)
    result = trainer.fit(X, y, rng=seed, checkpoint=checkpoint, resume=resume)
    history = result.history
    out = {
        "label": f"{task}: {kind}", "task": task, "model": kind, "seed": int(seed), "params": int(net.n_params),
        "architecture": repr(net), "test_accuracy": float(net.score(result.x, X_test, y_test)),
        "seconds": float(history["time"][-1]),
        "epochs": int(result.nit), "best_epoch": int(result.best_epoch), "status": result.status.name,
        "history": history,
    }
    if kind == "FixedPointNet":
        for key in ("n_forward_failed", "n_adjoint_failed", "n_skipped"):
            out[key] = int(np.nansum(history.get(key, [0])))
        for key in ("forward_iterations", "adjoint_iterations"):
            out[f"{key}_first"] = float(history[key][0])
            out[f"{key}_last"] = float(history[key][-1])
        if n_probe:
            out["spectral_radius_last"] = float(history["spectral_radius"][-1])
    return out


def _mean(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else math.nan


def _sd(values):
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _table(runs, tasks):
    rows = []
    for task in tasks:
        for kind in ("MLP", "FixedPointNet"):
            mine = [r for r in runs if r["task"] == task and r["model"] == kind]
            if not mine:
                continue
            accs = [r["test_accuracy"] for r in mine]
            row = {
                "task": task, "model": kind, "params": mine[0]["params"], "seeds": len(mine),
                "test_accuracy": _mean(accs), "test_accuracy_sd": _sd(accs),
                "epochs": _mean([r["epochs"] for r in mine]), "seconds": _mean([r["seconds"] for r in mine]),
            }
            if kind == "FixedPointNet":
                row.update({
                    "fwd_iters_first": _mean([r["forward_iterations_first"] for r in mine]),
                    "fwd_iters_last": _mean([r["forward_iterations_last"] for r in mine]),
                    "adj_iters_first": _mean([r["adjoint_iterations_first"] for r in mine]),
                    "adj_iters_last": _mean([r["adjoint_iterations_last"] for r in mine]),
                    "fwd_failed": int(sum(r["n_forward_failed"] for r in mine)),
                    "adj_failed": int(sum(r["n_adjoint_failed"] for r in mine)),
                    "spectral_radius_last": _mean([r.get("spectral_radius_last", math.nan) for r in mine]),
                })
            rows.append(row)
    return rows


def _plot_accuracy(task, runs, path):
    """Test error rate per epoch and against wall time, MLP vs FixedPointNet."""
    fig, (ax_ep, ax_t) = new_figure(1, 2, figsize=(9.5, 3.8), sharey=True)
    colours = {"MLP": "C0", "FixedPointNet": "C3"}
    for kind in ("MLP", "FixedPointNet"):
        mine = [r for r in runs if r["model"] == kind]
        for i, r in enumerate(mine):
            h = r["history"]
            err = 1.0 - np.asarray(h["test_accuracy"], dtype=float)
            err[err <= 0] = np.nan
            label = f"{kind} ({r['params']} params)" if i == 0 else None
            kw = dict(color=colours[kind], alpha=1.0 if i == 0 else 0.35, lw=1.5, label=label)
            ax_ep.plot(h["epoch"], err, **kw)
            ax_t.plot(h["time"], err, **kw)
    ax_ep.set(xlabel="epoch", ylabel="test error rate (1 - accuracy)", yscale="log", title="per epoch")
    ax_t.set(xlabel="training wall time (s)", xscale="log", title="against wall time")
    style_axes(ax_ep, integer_x=True)
    style_axes(ax_t)
    handles, labels = ax_ep.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    test_set = "held-out typefaces" if task == "glyphs" else "held-out half"
    fig.suptitle(f"{task}: static backprop (MLP) vs recurrent backprop (FixedPointNet), test set = {test_set}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, path, dpi=150)


def _plot_solver(task, runs, model_cfg, path):
    """Forward/adjoint iterations, non-converged samples and spectral radius per epoch."""
    mine = [r for r in runs if r["model"] == "FixedPointNet"]
    fig, axes = new_figure(2, 2, figsize=(9.5, 6.6))
    (ax_f, ax_a), (ax_fail, ax_rho) = axes
    for i, r in enumerate(mine):
        h = r["history"]
        ep = np.asarray(h["epoch"])
        first = i == 0
        alpha = 1.0 if first else 0.35
        ax_f.plot(ep, h["forward_iterations"], "-", color="C3", alpha=alpha, label="mean per sample" if first else None)
        ax_f.plot(ep, h["forward_iterations_max"], "--", color="C1", alpha=alpha,
                  label="max over a mini-batch" if first else None)
        ax_a.plot(ep, h["adjoint_iterations"], "-", color="C4", alpha=alpha,
                  label="solver iterations per mini-batch" if first else None)
        ax_a.plot(ep, h["adjoint_matvecs"], ":", color="C5", alpha=alpha, lw=2,
                  label="operator applications per mini-batch" if first else None)
        fails = np.nan_to_num(np.asarray(h.get("n_forward_failed", np.zeros(len(ep))), dtype=float))
        afails = np.nan_to_num(np.asarray(h.get("n_adjoint_failed", np.zeros(len(ep))), dtype=float))
        ax_fail.plot(ep, fails, "o-", color="C3", ms=3, alpha=alpha, label="forward: samples" if first else None)
        ax_fail.plot(ep, afails, "s--", color="C4", ms=3, alpha=alpha, label="adjoint: mini-batches" if first else None)
        if "spectral_radius" in h:
            ax_rho.plot(ep, h["spectral_radius"], "-", color="C2", alpha=alpha,
                        label="rho(W diag f'(a*)), 8 probe samples" if first else None)
    ax_rho.axhline(1.0, color="0.4", lw=0.8, ls="--", label="rho = 1 (plain iteration diverges)")
    ax_f.set(xlabel="epoch", ylabel="forward relaxation steps", yscale="log",
             title=f"forward relaxation ({model_cfg['forward']}) per sample")
    ax_a.set(xlabel="epoch", ylabel="iterations per mini-batch", title=f"adjoint solve ({model_cfg['backward']})")
    ax_fail.set(xlabel="epoch", ylabel="count per epoch", title=f"missed thresholds (tol {model_cfg['tol']:g} / {model_cfg['backward_tol']:g})")
    ax_rho.set(xlabel="epoch", ylabel="spectral radius", title="Jacobian at the fixed point")
    ax_a.set_ylim(bottom=0)
    worst = max([1.0] + [float(np.nanmax(np.asarray(r["history"].get(k, [0]), dtype=float)))
                         for r in mine for k in ("n_forward_failed", "n_adjoint_failed")])
    ax_fail.set_ylim(-0.05 * worst * 1.15, worst * 1.15)
    from matplotlib.ticker import MaxNLocator

    ax_fail.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_rho.set_ylim(0, max(1.1, ax_rho.get_ylim()[1]))
    for ax in axes.ravel():
        style_axes(ax, integer_x=True)
        ax.legend(fontsize=8, loc="best")
    n = len(mine)
    fig.suptitle(f"{task}: solver effort of recurrent backprop during training ({n} seed{'s' if n > 1 else ''})",
                 fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, dpi=150)


def run(config: dict, out_dir, *, progress=None, resume=False) -> dict:
    """Train MLP and FixedPointNet per task and seed; figures into the run folder's ``figures/``; return the summary.

    ``resume=True`` continues from the per-epoch checkpoints (see :mod:`rbp.experiments`).
    """
    config, folder = prepare(sys.modules[__name__], config, out_dir, resume=resume)
    tasks = list(config["data"]["tasks"])
    runs, figures, notes = [], [], []
    for task in tasks:
        data = _load(task, config["data"])
        n_in, n_out = data[0].shape[1], data[4]
        for seed in seeds(config):
            fpn, probe, mlp = _models(n_in, n_out, config["model"])
            runs.append(_fit("MLP", mlp, None, task, data, config, seed, progress,
                             folder.checkpoint(f"{task}-mlp-seed{seed}"), resume))
            runs.append(_fit("FixedPointNet", fpn, probe, task, data, config, seed, progress,
                             folder.checkpoint(f"{task}-fpn-seed{seed}"), resume))
        notes.append(f"{task}: {repr(mlp)} has {mlp.n_params} parameters; {repr(fpn)} has {fpn.n_params}; "
                     f"{data[0].shape[0]} training and {data[2].shape[0]} test samples.")
        mine = [r for r in runs if r["task"] == task]
        _plot_accuracy(task, mine, folder.figure(f"{task}_accuracy.png"))
        _plot_solver(task, mine, config["model"], folder.figure(f"{task}_solver.png"))
        figures += [
            {"file": f"figures/{task}_accuracy.png", "caption": (
                f"{task}: test error rate of the MLP and the FixedPointNet (equal parameter counts) per epoch and "
                "against training wall time, log scales.")},
            {"file": f"figures/{task}_solver.png", "caption": (
                f"{task}: per epoch of FixedPointNet training, the mean and worst forward relaxation steps, the "
                f"adjoint solver's iterations ({config['model']['backward']}), the samples/mini-batches that missed "
                "their threshold, and the spectral radius of the Jacobian at the fixed point on "
                f"{config['run']['spectral_probe']} probe samples.")},
        ]
    failed = sum(r.get("n_forward_failed", 0) + r.get("n_adjoint_failed", 0) for r in runs)
    if failed:
        notes.append(f"{failed} forward samples / adjoint mini-batches missed their threshold in total "
                     "(see the table's fwd_failed/adj_failed and metrics.csv); the trainer reported them "
                     "in a ConvergenceWarning.")
    notes.append("seconds = the trainer's wall time per seed (gradients and updates; the per-epoch test "
                 "evaluation and spectral probe are not counted).")
    if resume:
        notes.append("Resumed run (rbp run --resume): trainings finished before the interruption were loaded from "
                     "checkpoints/ instead of repeated, an interrupted one continued from its last epoch; the "
                     "accuracies, solver counts and curves are those of an uninterrupted run, the seconds (and the "
                     "wall-time axis of the accuracy figure) add up the per-epoch training times recorded in each "
                     "session.")
    return {"experiment": NAME, "table": _table(runs, tasks), "runs": runs, "figures": figures, "notes": notes}
