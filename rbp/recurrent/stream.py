"""Training on long streams: truncated BPTT in chunks, carrying the hidden state across them."""

from __future__ import annotations

import math
import os
import time
import warnings

import numpy as np

from ..core.checkpoint import load_checkpoint
from ..core.engine import EpochEngine, Regularizer, blas_threads, model_work, thread_limit
from ..core.loop import _check_checkpoint_path
from ..core.optimizers import Optimizer, clip_by_global_norm, get_optimizer
from ..core.results import ConvergenceWarning, Status
from ..core.validation import as_generator, check_int, check_real
from .elman import check_truncation, truncation_windows

__all__ = ["fit_stream"]


def fit_stream(
    model,
    theta,
    X,
    Y,
    mask=None,
    *,
    k1: int | None = None,
    k2: int | None = None,
    optimizer="adam",
    learning_rate=None,
    clip_norm: float | None = None,
    weight_decay: float = 0.0,
    epochs: int = 1,
    rng=0,
    validation_data=None,
    early_stopping: int | None = None,
    min_delta: float = 0.0,
    epoch_metrics=None,
    callback=None,
    progress: bool | None = None,
    threads="auto",
    checkpoint=None,
    checkpoint_every: int = 1,
    resume: bool = False,
):
    """Train on long streams by truncated BPTT(k1, k2), updating the weights after every chunk.

    The ``batch`` sequences of ``X`` are parallel streams, read left to right
    in chunks of ``k1`` steps. After each chunk the net is re-run from its
    stored state ``k2`` steps back, the errors of the chunk's ``k1`` steps
    are backpropagated through those ``k2`` steps, and the optimizer takes
    one step; the hidden state is carried from chunk to chunk (reset to the
    model's initial state at the start of every epoch).

    Parameters
    ----------
    model : ElmanRNN
        Any model with ``prepare``, ``loss_grad_state``, ``run``, ``init``.
    theta : ndarray, shape (n_params,) or None
        Initial parameters (copied); None draws ``model.init(rng)``.
    X : array_like, shape (batch, time, n_in)
    Y : array_like, shape (batch, time) or (batch, time, n_out)
    mask : array_like of bool, shape (batch, time), optional
        Steps with targets; default every step. A chunk without any is
        skipped (no update; counted in ``n_skipped``).
    k1 : int, optional
        Steps per chunk (the weights change every ``k1`` steps). Default:
        ``model.truncation[0]``.
    k2 : int, optional
        Steps to backpropagate, ``k2 >= k1``. Default ``model.truncation[1]``
        when ``k1`` comes from the model too, else ``k1``.
    optimizer : str or Optimizer
        A core optimizer (``"sgd"``, ``"adam"``...) or an
        :class:`~rbp.core.optimizers.Optimizer`.
    learning_rate : float or callable, optional
        For an optimizer given by name.
    clip_norm : float, optional
        Clip each chunk's gradient to this global norm
        (:func:`~rbp.core.optimizers.clip_by_global_norm`).
    weight_decay : float
        L2 penalty on the weights, added to every chunk's gradient (as in :class:`rbp.Trainer`).
    epochs : int
        Passes over the streams.
    rng : numpy.random.Generator or int
        Only used to draw ``theta`` when it is None (streams are never shuffled).
    validation_data : tuple (X_val, Y_val[, mask_val]), optional
        Streams evaluated after every epoch (``val_loss``, ``val_accuracy``);
        early stopping monitors ``val_loss`` when given.
    early_stopping : int, optional
        Patience in epochs; the best parameters are restored.
    min_delta : float
    epoch_metrics : callable ``(theta) -> dict of float``, optional
        Extra measurements after every epoch, kept in the history (and the checkpoint).
    callback : callable ``callback(intermediate_result)``, optional
        Called after every epoch with a :class:`~rbp.core.loop.TrainResult`;
        ``StopIteration`` ends the run.
    progress : bool, None or "lines"
        Progress over epochs (see :func:`rbp.core.loop.fit`).
    threads : "auto", int or None
        BLAS threads while training (see :class:`rbp.Trainer`).
    checkpoint : path-like, optional
        Checkpoint file written atomically every ``checkpoint_every`` epochs
        and at the end (parameters, optimizer state, history, early-stopping state).
    checkpoint_every : int
    resume : bool
        Continue from ``checkpoint`` if it exists: the parameters are
        bit-identical to an uninterrupted run (the hidden state restarts at
        every epoch, so an epoch boundary is a complete state).

    Returns
    -------
    TrainResult
        ``x``, ``success``, ``status``, ``message``, ``nit`` (epochs),
        ``history`` (per epoch: ``loss`` the masked-step mean of the chunk
        losses, ``grad_norm`` (RMS over chunks), ``n_chunks``, ``n_skipped``,
        ``seconds``, ``time`` and, for classification, ``accuracy`` over the
        whole stream after the epoch), ``final_state`` (batch, n_hidden; None
        when a resumed run had nothing left to train) and ``optimizer_state``.

    Notes
    -----
    Chunk ``j`` covers the steps ``S_j = [(j-1) k1, min(j k1, T))``, ending
    at ``tau_j``. Its gradient is that of ``sum_{s in S_j} m_s l_s / N_j``
    (``N_j`` the masked steps of ``S_j``) through the steps
    ``[max(0, tau_j - k2), tau_j)`` started from the stored state
    ``h_{tau_j - k2 - 1}``, held constant, with the current weights -- the
    BPTT(h; h') of Williams & Peng (1990) with ``h = k2``, ``h' = k1``,
    recomputing the last ``k2`` states with the current weights. The stored
    states come from the previous chunk's forward pass. With a single chunk
    (``k1 = k2 >= T``) one epoch is one full-BPTT step on the whole batch.

    References
    ----------
    R. J. Williams, J. Peng, "An efficient gradient-based algorithm for
    on-line training of recurrent network trajectories", Neural Computation
    2(4), 1990.

    Examples
    --------
    >>> import numpy as np
    >>> from rbp.data.sequences import sine
    >>> from rbp.recurrent.elman import ElmanRNN
    >>> from rbp.recurrent.stream import fit_stream
    >>> ds = sine(4, length=200, rng=0)
    >>> net = ElmanRNN(1, 8, 1)
    >>> res = fit_stream(net, None, ds.X, ds.Y, k1=10, k2=20, learning_rate=0.01, epochs=3, rng=0)
    >>> res.history["n_chunks"], res.final_state.shape
    ([20, 20, 20], (4, 8))
    >>> res.history["loss"][-1] < res.history["loss"][0]
    True
    """
    if k1 is None:
        if model.truncation is None:
            raise ValueError("k1 must be given (steps per chunk) when the model has truncation=None, got k1=None")
        k1, k2 = model.truncation if k2 is None else (model.truncation[0], k2)
    elif k2 is None:
        k2 = k1
    k1, k2 = check_truncation((k1, k2), "(k1, k2)")
    epochs = check_int(epochs, "epochs")
    check_int(checkpoint_every, "checkpoint_every")
    _check_checkpoint_path(checkpoint)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path of the checkpoint file>")
    if isinstance(optimizer, Optimizer):
        if learning_rate is not None:
            raise ValueError("learning_rate must be None when optimizer is an Optimizer instance (it has its own)")
        opt = optimizer
    else:
        opt = get_optimizer(optimizer, **({} if learning_rate is None else {"learning_rate": learning_rate}))
    if clip_norm is not None:
        opt = clip_by_global_norm(opt, check_real(clip_norm, "clip_norm"))
    regularizer = Regularizer(check_real(weight_decay, "weight_decay", low_inclusive=True),
                              model.params.decay_mask(model.dtype))
    X, T, mask = model.prepare(X, Y, mask)
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) < 2:
            raise ValueError(f"validation_data must be a tuple (X_val, Y_val[, mask_val]), got "
                             f"{type(validation_data).__name__}")
        val = model.prepare(*validation_data)
    gen = as_generator(rng)
    theta = model.init(gen) if theta is None else np.array(model.check_theta(theta), copy=True)
    state, start, stopped = opt.init(theta), {"epoch": 0, "history": None, "best": None}, False
    if resume and os.path.exists(checkpoint):
        loaded = load_checkpoint(checkpoint, n_params=model.params.size, optimizer_state=state)
        if loaded["meta"].get("optimizer", opt.name) != opt.name:
            raise ValueError(f"checkpoint {checkpoint} was written by optimizer {loaded['meta'].get('optimizer')!r}; "
                             f"this run uses {opt.name!r}")
        theta, state = model.check_theta(loaded["theta"]).copy(), loaded["optimizer_state"]
        start = {k: loaded[k] for k in ("epoch", "history", "best")}
        stopped = bool(loaded["meta"].get("stopped_early", False))
        if loaded["rng"] is not None:
            gen = loaded["rng"]
    remaining = max(epochs - start["epoch"], 0)
    engine = EpochEngine(
        model, epochs=remaining, start_epoch=start["epoch"], history=start["history"], best=start["best"],
        data=(X, T, mask), validation_data=val, early_stopping=early_stopping, min_delta=min_delta,
        epoch_metrics=epoch_metrics, callback=callback, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
        optimizer_name=opt.name, rng=gen, progress=progress, label=f"{type(model).__name__} stream",
    )
    windows = truncation_windows(X.shape[1], k1)
    final_state = None
    if remaining and not stopped:
        with blas_threads(thread_limit(threads, model_work(model, X.shape[0]))):
            try:
                for _ in range(remaining):
                    theta, state, row, final_state = _stream_epoch(model, theta, state, X, T, mask, windows, k2,
                                                                   opt.update, regularizer)
                    if row is None:
                        engine.diverged("the loss or gradient became non-finite; training stopped with the last "
                                        "finite parameters. Lower the learning rate or set clip_norm.")
                        break
                    if engine.end_epoch(theta, row, state):
                        break
            finally:
                engine.progress.close()
    result = engine.finish(theta, state, final_state=final_state)
    if result.status == Status.DIVERGED:
        warnings.warn(result.message, ConvergenceWarning, stacklevel=2)
    return result


