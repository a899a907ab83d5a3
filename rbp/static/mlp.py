"""The feed-forward network trained by static backpropagation."""

from __future__ import annotations

import numpy as np

from ..core.activations import get_activation
from ..core.losses import output_loss, output_transform, resolve_output
from ..core.model import Model, check_array, check_dtype, check_int
from ..core.params import ParamSpec, as_generator, glorot_uniform, he_normal

__all__ = ["MLP"]


class MLP(Model):
    """A multilayer perceptron, a function of one flat parameter vector.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``(n_in, n_hidden_1, ..., n_out)``; at least two entries.
    hidden : str
        Hidden activation: ``identity, tanh, logistic, relu, softplus``.
    output : str, optional
        Output layer; default the loss's canonical one (``softmax`` for
        ``cross_entropy``, ``logistic`` for ``binary_cross_entropy``,
        ``identity`` for ``squared``).
    loss : str
        ``squared`` (``1/2 sum (y - t)^2``), ``cross_entropy`` or
        ``binary_cross_entropy``; averaged over samples.
    dtype : {numpy.float64, numpy.float32}
        Precision of parameters and arithmetic.

    Attributes
    ----------
    params : ParamSpec
        ``W1 (sizes[0], sizes[1])``, ``b1 (sizes[1],)``, ..., ``WL``, ``bL``
        for ``L = len(sizes) - 1`` layers, in that order in ``theta``.

    Notes
    -----
    Forward: ``h_0 = X``, ``a_l = h_{l-1} W_l + b_l``, ``h_l = f(a_l)``; the
    output layer applies ``output`` to ``a_L``. Backward (the delta rule):
    ``delta_L = dL/da_L`` from the loss, then for each layer going down
    ``dL/dW_l = h_{l-1}^T delta_l``, ``dL/db_l = sum_rows delta_l``,
    ``delta_{l-1} = (delta_l W_l^T) * f'(a_{l-1})``. This is Rumelhart,
    Hinton & Williams (1986). Invariant: ``grad`` is the exact gradient of
    the returned mean loss (checked against central differences in the tests).

    Examples
    --------
    >>> import numpy as np
    >>> from rbp import MLP, check_grad
    >>> net = MLP([4, 8, 3], loss="cross_entropy")
    >>> theta = net.init(np.random.default_rng(0))
    >>> X = np.random.default_rng(1).normal(size=(5, 4)); y = np.array([0, 1, 2, 1, 0])
    >>> loss, grad = net.loss_and_grad(theta, X, y)
    >>> grad.shape == theta.shape
    True
    >>> check_grad(net.loss_and_grad, theta, (X, y)).success
    True
    >>> net.predict(theta, X).shape
    (5, 3)
    """

    def __init__(self, sizes, hidden="tanh", output=None, loss="squared", *, dtype=np.float64):
        try:
            layers = list(sizes) if not isinstance(sizes, (str, bytes)) else []
        except TypeError:
            layers = []
        if len(layers) < 2:
            raise ValueError(f"sizes must be a sequence of at least two layer widths (n_in, ..., n_out), got {sizes!r}")
        sizes = layers
        self.sizes = tuple(check_int(s, f"sizes[{i}]") for i, s in enumerate(sizes))
        self.hidden = get_activation(hidden, argument="hidden")
        self.loss, self.output = resolve_output(loss, output, self.sizes[-1])
        self.dtype = check_dtype(dtype)
        shapes = {}
        for l, (m, n) in enumerate(zip(self.sizes[:-1], self.sizes[1:]), start=1):
            shapes[f"W{l}"] = (m, n)
            shapes[f"b{l}"] = (n,)
        self.params = ParamSpec(shapes)
        self.n_layers = len(self.sizes) - 1
        self._keys = tuple((f"W{l}", f"b{l}") for l in range(1, self.n_layers + 1))

    def __repr__(self):
        return (
            f"MLP({list(self.sizes)}, hidden={self.hidden.name!r}, output={self.output!r}, "
            f"loss={self.loss.name!r})"
        )

    # -- the contract ---------------------------------------------------------------

    def init(self, rng) -> np.ndarray:
        """Glorot-uniform weights (He-normal for relu hidden layers), zero biases.

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
        for l in range(1, self.n_layers + 1):
            m, n = self.sizes[l - 1], self.sizes[l]
            if self.hidden.name == "relu" and l < self.n_layers:
                p[f"W{l}"][...] = he_normal(rng, m, n)
            else:
                gain = 4.0 if (self.hidden.name == "logistic" and l < self.n_layers) else 1.0
                p[f"W{l}"][...] = glorot_uniform(rng, m, n, gain=gain)
        return theta

    def blas_work(self, batch: int) -> float:
        """Multiply-adds of the largest layer product for ``batch`` samples."""
        return float(batch) * max(m * n for m, n in zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def n_in(self) -> int:
        return self.sizes[0]

    @property
    def n_out(self) -> int:
        return self.sizes[-1]

    def _forward(self, p, X):
        hs, As = [X], []
        h = X
        f = self.hidden.f
        for W, b in self._keys[:-1]:
            a = h @ p[W]
            a += p[b]
            h = f(a)
            As.append(a)
            hs.append(h)
        W, b = self._keys[-1]
        a = h @ p[W]
        a += p[b]
        return hs, As, a

    def loss_grad_info(self, theta, X, Y, check: bool = True):
        """Mean loss, its gradient (static backprop), and an empty info dict.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
        X : ndarray, shape (n_samples, n_in)
        Y : ndarray, shape (n_samples,) or (n_samples, n_out)
        check : bool
            Validate/encode ``X, Y`` (set False for data from :meth:`prepare`).

        Returns
        -------
        loss : float
        grad : ndarray, shape (n_params,)
        info : dict
        """
        if check:
            theta = self.check_theta(theta)
            X, Y = self.prepare(X, Y)
        p = self.params.unravel(theta)
        hs, As, a_out = self._forward(p, X)
        loss, delta = output_loss(self.loss, self.output, a_out, Y)
        n = X.shape[0]
        delta *= 1.0 / n
        grad = np.empty_like(theta)
        g = self.params.unravel(grad)
        df = self.hidden.df
        for l in range(self.n_layers, 0, -1):
            W, b = self._keys[l - 1]
            np.matmul(hs[l - 1].T, delta, out=g[W])
            delta.sum(axis=0, out=g[b])  # the method: np.sum's Python wrapper costs ~1 us
            if l > 1:
                delta = delta @ p[W].T
                delta *= df(As[l - 2], hs[l - 1])
        return loss / n, grad, {}

    def online_loss_grad(self, theta, grad):
        """The per-tuple (online) path: a function ``(x, t) -> loss`` that writes the gradient into ``grad``.

        The same math as :meth:`loss_grad_info` for one sample, written for
        1-D vectors (outer products, no batch axis), with the parameter and
        gradient views bound once: the training engine calls it for
        ``batch_size=1``, where numpy's per-call overhead, not arithmetic,
        sets the speed. ``theta`` must then be updated in place.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Read through views at every call (update it in place).
        grad : ndarray, shape (n_params,)
            Overwritten with the gradient at every call.

        Returns
        -------
        callable ``(x, t) -> float``
            ``x`` shape (n_in,), ``t`` the encoded target, shape (n_out,).

        Examples
        --------
        >>> import numpy as np
        >>> net = MLP([3, 4, 2], loss="cross_entropy")
        >>> theta, grad = net.init(0), np.empty(net.n_params)
        >>> X, T = net.prepare(np.ones((1, 3)), [1])
        >>> loss = net.online_loss_grad(theta, grad)(X[0], T[0])
        >>> bool(np.allclose(grad, net.loss_and_grad(theta, X, T, check=False)[1]))
        True
        """
        p, g = self.params.unravel(theta), self.params.unravel(grad)
        Ws = [p[W] for W, _ in self._keys]
        bs = [p[b] for _, b in self._keys]
        gWs = [g[W] for W, _ in self._keys]
        gbs = [g[b] for _, b in self._keys]
        f, df, output = self.hidden.f, self.hidden.df, self.output
        fn1d = self.loss.fn1d
        if fn1d is None:
            fn = self.loss.fn

            def fn1d(a, t, out):
                per_row, delta = fn(a[None], t[None], out)
                return float(per_row[0]), delta[0]

        last = self.n_layers - 1
        copyto = np.copyto
        # The weight gradients are rank-1 (outer products): BLAS ger on a zeroed view writes them
        # about twice as fast as np.outer (the same products, each rounded once).
        from scipy.linalg.blas import get_blas_funcs

        ger = get_blas_funcs("ger", dtype=theta.dtype)
        gWsT = [gW.T for gW in gWs]  # Fortran-ordered views, as BLAS wants them

        def outer(u, v, l):
            gWs[l].fill(0.0)
            ger(1.0, v, u, a=gWsT[l], overwrite_a=True)

        hidden_layers = list(zip(Ws[:last], bs[:last]))
        layers_down = list(range(last, -1, -1))

        def loss_grad(x, t):
            hs, As, h = [x], [], x
            for W, b in hidden_layers:
                a = h @ W
                a += b
                h = f(a)
                As.append(a)
                hs.append(h)
            a = h @ Ws[last]
            a += bs[last]
            loss, delta = fn1d(a, t, output)
            for l in layers_down:
                outer(hs[l], delta, l)
                copyto(gbs[l], delta)
                if l:
                    delta = delta @ Ws[l].T
                    delta *= df(As[l - 1], hs[l])
            return loss

        return loss_grad

    def _forward_loss(self, theta, X, T):
        p = self.params.unravel(theta)
        _, _, a_out = self._forward(p, X)
        loss, _ = output_loss(self.loss, self.output, a_out, T)
        return output_transform(self.output, a_out), loss / X.shape[0], {}

    def predict(self, theta, X) -> np.ndarray:
        """Output layer values (class probabilities for softmax/logistic outputs).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
        X : array_like, shape (n_samples, n_in)

        Returns
        -------
        Yhat : ndarray, shape (n_samples, n_out)
        """
        theta = self.check_theta(theta)
        X = check_array(X, "X", ndim=2, last=self.sizes[0], dtype=self.dtype)
        _, _, a_out = self._forward(self.params.unravel(theta), X)
        return output_transform(self.output, a_out)

