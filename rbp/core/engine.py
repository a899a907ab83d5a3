"""The epoch engine: what every training path shares between two epochs.

Mini-batch training (:func:`rbp.core.loop.fit`), stream training
(:func:`rbp.recurrent.stream.fit_stream`) and the SciPy full-batch path
differ only in how one epoch changes the parameters. Everything else lives
here, once: the history rows, epoch metrics and evaluation (training
accuracy, validation metrics and their unconverged samples), early stopping
and the best parameters, checkpoints, callbacks with ``StopIteration``, the
progress display, the failure policy (one report per run), weight decay and
the BLAS thread limit.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from .checkpoint import save_checkpoint
from .threads import blas_threads, model_work, thread_limit  # noqa: F401 (re-exported)
from .results import NonConvergenceError, Result, Status, user_stacklevel, warn_or_raise
from .validation import check_choice

__all__ = ["EpochEngine", "Regularizer", "TrainResult", "History", "Progress", "aggregate"]


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


def aggregate(infos: list) -> dict:
    """Per-epoch summary of the models' per-batch info dicts.

    Keys starting with ``n_`` are summed, keys ending in ``_max`` take the
    maximum, other numbers are averaged; non-numbers are left out.

    Examples
    --------
    >>> aggregate([{"n_failed": 1, "iters": 2.0, "res_max": 0.1}, {"n_failed": 0, "iters": 4.0, "res_max": 0.3}])
    {'iters': 3.0, 'n_failed': 1.0, 'res_max': 0.3}
    """
    out = {}
    keys = {k for info in infos for k, v in info.items()
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
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


# -- weight decay ---------------------------------------------------------------------------


class Regularizer:
    """L2 weight decay ``weight_decay/2 ||mask * theta||^2``, the one place every training path adds it.

    Parameters
    ----------
    weight_decay : float
    mask : ndarray, shape (n_params,)
        1 where the decay applies (``model.params.decay_mask()``).

    Examples
    --------
    >>> import numpy as np
    >>> reg = Regularizer(0.1, np.array([1.0, 0.0]))
    >>> reg.grad(np.array([2.0, 3.0]), np.zeros(2)), reg.penalty(np.array([2.0, 3.0]))
    (array([0.2, 0. ]), 0.2)
    """

    def __init__(self, weight_decay: float, mask):
        self.weight_decay = float(weight_decay)
        self.scale = self.weight_decay * np.asarray(mask) if self.weight_decay else None

    def __bool__(self):
        return self.scale is not None

    def grad(self, theta, grad):
        """``grad + weight_decay * mask * theta`` (a new array; ``grad`` unchanged when there is no decay)."""
        return grad if self.scale is None else grad + self.scale * theta

    def penalty(self, theta) -> float:
        return 0.0 if self.scale is None else 0.5 * float(theta @ (self.scale * theta))


# -- progress -------------------------------------------------------------------------------


class Progress:
    """A tqdm bar on a terminal; elsewhere a plain line at most every ``every`` seconds, never long silence.

    ``enabled``: None (the default: a bar on a terminal, throttled lines
    otherwise), True (a bar), False (nothing) or ``"lines"`` (a line per
    epoch).
    """

    def __init__(self, enabled, total: int, desc: str, *, every: float = 10.0, unit: str = "epoch"):
        self.desc, self.total, self.unit = desc, total, unit
        self.bar, self.lines, self.every = None, False, every
        self.last = time.perf_counter()
        if enabled is None:
            enabled = True if sys.stderr.isatty() else "throttled"
        if enabled is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)
        elif enabled == "lines":
            self.lines, self.every = True, 0.0
        elif enabled == "throttled":
            self.lines = True

    def update(self, done: int, text: str):
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        elif self.lines:
            now = time.perf_counter()
            if now - self.last >= self.every:
                print(f"{self.desc}: {self.unit} {done}/{self.total} {text}", file=sys.stderr, flush=True)
                self.last = now

    def close(self):
        if self.bar is not None:
            self.bar.close()


def progress_bar(enabled, total: int, desc: str):
    """A tqdm bar over epochs on a terminal (``enabled`` True, or None on a TTY), else None."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", leave=False, file=sys.stderr)


# -- the engine -----------------------------------------------------------------------------