def _stream_epoch(model, theta, state, X, T, mask, windows, k2, update, regularizer):
    """One pass over the streams, a weight update per chunk: ``(theta, state, row, final_state)``; row None
    when the loss or gradient became non-finite."""
    project = getattr(model, "project", None)
    t0 = time.perf_counter()
    total, n_total, grad_sq, n_updates, n_skipped = 0.0, 0, 0.0, 0, 0
    prev_lo, prev_states = 0, None  # the last window's states h_lo .. h_{end-1}
    for start, end in windows:
        lo = max(0, end - k2)
        # lo grows by k1 per window once positive and lo <= the previous end (k2 >= k1), so
        # h_{lo-1} is among the previous window's states h_{prev_lo} .. h_{prev_end-1}.
        h_start = None if lo == 0 else prev_states[:, lo - 1 - prev_lo]
        mw = mask[:, lo:end].copy()
        mw[:, : start - lo] = False
        n_w = int(np.count_nonzero(mw))
        if n_w == 0:
            n_skipped += 1
            _, states = model.run(theta, X[:, lo:end], h0=h_start)
        else:
            loss, grad, states = model.loss_grad_state(theta, X[:, lo:end], T[:, lo:end], mw, h0=h_start)
            if not (math.isfinite(loss) and np.all(np.isfinite(grad))):
                return theta, state, None, None
            step, state = update(regularizer.grad(theta, grad), state, theta)
            theta += step
            if project is not None:
                project(theta)
            total += loss * n_w
            n_total += n_w
            grad_sq += float(grad @ grad)
            n_updates += 1
        prev_lo, prev_states = lo, states
    row = {
        "loss": total / n_total if n_total else math.nan,
        "grad_norm": math.sqrt(grad_sq / max(n_updates, 1)),
        "n_chunks": len(windows),
        "n_skipped": n_skipped,
        "seconds": time.perf_counter() - t0,
    }
    return theta, state, row, prev_states[:, -1].copy()
