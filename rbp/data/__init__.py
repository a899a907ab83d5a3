"""Seeded data sets; nothing is downloaded.

OCR: :func:`glyphs` (printed characters rendered from matplotlib's bundled
fonts, split by typeface) and :func:`digits` (the UCI handwritten digits that
scikit-learn ships). Sequences: see :mod:`rbp.data.sequences`.
"""

from . import sequences
from ._dataset import Dataset, SequenceDataset
from .digits import digits
from .glyphs import glyphs

__all__ = ["Dataset", "SequenceDataset", "glyphs", "digits", "sequences"]
