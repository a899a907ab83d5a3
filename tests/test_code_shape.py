"""The shape of the code: long functions explain themselves (import cycles: tests/test_imports.py)."""

import ast
from pathlib import Path

import pytest

RBP = Path(__file__).resolve().parents[1] / "rbp"
MODULES = sorted(RBP.rglob("*.py"))


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(RBP.parent)))
def test_no_function_over_80_lines_without_a_docstring(path):
    tree = ast.parse(path.read_text())
    long = [f"{f.name} (line {f.lineno}, {f.end_lineno - f.lineno + 1} lines)" for f in _functions(tree)
            if f.end_lineno - f.lineno + 1 > 80 and ast.get_docstring(f) is None]
    assert not long, f"{path.name}: functions over 80 lines need a docstring: {long}"
