"""Recurrent nets read out at a fixed point, trained by recurrent backpropagation (Almeida-Pineda).

:class:`FixedPointModel` is any :class:`~rbp.recurrent.dynamics.Dynamics`
plus a readout; its gradient reads as the math, one step per method:
relax to ``x*`` -> the loss and its gradient ``dL/dx*`` at the readout ->
the adjoint solve ``z (I - J^T) = dL/dx*`` -> the parameter products of
``z`` -> diagnostics. :class:`FixedPointNet` is its fully connected case.
"""

from __future__ import annotations

import numpy as np

from ..core.fixedpoint import relax, spectrum
from ..core.linsolve import BatchedOperator, solve
from ..core.losses import output_loss, output_transform, resolve_output
from ..core.model import Model
from ..core.params import ParamSpec, glorot_uniform
from ..core.results import POLICIES, Result, Status
from ..core.validation import as_generator, check_array, check_bool, check_choice, check_int, check_real
from .dynamics import Dynamics, FullyConnected, take_rows
from .options import BACKPROP_THROUGH_RELAXATION, BackwardOptions, ForwardOptions

__all__ = ["FixedPointModel", "FixedPointNet", "BACKWARD_METHODS"]

#: The built-in ways to propagate the error backward: the core's linear solvers,
#: plus backprop through the stored relaxation iterates (the reference).
BACKWARD_METHODS = ("direct", "gmres", "lgmres", "bicgstab", "cg-normal", "neumann", "relax",
                    BACKPROP_THROUGH_RELAXATION)

_UNSET = object()


def _options(forward, backward, flat: dict):
    """The two option objects from ``forward``/``backward`` (names or objects) and the flat shorthand."""
    given = {k: v for k, v in flat.items() if v is not _UNSET}
    fwd_keys = {"tol": "tol", "max_iter": "max_iter", "damping": "damping", "memory": "memory"}
    bwd_keys = {"backward_tol": "tol", "backward_max_iter": "max_iter", "backward_damping": "damping",
                "residual_history": "record_history"}
    out = []
    for value, keys, cls, name in ((forward, fwd_keys, ForwardOptions, "forward"),
                                   (backward, bwd_keys, BackwardOptions, "backward")):
        mine = {keys[k]: v for k, v in given.items() if k in keys}
        if isinstance(value, cls):
            if mine:
                raise ValueError(
                    f"{name} is a {cls.__name__}: set {sorted(k for k in given if k in keys)} inside it, not as "
                    "keywords as well"
                )
            out.append(value)
        elif isinstance(value, str):
            out.append(cls(value, **mine))
        else:
            raise ValueError(f"{name} must be a method name or a {cls.__name__}, got {value!r}")
    return out


