"""Optimizers as pairs of pure functions, and a bridge to scipy.optimize.

An :class:`Optimizer` is ``(init, update)``::

    state = opt.init(theta)
    step, state = opt.update(grad, state, theta)
    theta = theta + step

``state`` is a documented NamedTuple holding a step counter and whatever the
method keeps (velocity, moments, Rprop step sizes). Learning rates may be a
float or a schedule: a callable ``count -> float`` (see :func:`exponential_decay`
and friends). Nothing is mutated in place, so a state can be checkpointed and
restored exactly.
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Callable, NamedTuple

import numpy as np

from .registry import Registry
from .results import Result, Status
from .validation import check_callable, check_real, nearest, unknown_name_message

__all__ = [
    "Optimizer",
    "sgd",
    "momentum",
    "nesterov",
    "adam",
    "rprop",
    "add_weight_decay",
    "clip_by_global_norm",
    "get_optimizer",
    "register_optimizer",
    "learning_rate_key",
    "OPTIMIZERS",
    "constant",
    "exponential_decay",
    "inverse_time_decay",
    "step_decay",
    "cosine_decay",
    "scipy_minimize",
    "SCIPY_METHODS",
]


class Optimizer(NamedTuple):
    """A gradient transformation: ``init(theta) -> state``,
    ``update(grad, state, theta) -> (step, state)``.

    ``update`` must not keep a reference to ``grad`` in its state (the
    online path reuses one gradient buffer). ``apply(grad, state, theta,
    grad_sq) -> state or None`` is an optional in-place form for per-tuple
    training: it adds exactly the step ``update`` would return to ``theta``
    and returns the new state, or returns None (leaving ``theta`` alone) when
    it cannot guarantee a finite result from ``grad_sq = ||grad||^2``.
    """

    init: Callable
    update: Callable
    name: str = "optimizer"
    apply: Callable | None = None


# -- learning-rate schedules -------------------------------------------------------


def constant(value: float) -> Callable[[int], float]:
    """The schedule ``count -> value``."""
    return lambda count: value


def exponential_decay(init_value: float, decay_rate: float, decay_steps: int = 1) -> Callable[[int], float]:
    """``init_value * decay_rate ** (count / decay_steps)``.

    Examples
    --------
    >>> exponential_decay(0.1, 0.5, 10)(20)
    0.025
    """
    return lambda count: init_value * decay_rate ** (count / decay_steps)


def inverse_time_decay(init_value: float, decay_rate: float, decay_steps: int = 1) -> Callable[[int], float]:
    """``init_value / (1 + decay_rate * count / decay_steps)``."""
    return lambda count: init_value / (1.0 + decay_rate * count / decay_steps)


def step_decay(init_value: float, factor: float, every: int) -> Callable[[int], float]:
    """Multiply by ``factor`` every ``every`` steps."""
    return lambda count: init_value * factor ** (count // every)


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0) -> Callable[[int], float]:
    """Cosine from ``init_value`` down to ``alpha * init_value`` over ``decay_steps``."""

    def schedule(count):
        t = min(count, decay_steps) / decay_steps
        return init_value * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * t)) + alpha)

    return schedule


def _schedule(learning_rate, argument="learning_rate"):
    if callable(learning_rate):
        schedule = learning_rate

        def checked(count):
            value = schedule(count)
            if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
                    or value < 0):
                raise ValueError(
                    f"{argument} schedule must return a finite number >= 0, got {value!r} at step {count}"
                )
            return value

        return checked
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, numbers.Real)
        or not learning_rate > 0
        or not math.isfinite(learning_rate)
    ):
        raise ValueError(f"{argument} must be a positive float or a schedule count -> float, got {learning_rate!r}")
    return constant(float(learning_rate))


def _check_unit(value, argument):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 <= value < 1.0):
        raise ValueError(f"{argument} must be in [0, 1), got {value!r}")


# -- the methods -----------------------------------------------------------------


class SGDState(NamedTuple):
    """count: steps taken."""

    count: int


def sgd(learning_rate=0.01) -> Optimizer:
    """Plain gradient descent: ``step = -lr * grad``.

    Examples
    --------
    >>> import numpy as np
    >>> opt = sgd(0.1)
    >>> state = opt.init(np.zeros(2))
    >>> step, state = opt.update(np.array([1.0, -2.0]), state, np.zeros(2))
    >>> step
    array([-0.1,  0.2])
    """
    lr = _schedule(learning_rate)

    def init(theta):
        return SGDState(0)

    def update(grad, state, theta=None):
        return grad * -lr(state.count), SGDState(state.count + 1)

    def apply(grad, state, theta, grad_sq):
        rate = lr(state.count)
        if not rate * math.sqrt(grad_sq) < 1e300:  # then theta + step could overflow
            return None
        theta += grad * -rate  # the same arithmetic as theta + update(...)[0]
        return SGDState(state.count + 1)

    return Optimizer(init, update, "sgd", apply)


class MomentumState(NamedTuple):
    """count: steps taken; velocity: running sum ``mu * v + grad``, shape of theta."""

    count: int
    velocity: np.ndarray


def momentum(learning_rate=0.01, beta: float = 0.9, *, nesterov: bool = False) -> Optimizer:
    """Heavy-ball momentum (``v = beta v + g``, ``step = -lr v``); Nesterov's
    look-ahead form with ``nesterov=True`` (``step = -lr (g + beta v)``)."""
    lr = _schedule(learning_rate)
    _check_unit(beta, "beta")

    def init(theta):
        return MomentumState(0, np.zeros_like(theta))

    def update(grad, state, theta=None):
        v = beta * state.velocity + grad
        direction = grad + beta * v if nesterov else v
        return direction * -lr(state.count), MomentumState(state.count + 1, v)

    return Optimizer(init, update, "nesterov" if nesterov else "momentum")


def nesterov(learning_rate=0.01, beta: float = 0.9) -> Optimizer:
    """Nesterov accelerated gradient, see :func:`momentum`."""
    return momentum(learning_rate, beta, nesterov=True)


class AdamState(NamedTuple):
    """count: steps taken; mu, nu: first and second moment estimates."""

    count: int
    mu: np.ndarray
    nu: np.ndarray


def adam(learning_rate=1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba 2015) with bias correction.

    ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
    ``step = -lr * m_hat / (sqrt(v_hat) + eps)``.
    """
    lr = _schedule(learning_rate)
    _check_unit(b1, "b1")
    _check_unit(b2, "b2")

    def init(theta):
        return AdamState(0, np.zeros_like(theta), np.zeros_like(theta))

    def update(grad, state, theta=None):
        count = state.count + 1
        mu = b1 * state.mu + (1 - b1) * grad
        nu = b2 * state.nu + (1 - b2) * (grad * grad)
        alpha = lr(state.count) * math.sqrt(1 - b2**count) / (1 - b1**count)
        step = mu / (np.sqrt(nu) + eps) * -alpha
        return step, AdamState(count, mu, nu)

    return Optimizer(init, update, "adam")


