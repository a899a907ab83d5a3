"""Every docstring example in the package runs and prints what it claims."""

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import rbp


def _modules():
    names = ["rbp"]
    for info in pkgutil.walk_packages(rbp.__path__, prefix="rbp."):
        if ".__main__" in info.name:
            continue
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    with np.printoptions(legacy=False):
        for test in tests:
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name} (see output above)"


def test_public_surface_is_documented():
    for name in rbp.__all__:
        obj = getattr(rbp, name)
        assert obj.__doc__, f"rbp.{name} has no docstring"
