"""Shared test setup: float64 everywhere and floating-point errors raise."""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _strict_floating_point():
    # Overflow, division by zero and invalid operations are bugs here, not
    # warnings: every gradient must be finite by construction.
    old = np.seterr(over="raise", divide="raise", invalid="raise")
    yield
    np.seterr(**old)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="session")
def _single_blas_thread():
    # The test problems are tiny: BLAS threads only add contention on a
    # 2-core machine (measured: digits 0.4 s -> 1-2.7 s per seed). Limited at
    # run time through threadpoolctl; OPENBLAS_* variables are left alone.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