class RpropState(NamedTuple):
    """count: steps taken; prev_grad: last gradient (zeroed where its sign
    flipped); step_size: per-parameter step sizes."""

    count: int
    prev_grad: np.ndarray
    step_size: np.ndarray


def rprop(
    step_init: float = 0.0125,
    eta_plus: float = 1.2,
    eta_minus: float = 0.5,
    step_min: float = 1e-6,
    step_max: float = 50.0,
) -> Optimizer:
    """iRprop- (Igel & Huesken 2000): sign-based steps with adaptive sizes.

    Meant for full-batch training: a sign flip halves the parameter's step
    size and skips that update; agreement grows it by ``eta_plus``.
    """
    if not (0 < eta_minus < 1 < eta_plus):
        raise ValueError(f"rprop needs 0 < eta_minus < 1 < eta_plus, got eta_minus={eta_minus}, eta_plus={eta_plus}")

    def init(theta):
        return RpropState(0, np.zeros_like(theta), np.full_like(theta, step_init))

    def update(grad, state, theta=None):
        agree = grad * state.prev_grad
        size = np.where(
            agree > 0,
            np.minimum(state.step_size * eta_plus, step_max),
            np.where(agree < 0, np.maximum(state.step_size * eta_minus, step_min), state.step_size),
        )
        grad = np.where(agree < 0, 0.0, grad)
        return -np.sign(grad) * size, RpropState(state.count + 1, grad, size)

    return Optimizer(init, update, "rprop")


