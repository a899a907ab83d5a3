"""Recurrent dynamics: the contract every fixed-point model is built on, and the fully connected case.

A recurrent model trained by recurrent backprop is *dynamics* + a readout.
The dynamics is one small class (numpy, no autodiff) that knows the map
``F`` and its derivatives; every forward relaxation method and every
backward (adjoint) method then works for it unchanged
(:class:`rbp.recurrent.fixedpoint_net.FixedPointModel`). Rows are samples;
states are row vectors, so a perturbation moves ``F`` by ``dF = dx J`` with
``J[i, j] = dF_j / dx_i``.

The contract (``p`` is the dict of parameter views, ``d`` the input drive)::

    shapes()                        -> {name: shape}             parameter shapes
    init(rng, p)                    fills p in place              initialiser
    drive(p, u)                     -> d                          input-dependent part, once per batch
    F(p, x, d)                      -> (B, n)                     the map
    linearize(p, x, d, fx=None)     -> lin                        what the products below reuse at x
    vjp_state(p, x, d, z, lin)      -> (B, n)   z J^T             the adjoint solve's operator
    vjp_params(p, x, d, z, lin, g)  -> z_d      adds z dF/dtheta to g; returns z dF/dd
    vjp_drive(p, u, z_d, g)         adds the drive's parameter gradient to g
    jvp_state(p, x, d, v, lin)      -> (B, n)   v J               optional (cg-normal)
    jacobian(p, x, d, lin)          -> (B, n, n) J                optional (direct builds it from products)
    project(p, contraction)         optional: keep the map a contraction
    lipschitz(p)                    optional: a bound on the Lipschitz constant of F

``d`` and ``lin`` are arrays indexed by sample on axis 0, dicts or tuples of
such arrays, or None, so that the relaxation can hand a method the running
samples only. :func:`check_dynamics` verifies a user's products against
central differences.
"""

from __future__ import annotations

import numpy as np

from ..core.activations import get_activation
from ..core.params import glorot_uniform
from ..core.results import Result
from ..core.validation import as_generator, check_int, check_real

__all__ = ["Dynamics", "FullyConnected", "take_rows", "check_dynamics"]


