"""The one training loop that every trainer drives.

:func:`fit` trains any model that keeps the rbp contract on prepared data
(a tuple of arrays indexed along their first axis, from ``model.prepare``)
with any core optimizer, per training tuple (``batch_size=1``: the weights
change after every tuple, as in classic online backprop), per mini-batch, or
per full batch (``batch_size=None``). :class:`Trainer` wraps it with input
validation, the validation split, and the scipy.optimize bridge.

Models may add to the contract:

``prepare(X, Y, ...) -> tuple of arrays``
    validate once and encode targets (the loop then calls the model unchecked);
``loss_grad_info(theta, *batch, check=False) -> (loss, grad, info)``
    ``info`` is a dict of numbers (solver diagnostics) aggregated per epoch:
    keys starting with ``n_`` are summed, keys ending in ``_max`` take the
    maximum, others are averaged; ``info["skip"]`` true means "do not apply
    this step" (a skipped batch is counted in ``n_skipped``);
``evaluate(theta, *data) -> dict``
    forward-only metrics (``loss``, ``accuracy``) for the epoch summary;
``project(theta)``
    in-place projection applied after every update (e.g. a contraction
    constraint).
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import time
import warnings

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .model import check_int, check_real
from .optimizers import (
    OPTIMIZERS,
    SCIPY_METHODS,
    Optimizer,
    add_weight_decay,
    clip_by_global_norm,
    get_optimizer,
    scipy_minimize,
)
from .params import as_generator
from .results import ConvergenceWarning, Result, Status

__all__ = ["fit", "progress_bar", "Trainer", "TrainResult", "split_validation", "History", "DivergenceError"]


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient (``on_divergence="raise"``)."""


class TrainResult(Result):
    """What a training run returns.

    Keys: ``x`` (final parameters; the best ones when early stopping restored
    them), ``success``, ``status`` (:class:`~rbp.core.results.Status`),
    ``message``, ``nit`` (epochs trained, those before a resume included), ``history`` (dict of per-epoch lists:
    ``epoch, loss, accuracy, val_loss, val_accuracy, grad_norm, seconds,
    time`` plus the model's diagnostics), ``best_epoch``, ``optimizer_state``.
    """


class History(dict):
    """Per-epoch metrics, a dict of equal-length lists (``pandas.DataFrame(h)`` works)."""

    def append(self, row: dict):
        n = len(self.get("epoch", []))
        for key in set(self) | set(row):
            column = self.setdefault(key, [math.nan] * n)
            column.append(row.get(key, math.nan))


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


def _aggregate(infos: list) -> dict:
    out = {}
    keys = {k for info in infos for k, v in info.items() if isinstance(v, (int, float, np.number))}
    for key in sorted(keys):
        values = [float(info[key]) for info in infos if key in info]
        if not values or key == "skip":
            continue
        if key.startswith("n_"):
            out[key] = float(np.sum(values))
        elif key.endswith("_max"):
            out[key] = float(np.max(values))
        else:
            out[key] = float(np.mean(values))
    return out


