"""The one training engine that every trainer drives.

:func:`fit` trains any model that keeps the rbp contract on prepared data
(a tuple of arrays indexed along their first axis, from ``model.prepare``)
with any core optimizer, per training tuple (``batch_size=1``: the weights
change after every tuple, as in classic online backprop), per mini-batch, or
per full batch (``batch_size=None``). :class:`Trainer` wraps it with input
validation, the validation split, resume and the divergence policy, and the
scipy.optimize bridge; :func:`rbp.fit_stream` trains on long streams. All of
them share one :class:`~rbp.core.engine.EpochEngine` between epochs: history,
evaluation, early stopping, checkpoints, callbacks, progress, the failure
policy and weight decay.

Models may add to the contract:

``prepare(X, Y, ...) -> tuple of arrays``
    validate once and encode targets (the loop then calls the model unchecked);
``loss_grad_info(theta, *batch, check=False) -> (loss, grad, info)``
    ``info`` is a dict of numbers (solver diagnostics) aggregated per epoch:
    keys starting with ``n_`` are summed, keys ending in ``_max`` take the
    maximum, others are averaged; ``info["failures"]`` lists the solver
    failures (the engine applies the model's ``on_failure`` to them, once per
    run); ``info["skip"]`` true means "do not apply this step" (a skipped
    batch is counted in ``n_skipped``);
``evaluate(theta, *data, on_failure=None) -> dict``
    forward-only metrics (``loss``, ``accuracy``, ``n_unconverged``) for the
    epoch summary;
``project(theta)``
    in-place projection applied after every update (e.g. a contraction
    constraint);
``blas_work(batch) -> float``
    multiply-adds of its largest matrix product (for ``threads="auto"``).
"""

from __future__ import annotations

import math
import os
import time
import warnings

import numpy as np

from .checkpoint import load_checkpoint
from .engine import (
    EpochEngine,
    History,
    Regularizer,
    TrainResult,
    aggregate,
    blas_threads,
    model_work,
    progress_bar,
    thread_limit,
)
from .optimizers import (
    OPTIMIZERS,
    SCIPY_METHODS,
    Optimizer,
    clip_by_global_norm,
    get_optimizer,
    learning_rate_key,
    scipy_minimize,
)
from .results import ConvergenceWarning, DivergenceError, Status
from .validation import as_generator, check_callable, check_choice, check_int, check_real, unknown_name_message

__all__ = ["fit", "progress_bar", "Trainer", "TrainResult", "split_validation", "History", "DivergenceError"]

_aggregate = aggregate  # the name older code imported


