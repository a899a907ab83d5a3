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

from .registry import Registry
from .validation import check_callable, check_real, unknown_name_message  # noqa: F401 (the old home of the message)

__all__ = ["Activation", "ACTIVATIONS", "get_activation", "register_activation"]


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


def _check_entry(name, act):
    if not isinstance(act, Activation):
        raise ValueError(f"activation {name!r} must be an Activation(name, f, df, lipschitz), got {type(act).__name__}")


#: name -> :class:`Activation`; extend it with :func:`register_activation`.
ACTIVATIONS = Registry("activation", check=_check_entry)
for _act in (
    Activation("identity", _identity, _identity_df, 1.0),
    Activation("tanh", np.tanh, _tanh_df, 1.0),
    Activation("logistic", expit, _logistic_df, 0.25),
    Activation("relu", _relu, _relu_df, 1.0),
    Activation("softplus", _softplus, _softplus_df, 1.0),
):
    ACTIVATIONS.register(_act.name, _act)


def register_activation(name: str, f, df, lipschitz: float = float("inf"), *, overwrite: bool = False) -> Activation:
    """Add an activation that every model then accepts by name.

    Parameters
    ----------
    name : str
    f : callable ``(a) -> y``
        Elementwise on an ndarray of any shape; must not modify ``a``.
    df : callable ``(a, y) -> f'(a)``
        Its derivative, given ``a`` and ``y = f(a)``.
    lipschitz : float
        A bound on ``|f'|`` (``inf`` if unknown: the recurrent net's
        ``contraction`` option then refuses it).
    overwrite : bool
        Replace an existing entry of that name.

    Returns
    -------
    Activation

    Examples
    --------
    >>> import numpy as np
    >>> act = register_activation("softsign", lambda a: a / (1 + abs(a)),
    ...                           lambda a, y: 1 / (1 + abs(a)) ** 2, 1.0)
    >>> get_activation("softsign").f(np.array([1.0]))
    array([0.5])
    >>> ACTIVATIONS.unregister("softsign")
    """
    check_callable(f, "f", optional=False)
    check_callable(df, "df", optional=False)
    lip = float("inf") if lipschitz == float("inf") else check_real(lipschitz, "lipschitz")
    return ACTIVATIONS.register(name, Activation(name, f, df, lip), overwrite=overwrite)


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
    return ACTIVATIONS.get(name, argument=argument)

