"""check_grad: it passes on every MLP configuration and it catches wrong gradients."""

import numpy as np
import pytest

import rbp
from rbp.core import activations, losses
from rbp.core.activations import ACTIVATIONS
from rbp.core.gradcheck import GradientCheckError, check_grad
from rbp.core.losses import LOSSES

RTOL = 1e-7
EPS = 1e-5  # check_grad's default central-difference step
KINK_MARGIN = 1e-4  # relu pre-activations must stay this far from 0


def _target_kinds(loss):
    return {
        "squared": ["real"],
        "cross_entropy": ["indices", "onehot"],
        "binary_cross_entropy": ["binary", "binary2d"],
    }[loss]


# Every (loss, valid output, target kind) triple, from the registries.
CASES = [
    (loss, output, kind)
    for loss in LOSSES
    for output in LOSSES[loss].outputs
    for kind in _target_kinds(loss)
]
HIDDEN_SIZES = {1: [5], 2: [5, 4], 3: [5, 4, 3]}


def _n_out(output, kind):
    if kind == "binary":
        return 1
    return 2 if kind == "binary2d" else 3


def _targets(kind, n, n_out, gen):
    if kind == "real":
        return gen.normal(size=(n, n_out))
    if kind == "indices":
        return gen.integers(n_out, size=n)
    if kind == "onehot":
        return np.eye(n_out)[gen.integers(n_out, size=n)]
    if kind == "binary":
        return gen.integers(0, 2, size=n)
    return gen.integers(0, 2, size=(n, n_out))


def _pre_activations(net, theta, X):
    """Every layer's pre-activation, computed here from the documented params."""
    p = net.params.unravel(theta)
    h, out = X, []
    for l in range(1, net.n_layers + 1):
        a = h @ p[f"W{l}"] + p[f"b{l}"]
        out.append(a)
        h = net.hidden.f(a)
    return out


def _relu_layers(net, output):
    """Indices (into the pre-activation list) of the layers followed by a relu."""
    layers = list(range(net.n_layers - 1)) if net.hidden.name == "relu" else []
    return layers + ([net.n_layers - 1] if output == "relu" else [])


def _well_posed(net, output, theta, X):
    """No relu pre-activation near its kink, and no layer dead for any sample
    (a dead layer zeroes every gradient below it: the check would pass trivially)."""
    pre = _pre_activations(net, theta, X)
    return all(
        np.abs(pre[l]).min() > KINK_MARGIN and np.all((pre[l] > 0).any(axis=1)) for l in _relu_layers(net, output)
    )


def _setup(hidden, loss, output, kind, depth, batch):
    n_out = _n_out(output, kind)
    net = rbp.MLP([3, *HIDDEN_SIZES[depth], n_out], hidden=hidden, output=output, loss=loss)
    # A distinct, fixed seed per configuration (no dependence on hash randomisation);
    # for relu, the first seed whose draw is well posed (deterministic, and asserted).
    key = sum(repr([hidden, loss, output, kind]).encode())
    for attempt in range(20):
        gen = np.random.default_rng([key, depth, batch, attempt])
        # random biases too, and weights off their initial scale a little
        theta = net.init(gen) + 0.3 * gen.normal(size=net.n_params)
        X = gen.normal(size=(batch, 3))
        Y = _targets(kind, batch, n_out, gen)
        if _well_posed(net, output, theta, X):
            return net, theta, X, Y
    raise AssertionError("no well-posed relu configuration in 20 draws")


