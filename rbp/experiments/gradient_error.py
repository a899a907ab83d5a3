"""Gradient error versus solver effort: how fast does each backward method approach the true gradient?

Research question
    Recurrent backprop gets the gradient of a fixed-point net from the
    adjoint system ``z (I - D W^T) = dL/dx*`` (Almeida 1987; Pineda 1987).
    Every backward method in ``rbp`` solves it approximately; at equal work
    (operator applications, wall time), which one is closest to the exact
    gradient? And how many unrolled steps does backprop through the
    relaxation (BPTT) need before it agrees with recurrent backprop?

Setup
    A ``FixedPointNet(64, 100, 10, loss="cross_entropy")`` (tanh) trained for 5
    epochs on the UCI digits with the ``RecurrentTrainer`` defaults, so that
    its recurrent weights are no longer those of the initialisation; the
    spectral radius of the Jacobian at the fixed point is printed (~0.7). The
    gradient is evaluated at those parameters on a fixed batch of 64
    training digits.

    Reference: forward relaxation (Anderson) to a per-sample relative residual
    of 1e-13, then ``backward="direct"`` (batched LU). Error = relative
    Euclidean error of the gradient of the recurrent parameters ``(W, U, b)``
    (the readout's gradient does not depend on the adjoint solve).

    Figure 1 (``gradient_error.png``): at the same converged fixed point, for
    each backward method, the error versus the operator applications the
    solver reports (``info["adjoint"].n_matvec``; CG-RBP counts both ``A``
    and ``A^T``) and versus the backward wall time (gradient time minus
    forward time, each the minimum of 5 repeats), sweeping
    ``backward_tol`` = 1e-1 ... 1e-12 for the Krylov methods (GMRES, LGMRES,
    BiCGSTAB, CG on the normal equations) and ``backward_max_iter`` = 1 ...
    256 for the series methods (Neumann-RBP; Pineda's adjoint relaxation with
    damping 0.5). The direct solve is shown as the time of one exact solve.

    Figure 2 (``bptt_vs_steps.png``): the BPTT gradient after ``k`` Picard
    steps from the zero state (``backward="bptt", forward="picard",
    max_iter=k, on_failure="ignore"``), k = 1 ... 120, against the exact
    gradient; beside it, recurrent backprop (direct solve) applied at the same
    truncated state ``x_k``, and the rate ``rho^k`` of the Jacobian's
    spectral radius.

How to reproduce
    ``rbp run gradient_error``             (~1 min; also ``python experiments/gradient_error.py``)
    ``rbp run gradient_error --seeds 3``   (three trained nets)
    ``rbp run gradient_error --quick``     (seconds)
    ``rbp run experiments/gradient_error.toml``
    ``rbp run --resume runs/<folder>``     (continue an interrupted run)

    The pre-training writes a checkpoint after each epoch into the run
    folder, ``checkpoints/pretrain-seed<S>.train.npz``. ``rbp run --resume
    runs/<folder>`` (the folder of ``--out``; by default
    ``runs/gradient_error-<date>-<time>``) continues an interrupted run
    with its saved config: a finished pre-training is loaded, an interrupted
    one continues from its last epoch (the same parameters as an
    uninterrupted run), and the measurements are made again: the errors,
    operator applications and steps are those of an uninterrupted run, the
    timings are new measurements.

    Timings were measured with ``OPENBLAS_NUM_THREADS=1`` on a shared 2-core
    machine; wall times below ~1 ms are at the resolution of the subtraction.

Expected results (measured, seed 0, full defaults; rho(J) = 0.777 at the fixed point)
    Operator applications to reach a relative gradient error of 1e-6: GMRES
    33, LGMRES 34, BiCGSTAB 34, Neumann-RBP 64, Pineda relaxation (damping
    0.5) 128, CG-RBP 182 (CG on the normal equations squares the condition
    number; its tolerance is also tightened internally, so even
    ``backward_tol=0.1`` costs 116 applications and gives 1e-4). Neumann-RBP
    follows ``rho^k`` as the theory says. In CPU time per batch of 64 the
    order changes: Neumann-RBP 2.2 ms, BiCGSTAB 2.4, LGMRES 3.5, relaxation
    4.3, GMRES 5.0, CG-RBP 9.3, while one exact batched LU solve costs 18 ms
    (the forward relaxation to 1e-13 costs 7.9 ms): the series' plain
    batched products carry no Krylov bookkeeping. BPTT through k Picard
    steps reaches 1e-3 / 1e-6 / 1e-9 after 31 / 63 / 92 steps, falling at the
    rate rho^k like the forward residual; RBP applied at the same truncated
    state does slightly better (24 / 54 / 81).
"""

