"""Run folders, figures and the convergence report (matplotlib is imported lazily).

:func:`write_run` writes a run folder (config, metrics.csv, summary.json,
figures, report.html/report.md); :func:`load_run` reads one back;
:mod:`rbp.report.figures` draws the figures and
:mod:`rbp.report.render` the HTML/Markdown report.
"""

from .render import write_report
from .run import (
    atomic_write,
    load_run,
    metrics_csv,
    prepare_run_folder,
    read_metrics_csv,
    write_run,
)

__all__ = [
    "write_run",
    "prepare_run_folder",
    "load_run",
    "atomic_write",
    "metrics_csv",
    "read_metrics_csv",
    "write_report",
]
