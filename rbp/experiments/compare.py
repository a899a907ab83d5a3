"""Static vs recurrent backprop on the same OCR task, same seeds, comparable sizes.

The ``rbp compare`` job, an experiment like the others (``DEFAULTS``,
``QUICK``, ``check(config)``, ``run(config, folder, progress=...)``): ``rbp run
compare`` and a TOML file with ``experiment = "compare"`` drive it too, and
``rbp compare`` is its shorthand. It trains

* an MLP by static backpropagation (one relu hidden layer whose width is
  chosen to match the recurrent net's parameter count),
* a :class:`~rbp.FixedPointNet` by recurrent backpropagation: Anderson
  relaxation forward, the adjoint system solved by GMRES backward (Almeida
  1987; Pineda 1987),
* the same net by backprop through the stored Picard relaxation (BPTT), the
  reference that recurrent backprop approximates,

on the UCI digits (default) or the printed glyphs, with a validation split
held out of the training data (curves, epochs-to-target) and the test split
touched once per run at the end (test accuracy). It reports test accuracy,
epochs and seconds to a target validation accuracy, and the gradient cost
(seconds per epoch, forward and backward iterations), and draws the learning
curves, solver diagnostics, residual traces, confusion matrices and the
misclassified characters. Beside each accuracy it shows the evaluation misses
(samples whose relaxation missed its threshold while the test or validation
split was evaluated, where the model reports them), and marks with † a test
accuracy computed with misses.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ..config import Range
from ..recurrent import BACKWARD_METHODS, FixedPointNet, RecurrentTrainer
from ..static import MLP, StaticTrainer
from ._common import about, check_split, prepare

__all__ = ["NAME", "DEFAULTS", "QUICK", "PRESETS", "CONSTRAINTS", "check", "run", "static_width"]

NAME = "compare"

DEFAULTS = {
    "data": {
        "name": "digits",  # digits (UCI, 8x8) or glyphs (printed characters, held-out typefaces)
        "test_size": 0.5,  # digits: fraction of the 1797 samples in the test split
        "n_per_font": 6,  # glyphs: samples per character and typeface
        "size": 16,  # glyphs: image side in pixels
        "n_train": 0,  # use only the first n training samples (0: all)
        "validation_fraction": 0.1,  # held out of the training split for curves and epochs-to-target
        "seed": 0,  # the data split / glyph rendering seed
    },
    "model": {
        "units": 100,  # recurrent units of the FixedPointNet
        "activation": "tanh",
        "forward": "anderson",  # relaxation for the RBP variants (BPTT always relaxes by picard)
        "backward": ["gmres", "bptt"],  # one recurrent variant per backward method
        "tol": 1e-6,
        "max_iter": 500,
        "backward_tol": 1e-6,
        "contraction": 0.9,  # keep ||W||_2 Lip(f) <= this (< 1) after every update; 0: unconstrained
        "static_hidden": 0,  # MLP hidden width; 0 matches the recurrent net's parameter count
        "static_activation": "relu",
    },
    "train": {
        "epochs": 30,
        "batch_size": 32,
        "static_learning_rate": 2e-3,  # Adam, the StaticTrainer default
        "recurrent_learning_rate": 5e-3,  # Adam, the RecurrentTrainer default
        "target_accuracy": 0.95,  # on the validation split
    },
    "run": {
        "seeds": 3,  # repeats with seeds seed, seed+1, ...
        "seed": 0,
        "spectral_radius": True,  # measure rho(J) at the fixed point after every epoch
        "n_traces": 5,  # per-sample residual traces recorded at the end of training
    },
}

QUICK = {
    "data": {"n_train": 400},
    "model": {"units": 40},
    "train": {"epochs": 8, "target_accuracy": 0.85},
    "run": {"seeds": 2},
}

#: What ``rbp compare --data NAME`` sets. On the glyphs (36 classes, typefaces never seen in training)
#: an unconstrained net drifts past spectral radius 1 and its relaxation stops converging, so the
#: preset keeps it contractive, and the target accuracy is one the held-out typefaces allow.
PRESETS = {
    "digits": {"data": {"name": "digits"}},
    "glyphs": {"data": {"name": "glyphs"}, "train": {"target_accuracy": 0.8}},
}

CONSTRAINTS = {
    "data.name": ("digits", "glyphs"),
    "data.test_size": Range(0, 1, low_open=True, high_open=True),
    "data.n_per_font": Range(1),
    "data.size": Range(8),
    "data.n_train": Range(0),
    "model.units": Range(1),
    "model.contraction": Range(0, 1, high_open=True),
    "model.static_hidden": Range(0),
    "run.n_traces": Range(0),
}
# model.activation, .forward, .backward and .static_activation are checked by building the models (check):
# the models' own registries name what is valid, methods registered from user code included.


def static_width(n_in: int, n_out: int, n_recurrent_params: int) -> int:
    """Hidden width of a one-hidden-layer MLP with about ``n_recurrent_params`` parameters.

    Examples
    --------
    >>> net = FixedPointNet(64, 100, 10)
    >>> h = static_width(64, 10, net.n_params)
    >>> h, MLP([64, h, 10]).n_params, net.n_params
    (233, 17485, 17510)
    """
    return max(1, round((n_recurrent_params - n_out) / (n_in + 1 + n_out)))


def _shape(cfg):
    """(inputs, classes) of the task, without loading it."""
    if cfg["data"]["name"] == "digits":
        return 64, 10
    return cfg["data"]["size"] ** 2, 36


def check(config: dict):
    """Build every model and trainer of the run, and the digits split, from ``config``: a value they
    refuse is reported (ValueError naming the config key) before anything is written."""
    from .. import data

    d, n_in, n_out = config["data"], *_shape(config)
    variants = _variants(config, n_in, n_out)
    recurrent_keys = ("model.units", "model.activation", "model.forward", "model.backward", "model.tol",
                      "model.max_iter", "model.backward_tol", "model.contraction")
    for v in variants:
        static = v["kind"] == "static"
        with about(*recurrent_keys, "model.static_hidden", "model.static_activation",
                   arguments={"n_units": "model.units", "sizes": "model.static_hidden",
                              "hidden": "model.static_activation"}):
            net, _ = _build(v, config, n_in, n_out)
        rate = f"train.{'static' if static else 'recurrent'}_learning_rate"
        with about(rate, "train.epochs", "train.batch_size", "data.validation_fraction",
                   arguments={"learning_rate": rate}):
            _trainer(v, config, net)
    if d["name"] == "digits":
        with about("data.test_size"):
            data.digits(test_size=d["test_size"], rng=d["seed"])
    if d["n_train"]:
        check_split(d["n_train"], d["validation_fraction"], "data.n_train / data.validation_fraction")


def _load_data(cfg):
    from .. import data

    d = cfg["data"]
    if d["name"] == "digits":
        ds = data.digits(test_size=d["test_size"], rng=d["seed"])
        desc = "UCI handwritten digits (8x8, scikit-learn's bundled copy)"
    else:
        ds = data.glyphs(n_per_font=d["n_per_font"], size=d["size"], rng=d["seed"])
        desc = (
            f"printed characters A-Z0-9 ({d['size']}x{d['size']}) from matplotlib's fonts; test typefaces "
            + ", ".join(ds.meta["test_fonts"]) + " never seen in training"
        )
    X, y = ds.X_train, ds.y_train
    if d["n_train"] and d["n_train"] < len(y):
        # glyph rows are ordered by face and class: subsample at random, not the first rows
        keep = np.sort(np.random.default_rng(d["seed"]).permutation(len(y))[: d["n_train"]])
        X, y = X[keep], y[keep]
    return ds, X, y, desc


def _variants(cfg, n_in, n_out):
    m = cfg["model"]
    out = [{"key": "static", "label": "MLP · static backprop", "kind": "static"}]
    for b in m["backward"]:
        if b == "bptt":
            out.append({"key": "bptt", "label": "FixedPointNet · BPTT (picard)", "kind": "recurrent",
                        "forward": "picard", "backward": "bptt"})
        else:
            out.append({"key": f"rbp-{b}", "label": f"FixedPointNet · RBP ({b})", "kind": "recurrent",
                        "forward": m["forward"], "backward": b})
    keys = [v["key"] for v in out]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"model.backward must not repeat a method, got {m['backward']!r} repeating {dup}")
    return out


def _trainer(variant, cfg, net, *, progress=None, epoch_metrics=None):
    t = cfg["train"]
    common = dict(epochs=t["epochs"], batch_size=t["batch_size"], progress=progress, epoch_metrics=epoch_metrics,
                  validation_fraction=cfg["data"]["validation_fraction"])
    if variant["kind"] == "static":
        return StaticTrainer(net, learning_rate=t["static_learning_rate"], **common)
    return RecurrentTrainer(net, learning_rate=t["recurrent_learning_rate"], **common)


def _recurrent_net(cfg, n_in, n_out, forward, backward, **extra):
    m = cfg["model"]
    kwargs = dict(
        activation=m["activation"], loss="cross_entropy", forward=forward, backward=backward, tol=m["tol"],
        max_iter=m["max_iter"], backward_tol=m["backward_tol"], contraction=m["contraction"] or None,
    )
    kwargs.update(extra)
    return FixedPointNet(n_in, m["units"], n_out, **kwargs), kwargs


def _build(variant, cfg, n_in, n_out):
    if variant["kind"] == "static":
        m = cfg["model"]
        hidden = m["static_hidden"] or static_width(n_in, n_out, _recurrent_net(cfg, n_in, n_out, "picard",
                                                                               "direct")[0].n_params)
        kwargs = {"hidden": m["static_activation"], "loss": "cross_entropy"}
        return MLP([n_in, hidden, n_out], **kwargs), {"sizes": [n_in, hidden, n_out], **kwargs}
    net, kwargs = _recurrent_net(cfg, n_in, n_out, variant["forward"], variant["backward"])
    return net, {"n_in": n_in, "n_units": cfg["model"]["units"], "n_out": n_out, **kwargs}


def _first_reach(history, target):
    acc = history.get("val_accuracy") or []
    for i, a in enumerate(acc):
        if a is not None and a >= target:
            return int(history["epoch"][i]), float(history["time"][i])
    return None, None


def _train_one(variant, cfg, ds, X, y, seed, progress, checkpoint=None, resume=False):
    n_in, n_out = ds.n_features, ds.n_classes
    net, kwargs = _build(variant, cfg, n_in, n_out)
    t = cfg["train"]
    epoch_metrics = None
    if variant["kind"] == "recurrent" and cfg["run"]["spectral_radius"]:
        probe, _ = _recurrent_net(cfg, n_in, n_out, variant["forward"], "direct", spectral=True,
                                  on_failure="ignore")
        rows = _spread(len(y), 8)
        probe_data = probe.prepare(X[rows], y[rows])

        def epoch_metrics(theta):  # on a probe batch after every epoch; kept in the history (and the checkpoint)
            _, _, info = probe.loss_grad_info(theta, *probe_data, check=False)
            return {"spectral_radius": info["spectral_radius"]}

    trainer = _trainer(variant, cfg, net, progress=progress, epoch_metrics=epoch_metrics)
    t0 = time.perf_counter()
    result = trainer.fit(X, y, rng=seed, checkpoint=checkpoint, resume=resume)
    wall = time.perf_counter() - t0
    history = {k: list(v) for k, v in result.history.items()}
    theta = result.x
    test = net.evaluate(theta, *net.prepare(ds.X_test, ds.y_test))
    pred = net.predict_classes(theta, ds.X_test)
    reach_epoch, reach_time = _first_reach(history, t["target_accuracy"])
    n_epochs = len(history.get("epoch", []))
    out = {
        "label": variant["label"], "key": variant["key"], "seed": seed, "history": history,
        "forward": variant.get("forward"), "backward": variant.get("backward", "static"),
        "status": result.status.name, "message": result.message, "n_params": int(net.n_params),
        "model": repr(net), "model_kwargs": kwargs, "test_accuracy": float(test["accuracy"]),
        "test_loss": float(test["loss"]), "seconds": float(history["time"][-1]) if n_epochs else 0.0,
        "wall_seconds": wall, "epochs_to_target": reach_epoch, "seconds_to_target": reach_time,
        "seconds_per_epoch": float(np.mean(history["seconds"])) if n_epochs else None,
    }
    # Evaluation misses: samples whose relaxation missed its threshold while the test split or the validation
    # split was evaluated (reported by FixedPointNet.evaluate / the history where the model counts them).
    misses = test.get("n_unconverged")
    out["test_n_unconverged"] = None if misses is None else int(misses)
    val = history.get("val_n_unconverged")
    out["val_n_unconverged"] = None if val is None else int(np.nansum(np.asarray(val, dtype=float)))
    for key in ("forward_iterations", "forward_iterations_max", "adjoint_iterations", "adjoint_matvecs"):
        if key in history:
            out[key] = float(np.nanmean(np.asarray(history[key], dtype=float)))
    out["n_failed"] = int(sum(np.nansum(np.asarray(history.get(k, [0]), dtype=float))
                              for k in ("n_forward_failed", "n_adjoint_failed")))
    if history.get("spectral_radius"):
        out["spectral_radius_final"] = float(history["spectral_radius"][-1])
    if variant["kind"] == "recurrent" and cfg["run"]["n_traces"]:
        fwd, adj = [], []
        diag, _ = _recurrent_net(cfg, n_in, n_out, variant["forward"], variant["backward"], on_failure="ignore")
        for i in _spread(len(y), cfg["run"]["n_traces"]):
            _, _, info = diag.loss_grad_info(theta, X[i : i + 1], y[i : i + 1])
            fwd.append([float(v) for v in info["forward"].residuals])
            adj.append([float(v) for v in info["adjoint"].residuals])
        out["forward_traces"], out["adjoint_traces"] = fwd, adj
    return out, net, theta, pred


def _spread(n: int, k: int):
    """``k`` sample indices spread evenly over ``range(n)`` (rows may be ordered by class)."""
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int))


def _backward_methods_table(cfg, ds, X, y, theta, forward):
    """Every adjoint solver on one batch of the trained recurrent net, against the direct solve."""
    n_in, n_out = ds.n_features, ds.n_classes
    rows = _spread(len(y), 32)
    Xb, yb = X[rows], y[rows]
    results, traces = {}, []
    for method in tuple(BACKWARD_METHODS):
        fw = "picard" if method == "bptt" else forward
        net, _ = _recurrent_net(cfg, n_in, n_out, fw, method, on_failure="ignore")
        t0 = time.perf_counter()
        _, grad, info = net.loss_grad_info(theta, Xb, yb)
        ms = 1e3 * (time.perf_counter() - t0)
        results[method] = (grad, info, ms)
        if method not in ("bptt", "direct"):
            traces.append({"label": method, "residuals": [float(v) for v in info["adjoint"].residuals]})
    ref = results["direct"][0]
    rows = []
    for method, (grad, info, ms) in results.items():
        adj = info["adjoint"]
        rows.append({
            "backward": method,
            "iterations": int(adj.nit),
            "matvecs": int(adj.n_matvec),
            "final residual": None if method == "bptt" else float(adj.residual),
            "converged": bool(adj.success),
            "grad rel. diff vs direct": float(np.linalg.norm(grad - ref) / max(np.linalg.norm(ref), 1e-300)),
            "ms (forward+backward)": ms,
        })
    return rows, traces


def _trace_lengths(traces):
    out = {}
    for t in traces:
        out.setdefault(t["label"], []).append(len(t["residuals"]) - 1)
    return out


def _mean(values):
    from ..report.tables import mean_sd

    return mean_sd(values)


#: Marks a test accuracy computed on samples whose relaxation missed its threshold.
UNCONVERGED = "†"


def _misses(runs, key):
    """The evaluation misses summed over seeds, or None when a run does not report them."""
    values = [r.get(key) for r in runs]
    return None if any(v is None for v in values) else int(sum(values))


def _table(variants, results, cfg):
    target = cfg["train"]["target_accuracy"]
    rows = []
    for v in variants:
        rs = [r for r in results if r["key"] == v["key"]]
        reached = [r for r in rs if r["epochs_to_target"] is not None]
        accuracy, test_misses = _mean(r["test_accuracy"] for r in rs), _misses(rs, "test_n_unconverged")
        if accuracy is not None and test_misses:
            accuracy["flag"] = UNCONVERGED
        row = {
            "method": v["label"],
            "params": rs[0]["n_params"],
            "test accuracy": accuracy,
            "test misses": test_misses,
            "test loss": _mean(r["test_loss"] for r in rs),
            f"epochs to {target:g} val": _mean(r["epochs_to_target"] for r in reached),
            f"s to {target:g} val": _mean(r["seconds_to_target"] for r in reached),
            "reached": f"{len(reached)}/{len(rs)}",
            "val misses": _misses(rs, "val_n_unconverged"),
            "s/epoch": _mean(r["seconds_per_epoch"] for r in rs),
            "fwd iters/sample": _mean(r.get("forward_iterations") for r in rs),
            "bwd iters/batch": _mean(r.get("adjoint_iterations") for r in rs),
            "non-converged": sum(r["n_failed"] for r in rs),
        }
        if any("spectral_radius_final" in r for r in rs):
            row["final ρ(J)"] = _mean(r.get("spectral_radius_final") for r in rs)
        else:
            row["final ρ(J)"] = None
        rows.append(row)
    return rows


class _Log:
    """One line per finished training run; a bar over runs on a terminal."""

    def __init__(self, progress, total):
        self.enabled = progress is not False
        self.bar = None
        if progress is None:
            progress = sys.stderr.isatty()
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="compare", unit="run", file=sys.stderr, leave=False)

    def __call__(self, text):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def step(self, postfix=None):
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _slug(text):
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def run(config: dict, out_dir, *, progress=None, resume=False) -> dict:
    """Train every variant on every seed; write figures and checkpoints into the run folder.

    Parameters
    ----------
    config : dict
        Resolved config (see :data:`DEFAULTS`).
    out_dir : RunFolder or path
        The run folder (``figures/`` and ``checkpoints/`` go inside); a path
        must be an empty folder unless ``resume``.
    progress : bool or None
        Progress bars (None: only on a terminal); False also silences the
        per-run status lines.
    resume : bool
        Continue from the training checkpoints in ``out_dir/checkpoints``
        (written every epoch): finished runs are not retrained, an
        interrupted one continues bit-identically from its last epoch.

    Returns
    -------
    dict
        The summary: ``experiment``, ``table``, ``runs``, ``figures``,
        ``notes``, ``tables`` (the backward methods on the trained net).
    """
    from ..report import figures as F

    config, folder = prepare(sys.modules[__name__], config, out_dir, resume=resume)
    out_dir = folder.path
    ds, X, y, data_desc = _load_data(config)
    n_in, n_out = ds.n_features, ds.n_classes
    variants = _variants(config, n_in, n_out)
    seeds = [config["run"]["seed"] + i for i in range(config["run"]["seeds"])]
    log = _Log(progress, len(seeds) * len(variants))
    results, first = [], {}
    try:
        for seed in seeds:
            for v in variants:
                name = f"{v['key']}-seed{seed}"
                res, net, theta, pred = _train_one(v, config, ds, X, y, seed, progress, folder.checkpoint(name),
                                                   resume)
                meta = {"model": res["model"], "class": type(net).__name__, "kwargs": res["model_kwargs"],
                        "params": {k: list(p.shape) for k, p in net.params.unravel(theta).items()},
                        "seed": seed, "test_accuracy": res["test_accuracy"], "data": config["data"]}
                res["checkpoint"] = folder.save_params(name, theta, meta)  # .npz, and the metadata as .json
                results.append(res)
                if seed == seeds[0]:
                    first[v["key"]] = (net, theta, pred)
                reach = res["epochs_to_target"]
                log(f"seed {seed}  {v['label']:<32s} test accuracy {res['test_accuracy']:.4f}  "
                    f"{res['seconds']:.3g} s  " + (f"reached {config['train']['target_accuracy']:g} val at epoch "
                                                  f"{reach}" if reach else "target not reached"))
                log.step(f"seed {seed} {v['key']}")
    finally:
        log.close()

    table = _table(variants, results, config)
    fig_dir = out_dir / "figures"
    figures = F.standard_figures(results, fig_dir, root=out_dir)
    rec = [v for v in variants if v["kind"] == "recurrent"]
    tol, btol = config["model"]["tol"], config["model"]["backward_tol"]
    ftraces = [{"label": f"{r['label']}: forward {r['forward']}", "residuals": t} for r in results
               if r["seed"] == seeds[0] for t in r.get("forward_traces", [])]
    fig = F.residual_traces(
        ftraces, fig_dir / "forward_residuals.png", title="Forward relaxation to the fixed point (trained nets)",
        xlabel="relaxation step", ylabel="relative residual ‖x − F(x)‖ / ‖x‖", tol=tol, root=out_dir,
        color_offset=1,  # the recurrent variants keep the colours they have in the learning curves
        caption=(f"Forward residual of {len(ftraces) // max(len(rec), 1)} individual training characters as each "
                 "trained recurrent net relaxes to its fixed point (one line per character); BPTT differentiates the "
                 "plain Picard iteration, recurrent backprop only needs the fixed point, so it can accelerate "
                 "the relaxation. Mean steps to the threshold: " + "; ".join(
                     f"{lab} {np.mean(n):.1f}" for lab, n in _trace_lengths(ftraces).items()) + "."),
    )
    if fig:
        figures.append(fig)
    extra_tables = []
    rbp_variant = next((v for v in rec if v["backward"] != "bptt"), None)
    if rbp_variant is not None:
        net, theta, _ = first[rbp_variant["key"]]
        rows, atraces = _backward_methods_table(config, ds, X, y, theta, rbp_variant["forward"])
        extra_tables.append({
            "title": "Backward methods on the trained recurrent net",
            "rows": rows,
            "caption": (f"Every way to propagate the error back, applied to the {rbp_variant['label']} net after "
                        f"training (seed {seeds[0]}) on one batch of 32 training characters: iterations and operator "
                        "applications of the backward pass, its final relative residual, and the relative difference "
                        "of the gradient from the one given by the direct (LU) adjoint solve."),
        })
        fig = F.residual_traces(
            atraces, fig_dir / "adjoint_residuals.png", title="Adjoint solve per backward method (trained net)",
            xlabel="solver iteration", ylabel="relative residual ‖b − A z‖ / ‖b‖", tol=btol, root=out_dir,
            caption=("Residual of the adjoint system z (I − D Wᵀ) = ∂L/∂x* for each iterative backward method, "
                     "on one batch of 32 training characters at the trained recurrent net, against solver iterations "
                     "as each method counts them (the table above gives operator applications; the direct LU "
                     "solve reaches machine precision in one step and is not drawn). Operator applications to "
                     "the threshold: " + "; ".join(
                         f"{r['backward']} {r['matvecs']}" for r in sorted(rows, key=lambda r: r["matvecs"])
                         if r["backward"] not in ("direct", "bptt")) + "."),
        )
        if fig:
            figures.append(fig)
    panels = [(v["label"], ds.y_test, first[v["key"]][2]) for v in variants]
    fig = F.confusion_matrices(
        panels, ds.classes, fig_dir / "confusion.png", root=out_dir,
        caption=(f"Confusion matrices of each method on the {len(ds.y_test)} test characters (seed {seeds[0]}); "
                 "rows are the true class, columns the predicted one, colour the fraction of the true class."),
    )
    if fig:
        figures.append(fig)
    shown = rbp_variant or (rec[0] if rec else variants[0])
    pred = first[shown["key"]][2]
    static_wrong = first["static"][2] != ds.y_test
    fig = F.misclassified_grid(
        ds.X_test, ds.y_test, pred, ds.classes, ds.image_shape, fig_dir / "misclassified.png", root=out_dir,
        title=f"Misclassified by {shown['label']}", also_wrong=static_wrong if shown["key"] != "static" else None,
        caption=(f"Test characters that the {shown['label']} net (seed {seeds[0]}) gets wrong, labelled "
                 "true→predicted" + ("; a red frame marks those the static MLP also gets wrong."
                                     if shown["key"] != "static" else ".")),
    )
    if fig:
        figures.append(fig)

    n_val = int(round(config["data"]["validation_fraction"] * len(y)))
    static = next(r for r in results if r["key"] == "static")
    notes = [
        f"Data: {data_desc}; {len(y)} training samples ({n_val} of them held out for validation), "
        f"{len(ds.y_test)} test samples, {n_out} classes. Validation accuracy gives the curves and the epochs to "
        f"target; test accuracy is measured once, at the end of each run.",
        f"Same seeds ({', '.join(map(str, seeds))}) for every method: initialisation, validation split and "
        f"shuffling. Table cells are mean ± sample standard deviation over seeds.",
        f"Parameters: the MLP's hidden width ({static['model_kwargs']['sizes'][1]}) is chosen to match the "
        f"recurrent net's parameter count ({config['model']['units']} units).",
        "Gradient cost: s/epoch is training time per epoch (forward and backward passes and updates); "
        "fwd iters/sample is the relaxation steps to the forward threshold; bwd iters/batch the adjoint solver "
        "iterations (for BPTT, the stored relaxation steps backpropagated); non-converged counts, over all "
        "epochs and seeds, the samples whose forward relaxation and the mini-batches whose adjoint solve missed "
        "the threshold, during training. test misses and val misses count the samples whose relaxation missed "
        "it while the test split and (every epoch) the validation split were evaluated; — where the model does "
        "not report them (the MLP relaxes nothing).",
    ]
    if any(row["test misses"] for row in table) or any(row["val misses"] for row in table):
        notes.append(f"{UNCONVERGED} Test accuracy computed on test samples whose relaxation missed its threshold "
                     "(column test misses, over all seeds): their predictions come from an unconverged state. "
                     "val misses counts, over all epochs and seeds, the validation samples whose relaxation missed "
                     "it; the validation accuracy, and so the epochs and seconds to the target, include them.")
    unfinished = [r for r in results if r["status"] not in ("SUCCESS", "MAX_ITER")]
    for r in unfinished:
        notes.append(f"{r['label']} seed {r['seed']}: {r['message']}")
    failed = sum(r["n_failed"] for r in results)
    if failed:
        rho = max((r.get("spectral_radius_final") or 0.0) for r in results)
        hint = ("" if config["model"]["contraction"] else
                " To keep the dynamics contractive, try --set model.contraction=0.9.")
        notes.append(f"{failed} solves missed their threshold during training (column non-converged; largest "
                     f"final spectral radius {rho:.3g}); see the gradient-cost figure.{hint}")
    data_name = "UCI digits" if config["data"]["name"] == "digits" else "printed glyphs"
    return {
        "experiment": NAME,
        "title": f"Static vs recurrent backpropagation on OCR ({data_name})",
        "description": (
            "An MLP trained by static backprop and a recurrent FixedPointNet trained by recurrent backprop "
            "(adjoint solve) and by backprop through its relaxation (BPTT), on the same task with the same seeds."
        ),
        "table": table,
        "table_caption": (
            "Comparison on the held-out test split; epochs and seconds to the target validation accuracy are "
            "averaged over the seeds that reached it (column reached)."
        ),
        "tables": extra_tables,
        "notes": notes,
        "figures": figures,
        "runs": results,
        "standard_figures": False,
    }