from __future__ import annotations

import sys
import time

import numpy as np

import rbp
from rbp.config import Range
from rbp.report import line_style, new_figure, save_figure, style_axes

from ._common import about, prepare, seeds

NAME = "gradient_error"

DEFAULTS = {
    "data": {
        "batch": 64,  # the gradient is taken on this many training digits (a seeded pick)
        "seed": 0,  # seed of the digits split
    },
    "model": {"units": 100, "activation": "tanh", "init_scale": 0.5},
    "train": {  # pre-training on the digits, so that W is not the initial one
        "epochs": 5,
        "learning_rate": 5e-3,
        "batch_size": 32,
    },
    "sweep": {
        "krylov": ["gmres", "lgmres", "bicgstab", "cg-normal"],
        "series": ["neumann", "relax"],
        "tols": [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12],
        "max_iters": [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256],
        "relax_damping": 0.5,
        "reference_tol": 1e-13,
        "repeats": 5,  # timing repeats (minimum is kept)
        "clock": "cpu",  # "cpu": this process's CPU time (immune to other processes' load); "wall": wall clock
        "bptt_steps": 120,  # BPTT unrolled steps 1 .. bptt_steps
    },
    "run": {"seeds": 1, "seed": 0},
}

QUICK = {
    "data": {"batch": 16},
    "model": {"units": 20},
    "train": {"epochs": 1},
    "sweep": {"tols": [1e-2, 1e-5, 1e-8], "max_iters": [2, 8, 32], "repeats": 2, "bptt_steps": 15},
}

KRYLOV = ("gmres", "lgmres", "bicgstab", "cg-normal")
SERIES = ("neumann", "relax")
CONSTRAINTS = {"sweep.krylov": KRYLOV, "sweep.series": SERIES, "sweep.clock": ("cpu", "wall"),
               "sweep.repeats": Range(1), "sweep.bptt_steps": Range(1), "data.batch": Range(1),
               "model.units": Range(1)}
_LABELS = {"gmres": "GMRES", "lgmres": "LGMRES", "bicgstab": "BiCGSTAB", "cg-normal": "CG-RBP (normal eq.)",
           "neumann": "Neumann-RBP", "relax": "Pineda relaxation", "direct": "direct (LU)"}


def check(config: dict):
    """Build the pre-training net and trainer and every net of the sweeps from ``config`` before anything
    is written."""
    sweep, model = config["sweep"], config["model"]
    for key, allowed in (("sweep.krylov", KRYLOV), ("sweep.series", SERIES)):
        values = sweep[key.split(".")[1]]
        if any(v not in allowed for v in values) or len(set(values)) != len(values):
            raise ValueError(f"{key} must list distinct names from {list(allowed)}, got {values!r}")
    kw = _kwargs(model)
    with about("model.units", "model.activation", "model.init_scale"):
        net = rbp.FixedPointNet(64, model["units"], 10, **kw)
    with about("train.learning_rate", "train.epochs", "train.batch_size"):
        _pretrainer(net, config["train"])
    with about("sweep.reference_tol"):
        rbp.FixedPointNet(64, model["units"], 10, **kw, tol=sweep["reference_tol"], backward="direct")
    for method in sweep["krylov"]:
        for tol in sweep["tols"]:
            with about("sweep.krylov", "sweep.tols"):
                rbp.FixedPointNet(64, model["units"], 10, **kw, backward=method, backward_tol=tol)
    for method in sweep["series"]:
        extra = {"backward_damping": sweep["relax_damping"]} if method == "relax" else {}
        for k in sweep["max_iters"]:
            with about("sweep.series", "sweep.max_iters", "sweep.relax_damping"):
                rbp.FixedPointNet(64, model["units"], 10, **kw, backward=method, backward_max_iter=k, **extra)


def _kwargs(model: dict) -> dict:
    return dict(activation=model["activation"], loss="cross_entropy", init_scale=model["init_scale"])


def _pretrainer(net, train: dict, progress=None) -> rbp.RecurrentTrainer:
    return rbp.RecurrentTrainer(net, learning_rate=train["learning_rate"], epochs=train["epochs"],
                                batch_size=train["batch_size"], progress=progress)


def _recurrent_grad(net, grad):
    p = net.params.unravel(grad)
    return np.concatenate([p["W"].ravel(), p["U"].ravel(), p["b"].ravel()])