def split_validation(data: tuple, fraction: float, rng: np.random.Generator):
    """Split prepared arrays into (train, validation) parts by a random permutation.

    Examples
    --------
    >>> import numpy as np
    >>> train, val = split_validation((np.arange(10), np.arange(10) * 2), 0.2, np.random.default_rng(0))
    >>> len(train[0]), len(val[0]), bool(np.all(val[1] == 2 * val[0]))
    (8, 2, True)
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
    n = len(data[0])
    n_val = max(1, int(round(fraction * n)))
    if n - n_val < 1:
        raise ValueError(f"validation_fraction={fraction} leaves no training samples out of {n}")
    perm = rng.permutation(n)
    val, train = perm[:n_val], perm[n_val:]
    return tuple(a[train] for a in data), tuple(a[val] for a in data)


def fit(
    model,
    theta,
    data: tuple,
    *,
    optimizer: Optimizer,
    epochs: int = 10,
    batch_size: int | None = 32,
    shuffle: bool = True,
    rng=0,
    validation_data: tuple | None = None,
    test_data: tuple | None = None,
    early_stopping: int | None = None,
    min_delta: float = 0.0,
    callback=None,
    optimizer_state=None,
    evaluate_train: bool = True,
    progress: bool | None = None,
    start_epoch: int = 0,
    history: dict | None = None,
    epoch_metrics=None,
    weight_decay: float = 0.0,
    threads="auto",
    checkpoint=None,
    checkpoint_every: int = 1,
    checkpoint_meta: dict | None = None,
    best: tuple | None = None,
) -> TrainResult:
    """Train ``model`` from ``theta`` on prepared ``data``.

    Parameters
    ----------
    model : object keeping the rbp model contract
    theta : ndarray, shape (n_params,)
        Initial parameters (copied, never modified).
    data : tuple of ndarray
        Prepared training arrays, all indexed by sample along axis 0
        (``model.prepare(X, Y)``).
    optimizer : Optimizer
        An ``(init, update)`` pair from :mod:`rbp.core.optimizers`.
    epochs : int
        Passes over the data.
    batch_size : int or None
        1 for online (per-tuple) training, ``None`` for full batch.
    shuffle : bool
        Reshuffle the samples each epoch with ``rng``.
    rng : numpy.random.Generator or int
    validation_data : tuple of ndarray, optional
        Prepared validation arrays; adds ``val_loss`` / ``val_accuracy``.
    test_data : tuple of ndarray, optional
        Prepared test arrays; adds ``test_loss`` / ``test_accuracy`` every
        epoch, for curves only (never used for early stopping or any choice).
    early_stopping : int, optional
        Patience in epochs: stop when the monitored loss (validation loss if
        there is validation data, else training loss) has not improved by
        ``min_delta`` for this many epochs, and restore the best parameters.
    callback : callable ``callback(intermediate_result)``, optional
        Called after every epoch with a :class:`TrainResult` (``x``, ``fun``,
        ``nit``, ``history``); raising ``StopIteration`` ends the run with
        ``status = Status.CALLBACK``.
    optimizer_state : optional
        Resume from this optimizer state instead of ``optimizer.init``.
    evaluate_train : bool
        Report ``accuracy`` on the training data each epoch (one extra forward
        pass); the epoch ``loss`` is the running mean of batch losses either way.
    progress : bool, None or "lines"
        Progress over epochs: a bar on a terminal, and elsewhere a line
        every ten seconds (``None``); always a bar (True), nothing (False),
        or a line per epoch ("lines").
    start_epoch : int
        Epochs already done (when resuming); epochs are numbered from here.
    history : dict of lists, optional
        History of the epochs already done (when resuming).
    epoch_metrics : callable ``(theta) -> dict of float``, optional
        Extra measurements after every epoch (for example test-set loss and
        accuracy, or a spectral radius on a probe batch); they join the
        history, and so the checkpoint: a resumed run keeps them for the
        epochs it does not train again.
    weight_decay : float
        L2 penalty ``weight_decay/2 ||mask theta||^2`` on the model's decayed
        parameters (weights, not biases), added to every gradient.
    threads : "auto", int or None
        BLAS threads while training (:func:`rbp.core.engine.thread_limit`):
        ``"auto"`` uses one thread for products too small to gain from more.
    checkpoint : path-like, optional
        Write a checkpoint (:func:`rbp.core.checkpoint.save_checkpoint`:
        parameters, optimizer state, generator state, epoch, history)
        atomically to this file every ``checkpoint_every`` epochs and at the
        end; resuming from it continues bit-identically (early-stopping
        state included).
    best : tuple (loss, theta, epoch), optional
        Early-stopping state of the epochs already done (when resuming).

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> import numpy as np
    >>> from rbp import MLP
    >>> from rbp.core.optimizers import adam
    >>> net = MLP([2, 8, 2], loss="cross_entropy")
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = np.array([0, 1, 1, 0])
    >>> res = fit(net, net.init(0), net.prepare(X, y), optimizer=adam(0.05), epochs=300, batch_size=None)
    >>> res.nit, net.score(res.x, X, y)
    (300, 1.0)
    """
    gen = as_generator(rng)
    if batch_size is not None:
        check_int(batch_size, "batch_size")
    check_int(epochs, "epochs", minimum=0)
    check_int(checkpoint_every, "checkpoint_every")
    _check_checkpoint_path(checkpoint)
    theta = np.array(theta, copy=True)
    n = len(data[0])
    if n == 0:
        raise ValueError("data must contain at least one sample, got 0")
    bs = n if batch_size is None else int(batch_size)
    regularizer = Regularizer(check_real(weight_decay, "weight_decay", low_inclusive=True),
                              model.params.decay_mask(getattr(model, "dtype", np.float64)))
    state = optimizer.init(theta) if optimizer_state is None else optimizer_state
    engine = EpochEngine(
        model, epochs=epochs, start_epoch=start_epoch, history=history, best=best, data=data,
        validation_data=validation_data, test_data=test_data, evaluate_train=evaluate_train, early_stopping=early_stopping,
        min_delta=min_delta, epoch_metrics=epoch_metrics, callback=callback, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every, checkpoint_meta=checkpoint_meta, optimizer_name=optimizer.name, rng=gen,
        progress=progress,
    )
    online = _online_path(model) if bs == 1 else None
    with blas_threads(thread_limit(threads, model_work(model, bs))):
        try:
            for _ in range(epochs):
                if online is not None:
                    theta, state, row = _online_epoch(online, model, theta, state, data, optimizer, regularizer,
                                                      gen, shuffle, engine)
                else:
                    theta, state, row = _minibatch_epoch(model, theta, state, data, optimizer.update, regularizer,
                                                         gen, bs, shuffle, engine)
                if row is None or engine.end_epoch(theta, row, state):
                    break
        finally:
            engine.progress.close()
    return engine.finish(theta, state)


def _loss_grad_info(model):
    """The model's ``loss_grad_info``, or one made from ``loss_and_grad`` (no diagnostics)."""
    lgi = getattr(model, "loss_grad_info", None)
    if lgi is not None:
        return lgi

    def lgi(theta, *batch, check=False):
        loss, grad = model.loss_and_grad(theta, *batch)
        return loss, grad, {}

    return lgi


