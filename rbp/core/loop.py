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

import math
import sys
import time
import warnings

import numpy as np

from .optimizers import (
    SCIPY_METHODS,
    Optimizer,
    add_weight_decay,
    clip_by_global_norm,
    get_optimizer,
    scipy_minimize,
)
from .params import as_generator
from .results import ConvergenceWarning, Result, Status

__all__ = ["fit", "Trainer", "TrainResult", "split_validation", "History"]


class TrainResult(Result):
    """What a training run returns.

    Keys: ``x`` (final parameters; the best ones when early stopping restored
    them), ``success``, ``status`` (:class:`~rbp.core.results.Status`),
    ``message``, ``nit`` (epochs run), ``history`` (dict of per-epoch lists:
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
    """Split prepared arrays into (train, validation) parts by a random permutation."""
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


def _progress(enabled, total, desc):
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

    Returns
    -------
    TrainResult
    """
    gen = as_generator(rng)
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
    best = (math.inf, theta.copy(), start_epoch)
    status, message = Status.MAX_ITER, f"completed {epochs} epochs"
    bar = _progress(progress, epochs, type(model).__name__)
    elapsed = 0.0
    epoch = start_epoch
    try:
        for epoch in range(start_epoch + 1, start_epoch + epochs + 1):
            t0 = time.perf_counter()
            order = gen.permutation(n) if shuffle else np.arange(n)
            total_loss, grad_sq, n_batches, n_skipped, n_used, infos = 0.0, 0.0, 0, 0, 0, []
            diverged = False
            for start in range(0, n, bs):
                idx = order[start : start + bs]
                batch = [a[idx] for a in data]
                loss, grad, info = lgi(theta, *batch, check=False)
                if info:
                    infos.append(info)
                    if info.get("skip"):
                        n_skipped += 1
                        continue
                if not (math.isfinite(loss) and np.all(np.isfinite(grad))):
                    diverged = True
                    break
                step, new_state = update(grad, state, theta)
                new = (theta + step).astype(theta.dtype, copy=False)
                if not np.all(np.isfinite(new)):
                    diverged = True
                    break
                theta, state = new, new_state
                if project is not None:
                    project(theta)
                total_loss += loss * len(idx)
                n_used += len(idx)
                grad_sq += float(grad @ grad)
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
                best = (monitored, theta.copy(), epoch)
            if bar is not None:
                bar.set_postfix(loss=f"{row['loss']:.4g}", refresh=False)
                bar.update(1)
            if callback is not None:
                try:
                    callback(TrainResult(x=theta.copy(), fun=row["loss"], nit=epoch, history=history))
                except StopIteration:
                    status, message = Status.CALLBACK, f"stopped by the callback after epoch {epoch}"
                    break
            if early_stopping is not None and epoch - best[2] >= early_stopping:
                status = Status.SUCCESS
                message = (
                    f"early stopping: no improvement for {early_stopping} epochs; "
                    f"restored the best parameters from epoch {best[2]}"
                )
                break
    finally:
        if bar is not None:
            bar.close()

    if early_stopping is not None and status != Status.DIVERGED and best[2] > start_epoch:
        theta = best[1]
    if status == Status.MAX_ITER and early_stopping is None:
        status = Status.SUCCESS
    success = status in (Status.SUCCESS, Status.CALLBACK)
    return TrainResult(
        x=theta, success=success, status=status, message=message, nit=epoch - start_epoch,
        history=history, best_epoch=best[2], optimizer_state=state,
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
    epochs, batch_size, shuffle, early_stopping, min_delta, callback, progress
        As in :func:`fit`.
    validation_fraction : float, optional
        Hold out this fraction of the training data (drawn from ``rng``) for
        validation when ``fit`` is not given ``validation_data``.
    weight_decay : float
        L2 penalty on the weights (not the biases), added to the gradient.
    clip_norm : float, optional
        Rescale each gradient to at most this Euclidean norm (for BPTT).
    optimizer_options : dict, optional
        Other optimizer hyperparameters (``beta``, ``b1`` ...).
    """

    def __init__(
        self,
        model,
        optimizer="adam",
        *,
        learning_rate=None,
        epochs: int = 20,
        batch_size: int | None = 32,
        shuffle: bool = True,
        validation_fraction: float | None = None,
        early_stopping: int | None = None,
        min_delta: float = 0.0,
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
        optimizer_options: dict | None = None,
        callback=None,
        progress: bool | None = None,
    ):
        self.model = model
        if not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None (full batch), got {batch_size!r}")
        if early_stopping is not None and (not isinstance(early_stopping, (int, np.integer)) or early_stopping < 1):
            raise ValueError(f"early_stopping must be a positive integer (patience) or None, got {early_stopping!r}")
        self.epochs, self.batch_size, self.shuffle = int(epochs), batch_size, shuffle
        self.validation_fraction, self.early_stopping, self.min_delta = validation_fraction, early_stopping, min_delta
        self.callback, self.progress = callback, progress
        self.weight_decay = weight_decay
        if validation_fraction is not None and not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1) or None, got {validation_fraction!r}")
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
            opt = get_optimizer(optimizer, **options)
            if clip_norm is not None:
                opt = clip_by_global_norm(opt, clip_norm)
            self.optimizer = add_weight_decay(opt, weight_decay, model.params.decay_mask(model.dtype))

    def fit(self, X, Y, *, rng=0, theta=None, validation_data=None, **prepare_kwargs) -> TrainResult:
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
        **prepare_kwargs
            Extra arrays for ``model.prepare`` (for example ``mask``).

        Returns
        -------
        TrainResult
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
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            result = fit(
                self.model, theta, data, optimizer=self.optimizer, epochs=self.epochs, batch_size=self.batch_size,
                shuffle=self.shuffle, rng=gen, validation_data=val, early_stopping=self.early_stopping,
                min_delta=self.min_delta, callback=self.callback, progress=self.progress,
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
                ConvergenceWarning, stacklevel=2,
            )
        if result.status == Status.DIVERGED:
            warnings.warn(result.message, ConvergenceWarning, stacklevel=2)
        return result

    def _fit_scipy(self, theta, data, val):
        model, history = self.model, History()
        mask = self.weight_decay * model.params.decay_mask()
        t0 = time.perf_counter()

        def fun(theta):
            loss, grad = model.loss_and_grad(theta, *data, check=False)
            if self.weight_decay:
                loss += 0.5 * float(theta @ (mask * theta))
                grad = grad + mask * theta
            return loss, grad

        def cb(res):
            row = {"epoch": len(history.get("epoch", [])) + 1, "loss": float(res.fun), "time": time.perf_counter() - t0}
            if val is not None:
                row.update({f"val_{k}": v for k, v in model.evaluate(res.x, *val).items()})
            history.append(row)
            if self.callback is not None:
                self.callback(TrainResult(x=res.x, fun=res.fun, nit=row["epoch"], history=history))

        res = scipy_minimize(fun, theta, method=self.scipy_method, maxiter=self.epochs, callback=cb)
        return TrainResult(
            x=res.x, success=res.success or res.status == Status.CALLBACK, status=res.status,
            message=res.message, nit=res.nit, history=history, best_epoch=res.nit, optimizer_state=None,
        )
