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