def progress_bar(enabled, total: int, desc: str):
    """A tqdm bar over epochs on a terminal, or None.

    ``enabled=None`` shows it only when stderr is a TTY, so runs in CI and
    pipes stay quiet; ``False`` never shows it.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", leave=False, file=sys.stderr)


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
    early_stopping: int | None = None,
    min_delta: float = 0.0,
    callback=None,
    optimizer_state=None,
    evaluate_train: bool = True,
    progress: bool | None = None,
    start_epoch: int = 0,
    history: dict | None = None,
    epoch_metrics=None,
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
    progress : bool or None
        Progress bar over epochs; ``None`` shows it only on a terminal.
    start_epoch : int
        Epochs already done (when resuming); epochs are numbered from here.
    history : dict of lists, optional
        History of the epochs already done (when resuming).
    epoch_metrics : callable ``(theta) -> dict of float``, optional
        Extra measurements after every epoch (for example test-set loss and
        accuracy, or a spectral radius on a probe batch); they join the
        history, and so the checkpoint: a resumed run keeps them for the
        epochs it does not train again.
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
    history_in = history
    theta = np.array(theta, copy=True)
    n = len(data[0])
    if n == 0:
        raise ValueError("data must contain at least one sample, got 0")
    bs = n if batch_size is None else int(batch_size)
    lgi = getattr(model, "loss_grad_info", None)
    if lgi is None:

        def lgi(theta, *batch, check=False):
            loss, grad = model.loss_and_grad(theta, *batch)
            return loss, grad, {}

    project = getattr(model, "project", None)
    evaluate = getattr(model, "evaluate", None)
    state = optimizer.init(theta) if optimizer_state is None else optimizer_state
    update = optimizer.update

    history = History()
    for key, column in (history_in or {}).items():
        history[key] = list(column)
    best = (math.inf, None, start_epoch) if best is None else best
    if early_stopping is None:
        best = (best[0], None, best[2])  # only the epoch is tracked: no copies of theta
    saved_epoch = None
    status, message = Status.MAX_ITER, f"completed {epochs} epochs"
    bar = progress_bar(progress, epochs, type(model).__name__)
    elapsed = float(history["time"][-1]) if history.get("time") else 0.0  # continues across a resume
    epoch = start_epoch
    try:
        for epoch in range(start_epoch + 1, start_epoch + epochs + 1):
            t0 = time.perf_counter()
            order = gen.permutation(n) if shuffle else np.arange(n)
            total_loss, grad_sq, n_batches, n_skipped, n_used, infos = 0.0, 0.0, 0, 0, 0, []
            diverged = False
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
                        if info.get("skip"):
                            n_skipped += 1
                            continue
                    # A sum of squares is finite iff every entry is (entries > ~1e154 overflow it: then look).
                    gsq = float(grad @ grad)
                    if not (math.isfinite(loss) and (math.isfinite(gsq) or np.all(np.isfinite(grad)))):
                        diverged = True
                        break
                    step, new_state = update(grad, state, theta)
                    new = (theta + step).astype(theta.dtype, copy=False)
                    if not (math.isfinite(float(new @ new)) or np.all(np.isfinite(new))):
                        diverged = True
                        break
                    theta, state = new, new_state
                    if project is not None:
                        project(theta)
                    total_loss += loss * m
                    n_used += m
                    grad_sq += gsq
                    n_batches += 1
            seconds = time.perf_counter() - t0
            elapsed += seconds
            if diverged:
                status = Status.DIVERGED
                message = (
                    f"epoch {epoch}: the loss or gradient became non-finite; training stopped with the "
                    "last finite parameters. Lower the learning rate or enable gradient clipping/contraction."
                )
                break
            row = {
                "epoch": epoch,
                "loss": total_loss / n_used if n_used else math.nan,
                "grad_norm": math.sqrt(grad_sq / max(n_batches, 1)),
                "seconds": seconds,
                "time": elapsed,
                "n_skipped": n_skipped,
            }
            row.update(_aggregate(infos))
            if epoch_metrics is not None:
                row.update({k: float(v) for k, v in epoch_metrics(theta).items()})
            if evaluate is not None:
                if evaluate_train and "accuracy" in getattr(model, "metrics", ("accuracy",)):
                    train_eval = evaluate(theta, *data)
                    if "accuracy" in train_eval:
                        row["accuracy"] = train_eval["accuracy"]
                if validation_data is not None:
                    row.update({f"val_{k}": v for k, v in evaluate(theta, *validation_data).items()})
            history.append(row)
            monitored = row.get("val_loss", row["loss"])
            if monitored < best[0] - min_delta:
                best = (monitored, theta.copy() if early_stopping is not None else None, epoch)
            if bar is not None:
                bar.set_postfix(loss=f"{row['loss']:.4g}", refresh=False)
                bar.update(1)
            stop_early = early_stopping is not None and epoch - best[2] >= early_stopping
            if checkpoint is not None and (
                epoch % checkpoint_every == 0 or epoch == start_epoch + epochs or stop_early
            ):
                save_checkpoint(
                    checkpoint, theta, optimizer_state=state, rng=gen, epoch=epoch, history=history,
                    meta=dict(checkpoint_meta or {}, stopped_early=stop_early, optimizer=optimizer.name),
                    # the best parameters only matter for early stopping; the epoch is reported always
                    best=best if early_stopping is not None else (best[0], None, best[2]),
                )
                saved_epoch = epoch
            if callback is not None:
                try:
                    callback(TrainResult(x=theta.copy(), fun=row["loss"], nit=epoch, history=history))
                except StopIteration:
                    status, message = Status.CALLBACK, f"stopped by the callback after epoch {epoch}"
                    break
            if stop_early:
                status = Status.SUCCESS
                message = (
                    f"early stopping: no improvement for {early_stopping} epochs; "
                    f"restored the best parameters from epoch {best[2]}"
                )
                break
    finally:
        if bar is not None:
            bar.close()

    if early_stopping is not None and status != Status.DIVERGED and best[1] is not None:
        if status == Status.MAX_ITER and best[2] != epoch:
            message += f"; restored the best parameters from epoch {best[2]}"
        theta = best[1]
    if status == Status.MAX_ITER:
        status = Status.SUCCESS
    success = status in (Status.SUCCESS, Status.CALLBACK)
    return TrainResult(
        x=theta, success=success, status=status, message=message, nit=epoch - start_epoch,
        history=history, best_epoch=best[2], optimizer_state=state, checkpoint_epoch=saved_epoch,
    )


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
    ):
        self.model = model
        check_int(epochs, "epochs")
        explicit_batch = batch_size != "default"
        if optimizer in SCIPY_METHODS:
            for name, value, default in (("batch_size", batch_size if explicit_batch else None, None),
                                         ("early_stopping", early_stopping, None), ("clip_norm", clip_norm, None)):
                if value is not default:
                    raise ValueError(
                        f"{name}={value!r} has no effect with optimizer={optimizer!r}, which trains full batch "
                        f"through scipy.optimize.minimize; remove it or use a core optimizer"
                    )
        if not explicit_batch:
            batch_size = 32
        if (
            isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float))
            or not math.isfinite(weight_decay) or not weight_decay >= 0
        ):
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        check_real(min_delta, "min_delta", low_inclusive=True)
        if clip_norm is not None:
            check_real(clip_norm, "clip_norm")
        if callback is not None and not callable(callback):
            raise ValueError(f"callback must be callable or None, got {type(callback).__name__}")
        if optimizer_options is not None and not isinstance(optimizer_options, dict):
            raise ValueError(f"optimizer_options must be a dict, got {type(optimizer_options).__name__}")
        check_int(max_retries, "max_retries", minimum=0)
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive integer or None (full batch), got {batch_size!r}")
        if early_stopping is not None and (not isinstance(early_stopping, (int, np.integer)) or early_stopping < 1):
            raise ValueError(f"early_stopping must be a positive integer (patience) or None, got {early_stopping!r}")
        self.epochs, self.batch_size, self.shuffle = int(epochs), batch_size, shuffle
        self.validation_fraction, self.early_stopping, self.min_delta = validation_fraction, early_stopping, min_delta
        self.callback, self.progress = callback, progress
        if epoch_metrics is not None and not callable(epoch_metrics):
            raise ValueError(f"epoch_metrics must be callable or None, got {type(epoch_metrics).__name__}")
        self.epoch_metrics = epoch_metrics
        self.weight_decay = weight_decay
        if validation_fraction is not None and (
            isinstance(validation_fraction, bool) or not isinstance(validation_fraction, (int, float))
            or not 0 < validation_fraction < 1
        ):
            raise ValueError(f"validation_fraction must be in (0, 1) or None, got {validation_fraction!r}")
        if on_divergence not in ("warn", "raise", "halve"):
            raise ValueError(f"on_divergence must be one of ['warn', 'raise', 'halve'], got {on_divergence!r}")
        self.on_divergence, self.max_retries = on_divergence, int(max_retries) if on_divergence == "halve" else 0
        self.clip_norm = clip_norm
        if isinstance(optimizer, str) and optimizer not in SCIPY_METHODS and optimizer not in OPTIMIZERS:
            import difflib

            valid = sorted(OPTIMIZERS) + list(SCIPY_METHODS)
            folded = {v.lower().replace("-", "").replace("_", ""): v for v in valid}
            key = optimizer.lower().replace("-", "").replace("_", "")
            near = [folded[k] for k in folded if key and (k.startswith(key) or key in k)]
            near = near or [folded[k] for k in difflib.get_close_matches(key, list(folded), n=1)]
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"optimizer must be one of {valid}, got {optimizer!r}{hint}")
        if optimizer in SCIPY_METHODS:
            if learning_rate is not None or optimizer_options:
                raise ValueError(f"optimizer={optimizer!r} is a SciPy method: it takes no learning_rate/optimizer_options")
            self.scipy_method, self.optimizer = optimizer, None
        else:
            options = dict(optimizer_options or {})
            if learning_rate is not None:
                key = "step_init" if optimizer == "rprop" else "learning_rate"
                options[key] = learning_rate
            self.scipy_method = None
            self._optimizer_spec = (optimizer, options)
            self.optimizer = self._build_optimizer(1.0)

    def _build_optimizer(self, scale: float) -> Optimizer:
        name, options = self._optimizer_spec
        options = dict(options)
        if scale != 1.0:
            key = "step_init" if name == "rprop" else "learning_rate"
            lr = options.get(key)
            if lr is None:  # the optimizer's own default
                lr = inspect.signature(OPTIMIZERS[name]).parameters[key].default
            options[key] = (lambda c, lr=lr: lr(c) * scale) if callable(lr) else lr * scale
        opt = get_optimizer(name, **options)
        if self.clip_norm is not None:
            opt = clip_by_global_norm(opt, self.clip_norm)
        return add_weight_decay(opt, self.weight_decay, self.model.params.decay_mask(self.model.dtype))

    def fit(
        self, X, Y, *, rng=0, theta=None, validation_data=None, checkpoint=None, checkpoint_every=1, resume=False,
        **prepare_kwargs,
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
        checkpoint : path-like, optional
            Checkpoint file, written atomically every ``checkpoint_every``
            epochs and at the end.
        resume : bool
            Continue from ``checkpoint`` if it exists (pass the same data and
            seed): the result is bit-identical to an uninterrupted run.
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
        if theta is None:
            theta = self.model.init(gen)
        else:
            theta = self.model.check_theta(theta)
        if val is None and self.validation_fraction:
            data, val = split_validation(data, self.validation_fraction, gen)
        if self.scipy_method is not None:
            return self._fit_scipy(theta, data, val)
        check_int(checkpoint_every, "checkpoint_every")
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint=<path of the checkpoint file>")
        fresh = {"theta": theta, "optimizer_state": None, "rng": gen, "epoch": 0, "history": None, "best": None}
        start, scale, stopped, own_checkpoint = dict(fresh), 1.0, False, False
        if resume and os.path.exists(checkpoint):
            start, scale, stopped = self._load(checkpoint, theta, gen)
            own_checkpoint = True

        optimizer = self._build_optimizer(scale)
        for attempt in range(self.max_retries + 1):
            remaining = self.epochs - start["epoch"]
            if remaining <= 0 or stopped:
                # As an uninterrupted run would return: the best parameters under early stopping.
                best = start["best"]
                restore = self.early_stopping is not None and best is not None and best[1] is not None
                done = best[1] if restore else start["theta"]
                return TrainResult(
                    x=done, success=True, status=Status.SUCCESS,
                    message=f"already trained for {start['epoch']} epochs (checkpoint {checkpoint})",
                    nit=start["epoch"], history=History(start["history"] or {}),
                    best_epoch=start["best"][2] if start["best"] is not None else start["epoch"],
                    optimizer_state=start["optimizer_state"],
                )
            result = self._run(optimizer, data, val, start, remaining, checkpoint, checkpoint_every, scale)
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

    def _load(self, checkpoint, theta, gen):
        """Resume state from a checkpoint: start dict, learning-rate scale, stopped-early flag."""
        loaded = load_checkpoint(
            checkpoint, n_params=self.model.params.size,
            optimizer_state=self._build_optimizer(1.0).init(theta),
        )
        start = {k: loaded[k] for k in ("theta", "optimizer_state", "epoch", "history", "best")}
        if "epoch" in start["history"]:
            start["history"]["epoch"] = [int(e) for e in start["history"]["epoch"]]
        start["rng"] = loaded["rng"] if loaded["rng"] is not None else gen
        start["theta"] = self.model.check_theta(start["theta"])
        meta = loaded["meta"]
        expected = self._build_optimizer(1.0).name
        if meta.get("optimizer", expected) != expected:
            raise ValueError(
                f"checkpoint {checkpoint} was written by optimizer {meta.get('optimizer')!r}; this trainer uses "
                f"{expected!r}: resume with the same optimizer or start a new run"
            )
        scale = meta.get("lr_scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
            raise ValueError(f"checkpoint {checkpoint}: invalid lr_scale {scale!r}")
        return start, float(scale), bool(meta.get("stopped_early", False))

    def _run(self, optimizer, data, val, start, epochs, checkpoint, checkpoint_every, scale=1.0):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            result = fit(
                self.model, start["theta"], data, optimizer=optimizer, epochs=epochs, batch_size=self.batch_size,
                shuffle=self.shuffle, rng=start["rng"], validation_data=val, early_stopping=self.early_stopping,
                min_delta=self.min_delta, callback=self.callback, progress=self.progress,
                epoch_metrics=self.epoch_metrics,
                optimizer_state=start["optimizer_state"], start_epoch=start["epoch"], history=start["history"],
                checkpoint=checkpoint, checkpoint_every=checkpoint_every, best=start.get("best"),
                checkpoint_meta={"lr_scale": scale} if scale != 1.0 else None,
            )
        misses = []
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                misses.append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if misses:
            # One warning at the caller's line, not one per batch deep in the loop;
            # every miss is also counted per epoch in result.history.
            warnings.warn(
                f"{len(misses)} mini-batch(es) missed a solver threshold during training "
                f"(counted per epoch in result.history, e.g. 'n_forward_failed'). First: {misses[0]}",
                ConvergenceWarning, stacklevel=3,
            )
        return result

    def _fit_scipy(self, theta, data, val):
        model, history = self.model, History()
        mask = self.weight_decay * model.params.decay_mask()
        t0 = time.perf_counter()
        cache = {"x": None, "grad": None, "good": np.array(theta, copy=True)}

        class _NonFinite(Exception):
            pass

        def fun(theta):
            loss, grad = model.loss_and_grad(theta, *data, check=False)
            if self.weight_decay:
                loss += 0.5 * float(theta @ (mask * theta))
                grad = grad + mask * theta
            if not (math.isfinite(loss) and np.all(np.isfinite(grad))):
                raise _NonFinite
            cache["x"], cache["grad"] = theta.copy(), grad
            return loss, grad

        last = [t0]

        def cb(res):
            now = time.perf_counter()
            x = np.array(res.x, copy=True)
            cache["good"] = x
            grad = cache["grad"] if cache["x"] is not None and np.array_equal(cache["x"], x) else fun(x)[1]
            row = {
                "epoch": len(history.get("epoch", [])) + 1, "loss": float(res.fun), "time": now - t0,
                "seconds": now - last[0], "grad_norm": float(np.linalg.norm(grad)),
            }
            last[0] = now
            if "accuracy" in model.metrics:
                row["accuracy"] = model.evaluate(x, *data).get("accuracy", math.nan)
            if val is not None:
                row.update({f"val_{k}": v for k, v in model.evaluate(x, *val).items()})
            history.append(row)
            if self.callback is not None:
                self.callback(TrainResult(x=x.copy(), fun=res.fun, nit=row["epoch"], history=history))

        try:
            res = scipy_minimize(fun, theta, method=self.scipy_method, maxiter=self.epochs, callback=cb)
        except _NonFinite:
            message = (
                f"scipy.optimize.minimize({self.scipy_method}) met a non-finite loss or gradient; returning the "
                "last finite iterate. Rescale the inputs or use a core optimizer with a small learning rate."
            )
            if self.on_divergence == "raise":
                raise DivergenceError(message) from None
            warnings.warn(message, ConvergenceWarning, stacklevel=3)
            n = len(history.get("epoch", []))
            return TrainResult(
                x=cache["good"], success=False, status=Status.DIVERGED, message=message, nit=n, history=history,
                best_epoch=n, optimizer_state=None,
            )
        if not res.success and res.status != Status.CALLBACK:
            warnings.warn(res.message + " " + res.status.message("the SciPy optimizer"), ConvergenceWarning, stacklevel=3)
        return TrainResult(
            x=res.x, success=res.success or res.status == Status.CALLBACK, status=res.status,
            message=res.message, nit=res.nit, history=history, best_epoch=res.nit, optimizer_state=None,
        )