@pytest.mark.parametrize("batch", [1, 17])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("hidden", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss,output,kind", CASES)
def test_mlp_gradient_passes_check_grad(hidden, loss, output, kind, depth, batch):
    net, theta, X, Y = _setup(hidden, loss, output, kind, depth, batch)
    assert net.n_params <= 200
    relu_layers = _relu_layers(net, output)
    if relu_layers:
        # Central differences straddling a kink would be wrong by O(1): every
        # relu pre-activation must be far from 0, and none may change sign
        # under any of the +-EPS coordinate steps that check_grad takes.
        pre = _pre_activations(net, theta, X)
        closest = min(float(np.abs(pre[l]).min()) for l in relu_layers)
        assert closest > KINK_MARGIN, f"pre-activation {closest:.2e} within {KINK_MARGIN} of the relu kink"
        for i in range(net.n_params):
            for step in (EPS, -EPS):
                moved = theta.copy()
                moved[i] += step
                pre_moved = _pre_activations(net, moved, X)
                for l in relu_layers:
                    assert np.array_equal(pre[l] > 0, pre_moved[l] > 0), f"parameter {i} crosses a relu kink"
    theta_before = theta.copy()
    result = check_grad(net.loss_and_grad, theta, (X, Y), rtol=RTOL)
    assert result.success and result.mode == "coordinates"
    assert result.rel_error < RTOL
    assert result.analytic.shape == (net.n_params,)
    # the check looked at a non-trivial gradient, down to the first layer
    assert np.linalg.norm(net.params.unravel(result.numeric)["W1"]) > 1e-6
    np.testing.assert_array_equal(theta, theta_before)


# -- wrong gradients are caught ---------------------------------------------------------


def _quadratic(n, seed=0):
    gen = np.random.default_rng(seed)
    B = gen.normal(size=(n, n))
    A = B @ B.T / n + np.eye(n)
    c = gen.normal(size=n)

    def f(x):
        return 0.5 * x @ A @ x + c @ x, A @ x + c

    return f, gen.normal(size=n)


def _scaled(fun, factor):
    def wrong(x, *args):
        loss, grad = fun(x, *args)
        return loss, grad * factor

    return wrong


def test_correct_quadratic_passes_and_numeric_is_the_central_difference():
    f, x = _quadratic(6)
    res = check_grad(f, x)
    assert res.success and res.mode == "coordinates" and res.rel_error < 1e-9
    np.testing.assert_allclose(res.numeric, f(x)[1], rtol=1e-8)
    assert "passed" in res.message


@pytest.mark.parametrize("factor", [1.01, 0.999, -1.0])
def test_wrong_gradient_raises_with_analytic_and_numeric(factor):
    f, x = _quadratic(6)
    with pytest.raises(GradientCheckError, match="relative error") as info:
        check_grad(_scaled(f, factor), x)
    msg = str(info.value)
    assert "analytic" in msg and "numeric" in msg
    assert "coordinates" in msg
    assert isinstance(info.value, AssertionError)  # pytest reports it as a failed check


def test_one_wrong_coordinate_is_caught_and_reported_first():
    f, x = _quadratic(6)

    def wrong(z):
        loss, grad = f(z)
        grad = grad.copy()
        grad[4] += 0.05 * np.linalg.norm(grad)
        return loss, grad

    res = check_grad(wrong, x, raise_on_failure=False)
    assert not res.success
    assert np.argmax(np.abs(res.analytic - res.numeric)) == 4
    # the worst entry is listed first in the message
    assert res.message.splitlines()[1].strip().startswith("index      4")


def test_random_direction_mode_passes_correct_and_catches_wrong():
    f, x = _quadratic(50)
    ok = check_grad(f, x, max_coords=10, n_directions=8)
    assert ok.success and ok.mode == "directions"
    assert ok.analytic.shape == (8,) and ok.numeric.shape == (8,)
    with pytest.raises(GradientCheckError) as info:
        check_grad(_scaled(f, 1.01), x, max_coords=10, n_directions=8)
    msg = str(info.value)
    assert "analytic" in msg and "numeric" in msg and "directions" in msg


def test_random_directions_are_drawn_from_rng():
    f, x = _quadratic(30)
    a = check_grad(f, x, max_coords=5, rng=np.random.default_rng(7))
    b = check_grad(f, x, max_coords=5, rng=7)
    c = check_grad(f, x, max_coords=5, rng=8)
    np.testing.assert_array_equal(a.analytic, b.analytic)
    assert not np.array_equal(a.analytic, c.analytic)


def test_raise_on_failure_false_returns_failure():
    f, x = _quadratic(6)
    res = check_grad(_scaled(f, 1.01), x, raise_on_failure=False)
    assert res.success is False
    assert res.rel_error > 1e-3  # about the 1% error put in
    assert "failed" in res.message and "analytic" in res.message and "numeric" in res.message
    res = check_grad(_scaled(f, 1.01), x, max_coords=2, raise_on_failure=False)
    assert res.success is False and res.mode == "directions"


def test_check_grad_rejects_bad_theta_and_bad_gradient_shape():
    f, x = _quadratic(4)
    with pytest.raises(ValueError, match=r"theta must be a 1-D array, got shape \(2, 2\)"):
        check_grad(f, x.reshape(2, 2))
    with pytest.raises(ValueError, match=r"gradient of shape \(4,\), got \(3,\)"):
        check_grad(lambda z: (f(z)[0], f(z)[1][:3]), x)
    with pytest.raises(GradientCheckError, match="non-finite"):
        check_grad(lambda z: (f(z)[0], f(z)[1] * np.nan), x)


# -- a subtly wrong MLP is caught -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_mlp_with_df_off_by_one_percent_is_caught(monkeypatch, name):
    original = ACTIVATIONS[name]

    def df_off(a, y):
        return 1.01 * original.df(a, y)

    monkeypatch.setitem(activations.ACTIVATIONS, name, original._replace(df=df_off))
    net = rbp.MLP([3, 5, 4, 2], hidden=name, loss="cross_entropy")
    gen = np.random.default_rng(11)
    theta = net.init(gen) + 0.3 * gen.normal(size=net.n_params)
    X, y = gen.normal(size=(9, 3)), gen.integers(2, size=9)
    with pytest.raises(GradientCheckError, match="analytic"):
        check_grad(net.loss_and_grad, theta, (X, y))
    # and in random-direction mode
    assert not check_grad(net.loss_and_grad, theta, (X, y), max_coords=10, raise_on_failure=False).success


def test_mlp_with_output_delta_off_by_one_percent_is_caught(monkeypatch):
    import rbp.static.mlp as mlp_module

    def delta_off(*args, **kwargs):
        loss, delta = losses.output_loss(*args, **kwargs)
        return loss, delta * 1.01

    monkeypatch.setattr(mlp_module, "output_loss", delta_off)
    net = rbp.MLP([3, 4, 2], hidden="tanh", loss="squared", output="logistic")
    gen = np.random.default_rng(12)
    theta = net.init(gen)
    X, Y = gen.normal(size=(5, 3)), gen.normal(size=(5, 2))
    res = check_grad(net.loss_and_grad, theta, (X, Y), raise_on_failure=False)
    assert not res.success and 1e-3 < res.rel_error < 0.1