def add_weight_decay(opt: Optimizer, weight_decay: float, mask=None) -> Optimizer:
    """L2 weight decay: feed ``grad + weight_decay * mask * theta`` to ``opt``.

    This is the gradient of ``loss + weight_decay/2 * ||mask * theta||^2``;
    ``mask`` (shape of theta, e.g. ``model.params.decay_mask()``) usually
    excludes biases.
    """
    check_real(weight_decay, "weight_decay", low_inclusive=True)
    if weight_decay == 0:
        return opt
    scale = weight_decay if mask is None else weight_decay * np.asarray(mask)

    def update(grad, state, theta):
        return opt.update(grad + scale * theta, state, theta)

    return Optimizer(opt.init, update, opt.name)


def clip_by_global_norm(opt: Optimizer, max_norm: float) -> Optimizer:
    """Rescale the gradient to norm ``max_norm`` when it is longer, then apply ``opt``.

    The standard remedy for exploding gradients in backprop through time
    (Pascanu et al. 2013).

    Examples
    --------
    >>> import numpy as np
    >>> opt = clip_by_global_norm(sgd(1.0), 1.0)
    >>> step, _ = opt.update(np.array([3.0, 4.0]), opt.init(np.zeros(2)), np.zeros(2))
    >>> step
    array([-0.6, -0.8])
    """
    check_real(max_norm, "clip_norm")

    def update(grad, state, theta):
        norm = float(np.sqrt(grad @ grad))
        if norm > max_norm:
            grad = grad * (max_norm / norm)
        return opt.update(grad, state, theta)

    return Optimizer(opt.init, update, opt.name)


def _check_factory(name, factory):
    check_callable(factory, f"optimizer {name!r}", optional=False)


#: name -> factory ``(**hyperparameters) -> Optimizer``; extend it with :func:`register_optimizer`.
OPTIMIZERS = Registry("optimizer", check=_check_factory)
for _name, _factory in (("sgd", sgd), ("momentum", momentum), ("nesterov", nesterov), ("adam", adam),
                        ("rprop", rprop)):
    OPTIMIZERS.register(_name, _factory)


def register_optimizer(name: str, factory=None, *, overwrite: bool = False):
    """Add an optimizer usable by name everywhere (``Trainer(model, name)``, configs, checkpoints).

    Parameters
    ----------
    name : str
    factory : callable ``(**hyperparameters) -> Optimizer``
        Builds the ``(init, update)`` pair; its keyword parameters are the
        hyperparameters users may pass (``learning_rate`` is the one
        ``Trainer(learning_rate=...)`` sets). The state must be a NamedTuple
        of numbers and arrays, so that checkpoints can store it. Usable as a
        decorator when omitted.

    Examples
    --------
    >>> import numpy as np
    >>> class SignState(NamedTuple):
    ...     count: int
    >>> @register_optimizer("signsgd")
    ... def signsgd(learning_rate=0.01):
    ...     def init(theta):
    ...         return SignState(0)
    ...     def update(grad, state, theta=None):
    ...         return -learning_rate * np.sign(grad), SignState(state.count + 1)
    ...     return Optimizer(init, update, "signsgd")
    >>> opt = get_optimizer("signsgd", learning_rate=0.5)
    >>> opt.update(np.array([2.0, -3.0]), opt.init(np.zeros(2)))[0]
    array([-0.5,  0.5])
    >>> OPTIMIZERS.unregister("signsgd")
    """
    if factory is None:
        return lambda f: register_optimizer(name, f, overwrite=overwrite)
    return OPTIMIZERS.register(name, factory, overwrite=overwrite)