def _minibatch_epoch(model, theta, state, data, update, regularizer, gen, bs, shuffle, engine):
    """One pass over ``data`` in batches of ``bs``: ``(theta, state, row)``, row None when it diverged."""
    lgi = _loss_grad_info(model)
    project = getattr(model, "project", None)
    n = len(data[0])
    t0 = time.perf_counter()
    order = gen.permutation(n) if shuffle else np.arange(n)
    total_loss, grad_sq, n_batches, n_skipped, n_used, infos = 0.0, 0.0, 0, 0, 0, []
    shuffled = [a[order] for a in data]  # one gather per epoch; batches are slices of it
    # Overflow is detected below (non-finite loss, gradient or step) and handled
    # by the divergence policy, whatever the caller's numpy error state.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for start in range(0, n, bs):
            batch = [a[start : start + bs] for a in shuffled]
            m = batch[0].shape[0]
            loss, grad, info = lgi(theta, *batch, check=False)
            if info:
                infos.append(info)
                if engine.note(info):
                    n_skipped += 1
                    continue
            # A sum of squares is finite iff every entry is (entries > ~1e154 overflow it: then look).
            gsq = float(grad @ grad)
            if not (math.isfinite(loss) and (math.isfinite(gsq) or np.all(np.isfinite(grad)))):
                return theta, state, _diverged(engine)
            step, new_state = update(regularizer.grad(theta, grad), state, theta)
            new = (theta + step).astype(theta.dtype, copy=False)
            if not (math.isfinite(float(new @ new)) or np.all(np.isfinite(new))):
                return theta, state, _diverged(engine)
            theta, state = new, new_state
            if project is not None:
                project(theta)
            total_loss += loss * m
            n_used += m
            grad_sq += gsq
            n_batches += 1
    row = {
        "loss": total_loss / n_used if n_used else math.nan,
        "grad_norm": math.sqrt(grad_sq / max(n_batches, 1)),
        "seconds": time.perf_counter() - t0,
        "n_skipped": n_skipped,
    }
    row.update(aggregate(infos))
    return theta, state, row


def _online_path(model):
    """The model's 1-D per-tuple path (``online_loss_grad``), when it computes what ``loss_grad_info`` would.

    A subclass or wrapper that overrides ``loss_grad_info`` (to count, log or
    alter gradients) gets the general path, so its override is honoured.
    """
    cls = type(model)
    owner = next((k for k in cls.__mro__ if "online_loss_grad" in k.__dict__), None)
    if owner is None or getattr(cls, "loss_grad_info", None) is not getattr(owner, "loss_grad_info", None):
        return None
    return model.online_loss_grad


