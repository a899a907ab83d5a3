"""Extension points: a solver, a forward method, an optimizer, an activation and a loss written
here, in test code, are registered by name and then used by FixedPointNet and Trainer without
touching rbp's source."""

import warnings
from typing import NamedTuple

import numpy as np
import pytest

import rbp
from rbp.core import activations, fixedpoint, linsolve, losses, optimizers
from rbp.core.results import Result


@pytest.fixture
def registered():
    """Remove whatever a test registers, so tests stay independent."""
    added = []
    yield added
    for registry, name in added:
        if name in registry:
            registry.unregister(name)


def _toy_solver_calls():
    calls = []

    def richardson(op, b, *, rtol, atol, maxiter, x0, step=0.9):
        """Damped Richardson iteration written from scratch: x <- x + step (b - A x)."""
        calls.append(op.shape)
        x = np.zeros_like(b) if x0 is None else x0.copy()
        for k in range(maxiter or 2000):
            r = b - op.matvec(x)
            if np.linalg.norm(r) <= max(rtol * np.linalg.norm(b), atol):
                break
            x = x + step * r
        return Result(x=x, nit=k)

    return richardson, calls


def test_a_registered_linear_solver_is_used_by_fixedpointnet(registered):
    solver, calls = _toy_solver_calls()
    linsolve.register_linear_solver("toy-richardson", solver)
    registered.append((linsolve.LINEAR_SOLVERS, "toy-richardson"))
    gen = np.random.default_rng(0)
    X, y = gen.normal(size=(6, 3)), gen.integers(2, size=6)
    net = rbp.FixedPointNet(3, 5, 2, loss="cross_entropy", backward="toy-richardson", tol=1e-12, backward_tol=1e-12,
                            contraction=0.5)
    ref = rbp.FixedPointNet(3, 5, 2, loss="cross_entropy", backward="direct", tol=1e-12, contraction=0.5)
    theta = net.init(gen)
    loss, grad, info = net.loss_grad_info(theta, X, y)
    assert calls and info["adjoint"].method == "toy-richardson" and info["adjoint"].success
    np.testing.assert_allclose(grad, ref.loss_and_grad(theta, X, y)[1], rtol=1e-8, atol=1e-12)
    assert rbp.check_grad(net.loss_and_grad, theta, (X, y), rtol=1e-6).success
    # its own option is passed through the backward options, an unknown one refused
    assert linsolve.method_options("toy-richardson") == ("step",)
    with pytest.raises(ValueError, match="takes the options"):
        linsolve.solve(linsolve.BatchedOperator(lambda V: V, (1, 2)), np.ones((1, 2)), method="toy-richardson",
                       damping=0.5)


def test_registration_refuses_a_bad_signature_and_a_taken_name(registered):
    with pytest.raises(ValueError, match="signature"):
        linsolve.register_linear_solver("bad", lambda op, b: None)
    with pytest.raises(ValueError, match="already registered"):
        linsolve.register_linear_solver("gmres", _toy_solver_calls()[0])
    with pytest.raises(ValueError, match=r"backward.*'toy-nothing'"):
        rbp.FixedPointNet(3, 5, 2, backward="toy-nothing")


def test_a_registered_forward_method_is_used_by_fixedpointnet(registered):
    used = []

    @fixedpoint.register_forward_method("toy-halfstep")
    def halfstep(F, x0, *, tol, max_iter):
        x, rows = x0.copy(), np.arange(len(x0))
        for k in range(max_iter):
            fx = F(x, rows)
            if np.max(np.linalg.norm(fx - x, axis=1)) <= tol * 1e-2:
                break
            x = 0.5 * x + 0.5 * fx
        used.append(k)
        return Result(x=x, nit=k + 1)

    registered.append((fixedpoint.FORWARD_METHODS, "toy-halfstep"))
    gen = np.random.default_rng(1)
    X, y = gen.normal(size=(5, 3)), gen.integers(2, size=5)
    net = rbp.FixedPointNet(3, 4, 2, loss="cross_entropy", forward="toy-halfstep", backward="direct", tol=1e-11,
                            max_iter=2000, contraction=0.5)
    theta = net.init(gen)
    _, grad, info = net.loss_grad_info(theta, X, y)
    assert used and info["forward"].method == "toy-halfstep" and info["forward"].success
    assert rbp.check_grad(net.loss_and_grad, theta, (X, y), rtol=1e-6).success
    result = rbp.RecurrentTrainer(net, epochs=2, batch_size=5).fit(X, y, rng=0)
    assert result.success and result.history["forward_iterations"][0] > 1


