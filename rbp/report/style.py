"""One look for every figure: line styles, markers, colours, a figure and its atomic save.

The experiments and the report's standard figures draw with these, so a
method keeps its colour, line style and marker from figure to figure, and
no experiment copies its own style tables. matplotlib is imported when a
figure is made, never at import time; figures use matplotlib's object API
(no ``pyplot`` state), on the Agg canvas.

Examples
--------
>>> import tempfile, pathlib
>>> fig, ax = new_figure(figsize=(3, 2))
>>> for i, label in enumerate(["MLP", "RBP"]):
...     _ = ax.plot([1, 2, 3], [3 - i, 2 - i, 1 - i], label=label, **line_style(i))
>>> entry = save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "demo.png", caption="Two lines.")
>>> entry["file"].endswith("demo.png"), entry["caption"]
(True, 'Two lines.')
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..core.checkpoint import atomic_write

__all__ = ["LINESTYLES", "MARKERS", "color", "palette", "line_style", "new_figure", "save_figure", "style_axes"]

#: Line styles, in the order methods get them.
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 1)))
#: Markers, in the order methods get them.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h")


def color(index: int) -> str:
    """The ``index``-th colour of the palette (matplotlib's ``tab10`` cycle, ``"C0"`` ...).

    Examples
    --------
    >>> color(0), color(12)
    ('C0', 'C2')
    """
    return f"C{index % 10}"


def palette(labels) -> dict:
    """``label -> colour``, one colour per label in order (``tab10``, repeating after ten).

    Examples
    --------
    >>> palette(["MLP", "RBP"])
    {'MLP': 'C0', 'RBP': 'C1'}
    """
    return {label: color(i) for i, label in enumerate(labels)}


def line_style(index: int, *, lines: bool = True) -> dict:
    """Keyword arguments for ``ax.plot`` that tell the ``index``-th method apart:
    colour, marker and (with ``lines``) line style.

    Examples
    --------
    >>> line_style(1)
    {'color': 'C1', 'marker': 's', 'linestyle': '--'}
    """
    out = {"color": color(index), "marker": MARKERS[index % len(MARKERS)]}
    if lines:
        out["linestyle"] = LINESTYLES[index % len(LINESTYLES)]
    return out


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize=None, layout=None, squeeze: bool = True, **subplots):
    """``(figure, axes)`` as ``pyplot.subplots`` gives them, without pyplot's global state.

    Parameters
    ----------
    nrows, ncols : int
    figsize : (float, float), optional
        Width and height in inches.
    layout : {None, "constrained", "tight"}
    squeeze : bool
        As in ``pyplot.subplots``.
    **subplots
        ``sharex``, ``sharey``, ``subplot_kw``... for ``Figure.subplots``.

    Examples
    --------
    >>> fig, (left, right) = new_figure(1, 2, figsize=(6, 2.5), sharey=True)
    >>> type(fig).__name__, left.get_shared_y_axes().joined(left, right)
    ('Figure', True)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, **subplots)


def save_figure(fig, path, *, caption: str = "", root=None, dpi: int = 110) -> dict:
    """Write ``fig`` as a PNG atomically; returns ``{"file", "caption"}`` for a summary's ``figures``.

    ``file`` is relative to ``root`` (the run folder) when it is given.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> fig, ax = new_figure(figsize=(3, 2))
    >>> save_figure(fig, run / "figures" / "a.png", caption="A figure.", root=run)
    {'file': 'figures/a.png', 'caption': 'A figure.'}
    >>> (run / "figures" / "a.png").read_bytes()[:4]
    b'\x89PNG'
    """
    path = Path(path)
    buf = io.BytesIO()
    with np.errstate(all="ignore"):
        fig.savefig(buf, format="png", dpi=dpi)
    atomic_write(path, buf.getvalue(), mode="wb")
    file = path.relative_to(Path(root)).as_posix() if root is not None else path.as_posix()
    return {"file": file, "caption": caption}


def style_axes(ax, *, integer_x: bool = False, which: str = "major"):
    """A light grid; with ``integer_x``, integer ticks on the x axis (epochs).

    Examples
    --------
    >>> fig, ax = new_figure()
    >>> style_axes(ax, integer_x=True)
    >>> type(ax.xaxis.get_major_locator()).__name__
    'MaxNLocator'
    """
    ax.grid(True, which=which, alpha=0.3)
    if integer_x:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
