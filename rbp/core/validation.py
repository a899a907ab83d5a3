"""Argument checks, in one place: every public entry point validates with these.

A leaf module (it imports only numpy). Each check returns the value converted
to its canonical type or raises a :class:`ValueError` that names the argument,
says what was expected and shows what was received, before any work starts:

>>> check_int(0, "max_iter")
Traceback (most recent call last):
...
ValueError: max_iter must be an integer >= 1, got 0
>>> check_choice("anderon", "forward", ["picard", "anderson"])
Traceback (most recent call last):
...
ValueError: forward must be one of ['anderson', 'picard'], got 'anderon'; did you mean 'anderson'?
"""

from __future__ import annotations

import difflib
import math
import numbers

import numpy as np

__all__ = [
    "nearest",
    "unknown_name_message",
    "check_choice",
    "check_int",
    "check_real",
    "check_bool",
    "check_dtype",
    "check_array",
    "check_real_array",
    "check_callable",
    "as_generator",
]


def nearest(received, valid) -> str | None:
    """The valid name closest to ``received`` (a misspelling, a prefix, other separators), or None.

    Examples
    --------
    >>> nearest("lbfgs", ["L-BFGS-B", "adam"]), nearest("xyz", ["adam"])
    ('L-BFGS-B', None)
    """
    if not isinstance(received, str):
        return None
    names = sorted(str(v) for v in valid)
    close = difflib.get_close_matches(received, names, n=1)
    if close:
        return close[0]
    key = received.lower().replace("-", "").replace("_", "")
    folded = [n for n in names if key and key in n.lower().replace("-", "").replace("_", "")]
    return folded[0] if folded else None


def unknown_name_message(argument: str, received, valid) -> str:
    """The message for a value outside a set of names: the valid names and the nearest one.

    Examples
    --------
    >>> unknown_name_message("loss", "squard", ["squared", "cross_entropy"])
    "loss must be one of ['cross_entropy', 'squared'], got 'squard'; did you mean 'squared'?"
    """
    names = sorted(str(v) for v in valid)
    msg = f"{argument} must be one of {names}, got {received!r}"
    close = nearest(received, names)
    return msg + (f"; did you mean {close!r}?" if close else "")


def check_choice(value, argument: str, choices):
    """``value`` if it is one of ``choices`` (hashable), else a ValueError with the nearest valid name."""
    try:
        ok = value in choices
    except TypeError:  # unhashable
        ok = False
    if not ok:
        raise ValueError(unknown_name_message(argument, value, choices))
    return value


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value, argument: str, *, minimum: int | None = 1, maximum: int | None = None) -> int:
    """An integer in ``[minimum, maximum]`` (bounds optional), as a Python int.

    Examples
    --------
    >>> check_int(3, "epochs")
    3
    """
    if not _is_int(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if minimum is not None and maximum is not None:
            what = f"an integer in [{minimum}, {maximum}]"
        elif minimum is not None:
            what = f"an integer >= {minimum}"
        elif maximum is not None:
            what = f"an integer <= {maximum}"
        else:
            what = "an integer"
        raise ValueError(f"{argument} must be {what}, got {value!r}")
    return int(value)


def check_real(value, argument: str, *, low: float | None = 0.0, low_inclusive: bool = False,
               high: float | None = None, high_inclusive: bool = True) -> float:
    """A finite real number in the given range (``low=None``: unbounded below), as a float.

    Examples
    --------
    >>> check_real(0.5, "damping", high=1.0)
    0.5
    >>> check_real(float("inf"), "tol")
    Traceback (most recent call last):
    ...
    ValueError: tol must be a positive finite number, got inf
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_inclusive else value > low
    if ok and high is not None:
        ok = value <= high if high_inclusive else value < high
    if not ok:
        if low == 0 and high is None:
            what = "a positive finite number" if not low_inclusive else "a finite number >= 0"
        elif low is None and high is None:
            what = "a finite real number"
        else:
            lo = "(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low:g}"
            hi = "inf)" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")
            what = f"a finite real number in {lo}, {hi}"
        raise ValueError(f"{argument} must be {what}, got {value!r}")
    return float(value)


def check_bool(value, argument: str) -> bool:
    """``True`` or ``False`` (a numpy bool too); anything else is an error."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{argument} must be True or False, got {value!r}")
    return bool(value)


