"""Named parameter arrays <-> one flat vector ``theta``.

Every model in rbp is a function of one 1-D float array, so any optimizer,
``scipy.optimize.minimize``, gradient checking and checkpointing work on all
of them unchanged. :class:`ParamSpec` names the pieces: ``unravel(theta)``
returns a dict of *views* into ``theta`` (writing into a view writes into
``theta``), ``ravel(dict)`` packs a dict back.
"""

from __future__ import annotations

import math

import numpy as np

from .validation import as_generator  # noqa: F401 (re-exported)

__all__ = ["ParamSpec", "glorot_uniform", "he_normal", "as_generator"]


class ParamSpec:
    """An ordered set of named parameter shapes laid out in one flat vector.

    Parameters
    ----------
    shapes : dict of str -> tuple of int
        Name and shape of each parameter, in layout order.
    decay : iterable of str, optional
        Names that L2 weight decay applies to (by convention the weight
        matrices, not the biases). Default: every name starting with ``W``
        or ``U``.

    Examples
    --------
    >>> import numpy as np
    >>> spec = ParamSpec({"W": (2, 3), "b": (3,)})
    >>> theta = np.arange(spec.size, dtype=float)
    >>> p = spec.unravel(theta)
    >>> p["b"]
    array([6., 7., 8.])
    >>> p["W"][0, 0] = -1.0          # a view: theta changes too
    >>> float(theta[0])
    -1.0
    """

    def __init__(self, shapes: dict, decay=None):
        self.shapes = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
        self.slices = {}
        offset = 0
        for name, shape in self.shapes.items():
            n = math.prod(shape)
            self.slices[name] = slice(offset, offset + n)
            offset += n
        self.size = offset
        if decay is None:
            decay = [n for n in self.shapes if n[:1] in ("W", "U")]
        self.decay = tuple(decay)
        unknown = set(self.decay) - set(self.shapes)
        if unknown:
            raise ValueError(f"decay names must be parameter names {list(self.shapes)}, got {sorted(unknown)}")

    @property
    def names(self) -> tuple:
        return tuple(self.shapes)

    def unravel(self, theta: np.ndarray) -> dict:
        """Views of ``theta`` (shape (size,)) as a dict name -> array of its shape."""
        if theta.ndim != 1 or theta.shape[0] != self.size:
            raise ValueError(f"theta must have shape ({self.size},), got {np.shape(theta)}")
        return {name: theta[s].reshape(self.shapes[name]) for name, s in self.slices.items()}

    def ravel(self, params: dict, dtype=np.float64) -> np.ndarray:
        """Pack a dict name -> array into a new flat vector (shapes are checked)."""
        missing = set(self.shapes) - set(params)
        extra = set(params) - set(self.shapes)
        if missing or extra:
            raise ValueError(
                f"params must have exactly the keys {list(self.shapes)}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        theta = np.empty(self.size, dtype=dtype)
        for name, s in self.slices.items():
            value = np.asarray(params[name])
            if value.shape != self.shapes[name]:
                raise ValueError(f"params[{name!r}] must have shape {self.shapes[name]}, got {value.shape}")
            theta[s] = value.ravel()
        return theta

    def decay_mask(self, dtype=np.float64) -> np.ndarray:
        """1 where L2 weight decay applies, 0 elsewhere; shape (size,)."""
        mask = np.zeros(self.size, dtype=dtype)
        for name in self.decay:
            mask[self.slices[name]] = 1.0
        return mask

    def __repr__(self):
        inner = ", ".join(f"{n}={s}" for n, s in self.shapes.items())
        return f"ParamSpec({inner}; size={self.size})"


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int, *, gain: float = 1.0, shape=None):
    """Glorot/Xavier uniform initialisation, ``U(-l, l)``, ``l = gain*sqrt(6/(fan_in+fan_out))``.

    Examples
    --------
    >>> import numpy as np
    >>> W = glorot_uniform(np.random.default_rng(0), 64, 32)
    >>> W.shape, bool(abs(W).max() <= np.sqrt(6 / 96))
    ((64, 32), True)
    """
    limit = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape or (fan_in, fan_out))


def he_normal(rng: np.random.Generator, fan_in: int, fan_out: int, *, shape=None):
    """He normal initialisation for ReLU-like units, ``N(0, 2/fan_in)``.

    Examples
    --------
    >>> import numpy as np
    >>> he_normal(np.random.default_rng(0), 100, 3).shape
    (100, 3)
    """
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape or (fan_in, fan_out))
