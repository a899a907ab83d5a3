"""Tests for rbp.data.digits: the UCI digits bundled with scikit-learn."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rbp.data._dataset import Dataset
from rbp.data.digits import digits

needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None, reason="scikit-learn is not installed"
)


@needs_sklearn
def test_shapes_dtypes_ranges():
    ds = digits()
    assert isinstance(ds, Dataset)
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert ds.X_train.shape == (898, 64) and ds.X_test.shape == (899, 64)
    for X in (ds.X_train, ds.X_test):
        assert X.dtype == np.float64
        assert X.min() == 0.0 and X.max() == 1.0
    for y in (ds.y_train, ds.y_test):
        assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
    assert ds.classes == tuple("0123456789")
    assert ds.image_shape == (8, 8)
    assert ds.meta["source"] == "UCI optical digits via scikit-learn"


@needs_sklearn
def test_all_samples_used_once():
    ds = digits(test_size=0.25)
    X = np.concatenate([ds.X_train, ds.X_test])
    assert X.shape == (1797, 64)
    from sklearn.datasets import load_digits

    reference = load_digits().data / 16.0
    def fingerprint(A):  # independent of row order
        return np.sort(A @ np.arange(1, 65))

    np.testing.assert_allclose(fingerprint(X), fingerprint(reference))
    assert len(ds.y_test) == int(np.ceil(0.25 * 1797))


@needs_sklearn
@pytest.mark.parametrize("test_size", [0.5, 0.2, 300])
def test_stratified_class_proportions(test_size):
    ds = digits(test_size=test_size, rng=3)
    total = np.bincount(np.concatenate([ds.y_train, ds.y_test]), minlength=10)
    frac = len(ds.y_test) / 1797
    test_counts = np.bincount(ds.y_test, minlength=10)
    assert np.all(np.abs(test_counts - frac * total) <= 1.0)


@needs_sklearn
def test_unstratified_split_works():
    ds = digits(stratify=False, rng=1)
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert ds.meta["stratify"] is False


@needs_sklearn
def test_determinism():
    a, b = digits(rng=5), digits(rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    np.testing.assert_array_equal(digits().X_test, digits(rng=0).X_test)
    assert not np.array_equal(digits(rng=1).y_train, digits(rng=2).y_train)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"test_size": 0.0}, "test_size"),
        ({"test_size": 1.0}, "test_size"),
        ({"test_size": -0.2}, "test_size"),
        ({"test_size": 5}, "test_size"),  # fewer than one sample per class
        ({"test_size": 1797}, "test_size"),
        ({"test_size": "0.5"}, "test_size"),
        ({"stratify": "yes"}, "stratify"),
        ({"rng": 0.5}, "rng"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        digits(**kwargs)


def test_missing_sklearn_gives_actionable_import_error(monkeypatch):
    for name in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install scikit-learn") as info:
        digits()
    assert 'pip install "rbp[test]"' in str(info.value)


def test_module_imports_without_sklearn():
    root = Path(__file__).resolve().parents[2]
    code = "import sys; sys.modules['sklearn'] = None; import rbp.data.digits"
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


@needs_sklearn
def test_learnable():
    from sklearn.linear_model import LogisticRegression

    ds = digits()
    model = LogisticRegression(max_iter=500).fit(ds.X_train, ds.y_train)
    accuracy = model.score(ds.X_test, ds.y_test)
    assert accuracy > 0.9
