"""Small helpers shared by the benchmark scripts: environment header, interleaved
timing, medians/ratios, a plain-text table and PASS/FAIL claim lines.

Timing protocol (:func:`interleaved`): every repeat runs *each* method once,
back to back, in a fixed order, so slow drift of a noisy machine hits all
methods alike; a sample is the mean over enough calls to last ``min_time``
(calibrated once per method); the garbage collector is paused while a sample
runs (as :mod:`timeit` does). Quote :func:`median` of the samples, and
:func:`paired_ratio` (median of per-repeat ratios) when comparing two methods.

Nothing here changes the environment (thread counts, ``OPENBLAS_*``): the
header only reports it.
"""

from __future__ import annotations

import gc
import importlib
import os
import platform
import statistics
import sys
import time
from typing import Callable

__all__ = [
    "optional_import",
    "header",
    "blas_threads",
    "interleaved",
    "median",
    "paired_ratio",
    "table",
    "claim",
    "fmt_time",
]


def optional_import(name: str):
    """The module ``name``, or ``None`` when it is not installed (a missing peer is skipped)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def blas_threads() -> int | None:
    """Thread count of the BLAS numpy uses (threadpoolctl), or None if unknown."""
    tpc = optional_import("threadpoolctl")
    if tpc is None:
        return None
    pools = [i for i in tpc.threadpool_info() if i.get("user_api") == "blas"]
    for info in sorted(pools, key=lambda i: "numpy" not in i.get("filepath", "")):
        return int(info["num_threads"])  # numpy's own BLAS first, else any BLAS
    return None


def header(title: str) -> str:
    """A multi-line description of the machine: Python, numpy/scipy/torch/sklearn
    versions, every BLAS/OpenMP pool threadpoolctl sees, torch threads, and the
    ``OPENBLAS_*``/``*_NUM_THREADS`` variables (reported, never changed)."""
    import numpy as np

    lines = [f"== {title} ==", f"python {platform.python_version()} on {platform.machine()}, "
             f"{os.cpu_count()} logical CPUs ({platform.platform(terse=True)})"]
    versions = [f"numpy {np.__version__}"]
    for name in ("scipy", "sklearn", "torch"):
        mod = optional_import(name)
        versions.append(f"{name} {mod.__version__ if mod else 'not installed'}")
    lines.append(", ".join(versions))
    tpc = optional_import("threadpoolctl")
    if tpc is None:
        lines.append("threadpools: threadpoolctl not installed")
    else:
        for info in tpc.threadpool_info():
            lib = os.path.basename(info.get("filepath", "?"))
            owner = next((p for p in ("numpy", "scipy", "torch", "sklearn", "scikit_learn")
                          if f"/{p}" in info.get("filepath", "")), "?")
            extra = f" arch={info['architecture']}" if info.get("architecture") else ""
            lines.append(f"  {info['user_api']:6} {info['internal_api']:8} {info.get('version') or '':14} "
                         f"threads={info['num_threads']}{extra}  [{owner}: {lib}]")
    torch = sys.modules.get("torch")
    if torch is not None:
        cfg = torch.__config__.show()
        blas = cfg.split("BLAS_INFO=", 1)[1].split(",", 1)[0].strip() if "BLAS_INFO=" in cfg else "?"
        lines.append(f"torch: BLAS_INFO={blas}, torch.get_num_threads()={torch.get_num_threads()}, "
                     f"interop={torch.get_num_interop_threads()}")
    env = {k: v for k, v in os.environ.items()
           if k.startswith("OPENBLAS_") or k.endswith("_NUM_THREADS")}
    lines.append("env: " + (", ".join(f"{k}={v}" for k, v in sorted(env.items())) or "(no thread/BLAS variables)"))
    return "\n".join(lines)


def _calibrate(fn: Callable[[], object], min_time: float) -> int:
    """How many calls of ``fn`` make one sample of at least ``min_time`` seconds."""
    t0 = time.perf_counter()
    fn()
    dt = max(time.perf_counter() - t0, 1e-7)
    return max(1, int(min_time / dt + 0.999))


def interleaved(methods: dict[str, Callable[[], object]], repeats: int, *, min_time: float = 0.05,
                warmup: int = 1, max_time: float | None = None) -> dict[str, list[float]]:
    """Time zero-argument callables side by side; seconds per call, ``repeats`` samples each.

    Each method is called ``warmup`` times first (caches, lazy imports), then
    its calls per sample are calibrated; every repeat then takes one sample of
    every method in turn. GC is disabled during a sample. A sample stops early
    (after at least one call) once it has run ``max_time`` (default
    ``20 * min_time``), so a method that turns pathologically slow mid-run
    cannot stall the benchmark.
    """
    max_time = 20 * min_time if max_time is None else max_time
    for fn in methods.values():
        for _ in range(warmup):
            fn()
    loops = {name: _calibrate(fn, min_time) for name, fn in methods.items()}
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            n = loops[name]
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                t0 = time.perf_counter()
                done = 0
                while done < n:
                    fn()
                    done += 1
                    if time.perf_counter() - t0 > max_time:
                        break
                dt = time.perf_counter() - t0
            finally:
                if gc_was_enabled:
                    gc.enable()
            samples[name].append(dt / done)
    return samples


def median(xs) -> float:
    """Median of a sequence of numbers."""
    return statistics.median(xs)


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over repeats of ``a[i] / b[i]`` (samples from the same repeat of :func:`interleaved`)."""
    return statistics.median(x / y for x, y in zip(a, b))


def fmt_time(seconds: float, unit: str = "s") -> str:
    """``seconds`` in ``unit`` ('s', 'ms' or 'us'), 4 significant digits."""
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    return f"{seconds * scale:.4g} {unit}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table; the first column is left-aligned, the others right-aligned."""
    cols = list(zip(*([headers] + rows)))
    widths = [max(len(str(c)) for c in col) for col in cols]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def claim(text: str, value: float | None, bar: float, *, higher_is_better: bool) -> tuple[str, bool | None]:
    """A ``PASS``/``FAIL`` line for ``value`` against ``bar`` (``None`` value -> skipped).

    Returns (line, passed) with ``passed`` None when skipped.
    """
    if value is None:
        return f"SKIP  {text}: skipped (not installed)", None
    ok = value >= bar if higher_is_better else value <= bar
    op = ">=" if higher_is_better else "<="
    return f"{'PASS' if ok else 'FAIL'}  {text}: {value:.2f}x (bar {op} {bar:g}x)", ok
