"""A run is a folder: resolved config, per-epoch metrics, summary, figures, report.

Files are written atomically (temporary file + rename), so a reader never
sees a partial file.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from ..core.checkpoint import atomic_write

__all__ = ["prepare_run_folder", "write_run", "atomic_write", "metrics_csv", "read_metrics_csv", "load_run", "METRIC_COLUMNS"]


def prepare_run_folder(out_dir, *, resume: bool = False) -> Path:
    """Create ``out_dir/figures`` and, for a new run (``resume=False``),
    remove the training checkpoints (``checkpoints/*.train.npz``) an earlier
    run left there, so that a later ``--resume`` can only continue this run.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "checkpoints").mkdir(); _ = (d / "checkpoints" / "old.train.npz").write_bytes(b"")
    >>> out = prepare_run_folder(d)
    >>> sorted(p.name for p in out.iterdir()), list((d / "checkpoints").iterdir())
    (['checkpoints', 'figures'], [])
    """
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    if not resume:
        for stale in (out / "checkpoints").glob("*.train.npz"):
            stale.unlink()
    return out


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


#: Leading metrics.csv columns, in this order, when present; others follow sorted.
METRIC_COLUMNS = (
    "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "grad_norm", "seconds", "time",
    "forward_iterations", "forward_iterations_max", "adjoint_iterations", "adjoint_matvecs",
    "n_forward_failed", "n_adjoint_failed", "n_skipped", "spectral_radius",
)


def metrics_csv(runs) -> str:
    """Per-epoch metrics of several runs as CSV text (one row per run and epoch;
    columns ``run, seed`` then the union of history keys, readable by pandas).

    Missing or NaN values are empty cells. Column order: :data:`METRIC_COLUMNS`
    first, then the other keys sorted.

    Examples
    --------
    >>> print(metrics_csv([{"label": "MLP", "seed": 0, "history": {"epoch": [1, 2], "loss": [0.5, 0.25]}}]))
    run,seed,epoch,loss
    MLP,0,1,0.5
    MLP,0,2,0.25
    <BLANKLINE>
    """
    def columns_of(r):
        h = r.get("history") or {}
        return {k: v for k, v in h.items() if isinstance(v, (list, tuple, np.ndarray))}

    keys = []
    for r in runs:
        for k in columns_of(r):
            if k not in keys:
                keys.append(k)
    front = [k for k in METRIC_COLUMNS if k in keys]
    keys = front + sorted(k for k in keys if k not in front)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run", "seed"] + keys)
    for r in runs:
        h = columns_of(r)
        n = max((len(v) for v in h.values()), default=0)
        for i in range(n):
            row = [r.get("label", ""), "" if r.get("seed") is None else r.get("seed")]
            for k in keys:
                col = h.get(k, [])
                v = col[i] if i < len(col) else ""
                if isinstance(v, (np.floating, np.integer)):
                    v = v.item()
                row.append("" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
            w.writerow(row)
    return buf.getvalue()


def read_metrics_csv(path) -> list:
    """Runs (``label``, ``seed``, ``history``) from a metrics.csv written by
    :func:`metrics_csv`; empty cells become NaN, ``epoch`` and ``n_*`` counts ints.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> _ = p.write_text(metrics_csv([{"label": "mlp", "seed": 0, "history": {"epoch": [1, 2], "loss": [0.5, 0.25]}}]))
    >>> [(r["label"], r["history"]["loss"]) for r in read_metrics_csv(p)]
    [('mlp', [0.5, 0.25])]
    """
    runs: dict = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = [c for c in (reader.fieldnames or []) if c not in ("run", "seed")]
        for row in reader:
            seed = row.get("seed", "")
            seed = int(seed) if seed.strip().lstrip("-").isdigit() else (seed or None)
            key = (row.get("run", ""), seed)
            run = runs.setdefault(key, {"label": key[0], "seed": seed, "history": {c: [] for c in cols}})
            for c in cols:
                text = row.get(c, "")
                try:
                    v = float(text) if text != "" else math.nan
                except ValueError:
                    v = text
                if isinstance(v, float) and v.is_integer() and (c == "epoch" or c.startswith("n_")):
                    v = int(v)
                run["history"][c].append(v)
    return list(runs.values())


def _versions() -> dict:
    import platform

    import matplotlib
    import scipy

    import rbp

    return {
        "rbp": rbp.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
        "matplotlib": matplotlib.__version__, "python": platform.python_version(),
    }


def write_run(out_dir, config: dict, summary: dict, *, report: bool = True) -> Path:
    """Write a run folder and its report.

    Files: ``config.json`` (the resolved config with package versions),
    ``config.toml`` (the same, re-runnable with ``rbp run`` when it names its
    ``script`` or ``experiment``), ``metrics.csv`` (per epoch, every run),
    ``summary.json``, the standard convergence figures ``figures/*.png`` and
    ``report.html`` (self-contained) plus ``report.md``.

    Parameters
    ----------
    out_dir : path
    config : dict
        The resolved configuration (``section -> key -> value``; optional
        top-level ``script``/``experiment``/``invocation``).
    summary : dict
        What an experiment's ``run`` returned: ``experiment``, ``runs`` (list
        of dicts with ``label``, ``seed``, ``history``...), ``table`` (row
        dicts, comparison first), ``figures`` (``{"file", "caption"}``, files
        relative to ``out_dir``), ``notes``. Unless ``standard_figures`` is
        false in it, the loss, accuracy, gradient-cost and spectral-radius
        figures drawn from the runs' histories are appended to ``figures``.
    report : bool
        Also draw the standard figures and write ``report.html``/``report.md``.

    Returns
    -------
    Path
        The run folder.

    Examples
    --------
    >>> import tempfile, json, pathlib
    >>> out = write_run(tempfile.mkdtemp(), {"train": {"epochs": 2}},
    ...                 {"experiment": "demo", "table": [{"method": "a", "loss": 0.1}],
    ...                  "runs": [{"label": "a", "seed": 0, "history": {"epoch": [1, 2], "loss": [0.3, 0.1]}}]})
    >>> sorted(p.name for p in out.iterdir())
    ['config.json', 'config.toml', 'figures', 'metrics.csv', 'report.html', 'report.md', 'summary.json']
    >>> [f["file"] for f in json.loads((out / "summary.json").read_text())["figures"]]
    ['figures/loss.png']
    """
    import datetime

    from ..config import dumps_toml

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(summary)
    summary.setdefault("created", datetime.datetime.now().isoformat(timespec="seconds"))
    resolved = dict(config)
    resolved["versions"] = _versions()
    runs = summary.get("runs") or []
    figures = list(summary.get("figures") or [])
    if report and summary.get("standard_figures", True) and runs:
        from .figures import standard_figures

        listed = {f.get("file") for f in figures}
        names = ("loss", "accuracy", "gradient_cost", "spectral_radius")
        # never overwrite a figure of the experiment's own that happens to share a standard name
        prefix = "convergence_" if any(f"figures/{n}.png" in listed for n in names) else ""
        figures += [f for f in standard_figures(runs, out / "figures", root=out, prefix=prefix)
                    if f["file"] not in listed]
    summary["figures"] = figures
    atomic_write(out / "config.json", json.dumps(_jsonable(resolved), indent=2) + "\n")
    toml_config = {k: v for k, v in resolved.items() if k not in ("versions", "invocation")}
    header = "Resolved configuration of this run; re-run it with `rbp run config.toml`" + (
        "" if ("script" in toml_config or "experiment" in toml_config) else " after adding script = \"...\""
    ) + ".\n" + ", ".join(f"{k} {v}" for k, v in resolved["versions"].items())
    atomic_write(out / "config.toml", dumps_toml(_jsonable(toml_config), header=header))
    atomic_write(out / "metrics.csv", metrics_csv(runs))
    atomic_write(out / "summary.json", json.dumps(_jsonable(summary), indent=2) + "\n")
    if report:
        from .render import write_report

        write_report(out, _jsonable(resolved), _jsonable(summary))
    return out


def load_run(run_dir):
    """Read a run folder back: ``(config, summary)``.

    The runs' histories come from ``summary.json`` or, when it holds none,
    from ``metrics.csv``. NaN values written as JSON ``null`` stay ``None``.

    Examples
    --------
    >>> import tempfile
    >>> out = write_run(tempfile.mkdtemp(), {"train": {"epochs": 1}},
    ...                 {"runs": [{"label": "a", "seed": 0, "history": {"epoch": [1], "loss": [0.3]}}],
    ...                  "standard_figures": False})
    >>> config, summary = load_run(out)
    >>> config["train"], summary["runs"][0]["history"]["loss"]
    ({'epochs': 1}, [0.3])
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run folder {str(run_dir)!r} does not exist")
    summary_path = run_dir / "summary.json"
    metrics_path = run_dir / "metrics.csv"
    if not summary_path.exists() and not metrics_path.exists():
        raise ValueError(f"{str(run_dir)!r} is not a run folder: it has neither summary.json nor metrics.csv")
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    runs = summary.get("runs") or []
    if not any(r.get("history") for r in runs) and metrics_path.exists():
        summary["runs"] = read_metrics_csv(metrics_path)
    summary.setdefault("experiment", run_dir.name)
    return config, summary
