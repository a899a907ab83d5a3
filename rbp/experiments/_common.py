"""What every built-in experiment does first: resolve and check its config, then take its run folder."""

from __future__ import annotations

import numpy as np

import rbp
from rbp.config import about, resolve
from rbp.report import RunFolder

__all__ = ["prepare", "seeds", "check_names", "check_split", "about"]


def prepare(module, config: dict, out_dir, *, resume: bool = False):
    """``(config, folder)``: the config resolved against the module's ``DEFAULTS`` and checked by its
    ``check`` (both before anything is written), and the run folder (:meth:`RunFolder.of`)."""
    config = resolve(module.DEFAULTS, config, constraints=getattr(module, "CONSTRAINTS", None))
    module.check(config)
    return config, RunFolder.of(out_dir, resume=resume)


def seeds(config: dict) -> list:
    """The training seeds ``run.seed, run.seed + 1, ...`` (``run.seeds`` of them)."""
    return [config["run"]["seed"] + i for i in range(config["run"]["seeds"])]


def check_names(values, allowed, key: str) -> list:
    """``values`` as a list if it is a non-empty list of distinct names from ``allowed``; a ValueError naming
    ``key`` if not."""
    values = list(values)
    if not values or any(v not in allowed for v in values) or len(set(values)) != len(values):
        raise ValueError(f"{key} must be a non-empty list of distinct names from {list(allowed)}, got {values!r}")
    return values


def check_split(n: int, fraction, key: str):
    """Refuse a validation ``fraction`` that leaves no training sample out of ``n`` (the trainer's own split)."""
    if fraction:
        with about(key):
            rbp.core.split_validation((np.arange(n),), fraction, np.random.default_rng(0))