def _online_epoch(online, model, theta, state, data, optimizer, regularizer, gen, shuffle, engine):
    """One pass of per-tuple training on 1-D vectors: the numpy floor's loop plus the engine's checks.

    The gradient is written into one buffer and ``theta`` is updated in place
    (the model's views stay bound), after checking that the new parameters
    are finite (otherwise the last finite ones are kept, as in the general
    path). An optimizer with an in-place ``apply`` (SGD) updates ``theta``
    directly when the gradient norm proves the result finite.
    """
    update = optimizer.update
    apply = getattr(optimizer, "apply", None) if not regularizer else None
    n = len(data[0])
    t0 = time.perf_counter()
    order = gen.permutation(n) if shuffle else np.arange(n)
    X, T = (a[order] for a in data[:2])
    theta = np.array(theta, copy=True)  # bound below; the caller's array is not modified
    grad, new = np.empty_like(theta), np.empty_like(theta)
    loss_grad = online(theta, grad)
    total_loss, grad_sq = 0.0, 0.0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for i in range(n):
            loss = loss_grad(X[i], T[i])
            gsq = float(grad @ grad)
            if not (math.isfinite(loss) and (math.isfinite(gsq) or np.all(np.isfinite(grad)))):
                return theta, state, _diverged(engine)
            total_loss += loss
            grad_sq += gsq
            if apply is not None and math.isfinite(gsq):
                applied = apply(grad, state, theta, gsq)
                if applied is not None:
                    state = applied
                    continue
            step, state = update(regularizer.grad(theta, grad), state, theta)
            np.add(theta, step, out=new)
            if not (math.isfinite(float(new @ new)) or np.all(np.isfinite(new))):
                return theta, state, _diverged(engine)
            np.copyto(theta, new)
    row = {"loss": total_loss / n, "grad_norm": math.sqrt(grad_sq / n), "seconds": time.perf_counter() - t0,
           "n_skipped": 0}
    return theta, state, row


def _diverged(engine):
    engine.diverged("the loss or gradient became non-finite; training stopped with the last finite parameters. "
                    "Lower the learning rate or enable gradient clipping/contraction.")
    return None


def _check_checkpoint_path(checkpoint):
    """A checkpoint must be a file path whose folder can hold it: refuse a directory before any epoch runs."""
    if checkpoint is None:
        return
    try:
        path = os.fspath(checkpoint)
    except TypeError:
        raise ValueError(f"checkpoint must be a file path, got {type(checkpoint).__name__}") from None
    if os.path.isdir(path):
        raise ValueError(f"checkpoint must be a file path (e.g. run/model.train.npz), got the directory {path!r}")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise ValueError(f"checkpoint {path!r}: {parent!r} is a file, not a folder")


