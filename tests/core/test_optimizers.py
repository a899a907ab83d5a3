"""Optimizers: convergence on hard small problems, schedules, purity, validation,
and the scipy.optimize bridge."""

import math

import numpy as np
import pytest

from rbp.core import optimizers as O
from rbp.core.optimizers import Optimizer, get_optimizer, scipy_minimize
from rbp.core.results import Status

# -- test problems -------------------------------------------------------------------

# A rotated quadratic with condition number kappa = L / mu = 100: the minimum
# is x_star, the valley is not aligned with the axes (so Adam's and Rprop's
# per-coordinate scaling cannot precondition it away).
L, MU = 100.0, 1.0
_ROT = np.array([[math.cos(0.5), -math.sin(0.5)], [math.sin(0.5), math.cos(0.5)]])
A_QUAD = _ROT @ np.diag([MU, L]) @ _ROT.T
X_STAR_QUAD = np.array([1.0, -2.0])
X0_QUAD = np.array([-2.0, 3.0])


def quadratic(x):
    d = x - X_STAR_QUAD
    return 0.5 * d @ A_QUAD @ d, A_QUAD @ d


def rosenbrock(x):
    a, b = x
    f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    return f, np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])


X_STAR_ROSEN = np.array([1.0, 1.0])
X0_ROSEN = np.array([-1.2, 1.0])  # the classic start, in the curved valley's far end


def run(opt, fun, x0, steps):
    x = x0.copy()
    state = opt.init(x)
    for _ in range(steps):
        _, g = fun(x)
        step, state = opt.update(g, state, x)
        x = x + step
    return x, state


def test_problems_are_what_they_claim():
    np.testing.assert_allclose(np.linalg.eigvalsh(A_QUAD), [MU, L])
    assert np.linalg.norm(quadratic(X_STAR_QUAD)[1]) == 0
    assert rosenbrock(X_STAR_ROSEN) == (0.0, pytest.approx(np.zeros(2)))
    for fun, x in ((quadratic, X0_QUAD), (rosenbrock, X0_ROSEN)):
        gen = np.random.default_rng(0)
        for _ in range(3):  # the analytic gradients used below are right
            z = x + gen.normal(size=2)
            num = [(fun(z + h)[0] - fun(z - h)[0]) / 2e-6 for h in np.eye(2) * 1e-6]
            np.testing.assert_allclose(fun(z)[1], num, rtol=1e-6)


# Tolerance: ||x - x_star|| <= 1e-4 from a start > 2 away (a 4-5 orders of
# magnitude reduction). On the quadratic that means f - f* <= L/2 * 1e-8; on
# Rosenbrock, points with f ~ 1e-4 still lie ~1e-2 away along the flat curved
# valley, so a method that merely descends without converging fails. The
# hyperparameters are the textbook ones for the problem (sgd: lr = 1/L;
# heavy ball: Polyak's optimal lr, beta; Nesterov: lr = 1/L,
# beta = (sqrt(kappa) - 1)/(sqrt(kappa) + 1)); Adam gets a cosine schedule to
# 0 (with a constant rate it hovers at distance ~lr) and Rprop a step_min
# below the tolerance (its resolution is step_min by design). The step
# budgets are ~2-10x what each method needs here.
_SK = math.sqrt(L / MU)
QUAD_SETUPS = {
    "sgd": (dict(learning_rate=1 / L), 3000),
    "momentum": (dict(learning_rate=4 / (math.sqrt(L) + math.sqrt(MU)) ** 2, beta=((_SK - 1) / (_SK + 1)) ** 2), 500),
    "nesterov": (dict(learning_rate=1 / L, beta=(_SK - 1) / (_SK + 1)), 500),
    "adam": (dict(learning_rate=O.cosine_decay(0.1, 8000)), 8000),
    "rprop": (dict(), 1000),
}
ROSEN_SETUPS = {
    "sgd": (dict(learning_rate=1.5e-3), 30000),
    "momentum": (dict(learning_rate=2e-4, beta=0.9), 20000),
    "nesterov": (dict(learning_rate=2e-4, beta=0.9), 20000),
    "adam": (dict(learning_rate=O.cosine_decay(0.1, 8000)), 8000),
    "rprop": (dict(step_min=1e-10), 20000),
}
TOL = 1e-4


@pytest.mark.parametrize("name", sorted(O.OPTIMIZERS))
def test_optimizer_minimises_ill_conditioned_quadratic(name):
    hyper, steps = QUAD_SETUPS[name]
    x, state = run(get_optimizer(name, **hyper), quadratic, X0_QUAD, steps)
    assert np.linalg.norm(X0_QUAD - X_STAR_QUAD) > 2
    assert np.linalg.norm(x - X_STAR_QUAD) <= TOL, x
    assert state.count == steps


