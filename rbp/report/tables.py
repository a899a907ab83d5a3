"""Result tables as plain text, Markdown and HTML.

A table is a list of row dicts (the columns are the union of their keys, in
first-seen order). A cell is a number, a string, ``None`` (shown as ``—``), or
``{"mean": m, "sd": s}`` (shown as ``m ± s``, the spread over seeds; with a
``"flag"`` such as ``"†"``, the flag follows, for a value a note qualifies).

Examples
--------
>>> rows = [{"method": "MLP", "accuracy": {"mean": 0.9612, "sd": 0.0041}, "epochs": 12},
...         {"method": "RBP", "accuracy": 0.95, "epochs": None}]
>>> print(text_table(rows))
method  accuracy         epochs
------  ---------------  ------
MLP     0.9612 ± 0.0041  12
RBP     0.95             —
>>> format_cell({"mean": 0.8899, "sd": None, "flag": "†"})
'0.8899 †'
"""

from __future__ import annotations

import html
import math

__all__ = ["columns", "format_cell", "text_table", "markdown_table", "html_table", "mean_sd"]


def columns(rows) -> list:
    """The union of the rows' keys, in first-seen order."""
    out = []
    for row in rows:
        for key in row:
            if key not in out:
                out.append(key)
    return out


def _number(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    v = float(v)
    if math.isnan(v):
        return "—"
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    return f"{v:.3g}"


def _plus_minus(m: float, s: float) -> str:
    """``m ± s``: ``s`` to two significant digits, ``m`` to the same decimal place
    (but no more than four significant digits of ``m``)."""
    if math.isfinite(s) and math.isfinite(m) and s <= 1e-12 * max(abs(m), 1e-300):
        s = 0.0  # identical values up to rounding
    if s == 0 or not math.isfinite(s) or not math.isfinite(m):
        return f"{_number(m)} ± {_number(s)}"
    decimals = 1 - math.floor(math.log10(abs(s)))
    if m != 0:
        decimals = min(decimals, max(0, 3 - math.floor(math.log10(abs(m)))))
    if decimals < 0 or decimals > 8 or abs(m) >= 1e5:
        return f"{_number(m)} ± {s:.2g}"
    sd = f"{s:.{decimals}f}"
    if float(sd) == 0:
        sd = f"{s:.1g}"
    return f"{m:.{decimals}f} ± {sd}"


def format_cell(v) -> str:
    """One cell as text (see the module docstring)."""
    if v is None:
        return "—"
    if isinstance(v, dict) and "mean" in v:
        m, s = v.get("mean"), v.get("sd")
        flag = f" {v['flag']}" if isinstance(v.get("flag"), str) and v["flag"] else ""
        if m is None:
            return "—" + flag
        if not _is_number(m) or not (s is None or _is_number(s)):
            return str(v)
        try:
            if s is None or math.isnan(float(s)):
                return _number(m) + flag
            return _plus_minus(float(m), float(s)) + flag
        except (OverflowError, ValueError):  # integers beyond float range
            return str(v)
    if isinstance(v, (int, float)):
        return _number(v)
    return str(v)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def mean_sd(values) -> dict | None:
    """``{"mean", "sd", "n"}`` of the finite values (``sd`` is None for one value),
    or None when there are none.

    Examples
    --------
    >>> mean_sd([1.0, 3.0, None])
    {'mean': 2.0, 'sd': 1.4142135623730951, 'n': 2}
    """
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None
    m = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    return {"mean": m, "sd": sd, "n": len(vals)}


def text_table(rows) -> str:
    """Aligned plain-text table (for the terminal)."""
    if not rows:
        return "(no rows)"
    cols = columns(rows)
    cells = [[format_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(str(c)), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows) -> str:
    """GitHub-flavoured Markdown table."""
    if not rows:
        return "_(no rows)_"
    cols = columns(rows)
    lines = ["| " + " | ".join(_md_escape(str(c)) for c in cols) + " |"]
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        lines.append("| " + " | ".join(_md_escape(format_cell(r.get(c))) for c in cols) + " |")
    return "\n".join(lines)


def html_table(rows, *, caption: str | None = None) -> str:
    """An HTML ``<table>``; numeric columns are right-aligned."""
    if not rows:
        return "<p><em>(no rows)</em></p>"
    cols = columns(rows)
    numeric = {
        c for c in cols
        if all(isinstance(r.get(c), (int, float, dict, type(None))) and not isinstance(r.get(c), bool) for r in rows)
    }
    out = ['<div class="table-wrap"><table>']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cols) + "</tr></thead>")
    out.append("<tbody>")
    for r in rows:
        tds = []
        for c in cols:
            cls = ' class="num"' if c in numeric else ""
            tds.append(f"<td{cls}>{html.escape(format_cell(r.get(c)))}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)