def _timed(fn, forward, repeats, clock):
    """``(backward seconds, fn())``: min over repeats of ``fn`` minus min over repeats of ``forward``,
    measured alternately (after one warm-up call of each) so that load drifts hit both alike."""
    out = fn()
    forward()
    best, best_fwd = np.inf, np.inf
    for _ in range(repeats):
        t0 = clock()
        forward()
        t1 = clock()
        out = fn()
        t2 = clock()
        best_fwd, best = min(best_fwd, t1 - t0), min(best, t2 - t1)
    return best - best_fwd, out


def _setup(config, seed, progress, checkpoint=None, resume=False):
    """Pre-train a FixedPointNet on the digits (checkpoint every epoch; continue from it if ``resume``);
    return (kwargs, theta, X, y, ds)."""
    model, train = config["model"], config["train"]
    ds = rbp.data.digits(rng=config["data"]["seed"])
    kw = _kwargs(model)
    net = rbp.FixedPointNet(64, model["units"], 10, **kw)
    result = _pretrainer(net, train, progress).fit(ds.X_train, ds.y_train, rng=seed, checkpoint=checkpoint, resume=resume)
    pick = np.random.default_rng(seed).permutation(len(ds.X_train))[: config["data"]["batch"]]
    return kw, result.x, ds.X_train[pick], ds.y_train[pick], net


def _measure(config, seed, progress, checkpoint=None, resume=False):
    sweep, model = config["sweep"], config["model"]
    kw, theta, X, y, trained = _setup(config, seed, progress, checkpoint, resume)
    n_in, units = 64, model["units"]
    ref_tol, repeats = sweep["reference_tol"], sweep["repeats"]
    clock = time.process_time if sweep["clock"] == "cpu" else time.perf_counter

    def net(**extra):
        return rbp.FixedPointNet(n_in, units, 10, **{**kw, "tol": ref_tol, "max_iter": 5000, **extra})

    reference = net(backward="direct", spectral=True)
    _, g_ref, info = reference.loss_grad_info(theta, X, y)
    fwd = info["forward"]
    if not fwd.success:
        raise RuntimeError(f"the reference forward relaxation did not reach {ref_tol:g}: {fwd.message}")
    g_ref = _recurrent_grad(reference, g_ref)
    rho = float(info["spectral_radius"])
    def forward():
        return reference.relax(theta, X)

    t_forward = _timed(forward, lambda: None, repeats, clock)[0]
    t_direct, _ = _timed(lambda: reference.loss_grad_info(theta, X, y), forward, repeats, clock)
    resolution = 1e-5  # backward times below this (or negative, from timing noise) are drawn at this floor

    def error(grad, model_):
        return float(np.linalg.norm(_recurrent_grad(model_, grad) - g_ref) / np.linalg.norm(g_ref))

    runs = []
    for method in list(sweep["krylov"]) + list(sweep["series"]):
        h = {"backward_tol": [], "backward_max_iter": [], "matvecs": [], "iterations": [], "seconds": [],
             "relative_error": [], "adjoint_residual": []}
        if method in SERIES:
            settings = [dict(backward_tol=1e-15, backward_max_iter=k) for k in sweep["max_iters"]]
        else:
            settings = [dict(backward_tol=t) for t in sweep["tols"]]
        for s in settings:
            extra = dict(backward=method, on_failure="ignore", **s)
            if method == "relax":
                extra["backward_damping"] = sweep["relax_damping"]
            m = net(**extra)
            seconds, (_, g, inf) = _timed(lambda: m.loss_grad_info(theta, X, y), forward, repeats, clock)
            h["backward_tol"].append(s["backward_tol"])
            h["backward_max_iter"].append(s.get("backward_max_iter", 0))
            h["matvecs"].append(int(inf["adjoint"].n_matvec))
            h["iterations"].append(int(inf["adjoint"].nit))
            h["seconds"].append(max(seconds, resolution))
            h["relative_error"].append(error(g, m))
            h["adjoint_residual"].append(float(inf["adjoint"].residual))
        label = _LABELS[method] + (f" (damping {sweep['relax_damping']:g})" if method == "relax" else "")
        runs.append({"label": label, "method": method, "seed": int(seed), "history": h})

    # BPTT through k Picard steps from zero, and RBP (direct) at the same truncated state
    steps = list(range(1, sweep["bptt_steps"] + 1))
    bptt_err, rbp_err, fwd_res = [], [], []
    for k in steps:
        common = dict(forward="picard", max_iter=k, tol=1e-15, on_failure="ignore")
        mb = net(backward="bptt", **common)
        _, g, inf = mb.loss_grad_info(theta, X, y)
        bptt_err.append(error(g, mb))
        fwd_res.append(float(inf["forward"].residual.max()))
        md = net(backward="direct", **common)
        _, g, _ = md.loss_grad_info(theta, X, y)
        rbp_err.append(error(g, md))
    runs.append({"label": "BPTT (k Picard steps)", "method": "bptt", "seed": int(seed), "history": {
        "steps": steps, "relative_error": bptt_err, "forward_residual": fwd_res}})
    runs.append({"label": "RBP (direct) at x_k", "method": "rbp-at-xk", "seed": int(seed), "history": {
        "steps": steps, "relative_error": rbp_err, "forward_residual": fwd_res}})
    facts = {"seed": int(seed), "spectral_radius": rho, "forward_seconds": t_forward,
             "direct_seconds": max(t_direct, resolution),
             "reference_forward_iterations": int(fwd.nit),
             "reference_adjoint_residual": float(info["adjoint"].residual),
             "grad_norm": float(np.linalg.norm(g_ref))}
    return runs, facts


