"""rbp.report.stats agrees with scipy.stats on the same numbers."""

import inspect

import numpy as np
import pytest
from scipy import stats as ss

from rbp.report.stats import paired, summarize


def _scipy_bootstrap(x, method):
    kwargs = {"confidence_level": 0.95, "n_resamples": 9999, "method": method}
    arg = "rng" if "rng" in inspect.signature(ss.bootstrap).parameters else "random_state"
    kwargs[arg] = np.random.default_rng(0)
    ci = ss.bootstrap((np.asarray(x),), np.mean, vectorized=True, **kwargs).confidence_interval
    return ci.low, ci.high


@pytest.mark.parametrize("n", [3, 5, 12])
def test_summary_matches_numpy_and_scipy(n):
    x = np.random.default_rng(n).normal(0.9, 0.02, size=n)
    s = summarize(x)
    assert s["mean"] == pytest.approx(np.mean(x)) and s["sd"] == pytest.approx(np.std(x, ddof=1))
    lo, hi = _scipy_bootstrap(x, "BCa" if n >= 10 else "percentile")
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((lo, hi))
    assert s["ci_low"] < s["mean"] < s["ci_high"] and s["n"] == n


def test_paired_matches_scipy_wilcoxon():
    gen = np.random.default_rng(1)
    a = gen.normal(0.95, 0.01, size=8)
    b = a - gen.normal(0.01, 0.005, size=8)
    d = paired(a, b)
    assert d["diff_mean"] == pytest.approx(np.mean(a - b))
    assert d["p_wilcoxon"] == pytest.approx(ss.wilcoxon(a - b).pvalue)
    lo, hi = _scipy_bootstrap(a - b, "percentile")
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((lo, hi))


def test_degenerate_and_missing_values():
    assert summarize([]) is None and summarize([None, float("nan")]) is None
    s = summarize([0.9644, 0.9644, 0.9644])  # three seeds that happened to score alike
    assert s["sd"] == 0.0 and s["ci_low"] == s["ci_high"] == 0.9644 and s["ci_method"] == "degenerate"
    s = summarize([0.5, None, 0.7])
    assert s["n"] == 2 and s["missing"] == 1
    assert paired([1.0, 2.0], [1.0, 2.0])["p_wilcoxon"] == 1.0
    with pytest.raises(ValueError, match="one value per seed"):
        paired([1.0], [1.0, 2.0])
