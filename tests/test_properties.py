"""Property-based tests of every public entry point against hostile input.

The contract (DESIGN.md, "Failure is loud, never silent"): given any
arguments - random shapes, dtypes (int, float32, float64, bool, object,
complex, str), NaN/inf, empty arrays, label ranges, masks - a call either

* works, and then its outputs have the documented shapes and are finite, or
* raises ``ValueError`` whose message names the offending argument,

and never an obscure error from numpy/scipy internals (IndexError, TypeError,
FloatingPointError, ZeroDivisionError, LinAlgError ...), never a silently
dropped imaginary part (ComplexWarning), and never a hang (every call runs
under a SIGALRM time limit).

The hypothesis tests draw keyword arguments with at most one invalid value
(valid calls must work; an invalid one must be refused by name) and arrays of
every dtype/shape. Every input class these tests once found breaking the contract
is pinned down by a deterministic case in ``CONTRACT_CASES`` at the end, as a
regression test.
"""

import contextlib
import math
import re
import signal
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rbp
from rbp.core import linsolve
from rbp.core.activations import ACTIVATIONS
from rbp.core.fixedpoint import METHODS as RELAX_METHODS
from rbp.core.fixedpoint import relax
from rbp.core.gradcheck import GradientCheckError
from rbp.core.linsolve import BatchedOperator, solve
from rbp.core.losses import LOSSES, encode_targets
from rbp.data import sequences

