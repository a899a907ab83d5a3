"""A run is a folder: resolved config, per-epoch metrics, summary, figures."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["write_run", "atomic_write"]


def atomic_write(path, data, mode: str = "w"):
    """Write ``data`` to ``path`` atomically: a temporary file in the same
    folder, flushed and fsynced, then renamed over the target. A reader never
    sees a partial file and a crash never leaves one.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write(p, "hello")
    >>> p.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode + ("b" if isinstance(data, bytes) and "b" not in mode else "")) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def metrics_csv(runs) -> str:
    """Per-epoch metrics of several runs as CSV text (one row per run and epoch;
    columns ``run, seed`` then the union of history keys, readable by pandas)."""
    keys = []
    for r in runs:
        for k in r.get("history", {}):
            if k not in keys:
                keys.append(k)
    front = [k for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy") if k in keys]
    keys = front + sorted(k for k in keys if k not in front)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run", "seed"] + keys)
    for r in runs:
        h = r.get("history", {})
        n = max((len(v) for v in h.values()), default=0)
        for i in range(n):
            row = [r.get("label", ""), r.get("seed", "")]
            for k in keys:
                col = h.get(k, [])
                v = col[i] if i < len(col) else ""
                row.append("" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
            w.writerow(row)
    return buf.getvalue()


def write_run(out_dir, config: dict, summary: dict) -> Path:
    """Write a run folder: ``config.json`` (resolved, with package versions),
    ``metrics.csv`` (per epoch, every run), ``summary.json``.

    Parameters
    ----------
    out_dir : path
    config : dict
        The resolved configuration.
    summary : dict
        What an experiment's ``run`` returned: ``runs`` (list of dicts with
        ``label``, ``seed``, ``history``...), ``table`` (list of row dicts),
        ``figures`` (list of ``{"file", "caption"}``).

    Returns
    -------
    Path
        The run folder.
    """
    import platform

    import scipy

    import rbp

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    resolved = dict(config)
    resolved["versions"] = {
        "rbp": rbp.__version__, "numpy": np.__version__, "scipy": scipy.__version__, "python": platform.python_version(),
    }
    atomic_write(out / "config.json", json.dumps(_jsonable(resolved), indent=2) + "\n")
    atomic_write(out / "metrics.csv", metrics_csv(summary.get("runs", [])))
    atomic_write(out / "summary.json", json.dumps(_jsonable(summary), indent=2) + "\n")
    return out
