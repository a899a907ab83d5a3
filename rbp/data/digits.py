"""The UCI handwritten digits (8 x 8) that scikit-learn ships in its package.

1797 real handwritten digits (the test part of the UCI "Optical Recognition
of Handwritten Digits" set of Alpaydin & Kaynak, written by 13 people), each
an 8 x 8 grid of counts in 0..16, read with
:func:`sklearn.datasets.load_digits`: no download. Needs scikit-learn (the
``test`` and ``bench`` extras of rbp install it); it is imported only when
:func:`digits` is called, so importing this module never fails.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from rbp.core.params import as_generator
from rbp.data._dataset import Dataset

__all__ = ["digits"]

_N_SAMPLES = 1797
_N_CLASSES = 10

_MISSING_SKLEARN = (
    "rbp.data.digits needs scikit-learn, which ships the UCI digits inside its package; "
    'install it with `pip install "rbp[test]"` (the test and bench extras include it) '
    "or `pip install scikit-learn`"
)


def _check_test_size(test_size, stratify: bool):
    smallest = _N_CLASSES if stratify else 1
    if isinstance(test_size, bool) or not isinstance(test_size, Real):
        ok = False
    elif isinstance(test_size, Integral):
        ok = smallest <= test_size <= _N_SAMPLES - smallest
    else:
        # Each part needs at least `smallest` samples (one per class when stratified).
        ok = 0.0 < test_size < 1.0 and smallest <= math.ceil(test_size * _N_SAMPLES) <= _N_SAMPLES - smallest
    if not ok:
        raise ValueError(
            "test_size must be a fraction in (0, 1) or a number of samples in "
            f"[{smallest}, {_N_SAMPLES - smallest}], got {test_size!r}"
        )
    return int(test_size) if isinstance(test_size, Integral) else float(test_size)


def digits(*, test_size: float = 0.5, rng=None, stratify: bool = True) -> Dataset:
    """The 1797 UCI handwritten digits bundled with scikit-learn, split in two.

    Parameters
    ----------
    test_size : float or int
        Fraction of the samples in the test set, in (0, 1), or their number.
    rng : numpy.random.Generator or int, optional
        Decides the split; an int is a seed. ``None`` means seed 0, so the
        default call is reproducible.
    stratify : bool
        Keep the class proportions equal in both parts (default). Otherwise
        the split is a plain random one.

    Returns
    -------
    Dataset
        ``X_train`` : ndarray, shape (n_train, 64), float64 in [0, 1] (the
        counts 0..16 divided by 16, ink = 1); ``y_train`` : ndarray of int64,
        shape (n_train,), the digit; ``X_test``, ``y_test`` likewise;
        ``classes = tuple("0123456789")``; ``image_shape = (8, 8)``; ``meta``
        with the source and the arguments. ``n_train + n_test == 1797``.

    Raises
    ------
    ImportError
        When scikit-learn is not installed (the message says how to fix it).
    ValueError
        For an invalid argument, naming it.

    Notes
    -----
    Each 8 x 8 image counts the "on" pixels in a 4 x 4 block of a 32 x 32
    bitmap of the scanned digit, hence the range 0..16. The split is
    ``sklearn.model_selection.train_test_split(X, y, test_size=test_size,
    stratify=y, random_state=seed)`` with ``seed`` a 32-bit integer drawn from
    ``rng`` (so an int ``rng`` and ``numpy.random.default_rng`` of it give the
    same split). The digits' writers are not recorded, so unlike
    :func:`rbp.data.glyphs.glyphs` the test set is not "new writers".

    References
    ----------
    E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits",
    UCI Machine Learning Repository, 1998. doi:10.24432/C50P49

    Examples
    --------
    >>> from rbp.data.digits import digits
    >>> ds = digits()
    >>> ds.X_train.shape, ds.X_test.shape
    ((898, 64), (899, 64))
    >>> float(ds.X_train.max()) <= 1.0, ds.classes[:3]
    (True, ('0', '1', '2'))
    """
    if not isinstance(stratify, (bool, np.bool_)):
        raise ValueError(f"stratify must be True or False, got {stratify!r}")
    test_size = _check_test_size(test_size, bool(stratify))
    seed_arg = None if isinstance(rng, np.random.Generator) else (0 if rng is None else rng)
    gen = as_generator(0 if rng is None else rng)

    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise ImportError(_MISSING_SKLEARN) from exc

    bunch = load_digits()
    X = np.asarray(bunch.data, dtype=np.float64) / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    split_seed = int(gen.integers(2**32))
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=split_seed, stratify=y if stratify else None
    )
    meta = {
        "source": "UCI optical digits via scikit-learn",
        "generator": "rbp.data.digits",
        "n_samples": int(len(y)),
        "test_size": test_size,
        "stratify": bool(stratify),
        "seed": None if seed_arg is None else int(seed_arg),
        "split_seed": split_seed,
    }
    return Dataset(
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        classes=tuple("0123456789"),
        image_shape=(8, 8),
        meta=meta,
    )
