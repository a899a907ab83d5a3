"""The statistics a comparison over seeds needs, from ``scipy.stats``.

A result over seeds is reported as its mean, sample standard deviation and a
95 % confidence interval of the mean by the bootstrap over seeds
(:func:`summarize`); two methods run on the same seeds are compared by their
paired differences: the mean difference with its bootstrap interval and the
Wilcoxon signed-rank p-value (:func:`paired`). The bootstrap's generator is
seeded, so a report's numbers are reproducible.

Examples
--------
>>> s = summarize([0.96, 0.97, 0.95, 0.965, 0.955])
>>> round(s["mean"], 4), s["n"], s["ci_low"] < s["mean"] < s["ci_high"]
(0.96, 5, True)
>>> d = paired([0.96, 0.97, 0.95, 0.965, 0.955], [0.94, 0.96, 0.94, 0.95, 0.945])
>>> round(d["diff_mean"], 4), round(d["p_wilcoxon"], 4)
(0.013, 0.0625)
"""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np

__all__ = ["summarize", "paired", "CONFIDENCE", "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED"]

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0


def _finite(values) -> np.ndarray:
    out = []
    for v in values:
        if v is None:
            continue
        v = float(v)
        if math.isfinite(v):
            out.append(v)
    return np.asarray(out, dtype=float)


def _bootstrap_ci(x: np.ndarray, confidence: float, n_resamples: int, seed: int):
    """Percentile bootstrap interval of the mean (BCa from 10 values on), or None when undefined."""
    from scipy import stats

    if x.size < 2:
        return None, None, None
    if np.all(x == x[0]):  # every resample is the same: the interval is the point
        return float(x[0]), float(x[0]), "degenerate"
    method = "BCa" if x.size >= 10 else "percentile"
    kwargs = {"confidence_level": confidence, "n_resamples": n_resamples, "method": method}
    seed_arg = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    kwargs[seed_arg] = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about tiny samples; the method is named in the output
        res = stats.bootstrap((x,), np.mean, vectorized=True, **kwargs)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None, None, None
    return lo, hi, f"bootstrap ({method}, {n_resamples} resamples)"


def summarize(values, *, confidence: float = CONFIDENCE, n_resamples: int = BOOTSTRAP_RESAMPLES,
              seed: int = BOOTSTRAP_SEED) -> dict | None:
    """Mean, sample standard deviation and bootstrap confidence interval of the mean over seeds.

    Parameters
    ----------
    values : sequence of float
        One number per seed; None and non-finite values are left out (and
        counted as missing).
    confidence : float
        Level of the interval (0.95).
    n_resamples : int
    seed : int
        The bootstrap's generator seed (the report is reproducible).

    Returns
    -------
    dict or None
        ``mean``, ``sd`` (None for one value), ``ci_low``, ``ci_high`` (None
        below two values), ``n``, ``missing``, ``confidence``, ``ci_method``;
        None when no value is finite.

    Examples
    --------
    >>> summarize([1.0, 2.0, 3.0])["sd"]
    1.0
    >>> summarize([0.5])["ci_low"] is None
    True
    """
    raw = list(values)
    x = _finite(raw)
    if x.size == 0:
        return None
    lo, hi, method = _bootstrap_ci(x, confidence, n_resamples, seed)
    return {
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)) if x.size > 1 else None,
        "ci_low": lo,
        "ci_high": hi,
        "n": int(x.size),
        "missing": len(raw) - int(x.size),
        "confidence": confidence,
        "ci_method": method,
    }


def paired(a, b, *, confidence: float = CONFIDENCE, n_resamples: int = BOOTSTRAP_RESAMPLES,
           seed: int = BOOTSTRAP_SEED) -> dict | None:
    """Paired comparison of two methods on the same seeds: ``a - b`` seed by seed.

    Parameters
    ----------
    a, b : sequence of float
        Same length, seed ``i`` in position ``i``; pairs with a missing or
        non-finite value are left out.

    Returns
    -------
    dict or None
        ``diff_mean``, ``diff_sd``, ``ci_low``, ``ci_high`` (bootstrap of the
        mean difference), ``p_wilcoxon`` (two-sided Wilcoxon signed-rank test
        of ``scipy.stats.wilcoxon``; 1.0 when every difference is zero, None
        below two pairs), ``n``; None without a complete pair.

    Raises
    ------
    ValueError
        When ``a`` and ``b`` differ in length (they must be paired by seed).

    Examples
    --------
    >>> paired([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])["p_wilcoxon"]
    1.0
    """
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"a and b must hold one value per seed each (paired), got {len(a)} and {len(b)}")
    pairs = [(float(x), float(y)) for x, y in zip(a, b) if x is not None and y is not None
             and math.isfinite(float(x)) and math.isfinite(float(y))]
    if not pairs:
        return None
    d = np.array([x - y for x, y in pairs])
    lo, hi, method = _bootstrap_ci(d, confidence, n_resamples, seed)
    return {
        "diff_mean": float(d.mean()),
        "diff_sd": float(d.std(ddof=1)) if d.size > 1 else None,
        "ci_low": lo,
        "ci_high": hi,
        "p_wilcoxon": _wilcoxon(d),
        "n": int(d.size),
        "confidence": confidence,
        "ci_method": method,
    }


def _wilcoxon(d: np.ndarray):
    from scipy import stats

    if d.size < 2:
        return None
    if np.all(d == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small samples: scipy notes the exact distribution is used
        return float(stats.wilcoxon(d).pvalue)