SETTINGS = dict(
    deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAN, INF = math.nan, math.inf
ALL_DTYPES = ("int64", "int32", "float32", "float64", "bool", "object", "complex128", "U3")
REAL_DTYPES = ("int64", "int32", "float32", "float64", "bool")


# -- the contract ----------------------------------------------------------------------------------


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    def handler(signum, frame):
        raise Hang(f"no result after {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def names_argument(message, names):
    return any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", message) for n in names)


def attempt(call, *names, seconds=20):
    """Run ``call()`` under the contract.

    Returns ``(True, value, convergence_warnings)`` when it works and
    ``(False, error, [])`` when it raises a ValueError naming one of ``names``;
    anything else fails the test.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        with time_limit(seconds):
            try:
                value = call()
            except ValueError as exc:
                assert not isinstance(exc, np.linalg.LinAlgError), f"LinAlgError leaked: {exc}"
                assert names_argument(str(exc), names), f"ValueError does not name any of {names}: {exc}"
                return False, exc, []
    misses = [w for w in caught if issubclass(w.category, rbp.ConvergenceWarning)]
    return True, value, misses


def assert_finite(*arrays):
    for a in arrays:
        a = np.asarray(a, dtype=float)
        assert np.all(np.isfinite(a)), f"non-finite output {a}"


def check(call, bad, names):
    """Valid arguments (``bad is None``) must work; one invalid argument ``bad`` must raise a
    ValueError naming it. Returns the value when it worked."""
    ok, value, _ = attempt(call, *names)
    if bad is None:
        assert ok, f"valid arguments were refused: {value}"
        event("works")
        return value
    accepted = bad if isinstance(bad, tuple) else (bad,)
    assert not ok, f"invalid {bad} was accepted"
    assert names_argument(str(value), accepted), f"the error for the invalid {bad} names another argument: {value}"
    event(f"refused {accepted[0]}")
    return None


@st.composite
def arguments(draw, valid, invalid):
    """Keyword arguments drawn from ``valid``, with at most one replaced by a value from ``invalid``."""
    args = {k: draw(st.sampled_from(v), label=k) for k, v in valid.items()}
    bad = draw(st.sampled_from([None, None, None] + sorted(invalid)), label="invalid argument")
    if bad is not None:
        args[bad] = draw(st.sampled_from(invalid[bad]), label=f"invalid {bad}")
    return args, bad


# -- strategies ------------------------------------------------------------------------------------


def _elements(dtype, low=-4, high=5):
    kind = np.dtype(dtype).kind
    if kind == "f":
        return st.floats(low, high, width=8 * np.dtype(dtype).itemsize)
    if kind in "iu":
        return st.integers(low, high)
    if kind == "b":
        return st.booleans()
    if kind == "c":
        return st.complex_numbers(max_magnitude=4, allow_nan=False, allow_infinity=False)
    if kind == "O":
        return st.one_of(st.integers(-2, 5), st.floats(-4, 4), st.none(), st.text("ab", max_size=2))
    return st.text("ab1.", max_size=3)


@st.composite
def arrays(draw, shape, dtypes=ALL_DTYPES, low=-4, high=5, specials=True):
    """An array of ``shape`` and a dtype from ``dtypes``; float arrays sometimes hold one NaN/inf."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    a = draw(hnp.arrays(dtype, shape, elements=_elements(dtype, low, high)))
    if specials and dtype.kind == "f" and a.size and draw(st.integers(0, 3)) == 0:
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([NAN, INF, -INF]))
    return a


@st.composite
def inputs(draw, n, n_features, dtypes=REAL_DTYPES + ("object", "complex128", "U3")):
    """X of shape (n, n_features), or of a wrong shape or dimension."""
    if draw(st.integers(0, 3)):  # mostly valid, so that the 'works' branch is exercised too
        return draw(arrays((n, n_features), REAL_DTYPES, specials=False))
    shape = draw(st.sampled_from([(n, n_features)] * 4 + [(n, n_features + 1), (n,), (n, n_features, 1)]))
    return draw(arrays(shape, dtypes))


@st.composite
def targets(draw, n, n_out, dtypes=REAL_DTYPES + ("object", "U3")):
    """Class indices (n,) in [-1, n_out], or target rows (n, n_out), or a wrong shape."""
    if draw(st.integers(0, 3)):
        if draw(st.booleans()):
            return draw(arrays((n,), ("int64", "int32", "float64"), low=0, high=n_out - 1, specials=False))
        return draw(arrays((n, n_out), ("float64", "float32", "bool"), low=0, high=1, specials=False))
    kind = draw(st.sampled_from(["labels", "labels", "rows", "rows", "bad"]))
    if kind == "labels":
        m = draw(st.sampled_from([n, n, n + 1]))
        return draw(arrays((m,), dtypes, low=-1, high=n_out))
    if kind == "rows":
        return draw(arrays((n, n_out), dtypes, low=-1, high=2))
    return draw(arrays(draw(st.sampled_from([(n, n_out + 1), (n, n_out, 1), ()])), dtypes))


@st.composite
def thetas(draw, good):
    """The model's own parameters in another dtype, or with a NaN/inf, or of a wrong shape."""
    kind = draw(st.sampled_from(["good"] * 8 + ["cast", "cast", "nonfinite", "short", "2d", "empty"]))
    if kind == "cast":
        return good.astype(draw(st.sampled_from(["float32", "int64", "bool"])))
    if kind == "nonfinite":
        t = good.copy()
        t[draw(st.integers(0, t.size - 1))] = draw(st.sampled_from([NAN, INF, -INF]))
        return t
    if kind == "short":
        return good[:-1]
    if kind == "2d":
        return good[None, :]
    if kind == "empty":
        return np.array([])
    return good


def check_model_outputs(net, theta, X, result):
    event("loss_and_grad works")
    loss, grad = result
    assert isinstance(loss, float) and math.isfinite(loss)
    assert grad.shape == (net.n_params,) and grad.dtype == net.dtype
    assert_finite(grad)


# -- MLP ---------------------------------------------------------------------------------------------

MLP_SIZES = st.lists(st.integers(1, 4), min_size=2, max_size=3)

MLP_VALID = {
    "sizes": [[2, 3], [1, 4, 2], [3, 2, 2, 2], (2, 3), np.array([2, 3]), [np.int64(2), 3]],
    "hidden": list(ACTIVATIONS),
    "output": [None],
    "loss": list(LOSSES),
    "dtype": [np.float64, np.float32, "float32", "float64"],
}
MLP_INVALID = {
    "sizes": [[2], [], [0, 3], [-1, 2], [2.0, 3], [True, 2], ["3", 2], [None, 2], 5, "34", None, [[2, 3]]],
    "hidden": ["sigmoid", None, 3],
    "output": ["bogus", 3],
    "loss": ["hinge", None],
    "dtype": [np.int64, np.float16, object, np.complex128, bool],
}


@settings(max_examples=50, **SETTINGS)
@given(args=arguments(MLP_VALID, MLP_INVALID), data=st.data())
def test_mlp_construction(args, data):
    args, bad = args
    if bad is None:
        args["output"] = data.draw(st.sampled_from((None,) + LOSSES[args["loss"]].outputs), label="output")
    net = check(lambda: rbp.MLP(**args), bad, MLP_VALID)
    if net is not None:
        theta = net.init(0)
        assert theta.shape == (net.n_params,) and theta.dtype == np.dtype(args["dtype"])
        assert_finite(theta)


@settings(max_examples=50, **SETTINGS)
@given(data=st.data(), sizes=MLP_SIZES, hidden=st.sampled_from(list(ACTIVATIONS)),
       loss=st.sampled_from(list(LOSSES)), dtype=st.sampled_from([np.float64, np.float32]),
       n=st.integers(0, 4))
def test_mlp_loss_and_grad_predict_prepare(data, sizes, hidden, loss, dtype, n):
    if loss == "cross_entropy" and sizes[-1] == 1:
        sizes = sizes[:-1] + [2]  # a single softmax unit is refused (CONTRACT_CASES "softmax-with-one-output")
    net = rbp.MLP(sizes, hidden, loss=loss, dtype=dtype)
    n_in, n_out = sizes[0], sizes[-1]
    theta = net.init(data.draw(st.integers(0, 3)))
    if not data.draw(st.integers(0, 2), label="clean theta"):
        theta = data.draw(thetas(theta))
    X = data.draw(inputs(n, n_in))
    Y = data.draw(targets(n, n_out))

    ok, result, _ = attempt(lambda: net.loss_and_grad(theta, X, Y), "theta", "X", "Y")
    if ok:
        check_model_outputs(net, theta, X, result)

    ok, Yhat, _ = attempt(lambda: net.predict(theta, X), "theta", "X")
    if ok:
        assert Yhat.shape == (n, n_out)
        assert_finite(Yhat)

    ok, prepared, _ = attempt(lambda: net.prepare(X, Y), "X", "Y")
    if ok:
        Xp, T = prepared
        assert Xp.shape == (n, n_in) and T.shape == (n, n_out) and n >= 1
        assert Xp.dtype == T.dtype == net.dtype
        assert_finite(Xp, T)


# -- FixedPointNet -----------------------------------------------------------------------------------


FPN_VALID = {
    "n_in": [1, 3], "n_units": [1, 4], "n_out": [1, 2], "activation": list(ACTIVATIONS), "loss": list(LOSSES),
    "forward": list(RELAX_METHODS), "backward": [m for m in rbp.recurrent.BACKWARD_METHODS if m != "bptt"],
    "tol": [1e-6, 1e-10], "damping": [1.0, 0.5], "memory": [5, 1], "max_iter": [500, 1],
    "backward_tol": [1e-6], "backward_max_iter": [None, 10], "backward_damping": [1.0, 0.3],
    "contraction": [None, 0.9], "on_failure": ["warn", "raise", "skip", "ignore"],
}
FPN_INVALID = {
    "n_in": [0, -1, 2.0, True, "2"], "n_units": [0, 1.5], "n_out": [0, None], "activation": ["bogus", None],
    "loss": ["hinge"], "forward": ["newton"], "backward": ["lu", None], "tol": [0.0, -1.0, NAN, INF, "a"],
    "damping": [0.0, 1.5, NAN, "a"], "memory": [0, -3, 2.0, "x"], "max_iter": [0, 10.0],
    "backward_tol": [-1.0, NAN, "a"], "backward_max_iter": [0, 2.5], "backward_damping": [0, 2, "a"],
    "contraction": [1.0, 0.0, NAN, "a"], "on_failure": ["panic"],
}


@settings(max_examples=50, **SETTINGS)
@given(args=arguments(FPN_VALID, FPN_INVALID))
def test_fixedpoint_net_construction(args):
    args, bad = args
    if args["loss"] == "cross_entropy" and args["n_out"] == 1 and bad not in ("n_out", "loss"):
        args["n_out"] = 2  # a single softmax unit is refused (CONTRACT_CASES "softmax-with-one-output")
    net = check(lambda: rbp.FixedPointNet(**args), bad, FPN_VALID)
    if net is not None:
        theta = net.init(0)
        assert theta.shape == (net.n_params,)
        assert_finite(theta)


@settings(max_examples=40, **SETTINGS)
@given(data=st.data(), n=st.integers(0, 4), loss=st.sampled_from(list(LOSSES)),
       forward=st.sampled_from(["picard", "anderson", "broyden1"]),
       backward=st.sampled_from(["direct", "gmres", "neumann", "bptt"]))
def test_fixedpoint_net_loss_and_grad_predict(data, n, loss, forward, backward):
    if backward == "bptt":
        forward = "picard"
    n_in, n_out = 2, 1 if loss == "binary_cross_entropy" else 2
    net = rbp.FixedPointNet(n_in, 3, n_out, loss=loss, forward=forward, backward=backward, tol=1e-9,
                            contraction=0.9)
    theta = net.init(data.draw(st.integers(0, 3)))
    if not data.draw(st.integers(0, 2), label="clean theta"):
        theta = data.draw(thetas(theta))
    X = data.draw(inputs(n, n_in))
    Y = data.draw(targets(n, n_out))

    ok, result, _ = attempt(lambda: net.loss_and_grad(theta, X, Y), "theta", "X", "Y")
    if ok:
        check_model_outputs(net, theta, X, result)
    ok, Yhat, _ = attempt(lambda: net.predict(theta, X), "theta", "X")
    if ok:
        assert Yhat.shape == (n, n_out)
        assert_finite(Yhat)


# -- ElmanRNN ----------------------------------------------------------------------------------------


@st.composite
def masks(draw, B, T):
    kind = draw(st.sampled_from(["none", "bool", "bool", "int01", "float", "str", "shape", "emptyrow"]))
    if kind == "none":
        return None
    if kind == "bool":
        return draw(hnp.arrays(bool, (B, T)))
    if kind == "int01":
        return draw(hnp.arrays(np.int64, (B, T), elements=st.integers(0, 1)))
    if kind == "float":
        return draw(arrays((B, T), ("float64",), low=0, high=1))
    if kind == "str":
        return np.full((B, T), "yes")
    if kind == "shape":
        return np.ones((B, T + 1), dtype=bool)
    m = np.ones((B, T), dtype=bool)
    if B:
        m[0] = False
    return m


@settings(max_examples=50, **SETTINGS)
@given(data=st.data(), B=st.sampled_from([1, 2, 3, 0]), T=st.sampled_from([1, 2, 4, 0]),
       loss=st.sampled_from(list(LOSSES)), learn_h0=st.booleans(), truncation=st.sampled_from([None, (1, 2), (2, 2)]))
def test_elman_loss_and_grad_with_masks(data, B, T, loss, learn_h0, truncation):
    n_in, n_out = 2, 1 if loss == "binary_cross_entropy" else 3
    net = rbp.ElmanRNN(n_in, 3, n_out, loss=loss, learn_h0=learn_h0, truncation=truncation)
    clean = data.draw(st.integers(0, 3), label="clean")  # mostly valid data, so the 'works' branch runs
    theta = net.init(data.draw(st.integers(0, 3)))
    if not clean:
        theta = data.draw(thetas(theta))
    if clean:
        X = data.draw(arrays((B, T, n_in), REAL_DTYPES, specials=False))
        Y = data.draw(st.one_of(
            arrays((B, T), ("int64", "int32"), low=0, high=n_out - 1, specials=False),
            arrays((B, T, n_out), ("float64", "float32", "bool"), low=0, high=1, specials=False),
        ))
        mask = None if clean == 1 else data.draw(hnp.arrays(bool, (B, T)))
        if mask is not None and B and T:
            mask[:, data.draw(st.integers(0, T - 1))] = True
    else:
        X = data.draw(arrays(data.draw(st.sampled_from([(B, T, n_in)] * 4 + [(B, T), (B, T, n_in + 1)]))))
        Y = data.draw(st.one_of(
            arrays((B, T), REAL_DTYPES + ("object",), low=-1, high=n_out),
            arrays((B, T, n_out), REAL_DTYPES, low=-1, high=2),
            arrays((B, T + 1), REAL_DTYPES),
        ))
        mask = data.draw(masks(B, T))

    ok, result, _ = attempt(lambda: net.loss_and_grad(theta, X, Y, mask), "theta", "X", "Y", "mask")
    if ok:
        check_model_outputs(net, theta, X, result)
    ok, Yhat, _ = attempt(lambda: net.predict(theta, X), "theta", "X")
    if ok:
        assert Yhat.shape == (B, T, n_out)
        assert_finite(Yhat)


ELMAN_VALID = {"n_in": [1, 3], "n_hidden": [1, 4], "n_out": [1, 2], "activation": list(ACTIVATIONS),
               "loss": list(LOSSES), "learn_h0": [True, False], "truncation": [None, (1, 1), (2, 5), [3, 3]],
               "dtype": [np.float64, np.float32]}
ELMAN_INVALID = {"n_in": [0, 2.0, "2"], "n_hidden": [0, -1, True], "n_out": [0, None], "activation": ["bogus"],
                 "loss": ["hinge"], "learn_h0": [1, "yes", None], "truncation": [(2, 1), (0, 2), 3, "ab", (1, 2, 3)],
                 "dtype": [np.int64, object, np.float16]}


@settings(max_examples=40, **SETTINGS)
@given(args=arguments(ELMAN_VALID, ELMAN_INVALID))
def test_elman_construction(args):
    args, bad = args
    if args["loss"] == "cross_entropy" and args["n_out"] == 1 and bad not in ("n_out", "loss"):
        args["n_out"] = 2  # a single softmax unit is refused (CONTRACT_CASES "softmax-with-one-output")
    net = check(lambda: rbp.ElmanRNN(**args), bad, ELMAN_VALID)
    if net is not None:
        theta = net.init(0)
        assert theta.shape == (net.n_params,) and theta.dtype == np.dtype(args["dtype"])
        assert_finite(theta)


# -- the trainers ------------------------------------------------------------------------------------

TRAINER_VALID = {
    "optimizer": ["sgd", "momentum", "nesterov", "adam", "rprop", "L-BFGS-B"],
    "learning_rate": [None, 0.01, 0.1],
    "epochs": [1, 2],
    "batch_size": ["default", None, 1, 4, 10**9],
    "validation_fraction": [None, 0.25],
    "early_stopping": [None, 1],
    "weight_decay": [0.0, 1e-3],
    "clip_norm": [None, 1.0],
    "on_divergence": ["warn", "raise", "halve"],
    "optimizer_options": [None, {}],
    "min_delta": [0.0, 1e-3],
    "max_retries": [0, 3],
    "callback": [None, lambda result: None],
}
TRAINER_INVALID = {
    "optimizer": ["adamm", 5, None],
    "learning_rate": [0.0, -1.0, NAN, INF, "a", True],
    "epochs": [0, -1, 1.5, True, "2"],
    "batch_size": [0, -1, 2.5, True],
    "validation_fraction": [0.0, 1.0, NAN, True, "a"],
    "early_stopping": [0, -2, 1.5],
    "weight_decay": [-1.0, NAN, "a"],
    "clip_norm": [0.0, -1.0, NAN],
    "on_divergence": ["explode", None],
    "optimizer_options": [{"bogus": 1}, [1], "adam"],
    "min_delta": ["a", NAN, -1.0, INF],
    "max_retries": [-1, "a", 1.5],
    "callback": [5, "print"],
}
SCIPY_CONFLICTS = ("learning_rate", "batch_size", "early_stopping", "clip_norm", "optimizer_options")
FIT_INVALID = ("X-nan", "X-features", "X-1d", "X-str", "X-complex", "X-empty", "Y-range", "Y-length", "Y-nan",
               "rng-float", "rng-str", "rng-negative", "theta-short", "theta-nan", "mask-shape", "mask-str",
               "mask-empty-row", "checkpoint_every-zero", "checkpoint_every-str")


def _fit_data(kind, n, bad, gen):
    X = gen.normal(size=(n, 2, 3) if kind == "elman" else (n, 3))
    Y = gen.integers(0, 2, size=(n, 2) if kind == "elman" else n)
    fit = {"rng": 0}
    if kind == "elman":
        fit["mask"] = np.ones((n, 2), dtype=bool)
    if bad == "X-nan":
        X[0, 0] = NAN
    elif bad == "X-features":
        X = np.concatenate([X, X[..., :1]], axis=-1)
    elif bad == "X-1d":
        X = X.reshape(-1)
    elif bad == "X-str":
        X = X.astype(str)
    elif bad == "X-complex":
        X = X + 1j
    elif bad == "X-empty":
        X, Y = X[:0], Y[:0]
        if kind == "elman":
            fit["mask"] = fit["mask"][:0]
    elif bad == "Y-range":
        Y = Y + 2
    elif bad == "Y-length":
        Y = Y[:-1]
    elif bad == "Y-nan":
        Y = Y.astype(float)
        Y[0] = NAN
    elif bad == "rng-float":
        fit["rng"] = 1.5
    elif bad == "rng-str":
        fit["rng"] = "a"
    elif bad == "rng-negative":
        fit["rng"] = -1
    elif bad.startswith("checkpoint_every"):
        fit["checkpoint_every"] = 0 if bad.endswith("zero") else "a"
    elif bad.startswith("mask") and kind == "elman":
        fit["mask"] = {"mask-shape": np.ones((n, 3), dtype=bool), "mask-str": np.full((n, 2), "yes"),
                       "mask-empty-row": np.array([[False, False]] + [[True, True]] * (n - 1))}[bad]
    return X, Y, fit


@settings(max_examples=60, **SETTINGS)
@given(args=arguments(TRAINER_VALID, {**TRAINER_INVALID, **{k: [k] for k in FIT_INVALID}}),
       kind=st.sampled_from(["mlp", "mlp", "fixedpoint", "elman"]), n=st.integers(4, 7), seed=st.integers(0, 3))
def test_trainers_fit(args, kind, n, seed):
    options, bad = args
    fit_bad = bad if bad in FIT_INVALID else None
    for k in FIT_INVALID:
        options.pop(k, None)
    if bad and bad.startswith("mask") and kind != "elman":
        kind = "elman"
    if options["optimizer"] == "L-BFGS-B":
        for k in SCIPY_CONFLICTS:
            if k != bad:
                options.pop(k)
    if kind == "mlp":
        net, Trainer = rbp.MLP([3, 4, 2], loss="cross_entropy"), rbp.StaticTrainer
    elif kind == "fixedpoint":
        net, Trainer = rbp.FixedPointNet(3, 3, 2, loss="cross_entropy", contraction=0.9), rbp.RecurrentTrainer
    else:
        net, Trainer = rbp.ElmanRNN(3, 3, 2, loss="cross_entropy"), rbp.RecurrentTrainer
    names = {**TRAINER_VALID, "bogus": 0}
    if options.get("on_divergence") != "halve" and bad != "max_retries":
        options.pop("max_retries", None)
    if bad == "optimizer_options" and isinstance(options["optimizer_options"], dict):
        bad = ("optimizer_options", "bogus")  # the message names the unknown hyperparameter
    trainer = check(lambda: Trainer(net, **options), None if fit_bad else bad, names)
    if trainer is None:
        return

    X, Y, fit = _fit_data(kind, n, fit_bad or "", np.random.default_rng(seed))
    if fit_bad in ("theta-short", "theta-nan"):
        theta = net.init(0)
        theta = theta[:-1] if fit_bad == "theta-short" else np.where(np.arange(theta.size) == 0, NAN, theta)
        fit["theta"] = theta
    argument = None if fit_bad is None else fit_bad.split("-")[0]
    res = check(lambda: trainer.fit(X, Y, **fit), argument, ("X", "Y", "rng", "theta", "mask", "checkpoint_every"))
    if res is not None:
        assert res.x.shape == (net.n_params,)
        assert_finite(res.x)
        if res.success:
            assert len(res.history.get("epoch", [])) == res.nit


# -- check_grad ----------------------------------------------------------------------------------------


def _quadratic(x):
    A = np.diag(np.arange(1.0, x.size + 1))
    return 0.5 * float(x @ A @ x), A @ x


GRAD_VALID = {"rtol": [1e-7, 1e-5, 1e-3], "eps": [1e-6, 1e-5, 1e-4], "max_coords": [0, 2, 400],
              "n_directions": [1, 5, 24], "theta": ["real"]}
GRAD_INVALID = {"rtol": [0.0, -1.0, NAN, "a"], "eps": [0.0, -1e-5, INF, "a"], "max_coords": [-1, 2.5],
                "n_directions": [0, -1, 1.5], "theta": ["2d", "0d", "nan", "str", "object", "complex"]}


@settings(max_examples=50, **SETTINGS)
@given(data=st.data(), args=arguments(GRAD_VALID, GRAD_INVALID), size=st.integers(1, 6))
def test_check_grad(data, args, size):
    args, bad = args
    kind = args.pop("theta")
    theta = data.draw(arrays((size,), REAL_DTYPES, specials=False), label="theta")
    if theta.dtype.kind == "f":  # gradients below the round-off floor: test_check_grad_tiny_correct_gradient
        theta[(theta != 0) & (np.abs(theta) < 1e-3)] = 0.5
    theta = {"real": theta, "2d": theta.reshape(size, 1).astype(float), "0d": np.float64(1.0),
             "nan": np.where(np.arange(size) == 0, NAN, theta.astype(float)), "str": theta.astype(str),
             "object": np.array([None] * size, dtype=object), "complex": theta + 1j}[kind]
    res = check(lambda: rbp.check_grad(_quadratic, theta, **args), bad, GRAD_VALID)
    if res is not None:
        assert res.success and res.rel_error <= args["rtol"]
        # never equal to the true gradient (1.5 g + 1 is, at g = -2)
        wrong = lambda x: (_quadratic(x)[0], _quadratic(x)[1] + 1.0 + 0.5 * np.abs(_quadratic(x)[1]))  # noqa: E731
        with pytest.raises(GradientCheckError, match=r"gradient check failed"):
            rbp.check_grad(wrong, theta, **args)


def test_check_grad_tiny_correct_gradient():
    theta = np.array([1e-146, -3e-150])
    assert rbp.check_grad(_quadratic, theta).success


# -- encode_targets --------------------------------------------------------------------------------------


@settings(max_examples=50, **SETTINGS)
@given(data=st.data(), n=st.integers(0, 4), n_out=st.integers(1, 4),
       loss=st.sampled_from(list(LOSSES) + ["bogus"]))
def test_encode_targets(data, n, n_out, loss):
    shape = data.draw(st.sampled_from([(n,), (n,), (n, n_out), (n, n_out + 1), (), (n, n_out, 1)]))
    Y = data.draw(arrays(shape, REAL_DTYPES + ("object", "U3"), low=-1, high=n_out))
    ok, T, _ = attempt(lambda: encode_targets(Y, n_out, loss), "Y", "loss")
    if ok:
        assert T.shape == (n, n_out) and T.dtype == np.float64
        assert_finite(T)
        if Y.ndim == 1 and (n_out > 1 or loss == "cross_entropy"):
            np.testing.assert_array_equal(T.sum(axis=1), np.ones(n))
            np.testing.assert_array_equal(T.argmax(axis=1), Y.astype(np.int64))


# -- linsolve.solve and fixedpoint.relax ----------------------------------------------------------------


def _operator(B, n, seed=0):
    A = np.eye(n)[None] + 0.2 * np.random.default_rng(seed).normal(size=(B, n, n)) / max(n, 1) ** 0.5
    return BatchedOperator(
        lambda V: np.einsum("bij,bj->bi", A, V), (B, n),
        rmatvec=lambda V: np.einsum("bji,bj->bi", A, V), dense=lambda: A,
    ), A


SOLVE_VALID = {"method": list(linsolve.METHODS), "rtol": [1e-10, 1e-6], "maxiter": [None, 1, 5, 200],
               "restart": [30, 2], "x0": ["none", "zeros"], "b": ["good"]}
SOLVE_INVALID = {"method": ["cholesky", None], "b": ["flat", "wide", "nan", "inf", "str", "complex", "object"],
                 "rtol": [-1.0, NAN, "a"], "maxiter": [0, -1, 2.5], "restart": [0, -3], "x0": ["wide", "nan"]}


@settings(max_examples=50, **SETTINGS)
@given(data=st.data(), args=arguments(SOLVE_VALID, SOLVE_INVALID), B=st.integers(0, 3), n=st.integers(0, 4))
def test_linsolve_solve(data, args, B, n):
    args, bad = args
    if bad in ("b", "x0"):
        B, n = max(B, 1), max(n, 1)  # a NaN/str/... needs an entry to live in
    if bad == "restart":
        args["method"] = "gmres"
    if args["method"] not in ("gmres", "lgmres"):
        args.pop("restart")  # an option the method does not take is refused (tested below), not ignored
    op, A = _operator(B, n)
    kind = args.pop("b")
    b = data.draw(arrays((B, n), REAL_DTYPES, specials=False), label="b")
    b = {"good": b, "flat": b.reshape(-1), "wide": np.zeros((B, n + 1)),
         "nan": np.where(np.arange(n) == 0, NAN, b.astype(float)), "inf": np.full((B, n), INF),
         "str": np.full((B, n), "a"), "complex": b + 1j, "object": np.full((B, n), None)}[kind]
    args["x0"] = {"none": None, "zeros": np.zeros((B, n)), "wide": np.zeros((B, n + 1)),
                  "nan": np.full((B, n), NAN)}[args["x0"]]
    res = check(lambda: solve(op, b, **args), bad, SOLVE_VALID)
    if res is not None:
        assert res.x.shape == (B, n)
        if res.success:
            assert_finite(res.x)
            bb = b.astype(float)
            residual = np.linalg.norm(np.einsum("bij,bj->bi", A, res.x) - bb)
            assert residual <= 1e-5 * np.linalg.norm(bb) + 1e-12
        else:
            assert res.message and res.status != rbp.Status.SUCCESS


RELAX_VALID = {"method": list(RELAX_METHODS), "tol": [1e-8, 1e-4], "max_iter": [500, 3], "damping": [1.0, 0.5],
               "memory": [5, 1], "store_iterates": [False], "x0": ["real"]}
RELAX_INVALID = {"method": ["newton", None], "tol": [0.0, -1.0, NAN, "a"], "max_iter": [0, 2.5, -1],
                 "damping": [0.0, 2.0, NAN, "a"], "memory": [0, "x"], "store_iterates": [True],
                 "x0": ["1d", "3d", "empty-batch", "no-units", "nan", "complex", "str"]}


@settings(max_examples=50, **SETTINGS)
@given(data=st.data(), args=arguments(RELAX_VALID, RELAX_INVALID), B=st.integers(1, 3), n=st.integers(1, 3))
def test_fixedpoint_relax(data, args, B, n):
    args, bad = args
    if bad == "store_iterates" and args["method"] == "picard":
        args["method"] = "anderson"
    if bad == "memory" and args["method"] != "anderson":
        args["method"] = "anderson"
    if bad == "damping" and args["method"] not in ("picard", "anderson"):
        args["method"] = "picard"
    # options a method does not take are refused (see the tests below), never silently ignored
    takes = {"picard": ("damping", "store_iterates"), "anderson": ("damping", "memory")}.get(args["method"], ())
    for option in ("damping", "memory", "store_iterates"):
        if option not in takes and option != bad:
            args.pop(option)
    kind = args.pop("x0")
    x0 = data.draw(arrays((B, n), REAL_DTYPES, specials=False), label="x0")
    x0 = {"real": x0, "1d": x0[0], "3d": x0[..., None], "empty-batch": x0[:0], "no-units": x0[:, :0],
          "nan": np.where(np.arange(n) == 0, NAN, x0.astype(float)), "complex": x0 + 1j, "str": x0.astype(str)}[kind]
    c = np.linspace(-1.0, 1.0, B * n).reshape(B, n)

    def F(x, rows):
        return np.tanh(0.5 * x + c[rows])

    res = check(lambda: relax(F, x0, **args), bad, RELAX_VALID)
    if res is not None and kind == "real":
        assert res.x.shape == (B, n)
    if res is not None:
        assert res.x.shape == (B, n) and res.converged.shape == (B,)
        assert_finite(res.x)
        if res.success:
            assert np.all(res.residual <= args["tol"] * (1 + 1e-6))
        else:
            assert res.message and res.status != rbp.Status.SUCCESS


# -- data generators ------------------------------------------------------------------------------------

GLYPHS_VALID = {
    "charset": ["AB", "a1", "X"], "size": [8, 9, 12], "n_per_font": [1, 2],
    "fonts": [["DejaVuSans", "cmr10"], ["DejaVuSans", "cmr10", "STIXGeneral"], ("cmr10.ttf", "DejaVuSans-Bold")],
    "n_test_fonts": [1], "rng": [None, 0, 3, np.random.default_rng(5)], "distortion": [0, 1.0, 2.5],
    "noise": [0, 0.05], "stroke": [True, False, np.True_],
}
GLYPHS_INVALID = {
    "charset": ["", "AA", "A ", "A\x00", "A\U0001F600", 5, None, ["A"]], "size": [7, 8.0, True, "8"],
    "n_per_font": [0, 1.5, True], "fonts": ["DejaVuSans", [], ["NoSuchFont", "cmr10"], [5, "cmr10"],
                                           ["cmr10", "cmr10.ttf"]],
    "n_test_fonts": [0, 5, 1.0, True], "rng": ["a", 1.5], "distortion": [-1, NAN, INF, "a"],
    "noise": [-0.1, NAN, INF], "stroke": [1, "yes"],
}


@settings(max_examples=30, **SETTINGS)
@given(args=arguments(GLYPHS_VALID, GLYPHS_INVALID))
def test_glyphs(args):
    args, bad = args
    ds = check(lambda: rbp.data.glyphs(**args), bad, GLYPHS_VALID)
    if ds is not None:
        size, charset, n_fonts = args["size"], args["charset"], len(args["fonts"])
        per_font = len(charset) * args["n_per_font"]
        assert ds.X_train.shape == ((n_fonts - 1) * per_font, size * size)
        assert ds.X_test.shape == (per_font, size * size)
        assert ds.y_train.shape == (len(ds.X_train),) and ds.y_test.shape == (len(ds.X_test),)
        assert_finite(ds.X_train, ds.X_test)
        assert 0 <= ds.X_train.min() and ds.X_train.max() <= 1
        assert set(np.unique(ds.y_train)) == set(np.unique(ds.y_test)) == set(range(len(charset)))
        assert ds.classes == tuple(charset)


DIGITS_VALID = {"test_size": [0.5, 0.25, 0.05, 0.95, 100, 10, 1787], "rng": [None, 0, 7, np.random.default_rng(2)],
                "stratify": [True, False, np.True_]}
DIGITS_INVALID = {"test_size": [0.0, 1.0, 1797, 0, -0.1, NAN, "a", True], "rng": ["a", 1.5], "stratify": [1, "yes"]}


@settings(max_examples=25, **SETTINGS)
@given(args=arguments(DIGITS_VALID, DIGITS_INVALID))
def test_digits(args):
    args, bad = args
    ds = check(lambda: rbp.data.digits(**args), bad, DIGITS_VALID)
    if ds is not None:
        assert len(ds.X_train) + len(ds.X_test) == 1797
        ts = args["test_size"]
        assert len(ds.X_test) == (ts if isinstance(ts, int) else math.ceil(ts * 1797))
        assert ds.X_train.shape[1] == ds.X_test.shape[1] == 64
        assert_finite(ds.X_train, ds.X_test)
        assert 0 <= ds.X_train.min() and ds.X_train.max() <= 1
        assert set(np.unique(ds.y_train)) == set(range(10))


_COMMON = ({"n_sequences": [1, 3], "rng": [None, 0, 5, np.random.default_rng(1)]},
           {"n_sequences": [0, -1, 2.0, True, None], "rng": [-1, 1.5, True, "a"]})
SEQUENCE_TASKS = {
    "reber": ({"embedded": [True, False]}, {"embedded": [1, "no"]}),
    "adding": ({"length": [2, 5]}, {"length": [1, 0, 3.0]}),
    "temporal_xor": ({"n_pairs": [1, 3]}, {"n_pairs": [0, 2.0]}),
    "parity": ({"length": [1, 4], "target": ["every", "end"]}, {"length": [0, 2.5], "target": ["last", None]}),
    "sine": ({"length": [2, 10], "freq_range": [(0.01, 0.1), (0.2, 0.5)], "noise": [0.0, 0.1]},
             {"length": [1, 0], "freq_range": [(0.5, 0.1), (NAN, 0.1), 0.1, "ab", (0.0, 0.1)], "noise": [-1.0, NAN]}),
    "mackey_glass": ({"length": [2, 8], "tau": [17, 0.1], "washout": [0, 10], "normalise": [True, False]},
                     {"length": [1, 0], "tau": [0.05, 0.0, -1, NAN, "x"], "washout": [-1, 2.5], "normalise": [1]}),
    "copy_memory": ({"T": [1, 4], "n_symbols": [2, 5], "n_copy": [1, 2]},
                    {"T": [0, 2.0], "n_symbols": [1, 0], "n_copy": [0]}),
}


@settings(max_examples=60, **SETTINGS)
@given(data=st.data(), task=st.sampled_from(sorted(SEQUENCE_TASKS)))
def test_sequence_generators_feed_an_elman_net(data, task):
    valid, invalid = SEQUENCE_TASKS[task]
    args, bad = data.draw(arguments({**_COMMON[0], **valid}, {**_COMMON[1], **invalid}))
    n = args.pop("n_sequences")
    ds = check(lambda: getattr(sequences, task)(n, **args), bad if bad != "n_sequences" else ("n_sequences",),
               {"n_sequences": 0, **valid, "rng": 0})
    if ds is None:
        return
    B, T = ds.mask.shape
    assert B == n and T >= 1
    assert ds.X.shape[:2] == (B, T) and ds.Y.shape[:2] == (B, T)
    assert ds.mask.dtype == bool and ds.mask.any(axis=1).all()
    assert_finite(ds.X)
    assert math.isfinite(ds.baseline)
    # What a generator produces, the model accepts.
    n_out = ds.Y.shape[2] if ds.Y.ndim == 3 else int(ds.meta.get("n_classes", ds.X.shape[2]))
    net = rbp.ElmanRNN(ds.X.shape[2], 3, n_out, loss=ds.loss)
    loss, grad = net.loss_and_grad(net.init(0), ds.X, ds.Y, ds.mask)
    assert math.isfinite(loss)
    assert_finite(grad)


# -- hostile arguments, one by one ------------------------------------------------



_NET = rbp.MLP([2, 3, 2], loss="cross_entropy")
_THETA = _NET.init(0)
_X = np.array([[0.5, -1.0], [1.0, 2.0], [0.0, 0.3]])
_Y = np.array([0, 1, 1])
_OP, _ = _operator(2, 3)
_B = np.ones((2, 3))


def _F(x, rows):
    return np.tanh(0.5 * x)


def _fit(**options):
    fit_options = {k[4:]: options.pop(k) for k in list(options) if k.startswith("fit_")}
    net = rbp.MLP([2, 3, 2], loss="cross_entropy")
    return rbp.StaticTrainer(net, **{"epochs": 2, **options}).fit(_X, _Y, **fit_options)


def _not_a_font(tmp_path):
    path = tmp_path / "notafont.ttf"
    path.write_bytes(b"this is not a TrueType file")
    return rbp.data.glyphs("A", fonts=[str(path), "cmr10"], n_test_fonts=1, n_per_font=1)


CONTRACT_CASES = [
    pytest.param(lambda tmp: _NET.loss_and_grad(_THETA.astype(str), _X, _Y), ("theta",), id="theta-str"),
    pytest.param(lambda tmp: _NET.predict(_THETA.astype(object), _X), ("theta",), id="theta-object"),
    pytest.param(lambda tmp: _NET.loss_and_grad(_THETA + 1j, _X, _Y), ("theta",), id="theta-complex"),
    pytest.param(
        lambda tmp: _NET.loss_and_grad(_THETA, [[1.0, 2.0], [3.0]], [0, 1]), ("X",), id="X-ragged"),
    pytest.param(
        lambda tmp: encode_targets(np.array([0, 1 + 1j]), 2, "cross_entropy"), ("Y",), id="Y-complex"),
    pytest.param(
        lambda tmp: encode_targets(np.array([1e20, 0.0, 1.0]), 3, "cross_entropy"), ("Y",), id="Y-huge-label"),
    pytest.param(
        lambda tmp: encode_targets([0, 1], 2.0, "cross_entropy"), ("n_out",), id="encode-n_out-float"),
    pytest.param(
        lambda tmp: rbp.MLP([2, 3], dtype="foo"), ("dtype",), id="MLP-dtype-unknown"),
    pytest.param(
        lambda tmp: rbp.ElmanRNN(2, 3, 1, dtype="foo"), ("dtype",), id="Elman-dtype-unknown"),
    pytest.param(
        lambda tmp: rbp.FixedPointNet(2, 3, 2, init_scale=NAN), ("init_scale",), id="FPN-init_scale-nan"),
    pytest.param(
        lambda tmp: rbp.FixedPointNet(2, 3, 2).predict(rbp.FixedPointNet(2, 3, 2).init(0), np.zeros((0, 2))), ("X",),
        id="FPN-predict-empty-X"),
    pytest.param(
        lambda tmp: rbp.MLP([2, 3, 1], loss="cross_entropy"), ("sizes", "loss", "output", "n_out"),
        id="softmax-with-one-output"),
    pytest.param(
        lambda tmp: rbp.check_grad(_quadratic, np.ones(2), eps=0.0), ("eps",), id="check_grad-eps-zero"),
    pytest.param(
        lambda tmp: rbp.check_grad(lambda x: (float(x @ x), 3 * x), np.ones(5), max_coords=1, n_directions=0),
        ("n_directions",), id="check_grad-no-directions"),
    pytest.param(
        lambda tmp: rbp.check_grad(_quadratic, np.ones(2), rtol="a"), ("rtol",), id="check_grad-rtol-str"),
    pytest.param(
        lambda tmp: rbp.check_grad(_quadratic, np.array([1.0, NAN])), ("theta",), id="check_grad-theta-nan"),
    pytest.param(
        lambda tmp: solve(_OP, _B, method="gmres", maxiter=0), ("maxiter",), id="solve-gmres-maxiter-0"),
    pytest.param(
        lambda tmp: solve(_OP, np.full((2, 3), INF), method="gmres"), ("b",), id="solve-b-inf"),
    pytest.param(
        lambda tmp: solve(_OP, _B, method="bicgstab", rtol=-1.0), ("rtol",), id="solve-rtol-negative"),
    pytest.param(
        lambda tmp: solve(_OP, _B, method="neumann", x0=np.ones(4)), ("x0",), id="solve-x0-shape"),
    pytest.param(
        lambda tmp: relax(_F, np.zeros(3)), ("x0",), id="relax-x0-1d"),
    pytest.param(lambda tmp: relax(_F, np.zeros((0, 3))), ("x0",), id="relax-x0-empty-batch"),
    pytest.param(lambda tmp: relax(_F, np.full((2, 3), NAN), method="ode"), ("x0",), id="relax-x0-nan"),
    pytest.param(
        lambda tmp: relax(_F, np.zeros((2, 3)), tol="a"), ("tol",), id="relax-tol-str"),
    pytest.param(
        lambda tmp: _fit(min_delta="a"), ("min_delta",), id="Trainer-min_delta-str"),
    pytest.param(
        lambda tmp: _fit(on_divergence="halve", max_retries=-1, learning_rate=0.1), ("max_retries",),
        id="Trainer-max_retries-negative"),
    pytest.param(
        lambda tmp: _fit(callback=5), ("callback",), id="Trainer-callback-not-callable"),
    pytest.param(
        lambda tmp: _fit(clip_norm="a"), ("clip_norm",), id="Trainer-clip_norm-str"),
    pytest.param(
        lambda tmp: _fit(weight_decay=INF), ("weight_decay",), id="Trainer-weight_decay-inf"),
    pytest.param(
        lambda tmp: _fit(optimizer_options=[1]), ("optimizer_options",), id="Trainer-optimizer_options-list"),
    pytest.param(
        lambda tmp: _fit(fit_checkpoint=tmp / "ck.npz", fit_checkpoint_every=0), ("checkpoint_every",),
        id="Trainer-checkpoint_every-zero"),
    pytest.param(
        lambda tmp: _fit(fit_rng=-1), ("rng",), id="rng-negative-seed"),
    pytest.param(
        lambda tmp: rbp.data.digits(test_size=0.999), ("test_size",), id="digits-test_size-0.999"),
    pytest.param(
        lambda tmp: rbp.data.digits(test_size=1787.4 / 1797), ("test_size",), id="digits-test_size-rounding"),
    pytest.param(
        _not_a_font, ("fonts",), id="glyphs-font-file-not-a-font"),
]


@pytest.mark.parametrize("call, names", CONTRACT_CASES)
def test_hostile_arguments_are_refused_by_name(tmp_path, call, names):
    """Each of these must raise a ValueError naming the argument (regressions for what the property tests
    found)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        with time_limit(20):
            with pytest.raises(ValueError) as info:
                call(tmp_path)
    assert not isinstance(info.value, np.linalg.LinAlgError)
    assert names_argument(str(info.value), names), str(info.value)


def test_public_names():
    """DESIGN.md: rbp.MLP, rbp.FixedPointNet, rbp.ElmanRNN, rbp.StaticTrainer, rbp.RecurrentTrainer,
    rbp.check_grad, rbp.data."""
    from rbp.recurrent.elman import ElmanRNN

    assert rbp.ElmanRNN is ElmanRNN
    for name in ("MLP", "FixedPointNet", "ElmanRNN", "StaticTrainer", "RecurrentTrainer", "check_grad", "data"):
        assert name in rbp.__all__ and hasattr(rbp, name)


@pytest.mark.parametrize("call, match", [
    (lambda: relax(_F, np.zeros((2, 3)), method="ode", damping=0.5), r"method='ode' takes the options.*damping"),
    (lambda: relax(_F, np.zeros((2, 3)), method="picard", memory=3), r"method='picard' takes the options.*memory"),
    (lambda: solve(_operator(2, 3)[0], np.ones((2, 3)), method="direct", restart=5),
     r"method='direct' takes the options \[\], got unknown \['restart'\]"),
])
def test_options_a_method_does_not_take_are_refused_not_ignored(call, match):
    with pytest.raises(ValueError, match=match):
        call()