@pytest.mark.parametrize("name", sorted(O.OPTIMIZERS))
def test_optimizer_minimises_rosenbrock(name):
    hyper, steps = ROSEN_SETUPS[name]
    x, _ = run(get_optimizer(name, **hyper), rosenbrock, X0_ROSEN, steps)
    assert np.linalg.norm(x - X_STAR_ROSEN) <= TOL, x


def test_adam_matches_reference_update():
    # Kingma & Ba, Algorithm 1 with the efficient bias correction, written out.
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    gen = np.random.default_rng(0)
    opt = O.adam(lr, b1, b2, eps)
    theta = gen.normal(size=4)
    state = opt.init(theta)
    m = v = np.zeros(4)
    for t in range(1, 6):
        g = gen.normal(size=4)
        step, state = opt.update(g, state, theta)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        expected = -lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(step, expected, rtol=1e-13)


def test_momentum_and_nesterov_match_reference_updates():
    lr, beta = 0.1, 0.8
    gen = np.random.default_rng(1)
    grads = gen.normal(size=(4, 3))
    for nesterov in (False, True):
        opt = O.nesterov(lr, beta) if nesterov else O.momentum(lr, beta)
        state = opt.init(np.zeros(3))
        v = np.zeros(3)
        for g in grads:
            step, state = opt.update(g, state, np.zeros(3))
            v = beta * v + g
            np.testing.assert_allclose(step, -lr * (g + beta * v if nesterov else v), rtol=1e-14)


def test_rprop_sign_flip_halves_step_and_skips_update():
    opt = O.rprop(step_init=0.1, eta_plus=1.2, eta_minus=0.5)
    theta = np.zeros(2)
    state = opt.init(theta)
    s1, state = opt.update(np.array([1.0, -1.0]), state, theta)  # no history: initial size
    np.testing.assert_allclose(s1, [-0.1, 0.1])
    s2, state = opt.update(np.array([2.0, -3.0]), state, theta)  # same signs: grow
    np.testing.assert_allclose(s2, [-0.12, 0.12])
    s3, state = opt.update(np.array([-1.0, -1.0]), state, theta)  # first flips: halve, skip
    np.testing.assert_allclose(s3, [0.0, 0.144])
    np.testing.assert_allclose(state.step_size, [0.06, 0.144])
    s4, state = opt.update(np.array([-1.0, -1.0]), state, theta)  # after a skip: keep size
    np.testing.assert_allclose(s4, [0.06, 0.1728])


# -- schedules -----------------------------------------------------------------------


def test_exponential_decay():
    s = O.exponential_decay(0.1, 0.5, 10)
    assert s(20) == pytest.approx(0.025)
    for k in (0, 1, 7, 10, 33):
        assert s(k) == pytest.approx(0.1 * 0.5 ** (k / 10), rel=1e-15)
    assert O.exponential_decay(2.0, 0.9)(3) == pytest.approx(2.0 * 0.9**3)


def test_inverse_time_decay():
    s = O.inverse_time_decay(1.0, 0.5, 2)
    assert [s(k) for k in (0, 2, 4, 6)] == pytest.approx([1.0, 1 / 1.5, 0.5, 0.4])


