"""BLAS threads that never slow a user down.

OpenBLAS splits every matrix product over all cores. For the small products
of these models (a batch of 64 times 128 units) the split costs more than it
gains, and on a busy machine it is ruinous (an Elman epoch, T=40, H=128,
batch 64: 15 s with two threads against 1.1 s with one, measured on a shared
2-core machine). Training and gradient evaluation therefore run under
``threads="auto"``: one thread for products below
:data:`AUTO_SINGLE_THREAD_WORK` multiply-adds, the library's setting above.
"""

from __future__ import annotations

import contextlib

from .validation import check_int

__all__ = ["AUTO_SINGLE_THREAD_WORK", "thread_limit", "blas_threads", "model_work"]

#: Below this many multiply-adds per matrix product, one BLAS thread is never slower: the
#: products are too small to split, and a second thread only adds synchronisation (on a busy
#: 2-core machine, measured 13x slower for an Elman epoch with H=128, batch 64).
AUTO_SINGLE_THREAD_WORK = 2**24

_controller = None


def thread_limit(threads, work: float | None = None):
    """The BLAS thread count to use: an int, or None to leave the library's setting.

    Parameters
    ----------
    threads : "auto", int >= 1, or None
        ``"auto"``: one thread when a matrix product does fewer than
        :data:`AUTO_SINGLE_THREAD_WORK` multiply-adds (``work``), else the
        library default; an int: that many; None: never touch them.
    work : float, optional
        Multiply-adds of the model's largest matrix product.

    Examples
    --------
    >>> thread_limit("auto", work=64 * 128 * 128), thread_limit("auto", work=1e10), thread_limit(2)
    (1, None, 2)
    """
    if threads is None:
        return None
    if threads == "auto":
        return 1 if work is not None and work < AUTO_SINGLE_THREAD_WORK else None
    return check_int(threads, "threads")


@contextlib.contextmanager
def blas_threads(limit):
    """Limit the BLAS libraries to ``limit`` threads while the block runs (None: no change).

    Uses one cached ``threadpoolctl.ThreadpoolController`` (about 8 us per
    use instead of 200 us for a fresh ``threadpool_limits``).
    """
    global _controller
    if limit is None:
        yield
        return
    try:
        if _controller is None:
            import scipy.linalg  # noqa: F401  (load SciPy's BLAS too before scanning)
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        ctx = _controller.limit(limits=limit, user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield
        return
    with ctx:
        yield


def model_work(model, batch: int) -> float:
    """Multiply-adds of the model's largest matrix product for ``batch`` samples (its ``blas_work``)."""
    work = getattr(model, "blas_work", None)
    if work is not None:
        return float(work(batch))
    return float(batch) * float(model.params.size)