class Trainer:
    """Train a model with the core loop: the configuration, kept apart from the data.

    Parameters
    ----------
    model : object keeping the rbp model contract
    optimizer : str or Optimizer
        ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``, ``"rprop"``, an
        :class:`~rbp.core.optimizers.Optimizer`, or a full-batch SciPy method
        ``"L-BFGS-B"``, ``"CG"``, ``"BFGS"`` (then ``epochs`` is ``maxiter``).
    learning_rate : float or callable, optional
        Passed to the optimizer (a schedule ``count -> lr`` works too).
    epochs, batch_size, shuffle, early_stopping, min_delta, callback, epoch_metrics, progress
        As in :func:`fit`.
    validation_fraction : float, optional
        Hold out this fraction of the training data (drawn from ``rng``) for
        validation when ``fit`` is not given ``validation_data``.
    weight_decay : float
        L2 penalty on the weights (not the biases), added to the gradient.
    clip_norm : float, optional
        Rescale each gradient to at most this Euclidean norm (for BPTT).
    on_divergence : {"warn", "raise", "halve"}
        When the loss or gradient becomes non-finite: return the last finite
        parameters with ``Status.DIVERGED`` and a ConvergenceWarning; raise
        :class:`DivergenceError` naming the last good checkpoint; or retry
        from that checkpoint with half the learning rate (at most
        ``max_retries`` times).
    optimizer_options : dict, optional
        Other optimizer hyperparameters (``beta``, ``b1`` ...).
    threads : "auto", int or None
        BLAS threads while training; ``"auto"`` (default) uses one thread
        when the model's matrix products are too small to gain from more
        (never slower on a busy machine); None leaves the BLAS setting alone.

    Examples
    --------
    >>> import numpy as np
    >>> from rbp import MLP, Trainer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 2)); y = (X[:, 0] * X[:, 1] > 0).astype(int)
    >>> trainer = Trainer(MLP([2, 16, 2], loss="cross_entropy"), "adam", learning_rate=0.02, epochs=50,
    ...                   validation_fraction=0.2, early_stopping=10)
    >>> result = trainer.fit(X, y, rng=0)
    >>> result.success, sorted(k for k in result.history if k.startswith("val_"))
    (True, ['val_accuracy', 'val_loss'])
    """

    def __init__(
        self,
        model,
        optimizer="adam",
        *,
        learning_rate=None,
        epochs: int = 20,
        batch_size: int | None | str = "default",
        shuffle: bool = True,
        validation_fraction: float | None = None,
        early_stopping: int | None = None,
        min_delta: float = 0.0,
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
        on_divergence: str = "warn",
        max_retries: int = 3,
        optimizer_options: dict | None = None,
        callback=None,
        epoch_metrics=None,
        progress: bool | None = None,
        threads="auto",
    ):
        """Validate every option here, before any data is seen (the parameters are in the class docstring)."""
        self.model = model
        check_int(epochs, "epochs")
        explicit_batch = batch_size != "default"
        if isinstance(optimizer, str) and optimizer in SCIPY_METHODS:
            for name, value in (("batch_size", batch_size if explicit_batch else None),
                                ("early_stopping", early_stopping), ("clip_norm", clip_norm)):
                if value is not None:
                    raise ValueError(
                        f"{name}={value!r} has no effect with optimizer={optimizer!r}, which trains full batch "
                        f"through scipy.optimize.minimize; remove it or use a core optimizer"
                    )
        if not explicit_batch:
            batch_size = 32
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive integer or None (full batch), got {batch_size!r}")
        self.weight_decay = check_real(weight_decay, "weight_decay", low_inclusive=True)
        check_real(min_delta, "min_delta", low_inclusive=True)
        self.clip_norm = None if clip_norm is None else check_real(clip_norm, "clip_norm")
        check_callable(callback, "callback")
        check_callable(epoch_metrics, "epoch_metrics")
        if optimizer_options is not None and not isinstance(optimizer_options, dict):
            raise ValueError(f"optimizer_options must be a dict, got {type(optimizer_options).__name__}")
        check_int(max_retries, "max_retries", minimum=0)
        if early_stopping is not None and (
            isinstance(early_stopping, bool) or not isinstance(early_stopping, (int, np.integer)) or early_stopping < 1
        ):
            # True is not "patience 1": an on/off switch here would silently mean a patience of one epoch
            raise ValueError(f"early_stopping must be a positive integer (patience) or None, got {early_stopping!r}")
        if validation_fraction is not None and (
            isinstance(validation_fraction, bool) or not isinstance(validation_fraction, (int, float))
            or not 0 < validation_fraction < 1
        ):
            raise ValueError(f"validation_fraction must be in (0, 1) or None, got {validation_fraction!r}")
        self.epochs, self.batch_size, self.shuffle = int(epochs), batch_size, shuffle
        self.validation_fraction, self.early_stopping, self.min_delta = validation_fraction, early_stopping, min_delta
        self.callback, self.progress, self.epoch_metrics = callback, progress, epoch_metrics
        self.on_divergence = check_choice(on_divergence, "on_divergence", ("warn", "raise", "halve"))
        self.max_retries = int(max_retries) if on_divergence == "halve" else 0
        if threads not in ("auto", None):
            check_int(threads, "threads")
        self.threads = threads
        if isinstance(optimizer, Optimizer):
            if learning_rate is not None or optimizer_options:
                raise ValueError("an Optimizer instance carries its own hyperparameters: drop learning_rate and "
                                 "optimizer_options")
            self.scipy_method, self._optimizer_spec = None, (optimizer, {})
        elif isinstance(optimizer, str) and optimizer in SCIPY_METHODS:
            if learning_rate is not None or optimizer_options:
                raise ValueError(f"optimizer={optimizer!r} is a SciPy method: it takes no learning_rate/optimizer_options")
            self.scipy_method, self.optimizer = optimizer, None
            return
        else:
            if optimizer not in OPTIMIZERS:
                raise ValueError(unknown_name_message("optimizer", optimizer, list(OPTIMIZERS) + list(SCIPY_METHODS)))
            options = dict(optimizer_options or {})
            if learning_rate is not None:
                key = learning_rate_key(optimizer)
                if key is None:
                    raise ValueError(f"optimizer {optimizer!r} has no learning rate; drop learning_rate")
                options[key] = learning_rate
            self.scipy_method, self._optimizer_spec = None, (optimizer, options)
        self.optimizer = self._build_optimizer(1.0)

    def _build_optimizer(self, scale: float) -> Optimizer:
        """The optimizer, its step scaled by ``scale`` (halving retries), with clipping."""
        name, options = self._optimizer_spec
        if isinstance(name, Optimizer):
            if scale != 1.0:
                raise DivergenceError("cannot scale the learning rate of an Optimizer instance (on_divergence='halve')")
            opt = name
        else:
            options = dict(options)
            if scale != 1.0:
                key = learning_rate_key(name)
                lr = options.get(key)
                if lr is None:  # the optimizer's own default
                    import inspect

                    lr = inspect.signature(OPTIMIZERS[name]).parameters[key].default
                options[key] = (lambda c, lr=lr: lr(c) * scale) if callable(lr) else lr * scale
            opt = get_optimizer(name, **options)
        if self.clip_norm is not None:
            opt = clip_by_global_norm(opt, self.clip_norm)
        return opt

    def fit(
        self, X, Y, *, rng=0, theta=None, validation_data=None, test_data=None, checkpoint=None, checkpoint_every=1,
        resume=False, **prepare_kwargs,
    ) -> TrainResult:
        """Validate the data, then train.

        Parameters
        ----------
        X, Y : array_like
            Inputs and targets, as ``model.loss_and_grad`` takes them.
        rng : numpy.random.Generator or int
            The one source of randomness: initialisation (when ``theta`` is
            None), the validation split and shuffling. The same seed gives
            bit-identical weights.
        theta : ndarray, optional
            Start here instead of ``model.init(rng)``.
        validation_data : tuple (X_val, Y_val), optional
        test_data : tuple (X_test, Y_test), optional
            Recorded every epoch as ``test_loss``/``test_accuracy`` (curves
            only; never used for early stopping or any decision).
        checkpoint : path-like, optional
            Checkpoint file, written atomically every ``checkpoint_every``
            epochs and at the end.
        resume : bool
            Continue from ``checkpoint`` if it exists (pass the same data and
            seed): the result is bit-identical to an uninterrupted run (for
            the SciPy methods, the parameters and history continue but the
            quasi-Newton memory restarts).
        **prepare_kwargs
            Extra arrays for ``model.prepare`` (for example ``mask``).

        Returns
        -------
        TrainResult

        Raises
        ------
        DivergenceError
            With ``on_divergence="raise"``, when the loss or gradient became
            non-finite; the message names the last good checkpoint.
        """
        gen = as_generator(rng)
        check_int(checkpoint_every, "checkpoint_every")
        _check_checkpoint_path(checkpoint)
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint=<path of the checkpoint file>")
        data = self.model.prepare(X, Y, **prepare_kwargs)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) < 2:
                raise ValueError(
                    f"validation_data must be a tuple (X_val, Y_val[, ...]), got {type(validation_data).__name__}"
                )
            try:
                val = self.model.prepare(*validation_data)
            except ValueError as exc:
                raise ValueError(f"validation_data: {exc}") from None
        test = None
        if test_data is not None:
            if not isinstance(test_data, (tuple, list)) or len(test_data) < 2:
                raise ValueError(f"test_data must be a tuple (X_test, Y_test[, ...]), got {type(test_data).__name__}")
            try:
                test = self.model.prepare(*test_data)
            except ValueError as exc:
                raise ValueError(f"test_data: {exc}") from None
        theta = self.model.init(gen) if theta is None else self.model.check_theta(theta)
        if val is None and self.validation_fraction:
            data, val = split_validation(data, self.validation_fraction, gen)
        fresh = {"theta": theta, "optimizer_state": None, "rng": gen, "epoch": 0, "history": None, "best": None}
        start, scale, stopped, own_checkpoint = dict(fresh), 1.0, False, False
        if resume and os.path.exists(checkpoint):
            start, scale, stopped = self._load(checkpoint, theta, gen)
            own_checkpoint = True
        if self.scipy_method is not None:
            return self._fit_scipy(start, data, val, test, checkpoint, checkpoint_every)

        optimizer = self._build_optimizer(scale)
        for attempt in range(self.max_retries + 1):
            remaining = self.epochs - start["epoch"]
            if remaining <= 0 or stopped:
                return self._already_done(start, checkpoint)
            result = self._run(optimizer, data, val, test, start, remaining, checkpoint, checkpoint_every, scale)
            result["nit"] += start["epoch"]  # epochs trained in all, before a resume too
            own_checkpoint = own_checkpoint or result.get("checkpoint_epoch") is not None
            if result.status != Status.DIVERGED or self.on_divergence == "warn":
                break
            where = str(checkpoint) if own_checkpoint else "none was written"
            if self.on_divergence == "raise" or attempt == self.max_retries:
                raise DivergenceError(f"{result.message} Last good checkpoint: {where}.")
            # on_divergence="halve": retry from the last good checkpoint with half the learning rate.
            scale *= 0.5
            optimizer = self._build_optimizer(scale)
            if own_checkpoint:
                start, _, _ = self._load(checkpoint, theta, as_generator(rng))
            else:
                start = dict(fresh, rng=as_generator(rng))
            warnings.warn(
                f"{result.message} Retrying from epoch {start['epoch']} with the learning rate scaled by {scale:g}.",
                ConvergenceWarning, stacklevel=2,
            )
        if result.status == Status.DIVERGED:
            warnings.warn(result.message, ConvergenceWarning, stacklevel=2)
        return result

    def _already_done(self, start, checkpoint):
        """As an uninterrupted run would return: the best parameters under early stopping."""
        best = start["best"]
        restore = self.early_stopping is not None and best is not None and best[1] is not None
        return TrainResult(
            x=best[1] if restore else start["theta"], success=True, status=Status.SUCCESS,
            message=f"already trained for {start['epoch']} epochs (checkpoint {checkpoint})",
            nit=start["epoch"], history=History(start["history"] or {}),
            best_epoch=best[2] if best is not None else start["epoch"], optimizer_state=start["optimizer_state"],
        )

    def _load(self, checkpoint, theta, gen):
        """Resume state from a checkpoint: start dict, learning-rate scale, stopped-early flag."""
        fresh_state = None if self.scipy_method is not None else self._build_optimizer(1.0).init(theta)
        loaded = load_checkpoint(checkpoint, n_params=self.model.params.size, optimizer_state=fresh_state)
        start = {k: loaded.get(k) for k in ("theta", "optimizer_state", "epoch", "history", "best")}
        if "epoch" in start["history"]:
            start["history"]["epoch"] = [int(e) for e in start["history"]["epoch"]]
        start["rng"] = loaded["rng"] if loaded["rng"] is not None else gen
        start["theta"] = self.model.check_theta(start["theta"])
        meta = loaded["meta"]
        expected = self.scipy_method or self._build_optimizer(1.0).name
        if meta.get("optimizer", expected) != expected:
            raise ValueError(
                f"checkpoint {checkpoint} was written by optimizer {meta.get('optimizer')!r}; this trainer uses "
                f"{expected!r}: resume with the same optimizer or start a new run"
            )
        scale = meta.get("lr_scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
            raise ValueError(f"checkpoint {checkpoint}: invalid lr_scale {scale!r}")
        return start, float(scale), bool(meta.get("stopped_early", False))

    def _run(self, optimizer, data, val, test, start, epochs, checkpoint, checkpoint_every, scale=1.0):
        return fit(
            self.model, start["theta"], data, optimizer=optimizer, epochs=epochs, batch_size=self.batch_size,
            shuffle=self.shuffle, rng=start["rng"], validation_data=val, test_data=test,
            early_stopping=self.early_stopping,
            min_delta=self.min_delta, callback=self.callback, progress=self.progress,
            epoch_metrics=self.epoch_metrics, weight_decay=self.weight_decay, threads=self.threads,
            optimizer_state=start["optimizer_state"], start_epoch=start["epoch"], history=start["history"],
            checkpoint=checkpoint, checkpoint_every=checkpoint_every, best=start.get("best"),
            checkpoint_meta={"lr_scale": scale} if scale != 1.0 else None,
        )

    def _fit_scipy(self, start, data, val, test, checkpoint, checkpoint_every):
        """Full batch through ``scipy.optimize.minimize``: one engine epoch per SciPy iteration."""
        model = self.model
        remaining = self.epochs - start["epoch"]
        if remaining <= 0:
            return self._already_done(start, checkpoint)
        regularizer = Regularizer(self.weight_decay, model.params.decay_mask())
        engine = EpochEngine(
            model, epochs=remaining, start_epoch=start["epoch"], history=start["history"], data=data,
            validation_data=val, test_data=test, epoch_metrics=self.epoch_metrics, callback=self.callback,
            checkpoint=checkpoint, checkpoint_every=checkpoint_every, optimizer_name=self.scipy_method, rng=start["rng"],
            progress=self.progress,
        )
        cache = {"x": None, "grad": None, "good": np.array(start["theta"], copy=True), "t": time.perf_counter()}
        lgi = _loss_grad_info(model)

        class _NonFinite(Exception):
            pass

        def fun(theta):
            loss, grad, info = lgi(theta, *data, check=False)
            engine.note(info)
            loss += regularizer.penalty(theta)
            grad = regularizer.grad(theta, grad)
            if not (math.isfinite(loss) and np.all(np.isfinite(grad))):
                raise _NonFinite
            cache["x"], cache["grad"] = theta.copy(), grad
            return loss, grad

        def cb(res):
            now = time.perf_counter()
            x = np.array(res.x, copy=True)
            cache["good"] = x
            grad = cache["grad"] if cache["x"] is not None and np.array_equal(cache["x"], x) else fun(x)[1]
            row = {"loss": float(res.fun), "seconds": now - cache["t"], "grad_norm": float(np.linalg.norm(grad))}
            cache["t"] = now
            if engine.end_epoch(x, row):
                raise StopIteration

        with blas_threads(thread_limit(self.threads, model_work(model, len(data[0])))):
            try:
                res = scipy_minimize(fun, start["theta"], method=self.scipy_method, maxiter=remaining, callback=cb)
            except _NonFinite:
                message = (
                    f"scipy.optimize.minimize({self.scipy_method}) met a non-finite loss or gradient; returning the "
                    "last finite iterate. Rescale the inputs or use a core optimizer with a small learning rate."
                )
                engine.progress.close()
                if self.on_divergence == "raise":
                    raise DivergenceError(message) from None
                engine.report_failures()
                warnings.warn(message, ConvergenceWarning, stacklevel=3)
                n = len(engine.history.get("epoch", []))
                return TrainResult(x=cache["good"], success=False, status=Status.DIVERGED, message=message, nit=n,
                                   history=engine.history, best_epoch=n, optimizer_state=None)
        if engine.status == Status.CALLBACK:
            res["status"], res["success"] = Status.CALLBACK, True
        elif not res.success:
            warnings.warn(res.message + " " + res.status.message("the SciPy optimizer"), ConvergenceWarning,
                          stacklevel=3)
        result = engine.finish(res.x)
        result.update(status=res.status, message=res.message, nit=start["epoch"] + res.nit,
                      success=bool(res.success) or res.status == Status.CALLBACK)
        result["best_epoch"] = result["nit"]
        return result