def test_step_decay():
    s = O.step_decay(1.0, 0.1, 3)
    assert [s(k) for k in range(8)] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_cosine_decay():
    s = O.cosine_decay(1.0, 10, alpha=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(5) == pytest.approx(0.55)  # halfway: (1 - alpha)/2 + alpha
    assert s(10) == pytest.approx(0.1)
    assert s(25) == pytest.approx(0.1)  # held at the floor after decay_steps
    t = 0.3
    assert s(3) == pytest.approx(0.9 * 0.5 * (1 + math.cos(math.pi * t)) + 0.1)
    assert O.cosine_decay(2.0, 4)(4) == 0.0


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_schedule_is_called_with_the_step_count(name):
    calls = []

    def schedule(count):
        calls.append(count)
        return 0.01

    opt = get_optimizer(name, learning_rate=schedule)
    run(opt, quadratic, X0_QUAD, 5)
    assert calls == [0, 1, 2, 3, 4]


def test_sgd_with_schedule_steps_by_the_scheduled_rate():
    sched = O.step_decay(0.5, 0.1, 2)
    opt = O.sgd(sched)
    state = opt.init(np.zeros(1))
    g = np.array([2.0])
    steps = []
    for _ in range(5):
        step, state = opt.update(g, state, np.zeros(1))
        steps.append(float(step[0]))
    assert steps == pytest.approx([-1.0, -1.0, -0.1, -0.1, -0.01])


# -- weight decay --------------------------------------------------------------------


def test_add_weight_decay_adds_wd_mask_theta():
    theta = np.array([1.0, -2.0, 3.0, 4.0])
    grad = np.array([0.5, 0.5, -0.5, 0.0])
    mask = np.array([1.0, 1.0, 0.0, 1.0])
    opt = O.add_weight_decay(O.sgd(1.0), 0.1, mask)
    step, _ = opt.update(grad, opt.init(theta), theta)
    np.testing.assert_allclose(step, -(grad + 0.1 * mask * theta))
    opt = O.add_weight_decay(O.sgd(1.0), 0.1)  # no mask: every parameter
    step, _ = opt.update(grad, opt.init(theta), theta)
    np.testing.assert_allclose(step, -(grad + 0.1 * theta))
    base = O.sgd(1.0)
    assert O.add_weight_decay(base, 0.0) is base
    with pytest.raises(ValueError, match=r"weight_decay must be a finite number >= 0, got -0\.1"):
        O.add_weight_decay(base, -0.1)
    with pytest.raises(ValueError, match=r"weight_decay must be a finite number >= 0, got nan"):
        O.add_weight_decay(base, float("nan"))


def test_clip_by_global_norm_rescales_only_long_gradients():
    opt = O.clip_by_global_norm(O.sgd(1.0), 1.0)
    theta = np.zeros(2)
    step, _ = opt.update(np.array([3.0, 4.0]), opt.init(theta), theta)
    np.testing.assert_allclose(step, [-0.6, -0.8])
    short = np.array([0.3, -0.4])
    step, _ = opt.update(short, opt.init(theta), theta)
    np.testing.assert_array_equal(step, -short)
    with pytest.raises(ValueError, match=r"clip_norm must be a positive finite number, got 0"):
        O.clip_by_global_norm(O.sgd(), 0)


# -- purity --------------------------------------------------------------------------


def _all_optimizers():
    yield "sgd", O.sgd(0.1)
    yield "momentum", O.momentum(0.1)
    yield "nesterov", O.nesterov(0.1)
    yield "adam", O.adam(0.1)
    yield "rprop", O.rprop()
    yield "adam+wd", O.add_weight_decay(O.adam(0.1), 0.01, np.array([1.0, 0.0, 1.0]))
    yield "momentum+clip", O.clip_by_global_norm(O.momentum(0.1), 0.5)


def _arrays(state):
    return [np.array(f, copy=True) for f in state]


@pytest.mark.parametrize("name,opt", list(_all_optimizers()), ids=[n for n, _ in _all_optimizers()])
def test_update_is_pure(name, opt):
    gen = np.random.default_rng(3)
    theta = gen.normal(size=3)
    state = opt.init(theta)
    # advance a few steps so the state holds non-trivial arrays (and Rprop history)
    for _ in range(3):
        _, state = opt.update(gen.normal(size=3), state, theta)
    grad = gen.normal(size=3)
    theta_c, grad_c, state_c = theta.copy(), grad.copy(), _arrays(state)
    step1, new1 = opt.update(grad, state, theta)
    for a, b in zip(_arrays(state), state_c):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(theta, theta_c)
    np.testing.assert_array_equal(grad, grad_c)
    # the same inputs give the same outputs: no hidden state
    step2, new2 = opt.update(grad, state, theta)
    np.testing.assert_array_equal(step1, step2)
    for a, b in zip(_arrays(new1), _arrays(new2)):
        np.testing.assert_array_equal(a, b)
    # the new state shares no memory with the inputs or the step
    for field in new1:
        if isinstance(field, np.ndarray):
            for other in (theta, grad, step1, *[f for f in state if isinstance(f, np.ndarray)]):
                assert not np.shares_memory(field, other)
    # mutating theta after init does not reach the state
    fresh = opt.init(theta)
    before = _arrays(fresh)
    theta += 1.0
    for a, b in zip(_arrays(fresh), before):
        np.testing.assert_array_equal(a, b)


def test_states_are_documented_namedtuples_with_counts():
    for _, opt in _all_optimizers():
        state = opt.init(np.zeros(3))
        assert hasattr(state, "_fields") and state.count == 0
        _, state = opt.update(np.ones(3), state, np.zeros(3))
        assert state.count == 1


# -- get_optimizer validation ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(O.OPTIMIZERS))
def test_get_optimizer_builds_each(name):
    opt = get_optimizer(name)
    assert isinstance(opt, Optimizer) and opt.name == name


def test_get_optimizer_rejects_unknown_name_with_nearest():
    with pytest.raises(ValueError, match=r"optimizer must be one of \[.*'adam'.*\], got 'adma'; did you mean 'adam'\?"):
        get_optimizer("adma")
    with pytest.raises(ValueError, match=r"optimizer must be one of .*got 'nestrov'; did you mean 'nesterov'\?"):
        get_optimizer("nestrov")


def test_get_optimizer_rejects_unknown_hyperparameter_with_nearest():
    pattern = r"optimizer 'adam' accepts \[.*'learning_rate'.*\], got unknown \['learnig_rate'\]; did you mean 'learning_rate'\?"
    with pytest.raises(ValueError, match=pattern):
        get_optimizer("adam", learnig_rate=0.1)
    with pytest.raises(ValueError, match=r"optimizer 'momentum' accepts .*got unknown \['betta'\]; did you mean 'beta'\?"):
        get_optimizer("momentum", betta=0.9)
    # momentum's nesterov flag is selected by name, not a hyperparameter
    with pytest.raises(ValueError, match=r"got unknown \['nesterov'\]"):
        get_optimizer("momentum", nesterov=True)
    with pytest.raises(ValueError, match=r"optimizer 'rprop' accepts .*got unknown \['learning_rate'\]"):
        get_optimizer("rprop", learning_rate=0.1)
    with pytest.raises(ValueError, match=r"cannot be applied to an Optimizer instance"):
        get_optimizer(O.sgd(), learning_rate=0.1)
    inst = O.sgd()
    assert get_optimizer(inst) is inst


@pytest.mark.parametrize(
    "name,hyper,pattern",
    [
        ("sgd", dict(learning_rate=-0.1), r"learning_rate must be a positive float .*got -0\.1"),
        ("adam", dict(learning_rate=0.0), r"learning_rate must be a positive float .*got 0\.0"),
        ("adam", dict(learning_rate=float("inf")), r"learning_rate must be a positive float .*got inf"),
        ("sgd", dict(learning_rate="0.1"), r"learning_rate must be a positive float .*got '0\.1'"),
        ("momentum", dict(beta=1.0), r"beta must be in \[0, 1\), got 1\.0"),
        ("adam", dict(b2=1.5), r"b2 must be in \[0, 1\), got 1\.5"),
        ("rprop", dict(eta_minus=1.5), r"0 < eta_minus < 1 < eta_plus, got eta_minus=1\.5"),
    ],
)
def test_bad_hyperparameter_values(name, hyper, pattern):
    with pytest.raises(ValueError, match=pattern):
        get_optimizer(name, **hyper)


# -- scipy.optimize bridge ------------------------------------------------------------


@pytest.mark.parametrize("method", ["L-BFGS-B", "CG", "BFGS"])
def test_scipy_minimize_rosenbrock(method):
    res = scipy_minimize(rosenbrock, X0_ROSEN, method=method)
    assert res.success and res.status == Status.SUCCESS
    # L-BFGS-B stops on its default relative reduction of f (factr ~ 1e7 eps),
    # which leaves x about 1e-6 from (1, 1); 1e-4 has margin on every method.
    np.testing.assert_allclose(res.x, X_STAR_ROSEN, atol=1e-4)
    assert len(res.losses) == res.nit > 0
    assert res.losses[-1] == pytest.approx(res.fun)
    assert res.fun < 1e-8
    assert method in res.message


def test_scipy_minimize_reports_max_iter_and_callback():
    res = scipy_minimize(rosenbrock, X0_ROSEN, method="L-BFGS-B", maxiter=5)
    assert not res.success and res.status == Status.MAX_ITER and res.nit == 5

    seen = []

    def stop_at_three(intermediate):
        seen.append(intermediate.fun)
        if len(seen) == 3:
            raise StopIteration

    res = scipy_minimize(rosenbrock, X0_ROSEN, method="BFGS", callback=stop_at_three)
    assert res.status == Status.CALLBACK and res.nit == 3 and len(seen) == 3


def test_scipy_minimize_does_not_modify_theta0_and_rejects_unknown_method():
    x0 = X0_ROSEN.copy()
    scipy_minimize(rosenbrock, x0, method="CG")
    np.testing.assert_array_equal(x0, X0_ROSEN)
    with pytest.raises(ValueError, match=r"method must be one of \[.*\], got 'L-BFGS'; did you mean 'L-BFGS-B'\?"):
        scipy_minimize(rosenbrock, x0, method="L-BFGS")