class EpochEngine:
    """The bookkeeping between two epochs of any training path.

    A training path runs its epoch (mini-batches, stream chunks, a SciPy
    iteration), calls :meth:`note` with each gradient's info, then
    :meth:`end_epoch` with the parameters and the epoch's measurements, which
    evaluates, records, checkpoints, calls back and decides whether to stop;
    :meth:`finish` builds the :class:`TrainResult`.

    Parameters
    ----------
    model : object keeping the rbp model contract
    epochs : int
        Epochs this call trains (after ``start_epoch`` done before).
    start_epoch, history, best
        The state of a resumed run (epochs done, their history, the
        early-stopping state ``(loss, theta, epoch)``).
    data : tuple of ndarray, optional
        Prepared training data (for the training accuracy).
    validation_data : tuple of ndarray, optional
        Prepared validation data: ``val_*`` metrics, and what early stopping monitors.
    test_data : tuple of ndarray, optional
        Prepared test data: ``test_*`` metrics recorded every epoch for the
        curves, never used for any decision.
    evaluate_train : bool
        Report ``accuracy`` on the training data each epoch.
    early_stopping : int, optional
        Patience in epochs.
    min_delta : float
    epoch_metrics : callable ``(theta) -> dict``, optional
    callback : callable ``(TrainResult) -> None``, optional
        ``StopIteration`` ends the run with ``Status.CALLBACK``.
    checkpoint : path-like, optional
    checkpoint_every : int
    checkpoint_meta : dict, optional
    optimizer_name : str, optional
        Stored in the checkpoint (a resume with another optimizer is refused).
    rng : numpy.random.Generator, optional
        Its state goes into the checkpoint.
    progress : None, bool or "lines"
        See :class:`Progress`.
    label : str
        Shown in the progress display.
    """

    def __init__(self, model, *, epochs, start_epoch=0, history=None, best=None, data=None, validation_data=None,
                 test_data=None, evaluate_train=True, early_stopping=None, min_delta=0.0, epoch_metrics=None, callback=None,
                 checkpoint=None, checkpoint_every=1, checkpoint_meta=None, optimizer_name=None, rng=None,
                 progress=None, label=None):
        self.model, self.epochs, self.start_epoch = model, epochs, start_epoch
        self.history = History()
        for key, column in (history or {}).items():
            self.history[key] = list(column)
        self.early_stopping, self.min_delta = early_stopping, min_delta
        best = (math.inf, None, start_epoch) if best is None else best
        self.best = best if early_stopping is not None else (best[0], None, best[2])
        self.data, self.validation_data, self.evaluate_train = data, validation_data, evaluate_train
        self.test_data = test_data
        self.epoch_metrics, self.callback = epoch_metrics, callback
        self.checkpoint, self.checkpoint_every = checkpoint, checkpoint_every
        self.checkpoint_meta, self.optimizer_name, self.rng = checkpoint_meta, optimizer_name, rng
        self.saved_epoch = None
        # continues across a resume
        self.elapsed = float(self.history["time"][-1]) if self.history.get("time") else 0.0
        self.policy = check_choice(getattr(model, "on_failure", "warn"), "on_failure",
                                   ("warn", "raise", "skip", "ignore"))
        self.failures = {"batches": 0, "skipped": 0, "unconverged": 0, "first": None}
        self.progress = Progress(progress, epochs, label or type(model).__name__)
        import inspect

        evaluate = getattr(model, "evaluate", None)
        takes = evaluate is not None and "on_failure" in inspect.signature(evaluate).parameters
        self._eval_kwargs = {"on_failure": "ignore"} if takes else {}
        self.epoch = start_epoch
        self.status, self.message = Status.MAX_ITER, f"completed {epochs} epochs"

    # -- during an epoch ----------------------------------------------------------

    def note(self, info) -> bool:
        """Record one gradient's solver failures; returns True when its update must be skipped.

        Under ``on_failure="raise"`` the first failure raises
        :class:`~rbp.core.results.NonConvergenceError` here.
        """
        failures = info.get("failures") if info else None
        if not failures:
            return bool(info.get("skip")) if info else False
        self.failures["batches"] += 1
        if self.failures["first"] is None:
            self.failures["first"] = " ".join(failures)
        if self.policy == "raise":
            raise NonConvergenceError(f"epoch {self.epoch + 1}: " + " ".join(failures))
        if self.policy == "skip":
            self.failures["skipped"] += 1
            return True
        return False

    # -- between epochs -----------------------------------------------------------

    def _evaluate(self, theta, data) -> dict:
        out = self.model.evaluate(theta, *data, **self._eval_kwargs)
        missed = int(out.get("n_unconverged", 0))
        if missed:
            self.failures["unconverged"] += missed
            if self.policy == "raise":
                raise NonConvergenceError(
                    f"epoch {self.epoch}: the relaxation did not converge for {missed} of {len(data[0])} samples "
                    "during evaluation (on_failure='raise')"
                )
        return out

    def end_epoch(self, theta, row: dict, optimizer_state=None) -> bool:
        """Complete and record the epoch's row; checkpoint; call back. Returns True to stop.

        ``row`` holds what the epoch measured (``loss``, ``grad_norm``,
        ``seconds``, counters, aggregated solver info); ``epoch`` and
        ``time`` are added here, then the epoch metrics, the training
        accuracy and the validation metrics.
        """
        self.epoch += 1
        epoch = self.epoch
        self.elapsed += row.get("seconds", 0.0)
        row = {"epoch": epoch, **row, "time": self.elapsed}
        if self.epoch_metrics is not None:
            row.update({k: float(v) for k, v in self.epoch_metrics(theta).items()})
        evaluate = getattr(self.model, "evaluate", None)
        if evaluate is not None:
            if self.evaluate_train and self.data is not None and "accuracy" in getattr(self.model, "metrics",
                                                                                        ("accuracy",)):
                train_eval = self._evaluate(theta, self.data)
                if "accuracy" in train_eval:
                    row["accuracy"] = train_eval["accuracy"]
            if self.validation_data is not None:
                row.update({f"val_{k}": v for k, v in self._evaluate(theta, self.validation_data).items()})
            if self.test_data is not None:
                row.update({f"test_{k}": v for k, v in self._evaluate(theta, self.test_data).items()})
        self.history.append(row)
        monitored = row.get("val_loss", row["loss"])
        if monitored < self.best[0] - self.min_delta:
            self.best = (monitored, theta.copy() if self.early_stopping is not None else None, epoch)
        self.progress.update(epoch - self.start_epoch, f"loss={row['loss']:.4g}")
        stop_early = self.early_stopping is not None and epoch - self.best[2] >= self.early_stopping
        last = epoch == self.start_epoch + self.epochs
        if self.checkpoint is not None and (epoch % self.checkpoint_every == 0 or last or stop_early):
            self.save(theta, optimizer_state, stopped_early=stop_early)
        if self.callback is not None:
            try:
                self.callback(TrainResult(x=theta.copy(), fun=row["loss"], nit=epoch, history=self.history))
            except StopIteration:
                self.status, self.message = Status.CALLBACK, f"stopped by the callback after epoch {epoch}"
                return True
        if stop_early:
            self.status = Status.SUCCESS
            self.message = (f"early stopping: no improvement for {self.early_stopping} epochs; "
                            f"restored the best parameters from epoch {self.best[2]}")
            return True
        return False

    def save(self, theta, optimizer_state, *, stopped_early=False):
        """Write the checkpoint (atomically): parameters, optimizer and generator state, history, best."""
        save_checkpoint(
            self.checkpoint, theta, optimizer_state=optimizer_state, rng=self.rng, epoch=self.epoch,
            history=self.history,
            meta=dict(self.checkpoint_meta or {}, stopped_early=stopped_early, optimizer=self.optimizer_name),
            # the best parameters only matter for early stopping; the epoch is reported always
            best=self.best if self.early_stopping is not None else (self.best[0], None, self.best[2]),
        )
        self.saved_epoch = self.epoch

    def diverged(self, message: str):
        """Mark the run diverged in the epoch under way (the loss, gradient or step became non-finite);
        that epoch counts as trained, without a history row."""
        self.epoch += 1
        self.status, self.message = Status.DIVERGED, f"epoch {self.epoch}: {message}"

    def finish(self, theta, optimizer_state=None, **extra) -> TrainResult:
        """The result: best parameters restored under early stopping, one failure report for the run."""
        self.progress.close()
        status, message = self.status, self.message
        best = self.best
        if self.early_stopping is not None and status != Status.DIVERGED and best[1] is not None:
            if status == Status.MAX_ITER and best[2] != self.epoch:
                message += f"; restored the best parameters from epoch {best[2]}"
            theta = best[1]
        if status == Status.MAX_ITER:
            status = Status.SUCCESS
        self.report_failures()
        return TrainResult(
            x=theta, success=status in (Status.SUCCESS, Status.CALLBACK), status=status, message=message,
            nit=self.epoch - self.start_epoch, history=self.history, best_epoch=best[2],
            optimizer_state=optimizer_state, checkpoint_epoch=self.saved_epoch, **extra,
        )

    def report_failures(self):
        """One :class:`~rbp.core.results.ConvergenceWarning` for the whole run, at the user's line."""
        f = self.failures
        if self.policy == "ignore" or not (f["batches"] or f["unconverged"]):
            return
        parts = []
        if f["batches"]:
            parts.append(f"{f['batches']} gradient(s) missed a solver threshold during training"
                         + (f" ({f['skipped']} updates skipped)" if f["skipped"] else ""))
        if f["unconverged"]:
            parts.append(f"{f['unconverged']} evaluated sample(s) did not reach their fixed point (their metrics "
                         "are read off unconverged states)")
        message = ("; ".join(parts) + ". Counted per epoch in result.history ('n_forward_failed', "
                   "'n_adjoint_failed', 'n_skipped', 'val_n_unconverged').")
        if f["first"]:
            message += f" First: {f['first']}"
        warn_or_raise(message, "warn", stacklevel=user_stacklevel())
