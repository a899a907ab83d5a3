"""The Elman network trained by backpropagation through time (full and truncated)."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ..core.activations import get_activation
from ..core.losses import (
    accuracy,
    encode_targets,
    output_loss,
    output_transform,
    resolve_output,
)
from ..core.model import Model, check_array, check_dtype, check_int
from ..core.params import ParamSpec, as_generator, glorot_uniform

__all__ = ["ElmanRNN", "check_truncation", "truncation_windows"]

# TODO(core): an ``out=`` form of Activation.f would let every activation write
# the new hidden state in place; until then the ufunc activations do it here.
_UFUNCS = {"tanh": np.tanh, "logistic": expit}


def check_truncation(truncation, argument: str = "truncation"):
    """``None`` or a validated pair ``(k1, k2)`` of ints with ``1 <= k1 <= k2``.

    Examples
    --------
    >>> check_truncation((2, 5))
    (2, 5)
    """
    if truncation is None:
        return None
    try:
        if isinstance(truncation, (str, bytes)):
            raise TypeError
        k1, k2 = truncation
    except (TypeError, ValueError):
        raise ValueError(
            f"{argument} must be None (full BPTT) or a pair (k1, k2) of integers: every k1 steps "
            f"backpropagate k2 steps, got {truncation!r}"
        ) from None
    k1 = check_int(k1, f"{argument}[0] (k1)")
    k2 = check_int(k2, f"{argument}[1] (k2)")
    if k2 < k1:
        raise ValueError(
            f"{argument}=(k1, k2) needs k2 >= k1 (Williams & Peng's BPTT(h; h') with h >= h'): with "
            f"k2 < k1 the errors of the first k1 - k2 steps of each window would never reach the "
            f"recurrent weights; got k1={k1}, k2={k2}. Use k2={k1} or larger."
        )
    return k1, k2


def truncation_windows(n_steps: int, k1: int) -> list:
    """The windows ``[(start, end), ...]`` of truncated BPTT: backprop points every ``k1`` steps.

    Window ``j`` holds the steps ``start <= t < end`` whose errors are injected
    when the backward pass runs at step ``end - 1``: ``end = min(j k1, T)``,
    so the last window is shorter when ``k1`` does not divide ``T``.

    Examples
    --------
    >>> truncation_windows(7, 3)
    [(0, 3), (3, 6), (6, 7)]
    """
    return [(s, min(s + k1, n_steps)) for s in range(0, n_steps, k1)]


class ElmanRNN(Model):
    """An Elman (simple recurrent) network, a function of one flat parameter vector.

    Parameters
    ----------
    n_in : int
        Input features per step.
    n_hidden : int
        Hidden (context) units.
    n_out : int
        Output units per step.
    activation : str
        Hidden activation: ``identity, tanh, logistic, relu, softplus``.
    output : str, optional
        Output layer; default the loss's canonical one (``softmax`` for
        ``cross_entropy``, ``logistic`` for ``binary_cross_entropy``,
        ``identity`` for ``squared``).
    loss : str
        ``squared``, ``cross_entropy`` or ``binary_cross_entropy``, applied
        per step and averaged over the masked steps (see Notes).
    learn_h0 : bool
        Learn the initial state ``h0`` (shared by every sequence); otherwise
        it is zero.
    truncation : None or (int, int)
        ``None`` for full BPTT; ``(k1, k2)`` for truncated BPTT: every ``k1``
        steps, backpropagate ``k2`` steps (``1 <= k1 <= k2``).
    dtype : {numpy.float64, numpy.float32}

    Attributes
    ----------
    params : ParamSpec
        In ``theta`` order: ``W_in (n_in, n_hidden)``, ``W_hh (n_hidden,
        n_hidden)``, ``b_h (n_hidden,)``, ``W_out (n_hidden, n_out)``,
        ``b_out (n_out,)`` and, with ``learn_h0``, ``h0 (n_hidden,)``.
        Weight decay applies to the ``W_*`` matrices.

    Notes
    -----
    Data are ``X`` (batch, time, n_in), targets per step and a (batch, time)
    boolean ``mask`` of the steps whose targets enter the loss (default:
    every step). Targets only at the last step, at chosen steps, and
    sequences of different lengths (padded at the end, ``mask`` False after
    the end) are all expressed by the mask. Steps ``t = 0 .. T-1``, one row
    per sequence, ``h_{-1} = h0``:

    .. math::

        a_t = x_t W_{in} + h_{t-1} W_{hh} + b_h,\\quad h_t = f(a_t),\\quad
        o_t = h_t W_{out} + b_{out},\\quad y_t = g(o_t)

    and the loss is the mean over the ``N = sum(mask)`` masked steps of the
    per-step loss, ``L = (1/N) sum_{b,t} m_{bt} l(o_{bt}, t_{bt})`` (so a
    long sequence weighs more than a short one in the batch). Since ``h_t``
    depends only on steps ``<= t``, the padded steps after a sequence's end
    cannot affect the loss or the gradient.

    Backpropagation through time (Werbos 1990) runs the delta recursion
    backward from ``t = T-1`` with ``delta_T = 0``:

    .. math::

        e_t = \\frac{m_t}{N} \\frac{\\partial l}{\\partial o_t},\\quad
        \\varepsilon_t = e_t W_{out}^T + \\delta_{t+1} W_{hh}^T,\\quad
        \\delta_t = \\varepsilon_t \\odot f'(a_t)

    then, summed over steps and sequences, ``dL/dW_hh = sum_t h_{t-1}^T
    delta_t``, ``dL/dW_in = sum_t x_t^T delta_t``, ``dL/db_h = sum_t
    delta_t``, ``dL/dW_out = sum_t h_t^T e_t``, ``dL/db_out = sum_t e_t`` and
    ``dL/dh0 = sum_rows delta_0 W_hh^T``. The forward pass stores every
    ``h_t`` (time-major, (T, batch, n_hidden)); the input projections of all
    steps, the readout of all steps and the weight gradients are each one
    matrix product, and only the recursion loops over time.

    Truncated BPTT(k1, k2) (Williams & Peng 1990, their BPTT(h; h') with
    ``h = k2``, ``h' = k1``): the steps are split into windows ``S_j =
    [(j-1) k1, min(j k1, T))``; at the end ``tau_j`` of each window the
    errors of the steps in ``S_j`` are backpropagated down to step
    ``max(0, tau_j - k2)`` (``tau_j`` exclusive). With the weights fixed
    during the call, the gradient returned is

    .. math::

        g = \\sum_j \\nabla_\\theta \\Big[\\sum_{s \\in S_j} m_s l_s / N\\Big]
            \\Big|_{h_{\\tau_j - k_2 - 1}\\ \\text{held constant}}

    i.e. the loss at step ``s`` reaches the parameters used at step ``u``
    only when ``u >= tau_j(s) - k2``; the readout gradients (``W_out,
    b_out``) are exact, and ``h0`` gets a gradient only from windows that
    reach step 0. The loss value is the full one. With ``k2 >= T`` no path
    is cut and the full recursion is used, so the result is identical to
    full BPTT. For streams too long for one pass, with a weight update after
    every chunk, see :func:`rbp.recurrent.stream.fit_stream`.

    Invariant: with ``truncation=None``, ``grad`` is the exact gradient of
    the returned loss (checked against central differences and torch
    autograd in the tests).

    References
    ----------
    J. L. Elman, "Finding structure in time", Cognitive Science 14(2), 1990.
    P. J. Werbos, "Backpropagation through time: what it does and how to do
    it", Proc. IEEE 78(10), 1990.
    R. J. Williams, J. Peng, "An efficient gradient-based algorithm for
    on-line training of recurrent network trajectories", Neural Computation
    2(4), 1990.

    Examples
    --------
    >>> import numpy as np
    >>> from rbp import check_grad
    >>> from rbp.recurrent.elman import ElmanRNN
    >>> net = ElmanRNN(2, 4, 3, loss="cross_entropy", learn_h0=True)
    >>> theta = net.init(np.random.default_rng(0))
    >>> sorted(net.params.unravel(theta))
    ['W_hh', 'W_in', 'W_out', 'b_h', 'b_out', 'h0']
    >>> g = np.random.default_rng(1)
    >>> X = g.normal(size=(5, 6, 2)); Y = g.integers(0, 3, size=(5, 6))
    >>> mask = np.arange(6) < np.array([6, 4, 2, 6, 1])[:, None]   # variable lengths
    >>> loss, grad = net.loss_and_grad(theta, X, Y, mask)
    >>> grad.shape == theta.shape
    True
    >>> check_grad(net.loss_and_grad, theta, (X, Y, mask)).success
    True
    >>> net.predict(theta, X).shape
    (5, 6, 3)
    """

    def __init__(
        self,
        n_in,
        n_hidden,
        n_out,
        activation="tanh",
        output=None,
        loss="squared",
        *,
        learn_h0: bool = False,
        truncation=None,
        dtype=np.float64,
    ):
        self.n_in = check_int(n_in, "n_in")
        self.n_hidden = check_int(n_hidden, "n_hidden")
        self.n_out = check_int(n_out, "n_out")
        self.activation = get_activation(activation, argument="activation")
        self.loss, self.output = resolve_output(loss, output, self.n_out)
        if not isinstance(learn_h0, (bool, np.bool_)):
            raise ValueError(f"learn_h0 must be a bool, got {learn_h0!r}")
        self.learn_h0 = bool(learn_h0)
        self.truncation = check_truncation(truncation)
        self.dtype = check_dtype(dtype)
        n, h, m = self.n_in, self.n_hidden, self.n_out
        shapes = {"W_in": (n, h), "W_hh": (h, h), "b_h": (h,), "W_out": (h, m), "b_out": (m,)}
        if self.learn_h0:
            shapes["h0"] = (h,)
        self.params = ParamSpec(shapes)

    def __repr__(self):
        extra = ", learn_h0=True" if self.learn_h0 else ""
        if self.truncation is not None:
            extra += f", truncation={self.truncation}"
        return (
            f"ElmanRNN({self.n_in}, {self.n_hidden}, {self.n_out}, activation={self.activation.name!r}, "
            f"output={self.output!r}, loss={self.loss.name!r}{extra})"
        )

    # -- the contract ---------------------------------------------------------------

    def blas_work(self, batch: int) -> float:
        """Multiply-adds of one recurrent step for ``batch`` sequences (the products inside the time loop)."""
        return float(batch) * self.n_hidden * max(self.n_hidden, self.n_in)

    def init(self, rng) -> np.ndarray:
        """Glorot-uniform input and output weights, an orthogonal ``W_hh``, zero biases and ``h0``.

        An orthogonal recurrent matrix preserves the norm of the backward
        signal through the linear part of the recursion, the usual starting
        point against vanishing and exploding gradients (Saxe et al. 2014).

        Parameters
        ----------
        rng : numpy.random.Generator or int

        Returns
        -------
        theta : ndarray, shape (n_params,)
        """
        rng = as_generator(rng)
        theta = np.zeros(self.params.size, dtype=self.dtype)
        p = self.params.unravel(theta)
        gain = 4.0 if self.activation.name == "logistic" else 1.0
        p["W_in"][...] = glorot_uniform(rng, self.n_in, self.n_hidden, gain=gain)
        q, r = np.linalg.qr(rng.standard_normal((self.n_hidden, self.n_hidden)))
        p["W_hh"][...] = q * np.where(np.diag(r) < 0, -1.0, 1.0)
        p["W_out"][...] = glorot_uniform(rng, self.n_hidden, self.n_out)
        return theta

    def prepare(self, X, Y, mask=None):
        """Validate inputs, targets and mask once; encode the targets.

        Parameters
        ----------
        X : array_like, shape (batch, time, n_in)
            Finite inputs, ``time >= 1``.
        Y : array_like, shape (batch, time) of class indices, or (batch, time, n_out)
            Targets at every step (any valid value at unmasked steps, e.g. 0).
            With one output unit a (batch, time) array holds the target values.
        mask : array_like of bool, shape (batch, time), optional
            True where the step's target enters the loss; every sequence needs
            at least one such step. Default: every step.

        Returns
        -------
        (X, T, mask) : ndarrays of shapes (batch, time, n_in), (batch, time, n_out), (batch, time)
            All indexed by sequence on axis 0, as the training loop slices them.

        Raises
        ------
        ValueError
            Naming the argument, the expected and the received shape or values.
        """
        X = check_array(X, "X", ndim=3, last=self.n_in, dtype=self.dtype)
        B, T = X.shape[:2]
        if B == 0:
            raise ValueError(f"X must contain at least one sequence, got shape {X.shape}")
        if T == 0:
            raise ValueError(
                f"X must have at least one time step (sequences of length 0 are not allowed), got shape {X.shape}"
            )
        mask = self._check_mask(mask, B, T)
        Y = np.asarray(Y)
        if Y.ndim not in (2, 3) or Y.shape[:2] != (B, T) or (Y.ndim == 3 and Y.shape[2] != self.n_out):
            raise ValueError(
                f"Y must have shape (batch, time) = {(B, T)} of class indices or (batch, time, n_out) = "
                f"{(B, T, self.n_out)} to match X of shape {X.shape}, got shape {Y.shape}"
            )
        flat = Y.reshape((B * T,) + Y.shape[2:])
        Tenc = encode_targets(flat, self.n_out, self.loss, argument="Y")
        return X, Tenc.reshape(B, T, self.n_out).astype(self.dtype, copy=False), mask

    @staticmethod
    def _check_mask(mask, B, T):
        if mask is None:
            return np.ones((B, T), dtype=bool)
        m = np.asarray(mask)
        if m.shape != (B, T):
            raise ValueError(f"mask must have shape (batch, time) = {(B, T)} to match X, got shape {m.shape}")
        if m.dtype != bool:
            if not (np.issubdtype(m.dtype, np.number) and np.all((m == 0) | (m == 1))):
                raise ValueError(f"mask must be boolean (or 0/1), got dtype {m.dtype} with other values")
            m = m.astype(bool)
        empty = np.flatnonzero(~m.any(axis=1))
        if empty.size:
            raise ValueError(
                "mask must select at least one step of every sequence (a sequence without targets has "
                f"length 0), got none in sequence(s) {empty[:5].tolist()}"
            )
        return m

    def _check_h0(self, h0, B):
        h0 = check_array(h0, "h0", ndim=np.ndim(h0), dtype=self.dtype)
        if h0.shape not in ((self.n_hidden,), (B, self.n_hidden)):
            raise ValueError(
                f"h0 must have shape (n_hidden,) = ({self.n_hidden},) or (batch, n_hidden) = "
                f"{(B, self.n_hidden)}, got shape {h0.shape}"
            )
        return h0

    # -- forward and backward --------------------------------------------------------

    def _initial_state(self, p, h0, B):
        if h0 is not None:
            return np.broadcast_to(h0, (B, self.n_hidden))
        if self.learn_h0:
            return np.broadcast_to(p["h0"], (B, self.n_hidden))
        return np.zeros((B, self.n_hidden), dtype=self.dtype)

    def _forward(self, p, X, h0):
        """Hidden pre-activations ``A`` (T, B, H) and states ``Hs`` (T+1, B, H), ``Hs[0] = h0``."""
        B, T, F = X.shape
        H = self.n_hidden
        Xt = np.ascontiguousarray(X.transpose(1, 0, 2))
        A = np.matmul(Xt.reshape(T * B, F), p["W_in"]).reshape(T, B, H)
        A += p["b_h"]
        Hs = np.empty((T + 1, B, H), dtype=A.dtype)
        Hs[0] = self._initial_state(p, h0, B)
        W_hh, tmp = p["W_hh"], np.empty((B, H), dtype=A.dtype)
        ufunc, f = _UFUNCS.get(self.activation.name), self.activation.f
        for t in range(T):
            np.matmul(Hs[t], W_hh, out=tmp)
            A[t] += tmp
            if ufunc is not None:
                ufunc(A[t], out=Hs[t + 1])
            else:
                Hs[t + 1] = f(A[t])
        return Xt, A, Hs

    def _bptt(self, theta, X, T, mask, h0=None, truncation=None):
        """Loss, gradient and the states ``Hs`` (T+1, B, H) on prepared data."""
        p = self.params.unravel(theta)
        B, n_steps = X.shape[:2]
        H = self.n_hidden
        Xt, A, Hs = self._forward(p, X, h0)
        W_out = p["W_out"]

        # Readout of the masked steps only, in one product; row r = t * B + b (time-major).
        mt = mask.T
        n_masked = int(np.count_nonzero(mt))
        Hflat = Hs[1:].reshape(n_steps * B, H)
        all_steps = n_masked == mt.size
        Hm = Hflat if all_steps else Hflat[mt.ravel()]
        Tm = T.transpose(1, 0, 2).reshape(-1, self.n_out) if all_steps else T.transpose(1, 0, 2)[mt]
        O = Hm @ W_out
        O += p["b_out"]
        weights = np.full(n_masked, 1.0 / n_masked, dtype=O.dtype)
        loss, E = output_loss(self.loss, self.output, O, Tm, weights)
        E = E.astype(O.dtype, copy=False)

        grad = np.empty_like(theta)
        g = self.params.unravel(grad)
        np.matmul(Hm.T, E, out=g["W_out"])
        np.sum(E, axis=0, out=g["b_out"])
        # dL/dh_t from the readout, time-major (T, B, H); it becomes the delta storage.
        if all_steps:
            D = np.matmul(E, W_out.T).reshape(n_steps, B, H)
        else:
            D = np.zeros((n_steps * B, H), dtype=O.dtype)
            D[mt.ravel()] = E @ W_out.T
            D = D.reshape(n_steps, B, H)
        Fp = self.activation.df(A, Hs[1:])

        k1, k2 = truncation if truncation is not None else (n_steps, n_steps)
        if k2 >= n_steps:
            dh0 = self._backward_full(D, Fp, p["W_hh"])
        else:
            D, dh0 = self._backward_truncated(D, Fp, p["W_hh"], k1, k2)

        Dflat = D.reshape(n_steps * B, H)
        np.matmul(Hs[:-1].reshape(n_steps * B, H).T, Dflat, out=g["W_hh"])
        np.matmul(Xt.reshape(n_steps * B, self.n_in).T, Dflat, out=g["W_in"])
        np.sum(Dflat, axis=0, out=g["b_h"])
        if self.learn_h0:
            if h0 is None and dh0 is not None:
                np.sum(dh0, axis=0, out=g["h0"])
            else:
                g["h0"][...] = 0.0  # an explicit h0 (a carried stream state) replaces the parameter
        return loss, grad, Hs

    def _backward_full(self, D, Fp, W_hh):
        """In place: ``D[t]`` from dL/dh_t (readout part) to ``delta_t``; returns dL/dh_{-1} or None."""
        n_steps = D.shape[0]
        dh = np.empty_like(D[0])
        W_hhT = W_hh.T
        for t in range(n_steps - 1, -1, -1):
            if t < n_steps - 1:
                D[t] += dh
            D[t] *= Fp[t]
            if t > 0 or self.learn_h0:
                np.matmul(D[t], W_hhT, out=dh)
        return dh if self.learn_h0 else None

    def _backward_truncated(self, Einj, Fp, W_hh, k1, k2):
        """Sum over windows of the k2-step truncated recursions; returns (deltas, dL/dh_{-1} or None)."""
        n_steps = Einj.shape[0]
        D = np.zeros_like(Einj)
        W_hhT = W_hh.T
        dh = np.empty_like(Einj[0])
        d = np.empty_like(Einj[0])
        dh0 = None
        for start, end in truncation_windows(n_steps, k1):
            lo = max(0, end - k2)
            for t in range(end - 1, lo - 1, -1):
                # dL/dh_t: this window's error at t (if t is in it) plus what came back from t + 1
                if t == end - 1:
                    d[...] = Einj[t]
                elif t >= start:
                    np.add(Einj[t], dh, out=d)
                else:
                    d[...] = dh
                d *= Fp[t]
                D[t] += d
                if t > lo or (lo == 0 and self.learn_h0):
                    np.matmul(d, W_hhT, out=dh)
            if lo == 0 and self.learn_h0:
                dh0 = dh.copy() if dh0 is None else dh0 + dh
        return D, dh0

    # -- the training entry points ---------------------------------------------------

    def loss_grad_info(self, theta, X, Y, mask=None, *, h0=None, check: bool = True):
        """Mean loss over the masked steps, its (BPTT) gradient, and an info dict.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
        X : ndarray, shape (batch, time, n_in)
        Y : ndarray, shape (batch, time) or (batch, time, n_out)
            Raw targets; with ``check=False``, the encoded (batch, time,
            n_out) targets from :meth:`prepare`.
        mask : ndarray of bool, shape (batch, time), optional
            Steps whose targets enter the loss; default every step.
        h0 : ndarray, shape (n_hidden,) or (batch, n_hidden), optional
            Initial state to start from instead of the model's (zero or
            learned); it is held constant (a state carried over from a
            previous chunk of a stream), so the ``h0`` gradient is then 0.
        check : bool
            Validate/encode the data (set False for data from :meth:`prepare`).

        Returns
        -------
        loss : float
            ``(1/N) sum of the per-step losses over the N masked steps``.
        grad : ndarray, shape (n_params,)
            Its gradient: exact with ``truncation=None``, else the
            truncated BPTT(k1, k2) gradient described in the class Notes.
        info : dict
            ``n_steps``: the number of masked steps (summed per epoch).
        """
        if check:
            theta = self.check_theta(theta)
            X, Y, mask = self.prepare(X, Y, mask)
            if h0 is not None:
                h0 = self._check_h0(h0, X.shape[0])
        elif mask is None:
            mask = np.ones(X.shape[:2], dtype=bool)
        loss, grad, _ = self._bptt(theta, X, Y, mask, h0, self.truncation)
        return loss, grad, {"n_steps": int(np.count_nonzero(mask))}

    def loss_grad_state(self, theta, X, T, mask, *, h0=None, truncation=None):
        """Loss, gradient and hidden states on *prepared* data: the building block of stream training.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
        X, T, mask : ndarrays from :meth:`prepare` (or slices of them along time)
        h0 : ndarray, shape (batch, n_hidden) or (n_hidden,), optional
            Initial state, held constant; default the model's.
        truncation : None or (int, int)
            Overrides nothing by default: ``None`` means full BPTT over
            this chunk whatever ``self.truncation`` is.

        Returns
        -------
        loss : float
        grad : ndarray, shape (n_params,)
        states : ndarray, shape (batch, time, n_hidden)
            ``h_t`` for every step; ``states[:, -1]`` continues the stream.
        """
        loss, grad, Hs = self._bptt(theta, X, T, mask, h0, check_truncation(truncation))
        return loss, grad, Hs[1:].transpose(1, 0, 2)

    def _forward_loss(self, theta, X, T, mask):
        p = self.params.unravel(theta)
        _, _, Hs = self._forward(p, X, None)
        O = Hs[1:].transpose(1, 0, 2) @ p["W_out"]
        O += p["b_out"]
        loss, _ = output_loss(self.loss, self.output, O[mask], T[mask])
        return output_transform(self.output, O), loss / np.count_nonzero(mask), {}

    def _accuracy(self, scores, X, T, mask):
        """Fraction of the masked steps whose predicted class is right."""
        return accuracy(scores[mask], T[mask])

    # -- running the net -------------------------------------------------------------

    def run(self, theta, X, h0=None, *, return_state: bool = True):
        """Run the net forward over ``X`` from ``h0``.

        Processing a stream in chunks, each started from the last state of
        the previous one, gives the same states as one pass.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
        X : array_like, shape (batch, time, n_in)
        h0 : array_like, shape (n_hidden,) or (batch, n_hidden), optional
            Initial state; default the model's (zero, or the learned ``h0``).
        return_state : bool
            Also return the hidden states.

        Returns
        -------
        Yhat : ndarray, shape (batch, time, n_out)
            Output layer values.
        states : ndarray, shape (batch, time, n_hidden)
            ``h_t`` for every step (only with ``return_state``);
            ``states[:, -1]`` is the state to continue from.

        Examples
        --------
        >>> import numpy as np
        >>> from rbp.recurrent.elman import ElmanRNN
        >>> net = ElmanRNN(1, 3, 1)
        >>> theta = net.init(0)
        >>> X = np.random.default_rng(0).normal(size=(2, 10, 1))
        >>> _, H = net.run(theta, X)
        >>> _, H1 = net.run(theta, X[:, :4])
        >>> _, H2 = net.run(theta, X[:, 4:], h0=H1[:, -1])
        >>> bool(np.allclose(np.concatenate([H1, H2], axis=1), H, rtol=0, atol=1e-14))
        True
        """
        theta = self.check_theta(theta)
        X = check_array(X, "X", ndim=3, last=self.n_in, dtype=self.dtype)
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X must hold at least one sequence of at least one step, got shape {X.shape}")
        if h0 is not None:
            h0 = self._check_h0(h0, X.shape[0])
        p = self.params.unravel(theta)
        _, _, Hs = self._forward(p, X, h0)
        states = Hs[1:].transpose(1, 0, 2)
        O = states @ p["W_out"]
        O += p["b_out"]
        Yhat = output_transform(self.output, O)
        return (Yhat, np.ascontiguousarray(states)) if return_state else Yhat

    def predict(self, theta, X) -> np.ndarray:
        """Output layer values at every step (probabilities for softmax/logistic outputs).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
        X : array_like, shape (batch, time, n_in)

        Returns
        -------
        Yhat : ndarray, shape (batch, time, n_out)
        """
        return self.run(theta, X, return_state=False)

