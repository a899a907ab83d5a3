"""Activation functions, each with its derivative next to it.

Every entry of :data:`ACTIVATIONS` is an :class:`Activation`: the function
``f(a)``, its derivative ``df(a, y)`` (given both the pre-activation ``a`` and
the output ``y = f(a)``, so that the cheaper form can be used: ``1 - y**2``
for tanh, ``y * (1 - y)`` for the logistic) and its Lipschitz constant, which
the recurrent net uses to keep its dynamics a contraction.

None of the functions modifies its argument.

Softmax is not here: it is only ever used as the output of the
cross-entropy loss, where the pair has a simple fused gradient
(see :mod:`rbp.core.losses`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from scipy.special import expit

__all__ = ["Activation", "ACTIVATIONS", "get_activation"]


class Activation(NamedTuple):
    """An elementwise activation and its derivative.

    Attributes
    ----------
    name : str
    f : callable ``(a) -> y``
        The activation, elementwise on an ndarray of any shape.
    df : callable ``(a, y) -> f'(a)``
        Its derivative, given ``a`` and ``y = f(a)``; each activation uses
        whichever argument is cheaper.
    lipschitz : float
        A bound on ``|f'|``; ``||W||_2 * lipschitz < 1`` makes the recurrent
        map ``x -> f(xW + c)`` a contraction.
    """

    name: str
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray, np.ndarray], np.ndarray]
    lipschitz: float


def _identity(a):
    return a.copy()


def _identity_df(a, y):
    return np.ones_like(a)


def _tanh_df(a, y):
    d = y * y
    np.subtract(1.0, d, out=d)  # 1 - y**2 with one temporary instead of two
    return d


def _logistic_df(a, y):
    d = 1.0 - y
    d *= y
    return d


def _relu(a):
    return np.maximum(a, 0.0)


def _relu_df(a, y):
    # The subgradient 0 at a == 0, as every framework uses.
    return (a > 0.0).astype(a.dtype)


def _softplus(a):
    return np.logaddexp(0.0, a).astype(a.dtype, copy=False)


def _softplus_df(a, y):
    return expit(a)


ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation("identity", _identity, _identity_df, 1.0),
    "tanh": Activation("tanh", np.tanh, _tanh_df, 1.0),
    "logistic": Activation("logistic", expit, _logistic_df, 0.25),
    "relu": Activation("relu", _relu, _relu_df, 1.0),
    "softplus": Activation("softplus", _softplus, _softplus_df, 1.0),
}


def get_activation(name: str | Activation, *, argument: str = "activation") -> Activation:
    """Look an activation up by name.

    Parameters
    ----------
    name : str or Activation
        One of ``identity, tanh, logistic, relu, softplus``; an
        :class:`Activation` is returned unchanged.
    argument : str
        The name of the caller's argument, used in the error message.

    Returns
    -------
    Activation

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid names and the closest.

    Examples
    --------
    >>> import numpy as np
    >>> act = get_activation("tanh")
    >>> a = np.array([0.0, 1.0])
    >>> y = act.f(a)
    >>> act.df(a, y).round(4).tolist()
    [1.0, 0.42]
    """
    if isinstance(name, Activation):
        return name
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(unknown_name_message(argument, name, ACTIVATIONS)) from None


def unknown_name_message(argument: str, received, valid) -> str:
    """The message for an unknown registry key: valid names and the nearest one."""
    import difflib

    names = sorted(valid)
    msg = f"{argument} must be one of {names}, got {received!r}"
    if isinstance(received, str):
        close = difflib.get_close_matches(received, names, n=1)
        if close:
            msg += f"; did you mean {close[0]!r}?"
    return msg
