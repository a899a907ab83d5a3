"""Convergence figures as PNG files (matplotlib imported lazily, Agg canvas).

Every figure has a title, labelled axes with units, a legend, and log scales
where the values span decades. Each function writes one PNG atomically and
returns ``{"file": ..., "caption": ...}`` (``file`` relative to the run
folder when ``root`` is given), ready for a summary's ``figures`` list.

Runs are summary ``runs`` entries: dicts with ``label``, ``seed`` and
``history`` (per-epoch lists, the keys of ``TrainResult.history``). Runs that
share a label are seeds of one method: curves show their mean, the shaded
band the min-max range over seeds.

Public names: :func:`standard_figures`, :func:`learning_curves`,
:func:`solver_effort`, :func:`spectral_radius`, :func:`residual_traces`,
:func:`confusion_matrices`, :func:`misclassified_grid`, :func:`group_runs`.
Colours, line styles and markers come from :mod:`rbp.report.style`, as in
every experiment's own figures.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .style import LINESTYLES, MARKERS, color, new_figure, palette, save_figure

__all__ = [
    "standard_figures",
    "learning_curves",
    "solver_effort",
    "spectral_radius",
    "residual_traces",
    "confusion_matrices",
    "misclassified_grid",
    "group_runs",
]

_STYLE = {"train": "-", "validation": "--"}


def _new_figure(ncols=1, nrows=1, size=(5.2, 3.9)):
    """Panels of ``size`` inches each, constrained layout, axes always 2-D."""
    return new_figure(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), layout="constrained", squeeze=False)


def _save(fig, path, caption: str, root=None) -> dict:
    return save_figure(fig, path, caption=caption, root=root)


def group_runs(runs) -> dict:
    """``label -> [run, ...]`` in order of first appearance (runs of one label are seeds)."""
    groups: dict = {}
    for r in runs:
        if r.get("history"):
            groups.setdefault(str(r.get("label", "run")), []).append(r)
    return groups


def _scalar(v) -> float:
    """A history entry as a float; anything that is not one number becomes NaN."""
    if isinstance(v, (bool, np.bool_)) or v is None:
        return float(v) if v is not None else np.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def _column(history, key, n=None):
    col = history.get(key)
    if col is None or isinstance(col, (str, bytes)) or not hasattr(col, "__len__"):
        return None
    arr = np.array([_scalar(v) for v in col], dtype=float)
    return arr if n is None else np.pad(arr, (0, max(0, n - len(arr))), constant_values=np.nan)[:n]


def _stack(runs, key):
    """(epochs, values[n_seeds, n_epochs]) padded with NaN, or None when no run has ``key``."""
    cols = [_column(r["history"], key) for r in runs]
    cols = [c for c in cols if c is not None]
    if not cols or all(np.all(np.isnan(c)) for c in cols):
        return None
    n = max(len(c) for c in cols)
    values = np.vstack([np.pad(c, (0, n - len(c)), constant_values=np.nan) for c in cols])
    return values


def _epochs(runs):
    n = max(len(next(iter(r["history"].values()), [])) for r in runs)
    ep = _stack(runs, "epoch")
    if ep is not None:
        with np.errstate(all="ignore"):
            e = np.nanmax(ep, axis=0)
        if np.all(np.isfinite(e)):
            return e
    return np.arange(1, n + 1, dtype=float)


def _wall_time(runs):
    t = _stack(runs, "time")
    if t is None:
        s = _stack(runs, "seconds")
        if s is None:
            return None
        t = np.nancumsum(s, axis=1)
    with np.errstate(all="ignore"):
        return np.nanmean(t, axis=0)


def _mean_band(values):
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)


def _look(index: int) -> dict:
    """Marker and line width of the ``index``-th method: earlier lines are wider, so a
    later method whose curve coincides with an earlier one stays visible on top of it."""
    return {"marker": MARKERS[index % len(MARKERS)], "linewidth": max(1.0, 2.6 - 0.6 * index)}


def _plot_band(ax, x, values, *, color, linestyle="-", label=None, marker=None, linewidth=1.6):
    mean, lo, hi = _mean_band(values)
    ok = np.isfinite(mean) & np.isfinite(x)
    if not ok.any():
        return False
    every = max(1, int(ok.sum()) // 10)
    ax.plot(x[ok], mean[ok], color=color, linestyle=linestyle, label=label, marker=marker, markevery=every,
            markersize=4 if marker else None, linewidth=linewidth)
    if values.shape[0] > 1:
        ax.fill_between(x[ok], lo[ok], hi[ok], color=color, alpha=0.18, linewidth=0)
    return True


def _auto_log(ax, values, axis="y", span=30.0):
    vals = np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in values]) if values else np.array([])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if len(vals) and vals.max() / vals.min() > span:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
        return True
    return False


def _seeds_phrase(groups) -> str:
    n = max(len(g) for g in groups.values())
    if n <= 1:
        return "one seed per method"
    return f"lines are means over {n} seeds, shaded bands the min-max range"


def _style_legend(ax, styles):
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="0.3", linestyle=ls, label=name) for name, ls in styles]
    ax.legend(handles=handles, loc="best", fontsize=8, title="line style", title_fontsize=8)


def learning_curves(runs, path, *, metric: str = "loss", root=None, title_prefix: str = "") -> dict | None:
    """``metric`` (``loss`` or ``accuracy``) against epochs and against wall time.

    Training values are solid, validation values dashed; one colour per label.
    Returns None when no run recorded the metric.
    """
    groups = group_runs(runs)
    if not groups:
        return None
    keys = [(metric, "train"), (f"val_{metric}", "validation")]
    present = [(k, name) for k, name in keys if any(_stack(g, k) is not None for g in groups.values())]
    if not present:
        return None
    colors = palette(groups)
    fig, axes = _new_figure(ncols=2)
    ax_e, ax_t = axes[0]
    all_values, all_times = [], []
    for index, (label, g) in enumerate(groups.items()):
        look = _look(index)
        x = _epochs(g)
        t = _wall_time(g)
        first = True
        for key, name in present:
            values = _stack(g, key)
            if values is None:
                continue
            x_here = x[: values.shape[1]] if len(x) >= values.shape[1] else np.arange(1, values.shape[1] + 1.0)
            _plot_band(ax_e, x_here, values, color=colors[label], linestyle=_STYLE[name],
                       label=label if first else None, **look)
            if t is not None:
                _plot_band(ax_t, t[: values.shape[1]], values, color=colors[label], linestyle=_STYLE[name], **look)
                all_times.append(t)
            all_values.append(values)
            first = False
    unit = "mean per sample" if metric == "loss" else "fraction correct"
    name = "Loss" if metric == "loss" else "Accuracy"
    for ax in (ax_e, ax_t):
        ax.set_ylabel(f"{metric} ({unit})")
        ax.grid(True, alpha=0.3)
        if metric == "loss":
            _auto_log(ax, all_values)
    ax_e.set_xlabel("epoch")
    ax_t.set_xlabel("wall-clock training time (s)")
    _auto_log(ax_t, all_times, axis="x", span=50.0)
    ax_e.set_title(f"{name} vs epochs")
    ax_t.set_title(f"{name} vs wall time")
    ax_e.legend(loc="best", fontsize=8, title="method", title_fontsize=8)
    _style_legend(ax_t, [(n, _STYLE[n]) for _, n in present])
    fig.suptitle(f"{title_prefix}{name}: " + " vs ".join(groups) if len(groups) <= 4 else f"{title_prefix}{name}")
    parts = " and ".join(f"{n} ({'solid' if n == 'train' else 'dashed'})" for _, n in present)
    caption = (
        f"{name} of each method, {parts}, against epochs (left) and against cumulative wall-clock training "
        f"time (right, excluding evaluation); {_seeds_phrase(groups)}."
    )
    finals = []
    for label, g in groups.items():
        key = f"val_{metric}" if any(k == f"val_{metric}" for k, _ in present) else metric
        v = _stack(g, key)
        if v is not None:
            last = _mean_band(v)[0]
            last = last[np.isfinite(last)]
            if len(last):
                finals.append(f"{label} {last[-1]:.3g}")
    if finals:
        which = "validation" if any(n == "validation" for _, n in present) else "training"
        caption += f" Final {which} {metric}: " + "; ".join(finals) + "."
    return _save(fig, path, caption, root)


def solver_effort(runs, path, *, root=None) -> dict | None:
    """Gradient norm and, for recurrent nets, forward and adjoint iterations per epoch."""
    groups = group_runs(runs)
    if not groups:
        return None
    has_fwd = any(_stack(g, "forward_iterations") is not None for g in groups.values())
    has_adj = any(_stack(g, "adjoint_iterations") is not None for g in groups.values())
    has_grad = any(_stack(g, "grad_norm") is not None for g in groups.values())
    panels = [p for p, ok in (("grad", has_grad), ("fwd", has_fwd), ("adj", has_adj)) if ok]
    if not panels:
        return None
    colors = palette(groups)
    fig, axes = _new_figure(ncols=len(panels), size=(4.6, 3.8))
    failed = {}
    for ax, panel in zip(axes[0], panels):
        vals = []
        for index, (label, g) in enumerate(groups.items()):
            look = _look(index)
            x = _epochs(g)
            if panel == "grad":
                v = _stack(g, "grad_norm")
                if v is not None and _plot_band(ax, x[: v.shape[1]], v, color=colors[label], label=label, **look):
                    vals.append(v)
            elif panel == "fwd":
                for key, ls, suffix in (("forward_iterations", "-", "mean"), ("forward_iterations_max", ":", "max")):
                    v = _stack(g, key)
                    if v is not None and _plot_band(ax, x[: v.shape[1]], v, color=colors[label], linestyle=ls,
                                                    label=f"{label} ({suffix})", **look):
                        vals.append(v)
            else:
                v = _stack(g, "adjoint_iterations")
                if v is not None and _plot_band(ax, x[: v.shape[1]], v, color=colors[label], label=label, **look):
                    vals.append(v)
            for key in ("n_forward_failed", "n_adjoint_failed"):
                v = _stack(g, key)
                if v is not None and np.nansum(v) > 0:
                    failed[(label, key)] = float(np.nansum(v)) / v.shape[0]
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        _auto_log(ax, vals, span=20.0)
        if panel == "grad":
            ax.set_ylabel("RMS gradient norm per batch")
            ax.set_title("Gradient norm")
        elif panel == "fwd":
            ax.set_ylabel("relaxation steps per sample")
            ax.set_title("Forward iterations (solid mean, dotted max)")
        else:
            ax.set_ylabel("adjoint iterations per batch")
            ax.set_title("Adjoint / backward iterations")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=7)
    fig.suptitle("Gradient cost per epoch")
    caption = "Gradient cost per epoch: the RMS norm of the mini-batch gradients"
    if has_fwd:
        caption += ", the relaxation steps each sample needs to reach the forward threshold (mean and max)"
    if has_adj:
        caption += ", and the iterations of the backward pass (adjoint solver iterations; stored steps for BPTT)"
    caption += f"; {_seeds_phrase(groups)}."
    if failed:
        caption += " Non-converged solves: " + ", ".join(
            f"{label} {key[2:].replace('_', ' ')} {v:.3g} per seed" for (label, key), v in failed.items()
        ) + "."
    else:
        caption += " Every forward and adjoint solve reached its threshold." if (has_fwd or has_adj) else ""
    return _save(fig, path, caption, root)


def spectral_radius(runs, path, *, root=None) -> dict | None:
    """Spectral radius of the Jacobian at the fixed point over training (line at 1)."""
    groups = {k: g for k, g in group_runs(runs).items() if _stack(g, "spectral_radius") is not None}
    if not groups:
        return None
    everyone = list(group_runs(runs))
    colors = palette(everyone)
    fig, axes = _new_figure()
    ax = axes[0, 0]
    top = 1.0
    for label, g in groups.items():
        v = _stack(g, "spectral_radius")
        x = _epochs(g)
        _plot_band(ax, x[: v.shape[1]], v, color=colors[label], label=label, **_look(everyone.index(label)))
        with np.errstate(all="ignore"):
            top = max(top, float(np.nanmax(v)))
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1, label="ρ = 1 (stability limit)")
    ax.set_ylim(0, top * 1.1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("spectral radius ρ(W diag f′(a*)) (dimensionless)")
    ax.set_title("Spectral radius of the Jacobian at the fixed point")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    with np.errstate(all="ignore"):
        final = {k: float(np.nanmean(_stack(g, "spectral_radius")[:, -1])) for k, g in groups.items()}
    caption = (
        "Spectral radius of the Jacobian of the forward map at the fixed point, measured after each epoch "
        "on a fixed probe batch; below 1 the plain relaxation and Pineda's adjoint relaxation both converge. "
        "Final: " + ", ".join(f"{k} {v:.3g}" for k, v in final.items()) + "."
    )
    return _save(fig, path, caption, root)


def standard_figures(runs, fig_dir, *, root=None, prefix: str = "") -> list:
    """Every figure the histories support: loss, accuracy, gradient cost, spectral radius.

    Parameters
    ----------
    runs : list of dict
        Summary runs (``label``, ``seed``, ``history``).
    fig_dir : path
        Folder for the PNGs.
    root : path, optional
        Make the returned ``file`` entries relative to this folder.
    prefix : str
        Prefix for the file names (``overlay_`` ...).

    Returns
    -------
    list of dict
        ``{"file", "caption"}`` per figure written.
    """
    import warnings

    fig_dir = Path(fig_dir)
    out = []
    for name, fn in (
        ("loss", lambda p: learning_curves(runs, p, metric="loss", root=root)),
        ("accuracy", lambda p: learning_curves(runs, p, metric="accuracy", root=root)),
        ("gradient_cost", lambda p: solver_effort(runs, p, root=root)),
        ("spectral_radius", lambda p: spectral_radius(runs, p, root=root)),
    ):
        try:
            fig = fn(fig_dir / f"{prefix}{name}.png")
        except Exception as exc:  # a report must not fail on one odd history
            warnings.warn(f"report: could not draw the {name} figure from the runs' histories: {exc!r}",
                          stacklevel=2)
            continue
        if fig is not None:
            out.append(fig)
    return out


def residual_traces(traces, path, *, title: str, xlabel: str, ylabel: str, caption: str, tol=None,
                    root=None, color_offset: int = 0) -> dict | None:
    """Residual histories on a log scale, one colour per label.

    Parameters
    ----------
    traces : list of dict
        ``{"label": str, "residuals": list of float}``; several traces may
        share a label (for example one per sample).
    tol : float, optional
        Draw the threshold as a horizontal line.
    color_offset : int
        Start at this colour of the palette (to match the colour a method has
        in the other figures).
    """
    traces = [t for t in traces if t.get("residuals")]
    if not traces:
        return None
    labels = list(dict.fromkeys(t["label"] for t in traces))
    colors = {label: color(i + color_offset) for i, label in enumerate(labels)}
    fig, axes = _new_figure(size=(6.4, 4.2))
    ax = axes[0, 0]
    seen = set()
    for t in traces:
        r = np.array([np.nan if v is None else v for v in t["residuals"]], dtype=float)
        with np.errstate(invalid="ignore"):
            r[~(r > 0)] = np.nan
        if not np.isfinite(r).any():
            continue
        label = t["label"] if t["label"] not in seen else None
        seen.add(t["label"])
        i = labels.index(t["label"])
        ax.plot(np.arange(len(r)), r, color=colors[t["label"]], label=label, alpha=0.85,
                linestyle=LINESTYLES[i % 4], linewidth=max(1.0, 2.4 - 0.25 * i),
                marker=MARKERS[i % len(MARKERS)], markevery=max(1, len(r) // 12), markersize=4)
    if tol is not None:
        ax.axhline(tol, color="0.3", linestyle="--", linewidth=1, label=f"threshold {tol:g}")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path, caption, root)


def confusion_matrices(panels, classes, path, *, caption: str, root=None) -> dict | None:
    """One confusion matrix per panel ``(title, y_true, y_pred)`` (rows: true class)."""
    panels = [p for p in panels if len(p[1])]
    if not panels:
        return None
    k = len(classes)
    side = 3.2 + 0.11 * k
    fig, axes = _new_figure(ncols=len(panels), size=(side, side * 0.92))
    im = None
    for ax, (title, y_true, y_pred) in zip(axes[0], panels):
        cm = np.zeros((k, k), dtype=int)
        np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
        counts = cm.sum(axis=1, keepdims=True)
        with np.errstate(all="ignore"):
            frac = np.where(counts > 0, cm / np.maximum(counts, 1), 0.0)
        im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    if cm[i, j]:
                        ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if frac[i, j] > 0.5 else "black")
        ticks = np.arange(k)
        step = 1 if k <= 20 else 2
        ax.set_xticks(ticks[::step], [classes[i] for i in ticks[::step]], fontsize=7)
        ax.set_yticks(ticks[::step], [classes[i] for i in ticks[::step]], fontsize=7)
        acc = float(np.trace(cm)) / max(cm.sum(), 1)
        ax.set_title(f"{title}\naccuracy {acc:.3f}", fontsize=9)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
    cbar = fig.colorbar(im, ax=list(axes[0]), shrink=0.8)
    cbar.set_label("fraction of the true class")
    fig.suptitle("Confusion matrices on the test set (counts in cells)" if k <= 12 else
                 "Confusion matrices on the test set")
    return _save(fig, path, caption, root)


def misclassified_grid(X, y_true, y_pred, classes, image_shape, path, *, title: str, caption: str,
                       max_n: int = 32, also_wrong=None, root=None) -> dict | None:
    """Images of misclassified test characters, each titled ``true → predicted``.

    Parameters
    ----------
    X : ndarray, shape (n, h*w)
    y_true, y_pred : ndarray of int, shape (n,)
    image_shape : (h, w)
    also_wrong : ndarray of bool, shape (n,), optional
        Mark samples that another method also gets wrong (red frame).
    """
    if image_shape is None:
        return None
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))
    fig_cols = 8
    n = min(len(wrong), max_n)
    wrong = wrong[np.unique(np.linspace(0, len(wrong) - 1, n).round().astype(int))] if n else wrong
    rows = max(1, math.ceil(n / fig_cols))
    fig, axes = _new_figure(ncols=fig_cols, nrows=rows, size=(1.05, 1.3))
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, i in zip(axes.ravel(), wrong[:n]):
        ax.imshow(np.asarray(X[i]).reshape(image_shape), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{classes[y_true[i]]}→{classes[y_pred[i]]}", fontsize=9)
        if also_wrong is not None and also_wrong[i]:
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:red")
                spine.set_linewidth(2)
    if n == 0:
        axes[0, 0].text(0, 0.5, "no misclassified test samples", fontsize=10)
    n_wrong = int(np.sum(np.asarray(y_true) != np.asarray(y_pred)))
    shown = "all shown" if n == n_wrong else f"{n} shown, spread over the test set"
    fig.suptitle(f"{title} ({n_wrong} of {len(y_true)} wrong; {shown}; true→predicted)", fontsize=10)
    return _save(fig, path, caption, root)