def learning_rate_key(name: str) -> str | None:
    """The hyperparameter that sets an optimizer's step size (``learning_rate``, or ``step_init`` for Rprop).

    Examples
    --------
    >>> learning_rate_key("adam"), learning_rate_key("rprop")
    ('learning_rate', 'step_init')
    """
    params = inspect.signature(OPTIMIZERS.get(name)).parameters
    for key in ("learning_rate", "step_init"):
        if key in params:
            return key
    return None


def get_optimizer(name, **hyperparams) -> Optimizer:
    """Build an optimizer by name; unknown hyperparameters are an error.

    Examples
    --------
    >>> get_optimizer("adam", learning_rate=0.01).name
    'adam'
    """
    if isinstance(name, Optimizer):
        if hyperparams:
            raise ValueError(f"hyperparameters {sorted(hyperparams)} cannot be applied to an Optimizer instance")
        return name
    factory = OPTIMIZERS.get(name)
    valid = [p for p in inspect.signature(factory).parameters if p != "nesterov"]
    unknown = set(hyperparams) - set(valid)
    if unknown:
        hint = "".join(f"; did you mean {near!r}?" for u in sorted(unknown) for near in [nearest(u, valid)] if near)
        raise ValueError(f"optimizer {name!r} accepts {valid}, got unknown {sorted(unknown)}{hint}")
    opt = factory(**hyperparams)
    if not isinstance(opt, Optimizer):
        raise TypeError(f"optimizer factory {name!r} must return an Optimizer(init, update, name), got {opt!r}")
    return opt


# -- scipy.optimize bridge ------------------------------------------------------------

SCIPY_METHODS = ("L-BFGS-B", "CG", "BFGS")


def scipy_minimize(fun, theta0, args=(), *, method="L-BFGS-B", maxiter=200, tol=None, callback=None) -> Result:
    """Full-batch training with :func:`scipy.optimize.minimize`.

    Parameters
    ----------
    fun : callable ``fun(theta, *args) -> (loss, grad)``
        For example ``model.loss_and_grad``; passed with ``jac=True``.
    theta0 : ndarray, shape (n_params,)
    method : {"L-BFGS-B", "CG", "BFGS"}
    maxiter : int
    callback : callable ``callback(intermediate_result)``, optional
        SciPy's callback; raising ``StopIteration`` stops the run.

    Returns
    -------
    Result
        SciPy's fields plus ``losses`` (loss after each iteration) and an
        rbp :class:`Status`.

    Examples
    --------
    >>> import numpy as np
    >>> res = scipy_minimize(lambda x: (float(x @ x), 2 * x), np.ones(3))
    >>> res.success, float(abs(res.x).max()) < 1e-6
    (True, True)
    """
    from scipy.optimize import minimize

    if method not in SCIPY_METHODS:
        raise ValueError(unknown_name_message("method", method, SCIPY_METHODS))
    losses = []

    def _callback(intermediate_result):
        losses.append(float(intermediate_result.fun))
        if callback is not None:
            callback(intermediate_result)

    res = minimize(
        fun, np.asarray(theta0, dtype=np.float64), args=args, jac=True, method=method,
        tol=tol, callback=_callback, options={"maxiter": maxiter},
    )
    if res.success:
        status = Status.SUCCESS
    elif res.nit >= maxiter or "ITERATIONS" in str(res.message).upper():
        status = Status.MAX_ITER
    elif res.status == 99 or "callback" in str(res.message).lower():
        status = Status.CALLBACK
    else:
        status = Status.BREAKDOWN
    return Result(
        x=res.x, fun=float(res.fun), jac=res.jac, success=bool(res.success), status=status,
        message=f"scipy.optimize.minimize({method}): {res.message}", nit=int(res.nit),
        nfev=int(res.nfev), losses=losses,
    )
