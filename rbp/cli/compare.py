"""Moved to :mod:`rbp.experiments.compare` (``rbp compare`` is the ``compare`` experiment); kept so that
``rbp.cli.compare`` imports keep working."""

from ..experiments.compare import *  # noqa: F401,F403
from ..experiments.compare import __all__  # noqa: F401