def take_rows(obj, rows):
    """Rows ``rows`` of a per-sample object: an array (axis 0), a dict or tuple of them, or None."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return {k: take_rows(v, rows) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(take_rows(v, rows) for v in obj)
    return obj[rows]


class Dynamics:
    """Base class of recurrent dynamics ``x = F(x; theta, u)`` (see the module docstring).

    Subclasses set ``n_in`` and ``n_state`` and implement :meth:`shapes`,
    :meth:`init`, :meth:`F`, :meth:`vjp_state` and :meth:`vjp_params`; the
    others have defaults (the drive is the input itself, nothing to cache,
    no JVP, no dense Jacobian, no projection).
    """

    n_in: int
    n_state: int
    #: Parameter names L2 weight decay applies to (default: names starting with W or U).
    decay: tuple | None = None

    def shapes(self) -> dict:
        raise NotImplementedError

    def init(self, rng, p) -> None:
        raise NotImplementedError

    def drive(self, p, u):
        """The part of ``F`` that depends on the input only, computed once per batch (default ``u``)."""
        return u

    def F(self, p, x, d):
        raise NotImplementedError

    def linearize(self, p, x, d, fx=None):
        """Values the products reuse at ``x`` (e.g. ``f'(a)``); ``fx = F(x)`` when the caller knows it."""
        return None

    def vjp_state(self, p, x, d, z, lin):
        raise NotImplementedError

    def vjp_params(self, p, x, d, z, lin, g):
        raise NotImplementedError

    def vjp(self, p, x, d, z, lin, g):
        """Both products at once: ``(z J^T, z dF/dd)``, adding ``z dF/dtheta`` to ``g``.

        Backprop through the relaxation calls this at every step; override it
        when the two products share work.
        """
        z_d = self.vjp_params(p, x, d, z, lin, g)
        return self.vjp_state(p, x, d, z, lin), z_d

    def vjp_drive(self, p, u, z_d, g) -> None:
        """Add the drive's parameter gradient (default: the drive is ``u``, no parameters)."""

    jvp_state = None
    jacobian = None
    project = None
    lipschitz = None

    def __repr__(self):
        return f"{type(self).__name__}(n_in={self.n_in}, n_state={self.n_state})"


class FullyConnected(Dynamics):
    """``F(x) = f(x W + u U + b)``: one fully connected recurrent layer (Almeida 1987; Pineda 1987).

    Parameters
    ----------
    n_in, n_units : int
    activation : str
        The unit nonlinearity ``f``.
    init_scale : float
        Initial ``||W||_2 * Lip(f)``, approximately.

    Attributes
    ----------
    Parameters ``W (n_units, n_units)``, ``U (n_in, n_units)``, ``b (n_units,)``.

    Notes
    -----
    With ``a = x W + u U + b`` and ``D = diag(f'(a))`` the Jacobian is
    ``J = W D``: ``z J^T = (z * f') W^T``, ``v J = (v W) * f'``, and with
    ``delta = z * f'`` the parameter products are ``x^T delta`` (W),
    ``u^T delta`` (U) and ``sum delta`` (b).

    Examples
    --------
    >>> import numpy as np
    >>> dyn = FullyConnected(3, 4)
    >>> report = check_dynamics(dyn, rng=0)
    >>> report.success
    True
    """

    def __init__(self, n_in, n_units, activation="tanh", *, init_scale: float = 0.5):
        self.n_in = check_int(n_in, "n_in")
        self.n_state = check_int(n_units, "n_units")
        self.activation = get_activation(activation)
        self.init_scale = check_real(init_scale, "init_scale")
        self.decay = ("W", "U")

    def shapes(self):
        n = self.n_state
        return {"W": (n, n), "U": (self.n_in, n), "b": (n,)}

    def init(self, rng, p):
        n = self.n_state
        # A Gaussian n x n matrix with entries N(0, 1/n) has ||W||_2 close to 2.
        p["W"][...] = rng.normal(0.0, 1.0 / np.sqrt(n), (n, n)) * (self.init_scale / 2 / self.activation.lipschitz)
        p["U"][...] = glorot_uniform(rng, self.n_in, n)

    def drive(self, p, u):
        return u @ p["U"] + p["b"]

    def F(self, p, x, d):
        a = x @ p["W"]
        a += d
        return self.activation.f(a)

    def linearize(self, p, x, d, fx=None):
        """``f'(a)``, read off ``F(x)`` when the activation's derivative is a function of its output."""
        act = self.activation
        if fx is not None and act.name in ("tanh", "logistic", "identity"):
            return act.df(fx, fx)
        a = x @ p["W"] + d
        return act.df(a, act.f(a))

    def vjp_state(self, p, x, d, z, fp):
        return (z * fp) @ p["W"].T

    def jvp_state(self, p, x, d, v, fp):
        return (v @ p["W"]) * fp

    def jacobian(self, p, x, d, fp):
        return p["W"][None] * fp[:, None, :]

    def vjp_params(self, p, x, d, z, fp, g):
        delta = z * fp
        g["W"] += x.T @ delta
        return delta

    def vjp(self, p, x, d, z, fp, g):
        delta = z * fp
        g["W"] += x.T @ delta
        return delta @ p["W"].T, delta

    def vjp_drive(self, p, u, z_d, g):
        g["U"] += u.T @ z_d
        g["b"] += z_d.sum(axis=0)

    def lipschitz(self, p):
        """``||W||_2 Lip(f)``: below 1 the map is a contraction."""
        return _spectral_norm(p["W"]) * self.activation.lipschitz

    def project(self, p, contraction: float) -> None:
        """Rescale ``W`` in place so that ``||W||_2 Lip(f) <= contraction``.

        Idempotent by construction: a matrix within a relative 1e-12 of the
        bound (as a rescaled one always is, whatever the SVD's rounding) is
        left alone.
        """
        W = p["W"]
        norm = _spectral_norm(W)
        bound = contraction / self.activation.lipschitz
        if norm > bound * (1.0 + 1e-12):
            W *= bound / norm

    def __repr__(self):
        return f"FullyConnected({self.n_in}, {self.n_state}, activation={self.activation.name!r})"


def _spectral_norm(W) -> float:
    if W.shape[0] <= 512:
        return float(np.linalg.norm(W, 2))
    from scipy.sparse.linalg import svds

    return float(svds(W, k=1, return_singular_vectors=False)[0])


def check_dynamics(dynamics: Dynamics, *, rng=0, batch: int = 3, eps: float = 1e-6, rtol: float = 1e-6,
                   theta=None, u=None, x=None) -> Result:
    """Check a dynamics' hand-written products against central differences of ``F``.

    A wrong Jacobian is the common mistake in a hand-written dynamics, and
    nothing else catches it: the relaxation still converges, training still
    runs, only the gradient is wrong. This compares, at random parameters,
    inputs and states (or the given ones), in random directions:

    * ``vjp_state``: ``<z, J v>`` against ``<z, (F(x + eps v) - F(x - eps v)) / 2 eps>``;
    * ``jvp_state`` and ``jacobian`` (when given) against the same differences;
    * ``vjp_params`` + ``vjp_drive``: ``<g, w>`` against the difference of
      ``<z, F>`` along a random parameter direction ``w``.

    Parameters
    ----------
    dynamics : Dynamics
    rng : numpy.random.Generator or int
    batch : int
        Samples to check at once.
    eps : float
        Central-difference step.
    rtol : float
        Largest accepted relative error per product.
    theta, u, x : ndarray, optional
        Parameters (flat, in ``shapes()`` order), inputs (batch, n_in) and
        states (batch, n_state) to check at; random by default.

    Returns
    -------
    Result
        ``success``, ``errors`` (dict product -> relative error), ``message``
        (one line per product, analytic beside numeric for a failure).

    Examples
    --------
    >>> import numpy as np
    >>> class Wrong(FullyConnected):
    ...     def vjp_state(self, p, x, d, z, fp):
    ...         return (z * fp) @ p["W"]          # forgot the transpose
    >>> check_dynamics(Wrong(2, 3), rng=0).success
    False
    """
    from ..core.params import ParamSpec

    gen = as_generator(rng)
    spec = ParamSpec(dynamics.shapes())
    if theta is None:
        theta = np.zeros(spec.size)
        dynamics.init(gen, spec.unravel(theta))
        theta = theta + 0.1 * gen.normal(size=spec.size)
    theta = np.asarray(theta, dtype=np.float64)
    p = spec.unravel(theta)
    n, B = dynamics.n_state, batch
    u = gen.normal(size=(B, dynamics.n_in)) if u is None else np.asarray(u, dtype=np.float64)
    x = 0.5 * gen.normal(size=(B, n)) if x is None else np.asarray(x, dtype=np.float64)
    d = dynamics.drive(p, u)
    lin = dynamics.linearize(p, x, d)
    z, v = gen.normal(size=(B, n)), gen.normal(size=(B, n))
    numeric_jv = (dynamics.F(p, x + eps * v, d) - dynamics.F(p, x - eps * v, d)) / (2 * eps)
    errors, lines = {}, []

    def compare(name, analytic, numeric):
        analytic, numeric = np.asarray(analytic, dtype=float), np.asarray(numeric, dtype=float)
        scale = max(np.abs(analytic).max(), np.abs(numeric).max(), 1e-12)
        err = float(np.abs(analytic - numeric).max() / scale)
        errors[name] = err
        ok = err <= rtol
        lines.append(f"{name}: relative error {err:.2e} ({'ok' if ok else 'WRONG'})"
                     + ("" if ok else f"; analytic {np.ravel(analytic)[:4]} vs numeric {np.ravel(numeric)[:4]}"))

    # <z, J v> per sample, from the VJP and from differences of F
    compare("vjp_state", np.einsum("bi,bi->b", dynamics.vjp_state(p, x, d, z, lin), v),
            np.einsum("bi,bi->b", z, numeric_jv))
    if dynamics.jvp_state is not None:
        compare("jvp_state", dynamics.jvp_state(p, x, d, v, lin), numeric_jv)
    if dynamics.jacobian is not None:
        compare("jacobian", np.einsum("bi,bij->bj", v, dynamics.jacobian(p, x, d, lin)), numeric_jv)
    grad = np.zeros_like(theta)
    g = spec.unravel(grad)
    z_d = dynamics.vjp_params(p, x, d, z, lin, g)
    dynamics.vjp_drive(p, u, z_d, g)
    w = gen.normal(size=theta.size)

    def objective(t):
        q = spec.unravel(t)
        return float(np.sum(z * dynamics.F(q, x, dynamics.drive(q, u))))

    numeric = (objective(theta + eps * w) - objective(theta - eps * w)) / (2 * eps)
    compare("vjp_params + vjp_drive", grad @ w, numeric)
    success = all(e <= rtol for e in errors.values())
    return Result(success=success, errors=errors, message="\n".join(lines))