def check_callable(value, argument: str, *, optional: bool = True):
    """A callable (or None when ``optional``)."""
    if value is None and optional:
        return None
    if not callable(value):
        raise ValueError(f"{argument} must be callable{' or None' if optional else ''}, got {type(value).__name__}")
    return value


def check_dtype(dtype, argument: str = "dtype"):
    """``numpy.float64`` or ``numpy.float32`` (given as a type, a dtype or a name).

    Examples
    --------
    >>> check_dtype("float32")
    <class 'numpy.float32'>
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"{argument} must be float64 or float32, got {str(dt) if dt is not None else repr(dtype)}")
    return dt.type


def _numeric(A, argument: str):
    if A.dtype == object or not (np.issubdtype(A.dtype, np.number) or A.dtype == bool):
        raise ValueError(f"{argument} must be a numeric array, got dtype {A.dtype}")
    if np.issubdtype(A.dtype, np.complexfloating):
        raise ValueError(f"{argument} must be real, got dtype {A.dtype}")


def _finite(A, argument: str):
    if not np.all(np.isfinite(A)):
        bad = np.argwhere(~np.isfinite(A))[0]
        raise ValueError(f"{argument} must be finite, got {A[tuple(bad)]} at index {tuple(int(i) for i in bad)}")


def check_array(X, argument: str, *, ndim: int, last: int | None = None, dtype=np.float64) -> np.ndarray:
    """A finite real array with ``ndim`` dimensions (and ``last`` entries on its last axis).

    Raises ValueError naming ``argument``, the expected and the received
    shape or values, before any work starts.

    Examples
    --------
    >>> check_array([[1, 2]], "X", ndim=2, last=2)
    array([[1., 2.]])
    """
    try:
        A = np.asarray(X)
    except (ValueError, TypeError) as exc:  # ragged nested sequences
        raise ValueError(f"{argument} must be a rectangular numeric array: {exc}") from None
    _numeric(A, argument)
    if A.ndim != ndim:
        want = {1: "(n,)", 2: "(n_samples, n_features)", 3: "(batch, time, features)"}.get(ndim, f"{ndim} dimensions")
        raise ValueError(f"{argument} must be a {ndim}-D array of shape {want}, got shape {A.shape}")
    if last is not None and A.shape[-1] != last:
        raise ValueError(f"{argument} must have {last} features (last axis), got shape {A.shape}")
    A = A.astype(dtype, copy=False)
    _finite(A, argument)
    return A


def check_real_array(a, argument: str, shape: tuple | None = None, dtype=np.float64) -> np.ndarray:
    """A finite real array of exactly ``shape`` (when given), converted to ``dtype``.

    Examples
    --------
    >>> check_real_array([1, 2], "b", (2,))
    array([1., 2.])
    """
    try:
        raw = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{argument} must be a rectangular numeric array: {exc}") from None
    _numeric(raw, argument)
    if shape is not None and raw.shape != tuple(shape):
        raise ValueError(f"{argument} must have shape {tuple(shape)}, got {raw.shape}")
    out = raw.astype(dtype)
    _finite(out, argument)
    return out


def as_generator(rng, *, argument: str = "rng") -> np.random.Generator:
    """A ``numpy.random.Generator``, or one seeded by an int >= 0; anything else is an error.

    Examples
    --------
    >>> bool(as_generator(0).integers(10) == as_generator(0).integers(10))
    True
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if _is_int(rng) and rng >= 0:
        return np.random.default_rng(int(rng))
    shown = rng if _is_int(rng) else type(rng).__name__
    raise ValueError(
        f"{argument} must be a numpy.random.Generator or an int seed >= 0 (e.g. numpy.random.default_rng(0)), "
        f"got {shown}"
    )