class FixedPointModel(Model):
    """Any recurrent dynamics read out at its fixed point, trained by recurrent backprop.

    Parameters
    ----------
    dynamics : Dynamics
        The map ``x -> F(x; theta, u)`` and its products
        (:mod:`rbp.recurrent.dynamics`); ``n_in`` inputs, ``n_state`` units.
    n_out : int
        Outputs.
    output, loss : str
        Readout layer and loss, as for :class:`rbp.MLP`.
    readout : {"linear", "state"}
        ``"linear"``: outputs ``x* V + c`` (parameters ``V``, ``c``);
        ``"state"``: the last ``n_out`` units are the outputs (Pineda's
        original form; ``loss="squared"``, no readout parameters).
    forward : str or ForwardOptions
        How to relax (a registered forward method, see :class:`ForwardOptions`).
    backward : str or BackwardOptions
        How to propagate the error back: a registered linear solver for the
        adjoint system, or ``"bptt"`` (backprop through the stored Picard
        iterates; forward must be ``picard``).
    tol, max_iter, damping, memory : optional
        Shorthand for the :class:`ForwardOptions` fields when ``forward`` is a name.
    backward_tol, backward_max_iter, backward_damping, residual_history : optional
        Shorthand for the :class:`BackwardOptions` fields (``tol``,
        ``max_iter``, ``damping``, ``record_history``).
    contraction : float, optional
        Keep the dynamics a contraction with this constant (< 1) by calling
        ``dynamics.project`` after every update.
    on_failure : {"warn", "raise", "skip", "ignore"}
        What a missed forward or backward threshold does where it is
        reported (``loss_and_grad``, ``evaluate``/``score``/``predict``, a
        trainer's run): a :class:`rbp.ConvergenceWarning`, a
        :class:`rbp.NonConvergenceError`, skipping the update (trainers;
        a warning elsewhere), or nothing. Every miss is counted in the
        diagnostics either way.
    spectral : bool
        Also report the spectral radius and largest real eigenvalue of the
        Jacobian at the fixed point with every gradient.

    Notes
    -----
    Forward: relax ``x <- (1 - tau) x + tau F(x)`` (rows are samples) to
    ``x*``. With ``J = dF/dx`` at ``x*`` (``dF = dx J``) the error is
    propagated back by solving the adjoint system (Almeida 1987; Pineda 1987)

        ``z (I - J^T) = dL/dx*``

    then ``dL/dtheta = z dF/dtheta``. This is the implicit function theorem
    applied to ``x* = F(x*)``; it needs only ``x*``, not the path to it, so
    its memory does not grow with the number of relaxation steps. Pineda's
    result: the adjoint relaxation ``z <- dL/dx* + z J^T`` has the
    Jacobian's spectrum, so a stable fixed point has a convergent adjoint
    iteration. Invariant: the gradient is that of the loss at the relaxed
    state; it equals central differences when both thresholds are tight.

    References
    ----------
    L. B. Almeida (1987), A learning rule for asynchronous perceptrons with
    feedback in a combinatorial environment. F. J. Pineda (1987),
    Generalization of back-propagation to recurrent neural networks, Phys.
    Rev. Lett. 59. R. Liao et al. (2018), Reviving and improving recurrent
    back-propagation, ICML.

    Examples
    --------
    >>> import numpy as np
    >>> from rbp import check_grad
    >>> from rbp.recurrent.dynamics import FullyConnected
    >>> net = FixedPointModel(FullyConnected(3, 5), 2, loss="cross_entropy", tol=1e-12, backward="direct")
    >>> theta = net.init(np.random.default_rng(0))
    >>> X = np.random.default_rng(1).normal(size=(4, 3)); y = np.array([0, 1, 1, 0])
    >>> check_grad(net.loss_and_grad, theta, (X, y), rtol=1e-6).success
    True
    """

    def __init__(
        self,
        dynamics: Dynamics,
        n_out,
        *,
        output=None,
        loss="squared",
        readout: str = "linear",
        forward="anderson",
        backward="gmres",
        tol=_UNSET,
        max_iter=_UNSET,
        damping=_UNSET,
        memory=_UNSET,
        backward_tol=_UNSET,
        backward_max_iter=_UNSET,
        backward_damping=_UNSET,
        residual_history=_UNSET,
        contraction: float | None = None,
        on_failure: str = "warn",
        spectral: bool = False,
    ):
        if not isinstance(dynamics, Dynamics):
            raise ValueError(f"dynamics must be an rbp.recurrent.dynamics.Dynamics, got {type(dynamics).__name__}")
        self.dynamics = dynamics
        self.n_in, self.n_units, self.n_out = dynamics.n_in, dynamics.n_state, check_int(n_out, "n_out")
        self.readout = check_choice(readout, "readout", ("linear", "state"))
        self.pineda = self.readout == "state"
        if self.pineda:
            if loss != "squared" or output not in (None, "identity"):
                raise ValueError(
                    f"pineda=True reads the outputs off the recurrent units, so it needs loss='squared' "
                    f"and output=None, got loss={loss!r}, output={output!r}"
                )
            if self.n_out > self.n_units:
                raise ValueError(f"pineda=True needs n_out <= n_units, got n_out={n_out}, n_units={self.n_units}")
        self.loss, self.output = resolve_output(loss, output, self.n_out)
        self.forward_options, self.backward_options = _options(forward, backward, dict(
            tol=tol, max_iter=max_iter, damping=damping, memory=memory, backward_tol=backward_tol,
            backward_max_iter=backward_max_iter, backward_damping=backward_damping,
            residual_history=residual_history))
        if self.backward == BACKPROP_THROUGH_RELAXATION and self.forward != "picard":
            raise ValueError(
                f"backward='bptt' differentiates the Picard iterates, so it needs forward='picard', got {self.forward!r}"
            )
        self.on_failure = check_choice(on_failure, "on_failure", POLICIES)
        if contraction is not None:
            contraction = check_real(contraction, "contraction", high=1.0, high_inclusive=False)
            if dynamics.project is None:
                raise ValueError(f"contraction needs dynamics with a project() method; {dynamics!r} has none")
        self.contraction = contraction
        self.spectral = check_bool(spectral, "spectral")
        self.dtype = np.float64
        shapes = dict(dynamics.shapes())
        decay = list(dynamics.decay if dynamics.decay is not None else
                     [k for k in shapes if k[:1] in ("W", "U")])
        if not self.pineda:
            for name in ("V", "c"):
                if name in shapes:
                    raise ValueError(f"the dynamics' parameter {name!r} collides with the readout's (V, c)")
            shapes.update(V=(self.n_units, self.n_out), c=(self.n_out,))
            decay.append("V")
        self.params = ParamSpec(shapes, decay=decay)

    # the option objects' fields, read-only, under the flat names
    forward = property(lambda self: self.forward_options.method)
    backward = property(lambda self: self.backward_options.method)
    tol = property(lambda self: self.forward_options.tol)
    max_iter = property(lambda self: self.forward_options.max_iter)
    damping = property(lambda self: self.forward_options.damping)
    memory = property(lambda self: self.forward_options.memory)
    backward_tol = property(lambda self: self.backward_options.tol)
    backward_max_iter = property(lambda self: self.backward_options.max_iter)
    backward_damping = property(lambda self: self.backward_options.damping)
    residual_history = property(lambda self: self.backward_options.record_history)

    def __repr__(self):
        return (
            f"FixedPointModel({self.dynamics!r}, {self.n_out}, loss={self.loss.name!r}, forward={self.forward!r}, "
            f"backward={self.backward!r}" + (", readout='state'" if self.pineda else "") + ")"
        )

    # -- the contract ---------------------------------------------------------------

    def blas_work(self, batch: int) -> float:
        """Multiply-adds of one application of the dynamics to ``batch`` states (about ``batch n^2``)."""
        return float(batch) * float(self.n_units) * float(max(self.n_units, self.n_in))

    def init(self, rng) -> np.ndarray:
        """The dynamics' initial parameters, then a Glorot-uniform readout ``V`` and zero ``c``.

        Parameters
        ----------
        rng : numpy.random.Generator or int

        Returns
        -------
        theta : ndarray, shape (n_params,)
        """
        rng = as_generator(rng)
        theta = np.zeros(self.params.size)
        p = self.params.unravel(theta)
        self.dynamics.init(rng, p)
        if not self.pineda:
            p["V"][...] = glorot_uniform(rng, self.n_units, self.n_out)
        return theta

    def relax(self, theta, X, *, store_iterates=False):
        """Run the forward dynamics to the fixed point.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
        X : ndarray, shape (n_samples, n_in)

        Returns
        -------
        Result
            From :func:`rbp.core.fixedpoint.relax`; ``x`` is (n_samples, n_units).
        """
        p = self.params.unravel(theta)
        return self._relax(p, self.dynamics.drive(p, X), X.shape[0], store_iterates)

    def _relax(self, p, d, B, store_iterates=False):
        dyn = self.dynamics

        def F(x, rows):  # rows is sorted: all B of them means every sample, in order
            return dyn.F(p, x, d if len(rows) == B else take_rows(d, rows))

        opts = self.forward_options
        extra = {"store_iterates": True} if store_iterates else {}
        return relax(F, np.zeros((B, self.n_units)), method=opts.method, tol=opts.tol, max_iter=opts.max_iter,
                     **opts.relax_options(), **extra)

    def _readout(self, p, x):
        if self.pineda:
            return x[:, -self.n_out :]
        a = x @ p["V"]
        a += p["c"]
        return a

    def loss_grad_info(self, theta, X, Y, check: bool = True):
        """Mean loss, its recurrent-backprop gradient, and solver diagnostics.

        The steps: relax to ``x*``; the loss and ``dL/dx*`` at the readout;
        the adjoint solve; the parameter products; the diagnostics. Solver
        failures are listed in ``info["failures"]``, never warned here: the
        caller's edge (:meth:`loss_and_grad`, a trainer) applies
        ``on_failure`` once.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
        X : ndarray, shape (n_samples, n_in)
        Y : ndarray, shape (n_samples,) or (n_samples, n_out)
        check : bool
            Validate/encode ``X, Y`` (False for data from :meth:`prepare`).

        Returns
        -------
        loss : float
        grad : ndarray, shape (n_params,)
        info : dict
            ``forward_iterations`` (mean over samples), ``forward_iterations_max``,
            ``n_forward_failed`` (samples that missed ``tol``),
            ``forward_residual_max``, ``adjoint_iterations``, ``adjoint_matvecs``,
            ``adjoint_residual``, ``n_adjoint_failed``, optionally
            ``spectral_radius`` and ``max_real_eigenvalue``, ``failures``
            (messages saying what did not converge and what to change),
            ``skip`` (when the policy is ``"skip"`` and a solver failed), and
            the full solver results under ``forward`` and ``adjoint``
            (residual histories).
        """
        if check:
            theta = self.check_theta(theta)
            X, Y = self.prepare(X, Y)
        p = self.params.unravel(theta)
        dyn, B = self.dynamics, X.shape[0]
        d = dyn.drive(p, X)
        bptt = self.backward == BACKPROP_THROUGH_RELAXATION
        fwd = self._relax(p, d, B, store_iterates=bptt)
        x = fwd.x
        grad = np.zeros_like(theta)
        g = self.params.unravel(grad)
        loss, gx = self._loss_at_readout(p, x, Y, g)
        if bptt:
            adj, z_d = self._backprop_iterates(p, d, fwd, gx, g)
            lin = None
        else:
            lin = dyn.linearize(p, x, d)
            adj = self._adjoint_solve(p, x, d, lin, gx)
            z_d = dyn.vjp_params(p, x, d, adj.x, lin, g)
        dyn.vjp_drive(p, X, z_d, g)
        return loss / B, grad, self._diagnostics(p, x, d, lin, fwd, adj)

    def _loss_at_readout(self, p, x, Y, g):
        """The summed loss and ``dL/dx*`` (mean-scaled), with the readout's gradient in ``g``."""
        B = x.shape[0]
        loss, delta = output_loss(self.loss, "identity" if self.pineda else self.output, self._readout(p, x), Y)
        delta *= 1.0 / B
        if self.pineda:
            gx = np.zeros_like(x)
            gx[:, -self.n_out :] = delta
            return loss, gx
        np.matmul(x.T, delta, out=g["V"])
        np.sum(delta, axis=0, out=g["c"])
        return loss, delta @ p["V"].T

    def adjoint_operator(self, p, x, d, lin) -> BatchedOperator:
        """``A = I - J`` at the fixed point as a batched operator: ``A z = z - z J^T`` row by row."""
        dyn, (B, n) = self.dynamics, x.shape
        rmatvec = None if dyn.jvp_state is None else (lambda Z: Z - dyn.jvp_state(p, x, d, Z, lin))
        eye = np.eye(n)

        def dense():
            return eye - dyn.jacobian(p, x, d, lin)

        def dense_sample(i):
            rows = slice(i, i + 1)
            return eye - dyn.jacobian(p, x[rows], take_rows(d, rows), take_rows(lin, rows))[0]

        has_jacobian = dyn.jacobian is not None
        return BatchedOperator(lambda Z: Z - dyn.vjp_state(p, x, d, Z, lin), (B, n), rmatvec=rmatvec,
                               dense=dense if has_jacobian else None,
                               dense_sample=dense_sample if has_jacobian else None)

    def _adjoint_solve(self, p, x, d, lin, gx) -> Result:
        opts = self.backward_options
        if opts.method == "cg-normal" and self.dynamics.jvp_state is None:
            raise ValueError(f"backward='cg-normal' needs the dynamics' jvp_state; {self.dynamics!r} has none")
        return solve(self.adjoint_operator(p, x, d, lin), gx, method=opts.method, rtol=opts.tol,
                     maxiter=opts.max_iter, **opts.solve_options())

    def _backprop_iterates(self, p, d, fwd, gx, g):
        """Backprop through the stored Picard iterates (the BPTT reference).

        With ``x_{k+1} = x_k + tau (F(x_k) - x_k)`` for the samples still
        running at step ``k``: ``xbar_k = (1 - tau) xbar_{k+1} + tau xbar_{k+1} J_k^T``
        and the parameters collect ``tau xbar_{k+1} dF/dtheta`` at ``x_k``;
        memory grows with the number of iterations. With ``tau = 1``,
        ``F(x_k)`` is the next iterate, which the dynamics may reuse.

        Returns
        -------
        (Result, z_d)
            The reported result (``nit`` = steps backpropagated) and the
            gradient with respect to the drive, summed over the steps.
        """
        dyn, tau = self.dynamics, self.damping
        steps = len(fwd.iterates)
        xbar = gx.copy()
        z_d = np.zeros_like(gx) if steps == 0 else None
        nexts = list(fwd.iterates[1:]) + [fwd.x]
        for k in range(steps - 1, -1, -1):
            frozen = ~fwd.active[k]
            xk = fwd.iterates[k]
            lin = dyn.linearize(p, xk, d, fx=nexts[k] if tau == 1.0 else None)
            z = xbar if tau == 1.0 else xbar * tau
            if frozen.any():
                z = z.copy()
                z[frozen] = 0.0
            new, dk = dyn.vjp(p, xk, d, z, lin, g)
            z_d = dk if z_d is None else z_d + dk
            if tau != 1.0:
                new += (1.0 - tau) * xbar
            if frozen.any():
                new[frozen] = xbar[frozen]
            xbar = new
        adj = Result(x=xbar, success=True, status=Status.SUCCESS, message="backprop through the relaxation",
                     nit=steps, n_matvec=steps, residual=0.0, residuals=[], method="bptt")
        return adj, z_d

    def _diagnostics(self, p, x, d, lin, fwd, adj) -> dict:
        info = {
            "forward_iterations": float(fwd.nit_per_sample.mean()),
            "forward_iterations_max": float(fwd.nit),
            "n_forward_failed": int((~fwd.converged).sum()),
            "forward_residual_max": float(fwd.residual.max()),
            "adjoint_iterations": float(adj.nit),
            "adjoint_matvecs": float(adj.n_matvec),
            "adjoint_residual": float(adj.residual),
            "n_adjoint_failed": int(not adj.success),
            "forward": fwd,
            "adjoint": adj,
        }
        if self.spectral:
            if lin is None:
                lin = self.dynamics.linearize(p, x, d)
            info["spectral_radius"], info["max_real_eigenvalue"] = self._spectrum(p, x, d, lin)
        failures = self._failure_messages(fwd, adj)
        info["failures"] = failures
        if failures and self.on_failure == "skip":
            info["skip"] = True
        return info

    def _failure_messages(self, fwd, adj) -> list:
        """One sentence per failed solve: what did not converge, and which options change it."""
        out = []
        can_project = self.dynamics.project is not None
        if not fwd.success:
            bad = int((~fwd.converged).sum())
            what = ("diverged" if fwd.status == Status.DIVERGED
                    else f"stopped at max_iter={self.max_iter} with residual up to {float(np.max(fwd.residual)):.3g} "
                         f"> tol={self.tol:g}")
            out.append(
                f"forward relaxation ({self.forward}) did not converge for {bad} of {fwd.converged.size} samples: "
                f"it {what}; " + self.forward_options.advice(fwd.status, contraction=self.contraction,
                                                               can_project=can_project) + "."
            )
        if not adj.success:
            opts = self.backward_options
            what = {Status.DIVERGED: "diverged", Status.BREAKDOWN: "broke down (the system is singular)"}.get(
                adj.status, f"stopped after {adj.nit} iterations with relative residual {adj.residual:.3g} "
                            f"> backward_tol={opts.tol:g}")
            out.append(f"adjoint solve ({opts.method}) did not converge: it {what}; {opts.advice(adj.status)}.")
        return out

    def _spectrum(self, p, x, d, lin):
        """Spectral radius and max real eigenvalue of the Jacobian at the fixed point: exact
        (``eigvals``) for up to 128 units on up to 8 samples, ARPACK on the first sample above that."""
        dyn, n = self.dynamics, self.n_units
        if n <= 128 and dyn.jacobian is not None:
            rows = slice(0, 8)
            return spectrum(dyn.jacobian(p, x[rows], take_rows(d, rows), take_rows(lin, rows)))
        x0, d0, lin0 = x[:1], take_rows(d, slice(0, 1)), take_rows(lin, slice(0, 1))
        return spectrum(matvec=lambda v: dyn.vjp_state(p, x0, d0, v[None], lin0)[0], n=n)

    def jacobian_spectrum(self, theta, X):
        """Spectral radius and max real eigenvalue of ``dF/dx`` at the fixed point of ``X``'s first samples."""
        p = self.params.unravel(self.check_theta(theta))
        X = check_array(X, "X", ndim=2, last=self.n_in)
        d = self.dynamics.drive(p, X)
        x = self._relax(p, d, X.shape[0]).x
        return self._spectrum(p, x, d, self.dynamics.linearize(p, x, d))

    def project(self, theta):
        """Keep the dynamics a contraction (in place), when ``contraction`` is set."""
        if self.contraction is None:
            return
        self.dynamics.project(self.params.unravel(theta), self.contraction)

    def _forward_loss(self, theta, X, T):
        p = self.params.unravel(theta)
        fwd = self._relax(p, self.dynamics.drive(p, X), X.shape[0])
        a_out = self._readout(p, fwd.x)
        out = "identity" if self.pineda else self.output
        loss, _ = output_loss(self.loss, out, a_out, T)
        n_bad = int((~fwd.converged).sum())
        info = {"n_unconverged": n_bad, "failures": self._failure_messages(fwd, Result(success=True))}
        if n_bad:
            info["failures"] = [f"evaluation on {X.shape[0]} samples: " + info["failures"][0]
                                + f" The outputs of those {n_bad} samples are read off unconverged states."]
        return output_transform(out, a_out), loss / X.shape[0], info

    def predict(self, theta, X) -> np.ndarray:
        """Outputs read out at the fixed point (``on_failure`` applies to samples that did not converge).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
        X : array_like, shape (n_samples, n_in)

        Returns
        -------
        Yhat : ndarray, shape (n_samples, n_out)
        """
        theta = self.check_theta(theta)
        X = check_array(X, "X", ndim=2, last=self.n_in)
        if X.shape[0] == 0:
            raise ValueError("X must contain at least one sample, got 0 rows")
        scores, _, info = self._forward_loss(theta, X, np.zeros((X.shape[0], self.n_out)))
        self._report(info, None)
        return scores


