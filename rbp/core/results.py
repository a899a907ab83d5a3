"""Result objects, status codes with actionable messages, ConvergenceWarning.

Numerical routines never raise on a missed threshold: they return a
:class:`Result` (SciPy's ``OptimizeResult`` names: ``x, success, status,
message, nit``, plus residual histories) and let the caller decide. Trainers
turn a failure into :class:`ConvergenceWarning` or an error, by policy.
"""

from __future__ import annotations

import enum
import warnings

from scipy.optimize import OptimizeResult

__all__ = ["Status", "Result", "ConvergenceWarning", "NonConvergenceError", "DivergenceError", "POLICIES",
           "warn_or_raise", "apply_failure_policy"]

#: What a missed solver threshold does (a model's ``on_failure``).
POLICIES = ("warn", "raise", "skip", "ignore")


class ConvergenceWarning(UserWarning):
    """A solver or a training run stopped before reaching its threshold."""


class NonConvergenceError(RuntimeError):
    """Raised instead of :class:`ConvergenceWarning` under ``on_failure="raise"``."""


class DivergenceError(RuntimeError):
    """A non-finite loss or gradient: from ``loss_and_grad``, or in training under ``on_divergence="raise"``."""


class Status(enum.IntEnum):
    """Why a solver or a training run stopped."""

    SUCCESS = 0
    MAX_ITER = 1
    DIVERGED = 2
    BREAKDOWN = 3
    CALLBACK = 4
    INVALID = 5

    def __str__(self) -> str:
        return self.name

    def message(self, what: str = "the solver") -> str:
        """A sentence saying what happened and what to try."""
        return {
            Status.SUCCESS: f"{what} reached its tolerance.",
            Status.MAX_ITER: (
                f"{what} stopped at max_iter before reaching its tolerance; raise max_iter, "
                "loosen the tolerance, or use a faster method."
            ),
            Status.DIVERGED: (
                f"{what} diverged (non-finite or growing residual); the iteration is unstable: "
                "use damping < 1, a smaller learning rate, or enable contraction."
            ),
            Status.BREAKDOWN: (
                f"{what} broke down (illegal input or a singular system); try another method "
                "such as 'direct' or 'gmres'."
            ),
            Status.CALLBACK: f"{what} was stopped by the callback.",
            Status.INVALID: f"{what} received invalid input.",
        }[self]


class Result(OptimizeResult):
    """A dict with attribute access, as :class:`scipy.optimize.OptimizeResult`.

    Common keys: ``x`` (the solution), ``success`` (bool), ``status``
    (:class:`Status`), ``message`` (str, says what to try on failure),
    ``nit`` (iterations), ``residuals`` (history, list of float).
    """


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside rbp
    (the user's line), from the function that calls ``warnings.warn``."""
    import os
    import sys

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def warn_or_raise(message: str, policy: str = "warn", *, stacklevel: int | None = None) -> None:
    """Report a convergence failure according to ``policy``.

    ``"warn"`` issues :class:`ConvergenceWarning` (pointing at the user's
    line unless ``stacklevel`` is given), ``"raise"`` raises
    :class:`NonConvergenceError`, ``"ignore"``/``"skip"`` do nothing (the
    failure is still counted by the caller).
    """
    if policy == "raise":
        raise NonConvergenceError(message)
    if policy == "warn":
        level = user_stacklevel() if stacklevel is None else stacklevel + 1
        warnings.warn(message, ConvergenceWarning, stacklevel=level)
    elif policy not in ("ignore", "skip"):
        raise ValueError(f"policy must be one of ['warn', 'raise', 'skip', 'ignore'], got {policy!r}")


def apply_failure_policy(info: dict, policy: str, *, stacklevel: int | None = None) -> None:
    """Report the solver failures a model listed in ``info["failures"]``, once, by ``policy``.

    Models never warn themselves: they list what did not converge in their
    info, and the edge that the user called (``loss_and_grad``,
    ``evaluate``/``score``/``predict``, or the training engine for a whole
    run) applies the policy once. ``"skip"`` (meaningful to the trainer,
    which skips the update) warns like ``"warn"`` for a direct call.

    Examples
    --------
    >>> apply_failure_policy({"failures": []}, "raise")   # nothing failed: nothing happens
    >>> apply_failure_policy({"failures": ["forward relaxation did not converge"]}, "raise")
    Traceback (most recent call last):
    ...
    rbp.core.results.NonConvergenceError: forward relaxation did not converge
    """
    failures = info.get("failures") if info else None
    if not failures or policy == "ignore":
        return
    level = user_stacklevel() if stacklevel is None else stacklevel + 1
    warn_or_raise(" ".join(failures), "warn" if policy == "skip" else policy, stacklevel=level)
