"""rbp.StaticTrainer: XOR through SciPy, bit-identical reproducibility, input
validation before any training, weight decay, and the digits accuracy."""

import warnings

import numpy as np
import pytest

from rbp import MLP, StaticTrainer
from rbp.core.loop import Trainer
from rbp.core.results import ConvergenceWarning, Status


@pytest.fixture(autouse=True)
def _single_threaded_blas():
    # These nets are small: multi-threaded OpenBLAS only adds synchronisation,
    # and on a busy machine its spinning threads make L-BFGS-B ~100x and the
    # digits run ~3x slower. Results are identical either way (measured).
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, just run
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0, 1, 1, 0])


class CountingModel:
    """Delegates to a model and counts loss_grad_info calls (training work)."""

    def __init__(self, model):
        self._model = model
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def loss_grad_info(self, *args, **kwargs):
        self.calls += 1
        return self._model.loss_grad_info(*args, **kwargs)

    def loss_and_grad(self, *args, **kwargs):
        self.calls += 1
        return self._model.loss_and_grad(*args, **kwargs)


def _blobs(n=40, seed=0):
    gen = np.random.default_rng(seed)
    X = gen.normal(size=(n, 2))
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)
    return X, y


# -- XOR through scipy ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_lbfgs_trains_xor_to_full_accuracy(seed):
    net = MLP([2, 4, 2], hidden="tanh", loss="cross_entropy")
    res = StaticTrainer(net, "L-BFGS-B", epochs=200).fit(XOR_X, XOR_Y, rng=seed)
    assert res.success and res.status == Status.SUCCESS, res.message
    assert net.score(res.x, XOR_X, XOR_Y) == 1.0
    np.testing.assert_array_equal(net.predict_classes(res.x, XOR_X), XOR_Y)
    assert len(res.history["loss"]) == res.nit
    assert res.history["loss"][-1] < 0.1 < res.history["loss"][0]


def test_scipy_objective_includes_weight_decay():
    # at BFGS's solution, the gradient of loss + wd/2 ||W||^2 (biases excluded) vanishes
    net = MLP([2, 4, 2], hidden="tanh", loss="cross_entropy")
    wd = 1e-2
    res = StaticTrainer(net, "BFGS", epochs=500, weight_decay=wd).fit(XOR_X, XOR_Y, rng=0)
    assert res.success, res.message
    _, g = net.loss_and_grad(res.x, XOR_X, XOR_Y)
    penalised = g + wd * net.params.decay_mask() * res.x
    assert np.linalg.norm(penalised) < 1e-4
    assert np.linalg.norm(g) > 1e-3  # the penalty really is part of the objective


class NaNAfter(CountingModel):
    """Returns a NaN loss from the k-th evaluation on (the gradient stays finite)."""

    def __init__(self, model, k):
        super().__init__(model)
        self.k = k

    def loss_grad_info(self, *args, **kwargs):
        loss, grad, info = super().loss_grad_info(*args, **kwargs)
        return (float("nan") if self.calls >= self.k else loss), grad, info


@pytest.mark.parametrize("method", ["L-BFGS-B", "CG", "BFGS"])
def test_scipy_path_reports_nan_loss_as_diverged(method):
    X, y = _blobs()
    model = NaNAfter(MLP([2, 4, 2], loss="cross_entropy"), k=6)
    with pytest.warns(ConvergenceWarning):
        res = StaticTrainer(model, method, epochs=50).fit(X, y, rng=0)
    assert res.status == Status.DIVERGED and not res.success
    assert np.all(np.isfinite(res.x))


def test_scipy_path_warns_when_maxiter_is_reached():
    X, y = _blobs()
    net = MLP([2, 6, 2], loss="cross_entropy")
    with pytest.warns(ConvergenceWarning):
        res = StaticTrainer(net, "L-BFGS-B", epochs=3).fit(X, y, rng=0)
    assert res.status == Status.MAX_ITER and not res.success


