"""The report: a results section as one self-contained HTML file and as Markdown.

Layout: the comparison table first (with its caption and the notes), any
further tables, then every figure the summary lists, each with its caption
under it, then the per-run status and the resolved configuration. The HTML
embeds its images as base64 PNG, so it can be mailed or archived alone; the
Markdown links the PNG files.
"""

from __future__ import annotations

import base64
import datetime
import html
import os
import warnings
from pathlib import Path

from .tables import html_table, markdown_table

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


def _listed(figures) -> list:
    out = []
    for fig in figures or []:
        if isinstance(fig, dict) and (fig.get("file") or fig.get("path")):
            out.append(fig)
        else:
            warnings.warn(f"report: a figure entry must be a dict with 'file' and 'caption', got {fig!r}",
                          stacklevel=3)
    return out


def _figure_path(fig: dict, root) -> Path:
    p = Path(fig.get("path") or fig["file"])
    return p if p.is_absolute() or root is None else Path(root) / p


def run_status_rows(runs) -> list:
    """One row per run: label, seed, status, epochs, final metrics, seconds."""
    rows = []
    for r in runs:
        h = r.get("history") or {}

        def last(key):
            col = [v for v in h.get(key, []) if v is not None]
            return col[-1] if col else None

        row = {"run": r.get("label", ""), "seed": r.get("seed")}
        if r.get("status") is not None:
            row["status"] = r.get("status")
        row["epochs"] = len(h.get("loss", [])) or None
        row["final loss"] = last("loss")
        if "val_loss" in h:
            row["final val loss"] = last("val_loss")
        if "val_accuracy" in h:
            row["final val accuracy"] = last("val_accuracy")
        if r.get("test_accuracy") is not None:
            row["test accuracy"] = r.get("test_accuracy")
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
    versions = config.get("versions") or {}
    if versions:
        bits.append(", ".join(f"{k} {v}" for k, v in versions.items()))
    return " · ".join(bits)


def _title(summary: dict, title=None) -> str:
    return title or summary.get("title") or f"Results: {summary.get('experiment', 'experiment')}"


def render_html(summary: dict, config: dict, *, root=None, title=None, config_text: str | None = None) -> str:
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
        out.append(f"<p>{html.escape(summary['description'])}</p>")
    out.append("<h2>Comparison</h2>")
    out.append(html_table(summary.get("table") or [], caption=summary.get("table_caption")))
    notes = summary.get("notes") or []
    if notes:
        out.append('<ul class="notes">' + "".join(f"<li>{html.escape(str(n))}</li>" for n in notes) + "</ul>")
    for extra in summary.get("tables") or []:
        out.append(f"<h3>{html.escape(str(extra.get('title', '')))}</h3>")
        out.append(html_table(extra.get("rows") or [], caption=extra.get("caption")))
    figures = _listed(summary.get("figures"))
    if figures:
        out.append("<h2>Figures</h2>")
    for i, fig in enumerate(figures, start=1):
        path = _figure_path(fig, root)
        caption = html.escape(str(fig.get("caption", "")))
        if path.exists():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            alt = html.escape(path.stem.replace("_", " "))
            out.append(
                f'<figure id="fig{i}"><img alt="{alt}" src="data:image/png;base64,{data}">'
                f"<figcaption><b>Figure {i}.</b> {caption}</figcaption></figure>"
            )
        else:
            warnings.warn(f"report: figure file {str(path)!r} is listed in the summary but missing", stacklevel=2)
            out.append(f'<p class="missing">Figure {i}: file {html.escape(str(path))} is missing.</p>')
    runs = summary.get("runs") or []
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


def render_markdown(summary: dict, config: dict, *, root=None, title=None, md_dir=None) -> str:
    """The report in Markdown; figures are linked relative to ``md_dir`` (default ``root``)."""
    from ..config import dumps_toml

    md_dir = Path(md_dir or root or ".")
    out = [f"# {_title(summary, title)}", "", f"_{_meta_line(summary, config)}_", ""]
    if summary.get("description"):
        out += [summary["description"], ""]
    out += ["## Comparison", "", markdown_table(summary.get("table") or []), ""]
    if summary.get("table_caption"):
        out += [f"_{summary['table_caption']}_", ""]
    for n in summary.get("notes") or []:
        out.append(f"- {n}")
    if summary.get("notes"):
        out.append("")
    for extra in summary.get("tables") or []:
        out += [f"### {extra.get('title', '')}", "", markdown_table(extra.get("rows") or []), ""]
        if extra.get("caption"):
            out += [f"_{extra['caption']}_", ""]
    figures = _listed(summary.get("figures"))
    if figures:
        out += ["## Figures", ""]
    for i, fig in enumerate(figures, start=1):
        path = _figure_path(fig, root)
        link = os.path.relpath(path, md_dir).replace(os.sep, "/")
        out += [f"![Figure {i}]({link})", "", f"**Figure {i}.** {fig.get('caption', '')}", ""]
    runs = summary.get("runs") or []
    if runs:
        out += ["## Runs", "", markdown_table(run_status_rows(runs)), ""]
    out += ["## Resolved configuration", "", "```toml",
            dumps_toml({k: v for k, v in config.items() if k != "versions"}).rstrip(), "```", ""]
    return "\n".join(out)


def write_report(out_dir, config: dict, summary: dict, *, html_name="report.html", md_name="report.md",
                 title=None, root=None):
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
    from .run import atomic_write

    out = Path(out_dir)
    root = Path(root) if root is not None else out
    html_path, md_path = out / html_name, out / md_name
    atomic_write(html_path, render_html(summary, config, root=root, title=title))
    atomic_write(md_path, render_markdown(summary, config, root=root, title=title, md_dir=out))
    return html_path, md_path
