"""Every ```python block in docs/*.md runs.

The blocks of one page run in order in one namespace (a page is one session,
as a reader would type it), in a temporary working directory, with
matplotlib's Agg backend. Blocks fenced as ```python no-run are shown, not
run. A failure names the page, the block number and its line.

Links between the pages (``[text](page.md#anchor)``) must resolve to an
existing page and heading.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(DOCS.glob("*.md"))

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


def extract_blocks(text: str):
    """``[(line_number, info, code), ...]`` for every fenced code block of ``text``.

    ``line_number`` is the 1-based line of the opening fence; ``info`` the
    fence's info string (``"python"``, ``"python no-run"``, ``"bash"``...).
    The fence's indentation is removed from the code lines.
    """
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, info = m["indent"], m["ticks"], m["info"].strip()
        start = i + 1
        body = []
        i += 1
        while i < len(lines):
            line = lines[i]
            if line.strip().startswith(ticks) and set(line.strip()) == {ticks[0]}:
                break
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        else:
            raise ValueError(f"unclosed code fence opened at line {start}")
        blocks.append((start, info, "\n".join(body) + "\n"))
        i += 1
    return blocks


def python_blocks(page: Path):
    """The runnable blocks of ``page``: info string exactly ``python``."""
    return [(line, code) for line, info, code in extract_blocks(page.read_text()) if info.split() == ["python"]]


def test_pages_exist():
    names = {p.name for p in PAGES}
    for required in ("index.md", "getting-started.md", "static-backprop.md", "recurrent-backprop.md",
                     "bptt.md", "experiments.md"):
        assert required in names, f"docs/{required} is missing"


def test_extract_blocks_handles_no_run_and_indentation():
    text = "intro\n```python\na = 1\n```\n  ```python no-run\n  b = 2\n  ```\n```bash\nls\n```\n"
    blocks = extract_blocks(text)
    assert [(line, info) for line, info, _ in blocks] == [(2, "python"), (5, "python no-run"), (8, "bash")]
    assert blocks[1][2] == "b = 2\n"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_code_runs(page, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    failure = None
    try:
        for number, (line, code) in enumerate(python_blocks(page), start=1):
            where = f"docs/{page.name}, block {number} (line {line})"
            try:
                exec(compile(code, where, "exec"), namespace)
            except Exception:
                failure = f"{where} failed:\n{traceback.format_exc()}\n--- the block ---\n{code}"
                break
    finally:
        plt.close("all")
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = heading.strip().replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set:
    anchors, in_code = set(), False
    for line in page.read_text().splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if not in_code and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_links_between_pages_resolve(page):
    text = page.read_text()
    for target, anchor in re.findall(r"\]\(([\w\-]+\.md)(?:#([\w\-]+))?\)", text):
        linked = DOCS / target
        assert linked.is_file(), f"docs/{page.name} links to missing page {target}"
        if anchor:
            assert anchor in _anchors(linked), (
                f"docs/{page.name} links to {target}#{anchor}, but {target} has no such heading; "
                f"its anchors are {sorted(_anchors(linked))}"
            )
    for anchor in re.findall(r"\]\(#([\w\-]+)\)", text):
        assert anchor in _anchors(page), f"docs/{page.name} links to #{anchor}, which is not a heading there"
