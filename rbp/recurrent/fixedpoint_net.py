"""The recurrent network trained by recurrent backpropagation (Almeida-Pineda)."""

from __future__ import annotations

import numbers

import numpy as np

from ..core.activations import get_activation, unknown_name_message
from ..core.fixedpoint import METHODS as FORWARD_METHODS
from ..core.fixedpoint import relax, spectrum
from ..core.linsolve import METHODS as LINEAR_METHODS
from ..core.linsolve import BatchedOperator, solve
from ..core.losses import output_loss, output_transform, resolve_output
from ..core.model import Model, check_array, check_int
from ..core.params import ParamSpec, as_generator, glorot_uniform
from ..core.results import Status, warn_or_raise

__all__ = ["FixedPointNet", "BACKWARD_METHODS"]

#: Ways to propagate the error backward: the linear solvers of the core, plus
#: backprop through the stored relaxation iterates (the reference).
BACKWARD_METHODS = LINEAR_METHODS + ("bptt",)
POLICIES = ("warn", "raise", "skip", "ignore")


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class FixedPointNet(Model):
    """A recurrent net read out at the fixed point of its dynamics.

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
    forward : str
        Relaxation method (:func:`rbp.core.fixedpoint.relax`): ``picard``,
        ``anderson``, ``ode`` or a ``scipy.optimize.root`` method.
    backward : str
        How the error is propagated back: ``direct, gmres, lgmres, bicgstab,
        cg-normal, neumann, relax`` solve the adjoint system through
        :func:`rbp.core.linsolve.solve`; ``bptt`` backpropagates through the
        stored relaxation iterates (forward must be ``picard``).
    tol, max_iter, damping, memory : float, int, float, int
        Forward threshold (per-sample relative residual), iteration cap,
        Picard damping ``tau`` and Anderson memory.
    backward_tol, backward_max_iter, backward_damping : float, int, float
        The adjoint solve's relative tolerance, cap and (``relax``) step.
        ``backward="neumann", backward_tol=0, backward_max_iter=K`` is
        Neumann-RBP truncated at exactly K terms (Liao et al. 2018).
    contraction : float, optional
        Keep ``||W||_2 * Lip(f) <= contraction`` (< 1) by rescaling ``W``
        after every update (:meth:`project`), which guarantees a unique,
        globally attracting fixed point.
    on_failure : {"warn", "raise", "skip", "ignore"}
        What a missed forward or backward threshold does: a
        :class:`rbp.ConvergenceWarning` (default), a
        :class:`rbp.NonConvergenceError`, skipping the update (the trainer
        counts it), or nothing. Every miss is counted in the diagnostics.
    spectral : bool
        Also report the spectral radius and largest real eigenvalue of the
        Jacobian at the fixed point with every gradient.
    residual_history : bool
        Record the adjoint residual after every iteration for ``lgmres``,
        ``bicgstab`` and ``cg-normal`` too (one extra operator application
        each; the other methods record it for free).
    init_scale : float
        Initial ``||W||_2 * Lip(f)`` (approximately).

    Attributes
    ----------
    params : ParamSpec
        ``W (n_units, n_units)``, ``U (n_in, n_units)``, ``b (n_units,)`` and,
        unless ``pineda``, ``V (n_units, n_out)``, ``c (n_out,)``.

    Notes
    -----
    Forward: relax ``x <- (1 - tau) x + tau f(x W + u U + b)`` (rows are
    samples) to ``x*``. With ``a* = x* W + u U + b`` and ``D = diag(f'(a*))``
    the error is propagated back by solving the adjoint system (Almeida 1987;
    Pineda 1987)

        ``z (I - D W^T) = dL/dx*``

    then ``delta = z * f'(a*)``, ``dL/dW = x*^T delta``, ``dL/dU = u^T delta``,
    ``dL/db = sum delta``. This is the implicit function theorem applied to
    ``x* = F(x*)``; it needs only ``x*``, not the path to it, so its memory
    does not grow with the number of relaxation steps. Pineda's result: the
    adjoint relaxation ``z <- dL/dx* + (z * f') W^T`` has the Jacobian's
    spectrum, so a stable fixed point has a convergent adjoint iteration.
    Invariant: the gradient is that of the loss at the relaxed state; it
    equals central differences when both thresholds are tight.

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
    >>> from rbp import FixedPointNet, check_grad
    >>> net = FixedPointNet(3, 5, 2, loss="cross_entropy", tol=1e-12, backward="direct")
    >>> theta = net.init(np.random.default_rng(0))
    >>> X = np.random.default_rng(1).normal(size=(4, 3)); y = np.array([0, 1, 1, 0])
    >>> loss, grad = net.loss_and_grad(theta, X, y)
    >>> check_grad(net.loss_and_grad, theta, (X, y), rtol=1e-6).success
    True
    """

    def __init__(
        self,
        n_in,
        n_units,
        n_out,
        activation="tanh",
        output=None,
        loss="squared",
        *,
        pineda: bool = False,
        forward: str = "anderson",
        backward: str = "gmres",
        tol: float = 1e-6,
        max_iter: int = 500,
        damping: float = 1.0,
        memory: int = 5,
        backward_tol: float = 1e-6,
        backward_max_iter: int | None = None,
        backward_damping: float = 1.0,
        contraction: float | None = None,
        on_failure: str = "warn",
        spectral: bool = False,
        residual_history: bool = False,
        init_scale: float = 0.5,
    ):
        self.n_in = check_int(n_in, "n_in")
        self.n_units = check_int(n_units, "n_units")
        self.n_out = check_int(n_out, "n_out")
        self.activation = get_activation(activation)
        self.pineda = bool(pineda)
        if self.pineda:
            if loss != "squared" or output not in (None, "identity"):
                raise ValueError(
                    f"pineda=True reads the outputs off the recurrent units, so it needs loss='squared' "
                    f"and output=None, got loss={loss!r}, output={output!r}"
                )
            if self.n_out > self.n_units:
                raise ValueError(f"pineda=True needs n_out <= n_units, got n_out={n_out}, n_units={n_units}")
        self.loss, self.output = resolve_output(loss, output, self.n_out)
        if forward not in FORWARD_METHODS:
            raise ValueError(unknown_name_message("forward", forward, FORWARD_METHODS))
        if backward not in BACKWARD_METHODS:
            raise ValueError(unknown_name_message("backward", backward, BACKWARD_METHODS))
        if backward == "bptt" and forward != "picard":
            raise ValueError(f"backward='bptt' differentiates the Picard iterates, so it needs forward='picard', got {forward!r}")
        if on_failure not in POLICIES:
            raise ValueError(unknown_name_message("on_failure", on_failure, POLICIES))
        if not (_real(tol) and np.isfinite(tol) and tol > 0):
            raise ValueError(f"tol must be a positive finite float, got {tol!r}")
        fixed_terms = backward in ("neumann", "relax") and backward_max_iter is not None
        if not (_real(backward_tol) and np.isfinite(backward_tol) and (backward_tol > 0 or (backward_tol == 0 and fixed_terms))):
            raise ValueError(
                f"backward_tol must be a positive float (or 0 with backward='neumann'/'relax' and "
                f"backward_max_iter=K for exactly K terms), got {backward_tol!r} with backward={backward!r}"
            )
        if not (_real(damping) and 0 < damping <= 1):
            raise ValueError(f"damping must be in (0, 1], got {damping!r}")
        if not (_real(backward_damping) and 0 < backward_damping <= 1):
            raise ValueError(f"backward_damping must be in (0, 1], got {backward_damping!r}")
        if contraction is not None and not (_real(contraction) and 0 < contraction < 1):
            raise ValueError(f"contraction must be in (0, 1) or None, got {contraction!r}")
        self.forward, self.backward = forward, backward
        self.tol, self.max_iter, self.damping = float(tol), check_int(max_iter, "max_iter"), damping
        self.memory = check_int(memory, "memory")
        self.backward_tol, self.backward_damping = float(backward_tol), backward_damping
        self.backward_max_iter = None if backward_max_iter is None else check_int(backward_max_iter, "backward_max_iter")
        self.contraction, self.on_failure, self.spectral = contraction, on_failure, spectral
        self.residual_history = bool(residual_history)
        if not (_real(init_scale) and np.isfinite(init_scale) and init_scale > 0):
            raise ValueError(f"init_scale must be a positive finite float, got {init_scale!r}")
        self.init_scale = float(init_scale)
        self.dtype = np.float64
        n = self.n_units
        shapes = {"W": (n, n), "U": (self.n_in, n), "b": (n,)}
        if not self.pineda:
            shapes.update(V=(n, self.n_out), c=(self.n_out,))
        self.params = ParamSpec(shapes, decay=("W", "U") if self.pineda else ("W", "U", "V"))

    def __repr__(self):
        return (
            f"FixedPointNet({self.n_in}, {self.n_units}, {self.n_out}, activation={self.activation.name!r}, "
            f"loss={self.loss.name!r}, forward={self.forward!r}, backward={self.backward!r}"
            + (", pineda=True" if self.pineda else "") + ")"
        )

    # -- the contract ---------------------------------------------------------------

    def init(self, rng) -> np.ndarray:
        """Random parameters with ``||W||_2 * Lip(f)`` about ``init_scale``.

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
        n = self.n_units
        # A Gaussian n x n matrix with entries N(0, 1/n) has ||W||_2 close to 2.
        p["W"][...] = rng.normal(0.0, 1.0 / np.sqrt(n), (n, n)) * (self.init_scale / 2 / self.activation.lipschitz)
        p["U"][...] = glorot_uniform(rng, self.n_in, n)
        if not self.pineda:
            p["V"][...] = glorot_uniform(rng, n, self.n_out)
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
        W, f = p["W"], self.activation.f
        drive = X @ p["U"] + p["b"]

        def F(x, rows):
            a = x @ W
            a += drive[rows]
            return f(a)

        return relax(
            F, np.zeros((X.shape[0], self.n_units)), method=self.forward, tol=self.tol, max_iter=self.max_iter,
            damping=self.damping, memory=self.memory, store_iterates=store_iterates,
        )

    def _readout(self, p, x):
        if self.pineda:
            return x[:, -self.n_out :]
        a = x @ p["V"]
        a += p["c"]
        return a

    def loss_grad_info(self, theta, X, Y, check: bool = True):
        """Mean loss, its recurrent-backprop gradient, and solver diagnostics.

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
            ``spectral_radius`` and ``max_real_eigenvalue``, ``skip`` (when the
            policy is ``"skip"`` and a solver failed), and the full solver
            results under ``forward`` and ``adjoint`` (residual histories).
        """
        if check:
            theta = self.check_theta(theta)
            X, Y = self.prepare(X, Y)
        p = self.params.unravel(theta)
        W = p["W"]
        B, n = X.shape[0], self.n_units
        fwd = self.relax(theta, X, store_iterates=self.backward == "bptt")
        x = fwd.x
        drive = X @ p["U"] + p["b"]
        a = x @ W + drive
        fp = self.activation.df(a, self.activation.f(a))

        a_out = self._readout(p, x)
        loss, delta = output_loss(self.loss, "identity" if self.pineda else self.output, a_out, Y)
        delta *= 1.0 / B
        grad = np.zeros_like(theta)
        g = self.params.unravel(grad)
        if self.pineda:
            gx = np.zeros((B, n))
            gx[:, -self.n_out :] = delta
        else:
            np.matmul(x.T, delta, out=g["V"])
            np.sum(delta, axis=0, out=g["c"])
            gx = delta @ p["V"].T

        if self.backward == "bptt":
            adj = self._backprop_iterates(fwd, gx, W, drive, X, g)
        else:
            op = BatchedOperator(
                matvec=lambda Z: Z - (Z * fp) @ W.T,
                rmatvec=lambda Z: Z - (Z @ W) * fp,
                dense=lambda: np.eye(n) - W[None] * fp[:, None, :],
                dense_sample=lambda i: np.eye(n) - W * fp[i],
                shape=(B, n),
            )
            adj = solve(
                op, gx, method=self.backward, rtol=self.backward_tol, maxiter=self.backward_max_iter,
                damping=self.backward_damping, record_history=self.residual_history,
            )
            delta_h = adj.x * fp
            g["W"][...] = x.T @ delta_h
            g["U"][...] = X.T @ delta_h
            g["b"][...] = delta_h.sum(axis=0)

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
            info["spectral_radius"], info["max_real_eigenvalue"] = self.jacobian_spectrum(W, fp)
        failed = [r.message for r in (fwd, adj) if not r.success]
        if failed and self.on_failure != "ignore":
            if self.on_failure == "skip":
                info["skip"] = True
            else:
                warn_or_raise(" ".join(failed), self.on_failure)
        return loss / B, grad, info

    def _backprop_iterates(self, fwd, gx, W, drive, X, g):
        """Backprop through the stored Picard iterates (the BPTT reference).

        With ``x_{k+1} = x_k + tau (f(x_k W + c) - x_k)`` for the samples still
        running at step ``k``: ``delta_k = tau xbar_{k+1} * f'(a_k)``,
        ``xbar_k = (1 - tau) xbar_{k+1} + delta_k W^T``; memory grows with
        the number of iterations. With ``tau = 1`` and an activation whose
        derivative is a function of its output (tanh, logistic, identity),
        ``f(a_k)`` is read off the next iterate instead of recomputed.
        """
        tau, f, df = self.damping, self.activation.f, self.activation.df
        steps = len(fwd.iterates)
        B, n = gx.shape
        xbar = gx.copy()
        if steps == 0:
            g["W"][...], g["U"][...], g["b"][...] = 0.0, 0.0, 0.0
        else:
            gW, dsum = np.zeros_like(W), np.zeros_like(gx)
            nexts = list(fwd.iterates[1:]) + [fwd.x]
            from_output = tau == 1.0 and self.activation.name in ("tanh", "logistic", "identity")
            for k in range(steps - 1, -1, -1):
                act = fwd.active[k]
                if from_output:
                    y = nexts[k]
                    fpk = df(y, y)
                else:
                    a = fwd.iterates[k] @ W
                    a += drive
                    fpk = df(a, f(a))
                d = xbar * fpk
                if tau != 1.0:
                    d *= tau
                frozen = ~act
                if frozen.any():
                    d[frozen] = 0.0
                gW += fwd.iterates[k].T @ d
                dsum += d
                new = d @ W.T
                if tau != 1.0:
                    new += (1.0 - tau) * xbar
                if frozen.any():
                    new[frozen] = xbar[frozen]
                xbar = new
            g["W"][...] = gW
            g["U"][...] = X.T @ dsum
            g["b"][...] = dsum.sum(axis=0)
        from ..core.results import Result

        return Result(
            x=xbar, success=True, status=Status.SUCCESS, message="backprop through the relaxation",
            nit=steps, n_matvec=steps, residual=0.0, residuals=[], method="bptt",
        )

    def jacobian_spectrum(self, W, fp):
        """Spectral radius and max real eigenvalue of the Jacobian ``W diag(f')``
        at the fixed point: exact (``eigvals``) for up to 128 units on up to 8
        samples, ARPACK on the first sample above that."""
        if self.n_units <= 128:
            return spectrum(W[None] * fp[:8, None, :])
        f0 = fp[0]
        return spectrum(matvec=lambda v: W @ (f0 * v), n=self.n_units)

    def project(self, theta):
        """Rescale ``W`` in place so that ``||W||_2 * Lip(f) <= contraction``."""
        if self.contraction is None:
            return
        W = self.params.unravel(theta)["W"]
        if self.n_units <= 512:
            norm = np.linalg.norm(W, 2)
        else:
            from scipy.sparse.linalg import svds

            norm = float(svds(W, k=1, return_singular_vectors=False)[0])
        bound = self.contraction / self.activation.lipschitz
        if norm > bound:
            W *= bound / norm

    def _forward_loss(self, theta, X, T):
        p = self.params.unravel(theta)
        x = self.relax(theta, X).x
        a_out = self._readout(p, x)
        out = "identity" if self.pineda else self.output
        loss, _ = output_loss(self.loss, out, a_out, T)
        return output_transform(out, a_out), loss / X.shape[0]

    def predict(self, theta, X) -> np.ndarray:
        """Outputs read out at the fixed point.

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
        scores, _ = self._forward_loss(theta, X, np.zeros((X.shape[0], self.n_out)))
        return scores

