"""rbp.MLP: the model contract, parameter layout, predictions, float32,
construction-time validation."""

import numpy as np
import pytest
import scipy.optimize

import rbp
from rbp import MLP
from rbp.core.params import ParamSpec


def _xor():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return X, np.array([0, 1, 1, 0])


# -- parameter layout --------------------------------------------------------------------


def test_param_names_shapes_and_order():
    net = MLP([4, 6, 5, 3])
    assert net.params.names == ("W1", "b1", "W2", "b2", "W3", "b3")
    assert net.params.shapes == {
        "W1": (4, 6), "b1": (6,), "W2": (6, 5), "b2": (5,), "W3": (5, 3), "b3": (3,),
    }
    assert net.n_params == net.params.size == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3
    # laid out in that order in theta
    theta = np.arange(net.n_params, dtype=float)
    p = net.params.unravel(theta)
    assert p["W1"][0, 0] == 0 and p["b1"][0] == 24 and p["W2"][0, 0] == 30 and p["b3"][-1] == net.n_params - 1
    # decay applies to weights only
    mask = net.params.unravel(net.params.decay_mask())
    assert all(np.all(mask[f"W{l}"] == 1) and np.all(mask[f"b{l}"] == 0) for l in (1, 2, 3))


def test_unravel_returns_views_into_theta():
    net = MLP([3, 4, 2])
    theta = net.init(np.random.default_rng(0))
    p = net.params.unravel(theta)
    for name, view in p.items():
        assert np.shares_memory(view, theta), name
    p["W2"][1, 0] = 123.0
    p["b1"][...] = -7.0
    assert theta[net.params.slices["W2"]][1 * 2 + 0] == 123.0
    np.testing.assert_array_equal(theta[net.params.slices["b1"]], -7.0)
    # ravel packs a dict back into a new vector
    again = net.params.ravel({k: v.copy() for k, v in p.items()})
    np.testing.assert_array_equal(again, theta)
    assert not np.shares_memory(again, theta)


def test_paramspec_validation():
    spec = ParamSpec({"W": (2, 3), "b": (3,)})
    with pytest.raises(ValueError, match=r"theta must have shape \(9,\), got \(8,\)"):
        spec.unravel(np.zeros(8))
    with pytest.raises(ValueError, match=r"params\['b'\] must have shape \(3,\), got \(2,\)"):
        spec.ravel({"W": np.zeros((2, 3)), "b": np.zeros(2)})
    with pytest.raises(ValueError, match=r"missing \['b'\], unexpected \['c'\]"):
        spec.ravel({"W": np.zeros((2, 3)), "c": np.zeros(3)})


# -- init ------------------------------------------------------------------------------------


def test_init_is_seeded_and_biases_start_at_zero():
    net = MLP([5, 7, 3], hidden="tanh")
    a = net.init(np.random.default_rng(3))
    np.testing.assert_array_equal(a, net.init(np.random.default_rng(3)))
    np.testing.assert_array_equal(a, net.init(3))
    assert not np.array_equal(a, net.init(np.random.default_rng(4)))
    p = net.params.unravel(a)
    assert np.all(p["b1"] == 0) and np.all(p["b2"] == 0)
    assert np.abs(p["W1"]).max() <= np.sqrt(6 / (5 + 7))  # Glorot-uniform limit
    assert a.dtype == np.float64 and a.shape == (net.n_params,)


def test_relu_init_is_he_normal():
    net = MLP([400, 300, 2], hidden="relu")
    W1 = net.params.unravel(net.init(np.random.default_rng(0)))["W1"]
    assert W1.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)


# -- loss, gradient, contract ------------------------------------------------------------------