class FixedPointNet(FixedPointModel):
    """A fully connected recurrent net read out at the fixed point of its dynamics.

    Parameters
    ----------
    n_in, n_units, n_out : int
        Input features, recurrent units, outputs.
    activation : str
        Unit nonlinearity ``f`` (``tanh, logistic, softplus, relu, identity``).
    output, loss : str
        Readout layer and loss, as for :class:`rbp.MLP`.
    pineda : bool
        Pineda's original form: no separate readout; the last ``n_out``
        recurrent units are the outputs and the loss (``squared``) is taken on
        their states.
    forward : str or ForwardOptions
        Relaxation method (:func:`rbp.core.fixedpoint.relax`): ``picard``,
        ``anderson``, ``ode``, a ``scipy.optimize.root`` method or a
        registered one.
    backward : str or BackwardOptions
        How the error is propagated back: ``direct, gmres, lgmres, bicgstab,
        cg-normal, neumann, relax`` (or a registered solver) solve the
        adjoint system through :func:`rbp.core.linsolve.solve`; ``bptt``
        backpropagates through the stored relaxation iterates (forward must
        be ``picard``).
    tol, max_iter, damping, memory : float, int, float, int
        Forward threshold (per-sample relative residual, default 1e-6),
        iteration cap (500), Picard damping ``tau`` (1) and Anderson memory (5).
    backward_tol, backward_max_iter, backward_damping : float, int, float
        The adjoint solve's relative tolerance (1e-6), cap and (``relax``)
        step. ``backward="neumann", backward_tol=0, backward_max_iter=K`` is
        Neumann-RBP truncated at exactly K terms (Liao et al. 2018).
    contraction : float, optional
        Keep ``||W||_2 * Lip(f) <= contraction`` (< 1) by rescaling ``W``
        after every update (:meth:`project`), which guarantees a unique,
        globally attracting fixed point.
    on_failure : {"warn", "raise", "skip", "ignore"}
        See :class:`FixedPointModel`.
    spectral : bool
        Also report the spectral radius and largest real eigenvalue of the
        Jacobian at the fixed point with every gradient.
    residual_history : bool
        Record the adjoint residual after every iteration for ``lgmres``,
        ``bicgstab`` and ``cg-normal`` too.
    init_scale : float
        Initial ``||W||_2 * Lip(f)`` (approximately).

    Attributes
    ----------
    params : ParamSpec
        ``W (n_units, n_units)``, ``U (n_in, n_units)``, ``b (n_units,)`` and,
        unless ``pineda``, ``V (n_units, n_out)``, ``c (n_out,)``.

    Notes
    -----
    The dynamics are :class:`~rbp.recurrent.dynamics.FullyConnected`:
    relax ``x <- (1 - tau) x + tau f(x W + u U + b)`` to ``x*``. With
    ``a* = x* W + u U + b`` and ``D = diag(f'(a*))`` the adjoint system is

        ``z (I - D W^T) = dL/dx*``

    then ``delta = z * f'(a*)``, ``dL/dW = x*^T delta``, ``dL/dU = u^T delta``,
    ``dL/db = sum delta`` (see :class:`FixedPointModel`).

    Examples
    --------
    >>> import numpy as np
    >>> from rbp import FixedPointNet, check_grad
    >>> net = FixedPointNet(3, 5, 2, loss="cross_entropy", tol=1e-12, backward="direct")
    >>> theta = net.init(np.random.default_rng(0))
    >>> X = np.random.default_rng(1).normal(size=(4, 3)); y = np.array([0, 1, 1, 0])
    >>> loss, grad = net.loss_and_grad(theta, X, y)
    >>> check_grad(net.loss_and_grad, theta, (X, y), rtol=1e-6).success
    True
    """

    def __init__(self, n_in, n_units, n_out, activation="tanh", output=None, loss="squared", *, pineda: bool = False,
                 init_scale: float = 0.5, **options):
        pineda = check_bool(pineda, "pineda")
        if isinstance(init_scale, bool) or not isinstance(init_scale, (int, float)) or not np.isfinite(init_scale) \
                or init_scale <= 0:
            raise ValueError(f"init_scale must be a positive finite float, got {init_scale!r}")
        n_out = check_int(n_out, "n_out")
        dynamics = FullyConnected(n_in, n_units, activation, init_scale=init_scale)
        super().__init__(dynamics, n_out, output=output, loss=loss, readout="state" if pineda else "linear",
                         **options)
        self.activation = dynamics.activation

    def __repr__(self):
        return (
            f"FixedPointNet({self.n_in}, {self.n_units}, {self.n_out}, activation={self.activation.name!r}, "
            f"loss={self.loss.name!r}, forward={self.forward!r}, backward={self.backward!r}"
            + (", pineda=True" if self.pineda else "") + ")"
        )
