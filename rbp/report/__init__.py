"""Run folders, figures and the convergence report (matplotlib is imported lazily).

:class:`RunFolder` owns a run folder: its lock, its file names, atomic
writes and safe reads (only regular files inside it). :func:`write_run`
writes a run folder's results (config, metrics.csv, summary.json, figures,
report.html/report.md); :func:`load_run` reads one back;
:mod:`rbp.report.figures` draws the standard figures and
:mod:`rbp.report.render` the HTML/Markdown report. The figure helpers
(:data:`LINESTYLES`, :data:`MARKERS`, :func:`palette`, :func:`line_style`,
:func:`new_figure`, :func:`save_figure`, :func:`style_axes`) give every
experiment's figures one look.
"""

from .folder import RunFolder, RunFolderError
from .render import write_report
from .run import atomic_write, load_run, metrics_csv, read_metrics_csv, write_run
from .style import LINESTYLES, MARKERS, color, line_style, new_figure, palette, save_figure, style_axes

__all__ = [
    "RunFolder",
    "RunFolderError",
    "write_run",
    "load_run",
    "atomic_write",
    "metrics_csv",
    "read_metrics_csv",
    "write_report",
    "LINESTYLES",
    "MARKERS",
    "color",
    "palette",
    "line_style",
    "new_figure",
    "save_figure",
    "style_axes",
]