def test_loss_matches_an_independent_forward_pass():
    gen = np.random.default_rng(1)
    net = MLP([3, 4, 2], hidden="tanh", output="logistic", loss="squared")
    theta = net.init(gen) + 0.1 * gen.normal(size=net.n_params)
    X, Y = gen.normal(size=(6, 3)), gen.uniform(size=(6, 2))
    p = net.params.unravel(theta)
    out = 1 / (1 + np.exp(-(np.tanh(X @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"])))
    expected = 0.5 * ((out - Y) ** 2).sum() / 6  # the mean over samples of 1/2 sum (y - t)^2
    loss, grad = net.loss_and_grad(theta, X, Y)
    assert isinstance(loss, float)
    assert loss == pytest.approx(expected, rel=1e-13)
    assert grad.shape == theta.shape and grad.dtype == np.float64
    np.testing.assert_allclose(net.predict(theta, X), out, rtol=1e-13)


def test_loss_and_grad_are_means_over_samples():
    gen = np.random.default_rng(2)
    net = MLP([3, 4, 3], loss="cross_entropy")
    theta = net.init(gen)
    X, y = gen.normal(size=(5, 3)), gen.integers(3, size=5)
    l1, g1 = net.loss_and_grad(theta, X, y)
    l2, g2 = net.loss_and_grad(theta, np.vstack([X, X]), np.concatenate([y, y]))
    assert l1 == pytest.approx(l2, rel=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-16)
    # class indices and one-hot rows are the same targets
    l3, g3 = net.loss_and_grad(theta, X, np.eye(3)[y])
    assert l3 == l1
    np.testing.assert_array_equal(g3, g1)


def test_loss_and_grad_does_not_modify_inputs():
    gen = np.random.default_rng(3)
    net = MLP([3, 4, 2], hidden="relu", loss="cross_entropy")
    theta = net.init(gen)
    X, y = gen.normal(size=(5, 3)), gen.integers(2, size=5)
    copies = theta.copy(), X.copy(), y.copy()
    net.loss_and_grad(theta, X, y)
    net.predict(theta, X)
    for a, b in zip((theta, X, y), copies):
        np.testing.assert_array_equal(a, b)


def test_scipy_minimize_trains_the_model_directly():
    # the contract: no adapter between the model and scipy.optimize
    X, y = _xor()
    net = MLP([2, 4, 2], hidden="tanh", loss="cross_entropy")
    theta0 = net.init(np.random.default_rng(0))
    res = scipy.optimize.minimize(net.loss_and_grad, theta0, args=(X, y), jac=True, method="L-BFGS-B")
    assert res.success
    assert res.fun < 1e-3 < net.loss_and_grad(theta0, X, y)[0]
    np.testing.assert_array_equal(net.predict_classes(res.x, X), y)


# -- predictions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss,output,n_out",
    [("cross_entropy", None, 3), ("binary_cross_entropy", None, 1), ("squared", None, 2), ("squared", "tanh", 2)],
)
def test_predict_shapes_and_ranges(loss, output, n_out):
    gen = np.random.default_rng(4)
    net = MLP([3, 5, n_out], loss=loss, output=output)
    theta = net.init(gen)
    X = gen.normal(size=(7, 3))
    Yhat = net.predict(theta, X)
    assert Yhat.shape == (7, n_out)
    if net.output == "softmax":
        np.testing.assert_allclose(Yhat.sum(axis=1), 1.0, rtol=1e-14)
        assert np.all(Yhat > 0)
    elif net.output in ("logistic", "tanh"):
        lo = 0 if net.output == "logistic" else -1
        assert np.all((Yhat > lo) & (Yhat < 1))
    classes = net.predict_classes(theta, X)
    assert classes.shape == (7,) and np.issubdtype(classes.dtype, np.integer)
    if n_out == 1:
        np.testing.assert_array_equal(classes, (Yhat[:, 0] > 0.5).astype(int))
    else:
        np.testing.assert_array_equal(classes, Yhat.argmax(axis=1))


def test_score_is_the_fraction_of_correct_classes():
    gen = np.random.default_rng(5)
    net = MLP([3, 5, 4], loss="cross_entropy")
    theta = net.init(gen)
    X, y = gen.normal(size=(40, 3)), gen.integers(4, size=40)
    assert net.score(theta, X, y) == np.mean(net.predict_classes(theta, X) == y)


def test_score_works_for_squared_error_classifier():
    X, y = _xor()
    net = MLP([2, 3, 2], hidden="logistic", output="logistic", loss="squared")
    theta = net.init(0)
    assert net.score(theta, X, y) == np.mean(net.predict_classes(theta, X) == y)


def test_predict_validates_its_inputs():
    net = MLP([3, 4, 2], loss="cross_entropy")
    theta = net.init(0)
    with pytest.raises(ValueError, match=r"X must have 3 features \(last axis\), got shape \(5, 2\)"):
        net.predict(theta, np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"X must be a 2-D array .*got shape \(3,\)"):
        net.predict(theta, np.zeros(3))
    with pytest.raises(ValueError, match=r"theta must be a 1-D array of 26 parameters .*got shape \(25,\)"):
        net.predict(theta[:-1], np.zeros((5, 3)))
    bad = theta.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match=r"theta must be finite, got NaN or inf"):
        net.predict(bad, np.zeros((5, 3)))


# -- float32 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("hidden", ["tanh", "relu", "logistic"])
@pytest.mark.parametrize("loss", ["cross_entropy", "squared"])
def test_float32_on_request(hidden, loss):
    gen = np.random.default_rng(6)
    n32 = MLP([8, 16, 12, 4], hidden=hidden, loss=loss, dtype=np.float32)
    n64 = MLP([8, 16, 12, 4], hidden=hidden, loss=loss)
    theta32 = n32.init(np.random.default_rng(7))
    assert theta32.dtype == np.float32
    X = gen.normal(size=(32, 8))
    Y = gen.integers(4, size=32) if loss == "cross_entropy" else gen.normal(size=(32, 4))
    loss32, grad32 = n32.loss_and_grad(theta32, X, Y)
    loss64, grad64 = n64.loss_and_grad(theta32.astype(np.float64), X, Y)
    assert grad32.dtype == np.float32 and grad64.dtype == np.float64
    assert n32.predict(theta32, X).dtype == np.float32
    rel = np.linalg.norm(grad32.astype(np.float64) - grad64) / np.linalg.norm(grad64)
    assert rel < 1e-5, rel  # float32 round-off is ~6e-8 per operation
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    # the same seed draws the same weights, rounded
    np.testing.assert_array_equal(theta32, n64.init(np.random.default_rng(7)).astype(np.float32))


def test_float32_training_stays_float32():
    X, y = _xor()
    net = MLP([2, 4, 2], loss="cross_entropy", dtype=np.float32)
    res = rbp.StaticTrainer(net, "adam", learning_rate=0.05, epochs=5, batch_size=2).fit(X, y, rng=0)
    assert res.x.dtype == np.float32


# -- construction-time validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(sizes=[3]), r"sizes must be a sequence of at least two layer widths .*got \[3\]"),
        (dict(sizes=[]), r"sizes must be a sequence of at least two layer widths .*got \[\]"),
        (dict(sizes="23"), r"sizes must be a sequence of at least two layer widths .*got '23'"),
        (dict(sizes=5), r"sizes must be a sequence of at least two layer widths .*got 5"),
        (dict(sizes=[2, 0, 1]), r"sizes\[1\] must be an integer >= 1, got 0"),
        (dict(sizes=[2, -4, 1]), r"sizes\[1\] must be an integer >= 1, got -4"),
        (dict(sizes=[2, 2.5, 1]), r"sizes\[1\] must be an integer >= 1, got 2\.5"),
        (dict(sizes=[2, 3, True]), r"sizes\[2\] must be an integer >= 1, got True"),
        (dict(sizes=[2, 2], hidden="tahn"), r"hidden must be one of \[.*\], got 'tahn'; did you mean 'tanh'\?"),
        (dict(sizes=[2, 2], hidden="softmax"), r"hidden must be one of \[.*\], got 'softmax'"),
        (dict(sizes=[2, 2], loss="cross_entropie"), r"loss must be one of \[.*\], got 'cross_entropie'; did you mean 'cross_entropy'\?"),
        (dict(sizes=[2, 2], output="sofmax", loss="squared"), r"output must be one of \[.*\], got 'sofmax'; did you mean 'softmax'\?"),
        (dict(sizes=[2, 2], output="identity", loss="cross_entropy"), r"output='identity' cannot be used with loss='cross_entropy': expected one of \['softmax'\]"),
        (dict(sizes=[2, 2], output="softmax", loss="binary_cross_entropy"), r"output='softmax' cannot be used with loss='binary_cross_entropy'"),
        (dict(sizes=[2, 2], dtype=np.float16), r"dtype must be float64 or float32, got float16"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        MLP(**kwargs)


def test_repr_names_the_configuration():
    assert repr(MLP([2, 3, 1], loss="binary_cross_entropy")) == (
        "MLP([2, 3, 1], hidden='tanh', output='logistic', loss='binary_cross_entropy')"
    )
