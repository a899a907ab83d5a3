"""Run folders, figures and the convergence report (matplotlib is imported lazily)."""

from .run import atomic_write, write_run

__all__ = ["write_run", "atomic_write"]
