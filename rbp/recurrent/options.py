"""The settings of a fixed point's two solves, each a small validated object.

:class:`ForwardOptions` says how the dynamics relax to the fixed point,
:class:`BackwardOptions` how the adjoint system is solved. Both name their
threshold ``tol`` and their cap ``max_iter``; a model's flat keywords
(``tol=``, ``backward_tol=`` ...) are shorthand for them. Each also writes the
advice of a failure message: the options that would change the outcome,
never one already in use.

Examples
--------
>>> fwd = ForwardOptions("anderson", tol=1e-8, max_iter=200)
>>> fwd.relax_options()
{'damping': 1.0, 'memory': 5}
>>> BackwardOptions("neumann", tol=0.0, max_iter=20).fixed_terms
True
>>> ForwardOptions("andersen")
Traceback (most recent call last):
...
ValueError: forward must be one of ['anderson', 'broyden1', 'broyden2', 'df-sane', 'hybr', 'krylov', 'ode', 'picard'], got 'andersen'; did you mean 'anderson'?
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core import fixedpoint, linsolve
from ..core.results import Status
from ..core.validation import check_bool, check_int, check_real, unknown_name_message

__all__ = ["ForwardOptions", "BackwardOptions", "BACKPROP_THROUGH_RELAXATION"]

#: The backward method that is not a linear solve: backprop through the stored Picard iterates.
BACKPROP_THROUGH_RELAXATION = "bptt"


@dataclass(frozen=True)
class ForwardOptions:
    """How the dynamics relax to their fixed point (:func:`rbp.core.fixedpoint.relax`).

    Parameters
    ----------
    method : str
        A registered forward method (``picard``, ``anderson``, ``ode``, a
        ``scipy.optimize.root`` method, or one added with
        :func:`rbp.core.fixedpoint.register_forward_method`).
    tol : float
        Per-sample relative residual ``||x - F(x)|| / max(1, ||x||)`` to reach.
    max_iter : int
        Evaluations of ``F`` per sample at most.
    damping : float
        Picard step ``tau`` in ``(0, 1]``; Anderson's mixing.
    memory : int
        Anderson's history length.
    """

    method: str = "anderson"
    tol: float = 1e-6
    max_iter: int = 500
    damping: float = 1.0
    memory: int = 5

    def __post_init__(self):
        if self.method not in fixedpoint.FORWARD_METHODS:
            raise ValueError(unknown_name_message("forward", self.method, fixedpoint.FORWARD_METHODS))
        object.__setattr__(self, "tol", check_real(self.tol, "tol"))
        object.__setattr__(self, "max_iter", check_int(self.max_iter, "max_iter"))
        object.__setattr__(self, "damping", check_real(self.damping, "damping", high=1.0))
        object.__setattr__(self, "memory", check_int(self.memory, "memory"))

    def relax_options(self) -> dict:
        """The options of :func:`rbp.core.fixedpoint.relax` this method takes."""
        accepted = fixedpoint.method_options(self.method)
        return {k: getattr(self, k) for k in ("damping", "memory") if k in accepted}

    def advice(self, status, *, contraction=None, can_project=False) -> str:
        """Which options to change after a failed relaxation (none already in use)."""
        tips = []
        if status == Status.DIVERGED:
            if self.damping == 1.0 and "damping" in fixedpoint.method_options(self.method):
                tips.append("damping < 1 (e.g. damping=0.5)")
        else:
            tips.append(f"a larger max_iter (now {self.max_iter})")
            tips.append(f"a looser tol (now {self.tol:g})")
            if self.method != "anderson":
                tips.append("forward='anderson'")
            elif self.damping == 1.0:
                tips.append("damping < 1")
        if can_project and contraction is None:
            tips.append("contraction=0.9 (keeps the dynamics a contraction)")
        elif can_project:
            tips.append(f"a smaller contraction (now {contraction:g})")
        return "try " + ", ".join(tips[:-1]) + (" or " if len(tips) > 1 else "") + tips[-1]


@dataclass(frozen=True)
class BackwardOptions:
    """How the error is propagated back: the adjoint solve (:func:`rbp.core.linsolve.solve`).

    Parameters
    ----------
    method : str
        A registered linear solver (``direct, gmres, lgmres, bicgstab,
        cg-normal, neumann, relax`` or one added with
        :func:`rbp.core.linsolve.register_linear_solver`), or ``bptt``:
        backprop through the stored Picard iterates (the reference).
    tol : float
        Relative residual of the adjoint system to reach. ``tol=0`` with
        ``method="neumann"`` or ``"relax"`` and ``max_iter=K`` runs exactly K
        terms (Neumann-RBP, Liao et al. 2018).
    max_iter : int, optional
        Iteration cap (the method's default when None).
    damping : float
        The step of ``relax``.
    restart : int
        GMRES/LGMRES restart length.
    record_history : bool
        Record the residual after every iteration for ``lgmres``,
        ``bicgstab`` and ``cg-normal`` too (one extra operator application
        each; the other methods record it for free).
    """

    method: str = "gmres"
    tol: float = 1e-6
    max_iter: int | None = None
    damping: float = 1.0
    restart: int = 30
    record_history: bool = False

    def __post_init__(self):
        if self.method != BACKPROP_THROUGH_RELAXATION and self.method not in linsolve.LINEAR_SOLVERS:
            raise ValueError(unknown_name_message("backward", self.method,
                                                  linsolve.LINEAR_SOLVERS.names() + (BACKPROP_THROUGH_RELAXATION,)))
        if self.max_iter is not None:
            object.__setattr__(self, "max_iter", check_int(self.max_iter, "backward_max_iter"))
        series = self.method in ("neumann", "relax") and self.max_iter is not None
        try:
            tol = check_real(self.tol, "backward_tol", low_inclusive=series)
        except ValueError:
            raise ValueError(
                f"backward_tol must be a positive finite number (or 0 with backward='neumann'/'relax' and "
                f"backward_max_iter=K for exactly K terms), got {self.tol!r} with backward={self.method!r}"
            ) from None
        object.__setattr__(self, "tol", tol)
        object.__setattr__(self, "damping", check_real(self.damping, "backward_damping", high=1.0))
        object.__setattr__(self, "restart", check_int(self.restart, "restart"))
        object.__setattr__(self, "record_history", check_bool(self.record_history, "residual_history"))

    @property
    def fixed_terms(self) -> bool:
        """Neumann-RBP / truncated relaxation: exactly ``max_iter`` terms, no tolerance."""
        return self.tol == 0 and self.method in ("neumann", "relax")

    def solve_options(self) -> dict:
        """The options of :func:`rbp.core.linsolve.solve` this method takes."""
        accepted = linsolve.method_options(self.method)
        values = {"damping": self.damping, "restart": self.restart, "record_history": self.record_history}
        return {k: v for k, v in values.items() if k in accepted}

    def advice(self, status) -> str:
        """Which options to change after a failed adjoint solve (none already in use)."""
        if status == Status.BREAKDOWN:
            tips = ["contraction=0.9 (a singular I - J means the fixed point is not isolated)"]
            if self.method != "gmres":
                tips.append("backward='gmres'")
        elif status == Status.DIVERGED:
            tips = ["backward='gmres' (needs no spectral condition)", "contraction=0.9"]
        else:
            tips = [f"a larger backward_max_iter (now {self.max_iter if self.max_iter is not None else 'default'})",
                    f"a looser backward_tol (now {self.tol:g})"]
            tips.append("backward='direct'" if self.method != "direct" else "backward='gmres'")
        return "try " + ", ".join(tips[:-1]) + (" or " if len(tips) > 1 else "") + tips[-1]