def test_scipy_callback_x_is_a_snapshot():
    X, y = _blobs()
    xs = []
    with pytest.warns(ConvergenceWarning, match="ITERATIONS REACHED LIMIT"):
        StaticTrainer(
            MLP([2, 4, 2], loss="cross_entropy"), "L-BFGS-B", epochs=5, callback=lambda r: xs.append(r.x)
        ).fit(X, y, rng=0)
    assert len(xs) == 5
    assert not np.array_equal(xs[0], xs[-1])


@pytest.mark.filterwarnings("ignore::rbp.core.results.ConvergenceWarning")  # 5 iterations: maxiter
def test_scipy_history_has_the_loop_columns():
    X, y = _blobs()
    net = MLP([2, 4, 2], loss="cross_entropy")
    res = StaticTrainer(net, "L-BFGS-B", epochs=5).fit(X, y, rng=0)
    assert res.nit == 5
    for key in ("epoch", "loss", "accuracy", "grad_norm", "seconds", "time"):
        assert len(res.history.get(key, [])) == res.nit, key


@pytest.mark.filterwarnings("ignore::rbp.core.results.ConvergenceWarning")  # 3 iterations: maxiter
@pytest.mark.parametrize("optimizer", ["adam", "L-BFGS-B"])
def test_fit_does_not_modify_the_given_theta(optimizer):
    X, y = _blobs()
    net = MLP([2, 4, 2], loss="cross_entropy")
    theta0 = net.init(0)
    before = theta0.copy()
    res = StaticTrainer(net, optimizer, epochs=3).fit(X, y, rng=0, theta=theta0)
    np.testing.assert_array_equal(theta0, before)
    assert not np.array_equal(res.x, theta0)


# -- reproducibility --------------------------------------------------------------------------------

