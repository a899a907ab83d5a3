"""The report: a results section as one self-contained HTML file and as Markdown.

Layout: the comparison table first (with its caption and the notes), any
further tables, then every figure the summary lists, each with its caption
under it, then the per-run status and the resolved configuration. The HTML
embeds its images as base64 PNG, so it can be mailed or archived alone; the
Markdown links the PNG files.

A figure is read only through :class:`~rbp.report.folder.RunFolder`: a
regular PNG file inside the run folder it belongs to, size-capped. Anything
else a summary lists (an absolute path, ``..``, a symbolic link leading out,
a FIFO, a file that is not a PNG image) is shown as a "figure not shown"
placeholder with the reason, and warned about.
"""

from __future__ import annotations

import base64
import datetime
import html
import os
import warnings
from pathlib import Path

from ..core.checkpoint import atomic_write
from .folder import MAX_FIGURE_BYTES, RunFolder, RunFolderError
from .tables import html_table, markdown_table

_PNG = b"\x89PNG\r\n\x1a\n"

__all__ = ["render_html", "render_markdown", "write_report", "run_status_rows"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1200px; margin: 2em auto; padding: 0 1.5em; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.1em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
.meta { color: #666; font-size: 0.9em; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
caption { caption-side: bottom; text-align: left; color: #444; font-size: 0.9em; padding-top: 0.4em; }
.table-wrap { overflow-x: auto; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 0.35em 0.55em; text-align: left; vertical-align: top; }
th { background: #f4f6f8; border-bottom: 2px solid #ccd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 1.6em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #333; font-size: 0.95em; margin-top: 0.35em; max-width: 60em; }
.missing { color: #a00; border: 1px solid #a00; padding: 0.5em; }
ul.notes li { margin: 0.2em 0; }
details pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _listed(figures, roots, root) -> list:
    """``(entry, folder)`` for every well-formed figure entry; ``folder`` is the run folder its file is in."""
    figures = figures if isinstance(figures, list) else []
    roots = list(roots) if roots is not None else []
    out = []
    for i, fig in enumerate(figures):
        if isinstance(fig, dict) and isinstance(fig.get("file"), str) and fig["file"]:
            here = roots[i] if i < len(roots) and roots[i] is not None else root
            out.append((fig, RunFolder(here if here is not None else ".")))
        else:
            warnings.warn(f"report: a figure entry must be a dict with 'file' and 'caption', got {fig!r:.100}",
                          stacklevel=3)
    return out


def _figure_bytes(fig: dict, folder: RunFolder):
    """``(png bytes, None)`` or ``(None, why it is not shown)``."""
    try:
        data = folder.read_bytes(fig["file"], max_bytes=MAX_FIGURE_BYTES)
    except RunFolderError as exc:
        missing = "does not exist" in str(exc)
        return None, ("is missing" if missing else f"is refused: {exc}")
    if not data.startswith(_PNG):
        return None, "is refused: not a PNG image"
    return data, None


def _text(value) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def run_status_rows(runs) -> list:
    """One row per run: label, seed, status, epochs, final metrics, seconds."""
    rows = []
    for r in runs:
        if not isinstance(r, dict):
            continue
        h = r.get("history") if isinstance(r.get("history"), dict) else {}

        def last(key):
            col = h.get(key)
            col = [v for v in col if v is not None] if isinstance(col, list) else []
            return col[-1] if col else None

        row = {"run": r.get("label", ""), "seed": r.get("seed")}
        if r.get("status") is not None:
            row["status"] = r.get("status")
        row["epochs"] = len(h["loss"]) if isinstance(h.get("loss"), list) and h["loss"] else None
        row["final loss"] = last("loss")
        if "val_loss" in h:
            row["final val loss"] = last("val_loss")
        if "val_accuracy" in h:
            row["final val accuracy"] = last("val_accuracy")
        if r.get("test_accuracy") is not None:
            row["test accuracy"] = r.get("test_accuracy")
        if r.get("test_n_unconverged") is not None:
            row["test misses"] = r.get("test_n_unconverged")
        row["train seconds"] = r.get("seconds", last("time"))
        rows.append(row)
    return rows


def _meta_line(summary: dict, config: dict) -> str:
    bits = []
    created = summary.get("created") or datetime.datetime.now().isoformat(timespec="seconds")
    bits.append(str(created).replace("T", " "))
    run = config.get("run", {}) if isinstance(config.get("run"), dict) else {}
    if "seeds" in run:
        bits.append(f"seeds: {run['seeds']}")
    versions = config.get("versions") if isinstance(config.get("versions"), dict) else {}
    if versions:
        bits.append(", ".join(f"{k} {v}" for k, v in versions.items()))
    return " · ".join(bits)


def _title(summary: dict, title=None) -> str:
    return _text(title or summary.get("title") or f"Results: {_text(summary.get('experiment', 'experiment'))}")


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _rows(value) -> list:
    return [r for r in _list(value) if isinstance(r, dict)]


def render_html(summary: dict, config: dict, *, root=None, title=None, config_text: str | None = None,
                figure_roots=None) -> str:
    """The report as one self-contained HTML page (images embedded as base64 PNG).

    Parameters
    ----------
    summary : dict
        ``experiment``, ``table`` (rows, comparison first), optional
        ``table_caption``, ``notes``, ``tables`` (``[{"title", "rows",
        "caption"}]``), ``figures`` (``[{"file", "caption"}]``, files relative
        to ``root``), ``runs``.
    config : dict
        The resolved configuration (shown at the end).
    root : path, optional
        The run folder the figure files are relative to.
    figure_roots : list of path, optional
        Per figure, the run folder its file is in (default ``root``), for a
        report that shows the figures of several runs.
    """
    from ..config import dumps_toml

    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(_title(summary, title))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(_title(summary, title))}</h1>",
        f'<p class="meta">{html.escape(_meta_line(summary, config))}</p>',
    ]
    if summary.get("description"):
        out.append(f"<p>{html.escape(_text(summary['description']))}</p>")
    out.append("<h2>Comparison</h2>")
    out.append(html_table(_rows(summary.get("table")), caption=_text(summary.get("table_caption")) or None))
    notes = _list(summary.get("notes"))
    if notes:
        out.append('<ul class="notes">' + "".join(f"<li>{html.escape(str(n))}</li>" for n in notes) + "</ul>")
    for extra in _rows(summary.get("tables")):
        out.append(f"<h3>{html.escape(_text(extra.get('title', '')))}</h3>")
        out.append(html_table(_rows(extra.get("rows")), caption=_text(extra.get("caption")) or None))
    figures = _listed(summary.get("figures"), figure_roots, root)
    if figures:
        out.append("<h2>Figures</h2>")
    for i, (fig, folder) in enumerate(figures, start=1):
        caption = html.escape(_text(fig.get("caption", "")))
        data, why = _figure_bytes(fig, folder)
        if data is not None:
            alt = html.escape(Path(fig["file"]).stem.replace("_", " "))
            out.append(
                f'<figure id="fig{i}"><img alt="{alt}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
                f"<figcaption><b>Figure {i}.</b> {caption}</figcaption></figure>"
            )
        else:
            shown = f"{fig['file']!r:.200} in {str(folder.path)!r}"
            warnings.warn(f"report: figure file {shown} is listed in the summary but {why}", stacklevel=2)
            out.append(f'<p class="missing">Figure {i}: file {html.escape(shown)} {html.escape(why)} '
                       f"(not shown). {caption}</p>")
    runs = _list(summary.get("runs"))
    if runs:
        out.append("<h2>Runs</h2>")
        out.append(html_table(run_status_rows(runs), caption="One row per training run (method and seed)."))
    text = config_text if config_text is not None else dumps_toml(
        {k: v for k, v in config.items() if k != "versions"}
    )
    out.append("<details><summary>Resolved configuration</summary>")
    out.append(f"<pre>{html.escape(text)}</pre></details>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_markdown(summary: dict, config: dict, *, root=None, title=None, md_dir=None, figure_roots=None) -> str:
    """The report in Markdown; figures are linked relative to ``md_dir`` (default ``root``).

    A figure whose file is not a safe path inside its run folder is named, not linked.
    """
    from ..config import dumps_toml

    md_dir = Path(md_dir or root or ".")
    out = [f"# {_title(summary, title)}", "", f"_{_meta_line(summary, config)}_", ""]
    if summary.get("description"):
        out += [_text(summary["description"]), ""]
    out += ["## Comparison", "", markdown_table(_rows(summary.get("table"))), ""]
    if summary.get("table_caption"):
        out += [f"_{_text(summary['table_caption'])}_", ""]
    for n in _list(summary.get("notes")):
        out.append(f"- {n}")
    if _list(summary.get("notes")):
        out.append("")
    for extra in _rows(summary.get("tables")):
        out += [f"### {_text(extra.get('title', ''))}", "", markdown_table(_rows(extra.get("rows"))), ""]
        if extra.get("caption"):
            out += [f"_{_text(extra['caption'])}_", ""]
    figures = _listed(summary.get("figures"), figure_roots, root)
    if figures:
        out += ["## Figures", ""]
    for i, (fig, folder) in enumerate(figures, start=1):
        caption = _text(fig.get("caption", ""))
        try:
            path = folder.path / folder._relative(fig["file"])
        except RunFolderError as exc:
            out += [f"_Figure {i} not shown: {exc}_", "", f"**Figure {i}.** {caption}", ""]
            continue
        link = os.path.relpath(path, md_dir).replace(os.sep, "/")
        out += [f"![Figure {i}]({link})", "", f"**Figure {i}.** {caption}", ""]
    runs = _list(summary.get("runs"))
    if runs:
        out += ["## Runs", "", markdown_table(run_status_rows(runs)), ""]
    out += ["## Resolved configuration", "", "```toml",
            dumps_toml({k: v for k, v in config.items() if k != "versions"}).rstrip(), "```", ""]
    return "\n".join(out)


def write_report(out_dir, config: dict, summary: dict, *, html_name="report.html", md_name="report.md",
                 title=None, root=None, figure_roots=None):
    """Write ``report.html`` and ``report.md`` into ``out_dir`` (atomically).

    The report reads as a results section: the comparison table
    (``summary["table"]``) first, then every figure of ``summary["figures"]``
    embedded as base64 PNG with its caption under it, then the notes and the
    resolved config.

    Returns
    -------
    (Path, Path)
        The HTML and Markdown paths.

    Examples
    --------
    >>> import tempfile
    >>> html, md = write_report(tempfile.mkdtemp(), {"train": {"epochs": 1}},
    ...                         {"title": "Demo", "table": [{"model": "MLP", "test accuracy": 0.97}]})
    >>> "MLP" in html.read_text() and "Demo" in md.read_text()
    True
    """
    out = Path(out_dir)
    root = Path(root) if root is not None else out
    html_path, md_path = out / html_name, out / md_name
    atomic_write(html_path, render_html(summary, config, root=root, title=title, figure_roots=figure_roots))
    atomic_write(md_path, render_markdown(summary, config, root=root, title=title, md_dir=out,
                                          figure_roots=figure_roots))
    return html_path, md_path
