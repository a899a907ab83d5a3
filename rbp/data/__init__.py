"""Seeded data sets; nothing is downloaded.

OCR: :func:`glyphs` (printed characters rendered from matplotlib's bundled
fonts, split by typeface) and :func:`digits` (the UCI handwritten digits that
scikit-learn ships). Sequences: see :mod:`rbp.data.sequences`.
"""

from ._dataset import Dataset, SequenceDataset

__all__ = ["Dataset", "SequenceDataset", "glyphs", "digits", "sequences"]


def __getattr__(name):
    # The generators import matplotlib / scikit-learn; load them on first use.
    import importlib

    if name == "glyphs":
        return importlib.import_module(".glyphs", __name__).glyphs
    if name == "digits":
        return importlib.import_module(".digits", __name__).digits
    if name == "sequences":
        return importlib.import_module(".sequences", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