def _first_reaching(h, key, threshold):
    hits = [v for v, e in zip(h[key], h["relative_error"]) if e <= threshold]
    return min(hits) if hits else None


def _table(runs, facts, thresholds=(1e-3, 1e-6, 1e-9)):
    rows = []
    methods = []
    for r in runs:
        if r["method"] not in methods:
            methods.append(r["method"])
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        row = {"method": mine[0]["label"]}
        for thr in thresholds:
            key = "steps" if method in ("bptt", "rbp-at-xk") else "matvecs"
            vals = [_first_reaching(r["history"], key, thr) for r in mine]
            row[f"{'steps' if key == 'steps' else 'matvecs'}_to_{thr:.0e}"] = (
                None if any(v is None for v in vals) else float(np.mean(vals)))
        if method not in ("bptt", "rbp-at-xk"):
            for thr in thresholds[1:2]:
                vals = [_first_reaching(r["history"], "seconds", thr) for r in mine]
                row[f"ms_to_{thr:.0e}"] = None if any(v is None for v in vals) else 1e3 * float(np.mean(vals))
        row["best_error"] = float(np.mean([min(r["history"]["relative_error"]) for r in mine]))
        rows.append(row)
    rows.append({"method": "direct (LU, the reference)", "matvecs_to_1e-03": 0.0, "matvecs_to_1e-06": 0.0,
                 "matvecs_to_1e-09": 0.0, "ms_to_1e-06": 1e3 * float(np.mean([f["direct_seconds"] for f in facts])),
                 "best_error": 0.0})
    return rows