CONFIGS = {
    "adam-minibatch": dict(optimizer="adam", batch_size=8, epochs=5),
    "adam-online": dict(optimizer="adam", batch_size=1, epochs=3),
    "adam-fullbatch": dict(optimizer="adam", batch_size=None, epochs=10),
    "momentum-validation": dict(optimizer="momentum", batch_size=8, epochs=4, validation_fraction=0.2),
    "lbfgs": dict(optimizer="L-BFGS-B", epochs=30),
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_same_rng_gives_bit_identical_weights(config):
    X, y = _blobs()
    kwargs = dict(CONFIGS[config])
    optimizer = kwargs.pop("optimizer")

    def train(rng):
        net = MLP([2, 6, 2], hidden="tanh", loss="cross_entropy")
        with warnings.catch_warnings():
            # 30 L-BFGS-B iterations stop at maxiter; that is not what is tested here
            warnings.simplefilter("ignore", ConvergenceWarning)
            return StaticTrainer(net, optimizer, **kwargs).fit(X, y, rng=rng).x

    a = train(np.random.default_rng(11))
    b = train(np.random.default_rng(11))
    assert np.array_equal(a, b)
    assert np.array_equal(a, train(11))  # an int seed is default_rng of it
    assert not np.array_equal(a, train(np.random.default_rng(12)))


# -- defaults and weight decay ---------------------------------------------------------------------


def test_static_trainer_defaults_are_the_documented_ones():
    X, y = _blobs(20)
    net = MLP([2, 5, 2], loss="cross_entropy")
    tr = StaticTrainer(net)
    assert (tr.epochs, tr.batch_size, tr.weight_decay) == (60, 32, 1e-4)
    explicit = Trainer(net, "adam", learning_rate=2e-3, epochs=60, batch_size=32, weight_decay=1e-4)
    np.testing.assert_array_equal(tr.fit(X, y, rng=3).x, explicit.fit(X, y, rng=3).x)


def test_weight_decay_applies_to_weights_not_biases():
    X, y = _blobs(20)
    net = MLP([2, 5, 2], loss="cross_entropy")
    theta0 = net.init(0) + 0.1
    lr, wd = 0.1, 0.5
    res = StaticTrainer(net, "sgd", learning_rate=lr, weight_decay=wd, epochs=1, batch_size=None).fit(
        X, y, rng=0, theta=theta0
    )
    _, g = net.loss_and_grad(theta0, X, y)
    mask = net.params.decay_mask()
    np.testing.assert_allclose(res.x, theta0 - lr * (g + wd * mask * theta0), rtol=1e-12, atol=1e-15)
    assert mask.sum() == 2 * 5 + 5 * 2 and mask.size == net.n_params


def test_rprop_learning_rate_is_its_initial_step():
    X, y = _blobs(20)
    net = MLP([2, 5, 2], loss="cross_entropy")
    theta0 = net.init(0)
    res = StaticTrainer(net, "rprop", learning_rate=0.03, weight_decay=0, epochs=1, batch_size=None).fit(
        X, y, rng=0, theta=theta0
    )
    _, g = net.loss_and_grad(theta0, X, y)
    np.testing.assert_allclose(res.x - theta0, -0.03 * np.sign(g), atol=1e-15)


# -- bad input: ValueError naming the argument, before any training -------------------------------------


def _valid():
    gen = np.random.default_rng(0)
    return gen.normal(size=(4, 2)), np.array([0, 1, 2, 1])


def _with(array, index, value):
    array = np.array(array, dtype=float)
    array[index] = value
    return array


X0, Y0 = _valid()
N_PARAMS = 2 * 3 + 3 + 3 * 3 + 3  # MLP([2, 3, 3])

BAD_FIT_INPUTS = {
    "X-features": (dict(X=np.zeros((4, 3))), r"X must have 2 features \(last axis\), got shape \(4, 3\)"),
    "X-1d": (dict(X=np.zeros(8)), r"X must be a 2-D array of shape \(n_samples, n_features\), got shape \(8,\)"),
    "X-3d": (dict(X=np.zeros((4, 2, 1))), r"X must be a 2-D array .*got shape \(4, 2, 1\)"),
    "X-nan": (dict(X=_with(X0, (1, 0), np.nan)), r"X must be finite, got nan at index \(1, 0\)"),
    "X-inf": (dict(X=_with(X0, (2, 1), -np.inf)), r"X must be finite, got -inf at index \(2, 1\)"),
    "X-strings": (dict(X=np.full((4, 2), "a")), r"X must be a numeric array, got dtype <U1"),
    "X-empty": (dict(X=np.empty((0, 2)), Y=np.array([], dtype=int)), r"X must contain at least one sample, got 0 rows"),
    "Y-nan-onehot": (dict(Y=_with(np.eye(3)[Y0], (0, 0), np.nan)), r"Y must be finite, got NaN or inf"),
    "Y-nan-label": (dict(Y=_with(Y0, 2, np.nan)), r"Y must hold class indices \(integers\).*got non-integer values such as \[nan\]"),
    "Y-negative": (dict(Y=np.array([0, -1, 2, 1])), r"Y class labels must be in \[0, 2\] for 3 output units, got \[-1\]"),
    "Y-too-large": (dict(Y=np.array([0, 3, 2, 1])), r"Y class labels must be in \[0, 2\] for 3 output units, got \[3\]"),
    "Y-non-integer": (dict(Y=np.array([0, 0.5, 2, 1])), r"Y must hold class indices \(integers\).*got non-integer values such as \[0\.5\]"),
    "Y-short": (dict(Y=np.array([0, 1, 2])), r"Y must have one target per sample of X \(4\), got 3"),
    "Y-wrong-columns": (dict(Y=np.zeros((4, 2))), r"Y must have shape \(n_samples,\) of class indices or \(n_samples, 3\), got shape \(4, 2\)"),
    "theta-length": (dict(theta=np.zeros(5)), rf"theta must be a 1-D array of {N_PARAMS} parameters .*got shape \(5,\)"),
    "theta-2d": (dict(theta=np.zeros((1, N_PARAMS))), rf"theta must be a 1-D array of {N_PARAMS} parameters .*got shape \(1, {N_PARAMS}\)"),
    "theta-nan": (dict(theta=_with(np.zeros(N_PARAMS), 0, np.nan)), r"theta must be finite, got NaN or inf"),
    "rng-RandomState": (dict(rng=np.random.RandomState(0)), r"rng must be a numpy.random.Generator or an int seed .*got RandomState"),
    "rng-float": (dict(rng=0.5), r"rng must be a numpy.random.Generator or an int seed .*got float"),
    "rng-None": (dict(rng=None), r"rng must be a numpy.random.Generator or an int seed .*got NoneType"),
}


@pytest.mark.parametrize("optimizer", ["adam", "L-BFGS-B"])
@pytest.mark.parametrize("case", sorted(BAD_FIT_INPUTS))
def test_bad_fit_input_raises_before_training(case, optimizer):
    changes, pattern = BAD_FIT_INPUTS[case]
    args = dict(X=X0, Y=Y0, rng=0)
    args.update(changes)
    model = CountingModel(MLP([2, 3, 3], loss="cross_entropy"))
    epochs_seen = []
    trainer = StaticTrainer(model, optimizer, epochs=3, callback=epochs_seen.append)
    X, Y = args.pop("X"), args.pop("Y")
    with pytest.raises(ValueError, match=pattern):
        trainer.fit(X, Y, **args)
    assert model.calls == 0 and epochs_seen == []


def test_counting_model_does_count():
    # the zero above is meaningful: a valid fit goes through the same wrapper
    model = CountingModel(MLP([2, 3, 3], loss="cross_entropy"))
    for optimizer in ("adam", "L-BFGS-B"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # 2 L-BFGS-B iterations miss the tolerance
            StaticTrainer(model, optimizer, epochs=2).fit(X0, Y0, rng=0)
    assert model.calls > 2


def test_validation_fraction_that_leaves_no_training_data():
    model = CountingModel(MLP([2, 3, 3], loss="cross_entropy"))
    with pytest.raises(ValueError, match=r"validation_fraction=0\.9 leaves no training samples out of 2"):
        StaticTrainer(model, validation_fraction=0.9).fit(X0[:2], Y0[:2], rng=0)
    assert model.calls == 0


BAD_CONFIG = {
    "optimizer-name": (dict(optimizer="adma"), r"optimizer must be one of \[.*\], got 'adma'; did you mean 'adam'\?"),
    "optimizer-option": (
        dict(optimizer="adam", optimizer_options={"learnig_rate": 0.1}),
        r"optimizer 'adam' accepts \[.*\], got unknown \['learnig_rate'\]; did you mean 'learning_rate'\?",
    ),
    "optimizer-option-foreign": (
        dict(optimizer="adam", optimizer_options={"beta": 0.9}),
        r"optimizer 'adam' accepts \[.*\], got unknown \['beta'\]",
    ),
    "scipy-learning-rate": (
        dict(optimizer="L-BFGS-B", learning_rate=0.1),
        r"optimizer='L-BFGS-B' is a SciPy method: it takes no learning_rate",
    ),
    "learning-rate": (dict(learning_rate=-0.1), r"learning_rate must be a positive float .*got -0\.1"),
    "epochs-0": (dict(epochs=0), r"epochs must be an integer >= 1, got 0"),
    "epochs-negative": (dict(epochs=-3), r"epochs must be an integer >= 1, got -3"),
    "epochs-float": (dict(epochs=2.5), r"epochs must be an integer >= 1, got 2\.5"),
    "epochs-None": (dict(epochs=None), r"epochs must be an integer >= 1, got None"),
    "batch-0": (dict(batch_size=0), r"batch_size must be a positive integer or None \(full batch\), got 0"),
    "batch-float": (dict(batch_size=1.5), r"batch_size must be a positive integer or None \(full batch\), got 1\.5"),
    "batch-str": (dict(batch_size="32"), r"batch_size must be a positive integer or None \(full batch\), got '32'"),
    "valfrac-0": (dict(validation_fraction=0.0), r"validation_fraction must be in \(0, 1\) or None, got 0\.0"),
    "valfrac-1": (dict(validation_fraction=1), r"validation_fraction must be in \(0, 1\) or None, got 1"),
    "valfrac-big": (dict(validation_fraction=1.5), r"validation_fraction must be in \(0, 1\) or None, got 1\.5"),
    "valfrac-negative": (dict(validation_fraction=-0.1), r"validation_fraction must be in \(0, 1\) or None, got -0\.1"),
    "early-stopping": (dict(early_stopping=0), r"early_stopping must be a positive integer \(patience\) or None, got 0"),
    "weight-decay": (dict(weight_decay=-1.0), r"weight_decay must be a finite number >= 0, got -1\.0"),
    "clip-norm": (dict(clip_norm=0.0), r"clip_norm must be a positive finite number, got 0\.0"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIG))
def test_bad_configuration_raises_at_construction(case):
    kwargs, pattern = BAD_CONFIG[case]
    kwargs = dict(kwargs)
    optimizer = kwargs.pop("optimizer", "adam")
    with pytest.raises(ValueError, match=pattern):
        StaticTrainer(MLP([2, 3, 3], loss="cross_entropy"), optimizer, **kwargs)


def test_unknown_optimizer_suggests_scipy_methods_too():
    with pytest.raises(ValueError, match=r"optimizer must be one of \[.*'L-BFGS-B'.*\].*got 'lbfgs'; did you mean 'L-BFGS-B'\?"):
        StaticTrainer(MLP([2, 3, 3], loss="cross_entropy"), "lbfgs")


@pytest.mark.parametrize(
    "kwargs", [dict(early_stopping=5), dict(clip_norm=1.0), dict(batch_size=8)], ids=lambda k: next(iter(k))
)
def test_scipy_method_rejects_options_it_would_ignore(kwargs):
    # full-batch SciPy training has no patience, clipping or batches: accepting
    # them would silently ignore them
    (name, value), = kwargs.items()
    with pytest.raises(ValueError, match=rf"{name}={value!r} has no effect with optimizer='L-BFGS-B'"):
        StaticTrainer(MLP([2, 3, 3], loss="cross_entropy"), "L-BFGS-B", **kwargs)


def test_scipy_method_rejects_negative_weight_decay():
    with pytest.raises(ValueError, match=r"weight_decay must be a finite number >= 0, got -1\.0"):
        StaticTrainer(MLP([2, 3, 3], loss="cross_entropy"), "L-BFGS-B", weight_decay=-1.0)


def test_bad_validation_data_is_named_and_raises_before_training():
    model = CountingModel(MLP([2, 3, 3], loss="cross_entropy"))
    with pytest.raises(ValueError, match=r"validation_data: X must have 2 features .*got shape \(4, 3\)"):
        StaticTrainer(model).fit(X0, Y0, rng=0, validation_data=(np.zeros((4, 3)), Y0))
    with pytest.raises(ValueError, match=r"validation_data: Y class labels must be in \[0, 2\].*got \[7\]"):
        StaticTrainer(model).fit(X0, Y0, rng=0, validation_data=(X0, np.array([0, 1, 7, 1])))
    with pytest.raises(ValueError, match=r"validation_data must be a tuple \(X_val, Y_val.*\), got ndarray"):
        StaticTrainer(model).fit(X0, Y0, rng=0, validation_data=X0)
    assert model.calls == 0


# -- digits -----------------------------------------------------------------------------------------------


def _digits_split(seed):
    """The digits, half for testing, stratified: rbp.data.digits when it is
    there, else the same split straight from scikit-learn."""
    try:
        from rbp.data.digits import digits
    except ImportError:  # the data module may not be there yet
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        X_tr, X_te, y_tr, y_te = train_test_split(
            bunch.data / 16.0, bunch.target, test_size=0.5, stratify=bunch.target, random_state=seed
        )
        return X_tr, y_tr, X_te, y_te
    ds = digits(test_size=0.5, rng=seed)
    return ds.X_train, ds.y_train, ds.X_test, ds.y_test


@pytest.mark.slow
def test_default_static_setup_reaches_97_percent_on_digits():
    pytest.importorskip("sklearn")
    accuracies = []
    for seed in range(5):
        X_tr, y_tr, X_te, y_te = _digits_split(seed)
        net = MLP([64, 128, 10], hidden="relu", loss="cross_entropy")
        res = StaticTrainer(net).fit(X_tr, y_tr, rng=seed)
        assert res.success and res.nit == 60
        accuracies.append(net.score(res.x, X_te, y_te))
    # measured: mean ~0.974, min ~0.967 (each seed ~1 s)
    assert np.mean(accuracies) >= 0.97, accuracies
    assert min(accuracies) >= 0.95, accuracies