class SignState(NamedTuple):
    count: int


def test_a_registered_optimizer_is_used_by_name_by_trainer_and_checkpoints(registered, tmp_path):
    @optimizers.register_optimizer("toy-signsgd")
    def signsgd(learning_rate=0.01):
        def init(theta):
            return SignState(0)

        def update(grad, state, theta=None):
            return -learning_rate * np.sign(grad), SignState(state.count + 1)

        return optimizers.Optimizer(init, update, "toy-signsgd")

    registered.append((optimizers.OPTIMIZERS, "toy-signsgd"))
    gen = np.random.default_rng(2)
    X, y = gen.normal(size=(40, 2)), gen.integers(2, size=40)
    net = rbp.MLP([2, 4, 2], loss="cross_entropy")
    trainer = rbp.Trainer(net, "toy-signsgd", learning_rate=0.01, epochs=4)
    whole = trainer.fit(X, y, rng=0)
    theta0 = net.init(np.random.default_rng(0))
    assert whole.success and not np.array_equal(whole.x, theta0)
    ckpt = tmp_path / "sign.npz"
    rbp.Trainer(net, "toy-signsgd", learning_rate=0.01, epochs=2).fit(X, y, rng=0, checkpoint=ckpt)
    resumed = trainer.fit(X, y, rng=0, checkpoint=ckpt, resume=True)
    assert np.array_equal(resumed.x, whole.x)
    with pytest.raises(ValueError, match=r"optimizer.*'toy-signsdg'.*did you mean 'toy-signsgd'"):
        rbp.Trainer(net, "toy-signsdg")


def test_a_registered_activation_and_loss_work_in_every_model(registered):
    activations.register_activation("toy-softsign", lambda a: a / (1 + np.abs(a)),
                                    lambda a, y: 1 / (1 + np.abs(a)) ** 2, 1.0)
    registered.append((activations.ACTIVATIONS, "toy-softsign"))

    def huber(a, T, output):
        r = a - T
        small = np.abs(r) <= 1
        per = np.where(small, 0.5 * r * r, np.abs(r) - 0.5)
        return per.sum(axis=-1), np.where(small, r, np.sign(r))

    losses.register_loss("toy-huber", huber)
    registered.append((losses.LOSSES, "toy-huber"))
    gen = np.random.default_rng(3)
    X, Y = gen.normal(size=(7, 3)), 2 * gen.normal(size=(7, 2))
    for net in (rbp.MLP([3, 5, 2], hidden="toy-softsign", loss="toy-huber"),
                rbp.FixedPointNet(3, 4, 2, "toy-softsign", loss="toy-huber", tol=1e-12, backward="direct"),
                rbp.ElmanRNN(3, 4, 2, "toy-softsign", loss="toy-huber")):
        theta = net.init(gen)
        data = (X, Y) if not isinstance(net, rbp.ElmanRNN) else (X[:, None, :].repeat(3, 1), Y[:, None].repeat(3, 1))
        assert rbp.check_grad(net.loss_and_grad, theta, data, rtol=1e-6).success
    # a squared loss may follow the new activation as its output layer
    rbp.MLP([3, 5, 2], output="toy-softsign", loss="squared")


def test_training_reports_failures_once_at_the_users_line():
    gen = np.random.default_rng(4)
    X, y = gen.normal(size=(32, 3)), gen.integers(2, size=32)
    net = rbp.FixedPointNet(3, 6, 2, loss="cross_entropy", forward="picard", max_iter=2, tol=1e-12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rbp.RecurrentTrainer(net, epochs=2, batch_size=8, validation_fraction=0.25).fit(X, y, rng=0)
    convergence = [w for w in caught if issubclass(w.category, rbp.ConvergenceWarning)]
    assert len(convergence) == 1 and convergence[0].filename == __file__
    assert "evaluated sample(s) did not reach their fixed point" in str(convergence[0].message)


def test_a_checkpoint_that_is_a_directory_is_refused_before_any_epoch(tmp_path):
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    net = rbp.MLP([2, 3, 2], loss="cross_entropy")
    with pytest.raises(ValueError, match="checkpoint must be a file path.*directory"):
        rbp.Trainer(net, epochs=1).fit(X, y, checkpoint=tmp_path)
