"""A run is a folder: resolved config, per-epoch metrics, summary, figures, report.

Files are written atomically (temporary file + rename), so a reader never
sees a partial file. A run folder is read back (:func:`load_run`) only
through :class:`~rbp.report.folder.RunFolder`: regular files inside it,
size-capped, with the summary's structure checked, so that a folder from
someone else gives a clear :class:`~rbp.report.folder.RunFolderError`, never
a traceback, and never makes rbp read a file outside it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from ..core.checkpoint import atomic_write
from .folder import RunFolder, RunFolderError, jsonable

__all__ = ["write_run", "atomic_write", "metrics_csv", "read_metrics_csv", "load_run", "METRIC_COLUMNS"]


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
    with open(path, newline="") as fh:
        return _parse_metrics_csv(fh)


def _parse_metrics_csv(lines) -> list:
    runs: dict = {}
    reader = csv.DictReader(lines)
    cols = [c for c in (reader.fieldnames or []) if c not in ("run", "seed")]
    for row in reader:
        seed = row.get("seed") or ""
        seed = int(seed) if len(seed) < 20 and seed.strip().lstrip("-").isdigit() else (seed or None)
        key = (row.get("run") or "", seed)
        run = runs.setdefault(key, {"label": key[0], "seed": seed, "history": {c: [] for c in cols}})
        for c in cols:
            text = row.get(c) or ""
            if not isinstance(text, str):  # a row with more cells than the header
                text = ""
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
    import sys

    import matplotlib
    import scipy

    rbp = sys.modules[__name__.partition(".")[0]]  # loaded before any of its submodules; no import cycle

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
    atomic_write(out / "config.json", json.dumps(jsonable(resolved), indent=2) + "\n")
    toml_config = {k: v for k, v in resolved.items() if k not in ("versions", "invocation", "resumed")}
    atomic_write(out / "config.toml", dumps_toml(jsonable(toml_config), header=_rerun_header(toml_config, resolved)))
    atomic_write(out / "metrics.csv", metrics_csv(runs))
    atomic_write(out / "summary.json", json.dumps(jsonable(summary), indent=2) + "\n")
    if report:
        from .render import write_report

        write_report(out, jsonable(resolved), jsonable(summary))
    return out


def _rerun_header(toml_config: dict, resolved: dict) -> str:
    script, name = toml_config.get("script"), toml_config.get("experiment")
    if isinstance(name, str):
        how = "re-run it with `rbp run config.toml`"
    elif isinstance(script, str):
        how = f"re-run it with `rbp run path/to/{script} --config config.toml` (rbp imports no script a file names)"
    else:
        how = "re-run it with `rbp run NAME --config config.toml`"
    return f"Resolved configuration of this run; {how}.\n" + ", ".join(f"{k} {v}" for k, v in resolved["versions"].items())


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

    Raises
    ------
    RunFolderError
        (a ValueError) for a missing folder, a folder with neither
        ``summary.json`` nor ``metrics.csv``, and for any file that is not a
        regular file inside the folder, is too large, is not valid JSON/CSV or
        does not have the structure described in :func:`write_run`.
    """
    folder = RunFolder(run_dir)
    run_dir = folder.path
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {str(run_dir)!r} does not exist")
    has_summary, has_metrics = folder.exists("summary.json"), folder.exists("metrics.csv")
    if not has_summary and not has_metrics:
        raise RunFolderError(f"{str(run_dir)!r} is not a run folder: it has neither summary.json nor metrics.csv")
    summary = _checked_summary(folder.read_json("summary.json"), run_dir / "summary.json") if has_summary else {}
    config = folder.read_json("config.json") if folder.exists("config.json") else {}
    if not isinstance(config, dict):
        raise RunFolderError(f"{run_dir / 'config.json'}: expected a JSON object, got {type(config).__name__}")
    runs = summary.get("runs") or []
    if not any(r.get("history") for r in runs) and has_metrics:
        try:
            summary["runs"] = _parse_metrics_csv(io.StringIO(folder.read_text("metrics.csv"), newline=""))
        except csv.Error as exc:
            raise RunFolderError(f"{run_dir / 'metrics.csv'}: not valid CSV: {exc}") from None
    summary.setdefault("experiment", run_dir.name)
    return config, summary


#: The summary entries a report reads, and the JSON type each must have.
_SUMMARY_FIELDS = {"runs": list, "table": list, "tables": list, "figures": list, "notes": list}


def _checked_summary(summary, where) -> dict:
    """``summary`` if it has the structure :func:`write_run` writes; a RunFolderError naming the field if not."""
    def bad(field, expected, got):
        raise RunFolderError(f"{where}: {field} must be {expected}, got {type(got).__name__} {got!r:.60}")

    if not isinstance(summary, dict):
        bad("the summary", "a JSON object", summary)
    for key, kind in _SUMMARY_FIELDS.items():
        value = summary.get(key)
        if value is not None and not isinstance(value, kind):
            bad(repr(key), f"a JSON {kind.__name__}", value)
    for key in ("runs", "table", "figures"):
        for i, item in enumerate(summary.get(key) or []):
            if not isinstance(item, dict):
                bad(f"{key}[{i}]", "a JSON object", item)
    for i, run in enumerate(summary.get("runs") or []):
        if run.get("history") is not None and not isinstance(run["history"], dict):
            bad(f"runs[{i}].history", "a JSON object of per-epoch lists", run["history"])
    for i, fig in enumerate(summary.get("figures") or []):
        if not isinstance(fig.get("file"), str):
            bad(f"figures[{i}].file", "a file name inside the run folder", fig.get("file"))
    for i, extra in enumerate(summary.get("tables") or []):
        if not isinstance(extra, dict) or not isinstance(extra.get("rows", []), list):
            bad(f"tables[{i}]", "a JSON object with a list of rows", extra)
    return summary