def _plot_sweep(runs, facts, path):
    fig, (ax_mv, ax_t) = new_figure(1, 2, figsize=(10.5, 4.4), sharey=True)
    sweeps = [r for r in runs if r["method"] not in ("bptt", "rbp-at-xk")]
    order = []
    for r in sweeps:
        if r["method"] not in order:
            order.append(r["method"])
    floor = 1e-16
    for r in sweeps:
        i = order.index(r["method"])
        h = r["history"]
        first = r["seed"] == facts[0]["seed"]
        kw = dict(**line_style(i, lines=False), ms=4, lw=1.4, alpha=1.0 if first else 0.3,
                  label=r["label"] if first else None, ls="-" if r["method"] in KRYLOV else "--")
        err = np.maximum(h["relative_error"], floor)
        mv = np.maximum(h["matvecs"], 1)
        ax_mv.plot(mv, err, **kw)
        ax_t.plot(np.asarray(h["seconds"]) * 1e3, err, **kw)
    direct_ms = 1e3 * facts[0]["direct_seconds"]
    ax_t.axvline(direct_ms, color="k", ls=":", lw=1.2, label=f"direct (LU) solve, exact: {direct_ms:.2g} ms")
    rho = facts[0]["spectral_radius"]
    k = np.arange(1, 400)
    ax_mv.plot(k, rho ** k, color="0.5", ls=":", lw=1.2, label=f"rho^k, rho = {rho:.3f}")
    ax_mv.set(xscale="log", yscale="log", xlabel="operator applications (matvecs with A or A^T, per batch)",
              ylabel="relative gradient error ||g - g*|| / ||g*||", title="error vs solver work",
              ylim=(1e-15, 3), xlim=(0.8, 400))
    clock = "CPU" if facts[0]["clock"] == "cpu" else "wall"
    ax_t.set(xscale="log", xlabel=f"backward {clock} time per batch (ms)", title=f"error vs {clock} time")
    for ax in (ax_mv, ax_t):
        style_axes(ax)
    h1, l1 = ax_mv.get_legend_handles_labels()
    h2, l2 = ax_t.get_legend_handles_labels()
    fig.legend(h1 + h2[-1:], l1 + l2[-1:], loc="lower center", ncol=4, fontsize=8.5, frameon=False)
    fig.suptitle(f"Adjoint solve: gradient error vs effort (FixedPointNet, {facts[0]['units']} tanh units, "
                 f"batch {facts[0]['batch']}; solid: Krylov, tol sweep; dashed: series, max_iter sweep)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    save_figure(fig, path, dpi=150)


def _plot_bptt(runs, facts, path):
    fig, ax = new_figure(figsize=(6.8, 4.4))
    for r in runs:
        if r["method"] not in ("bptt", "rbp-at-xk"):
            continue
        h = r["history"]
        first = r["seed"] == facts[0]["seed"]
        bptt = r["method"] == "bptt"
        ax.plot(h["steps"], np.maximum(h["relative_error"], 1e-16), color="C3" if bptt else "C0",
                ls="-" if bptt else "--", lw=1.8 if bptt else 1.4, alpha=1.0 if first else 0.3,
                label=r["label"] if first else None)
        if bptt and first:
            ax.plot(h["steps"], np.maximum(h["forward_residual"], 1e-16), color="C2", ls=":", lw=1.4,
                    label="forward residual ||x_k - F(x_k)|| (max over batch)")
    rho = facts[0]["spectral_radius"]
    steps = np.asarray(next(r for r in runs if r["method"] == "bptt")["history"]["steps"])
    ax.plot(steps, rho ** steps, color="0.4", ls="-.", lw=1.0, label=f"rho^k, rho = {rho:.3f}")
    ax.set(yscale="log", xlabel="unrolled relaxation steps k (Picard, from x_0 = 0)",
           ylabel="relative error vs exact RBP gradient\n(dotted: relative forward residual)", ylim=(1e-15, 10),
           title="BPTT through k steps converges to the recurrent-backprop gradient")
    style_axes(ax)
    ax.legend(fontsize=8.5, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path, dpi=150)


def run(config: dict, out_dir, *, progress=None, resume=False) -> dict:
    """Measure gradient error against effort for every backward method; figures into the run folder's ``figures/``.

    The pre-training writes a checkpoint into ``checkpoints/`` after every epoch; with ``resume=True``
    a finished one is loaded instead of repeated and an interrupted one continues from its last epoch.
    """
    config, folder = prepare(sys.modules[__name__], config, out_dir, resume=resume)
    sweep = config["sweep"]
    runs, facts = [], []
    for seed in seeds(config):
        r, f = _measure(config, seed, progress, folder.checkpoint(f"pretrain-seed{seed}"), resume)
        f.update(units=config["model"]["units"], batch=config["data"]["batch"], clock=sweep["clock"])
        runs += r
        facts.append(f)
    _plot_sweep(runs, facts, folder.figure("gradient_error.png"))
    _plot_bptt(runs, facts, folder.figure("bptt_vs_steps.png"))
    figures = [
        {"file": "figures/gradient_error.png", "caption": (
            "Relative error of the recurrent-backprop gradient against the exact one versus operator "
            "applications and backward wall time, one line per backward method (log-log).")},
        {"file": "figures/bptt_vs_steps.png", "caption": (
            "Relative error of BPTT through k relaxation steps, and of RBP applied at the k-step state, against "
            "the exact gradient, with the forward residual and rho^k (log scale).")},
    ]
    notes = [
        f"seed {f['seed']}: spectral radius of the Jacobian at the fixed point {f['spectral_radius']:.4f}; "
        f"reference forward {f['reference_forward_iterations']} Anderson steps to 1e-13 in "
        f"{1e3 * f['forward_seconds']:.1f} ms; direct adjoint residual {f['reference_adjoint_residual']:.1e}; "
        f"direct backward {1e3 * f['direct_seconds']:.2f} ms" for f in facts
    ]
    notes.append(f"Backward time = min over {sweep['repeats']} repeats of the gradient time minus min over repeats of "
                 f"the forward time, clock: {sweep['clock']} ('cpu' = time.process_time, which equals wall time "
                 "on an idle machine with single-threaded BLAS and ignores other processes' load).")
    if resume:
        notes.append("Resumed run (rbp run --resume): the pre-trained nets come from checkpoints/ (an interrupted "
                     "pre-training continued from its last epoch, to the parameters of an uninterrupted run); "
                     "the sweeps were measured again in this session.")
    return {"experiment": NAME, "table": _table(runs, facts), "runs": runs, "figures": figures, "notes": notes,
            "facts": facts, "standard_figures": False}

