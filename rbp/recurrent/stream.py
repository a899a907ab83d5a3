"""Training on long streams: truncated BPTT in chunks, carrying the hidden state across them."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from ..core.loop import History, TrainResult, progress_bar
from ..core.model import check_int
from ..core.optimizers import Optimizer, clip_by_global_norm, get_optimizer
from ..core.params import as_generator
from ..core.results import ConvergenceWarning, Status
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
    epochs: int = 1,
    rng=0,
    callback=None,
    progress: bool | None = None,
) -> TrainResult:
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
    epochs : int
        Passes over the streams.
    rng : numpy.random.Generator or int
        Only used to draw ``theta`` when it is None (streams are never shuffled).
    callback : callable ``callback(intermediate_result)``, optional
        Called after every epoch with a :class:`~rbp.core.loop.TrainResult`;
        ``StopIteration`` ends the run.
    progress : bool or None
        Progress bar over epochs; None shows it only on a terminal.

    Returns
    -------
    TrainResult
        ``x``, ``success``, ``status``, ``message``, ``nit`` (epochs),
        ``history`` (per epoch: ``loss`` the masked-step mean of the chunk
        losses, ``grad_norm`` (RMS over chunks), ``n_chunks``, ``n_skipped``,
        ``seconds``, ``time`` and, for classification, ``accuracy`` over the
        whole stream after the epoch), ``final_state`` (batch, n_hidden) and
        ``optimizer_state``.

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
    if isinstance(optimizer, Optimizer):
        if learning_rate is not None:
            raise ValueError("learning_rate must be None when optimizer is an Optimizer instance (it has its own)")
        opt = optimizer
    else:
        opt = get_optimizer(optimizer, **({} if learning_rate is None else {"learning_rate": learning_rate}))
    if clip_norm is not None:
        opt = clip_by_global_norm(opt, clip_norm)
    X, T, mask = model.prepare(X, Y, mask)
    gen = as_generator(rng)
    theta = model.init(gen) if theta is None else np.array(model.check_theta(theta), copy=True)
    n_steps = X.shape[1]
    windows = truncation_windows(n_steps, k1)
    project = getattr(model, "project", None)
    classification = "accuracy" in getattr(model, "metrics", ())

    state = opt.init(theta)
    history = History()
    status, message = Status.SUCCESS, f"completed {epochs} epochs"
    bar = progress_bar(progress, epochs, f"{type(model).__name__} stream")
    elapsed, epoch, final_state = 0.0, 0, None
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            total, n_total, grad_sq, n_updates, n_skipped = 0.0, 0, 0.0, 0, 0
            prev_lo, prev_states = 0, None  # the last window's states h_lo .. h_{end-1}
            diverged = False
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
                        diverged = True
                        break
                    step, state = opt.update(grad, state, theta)
                    theta += step
                    if project is not None:
                        project(theta)
                    total += loss * n_w
                    n_total += n_w
                    grad_sq += float(grad @ grad)
                    n_updates += 1
                prev_lo, prev_states = lo, states
            seconds = time.perf_counter() - t0
            elapsed += seconds
            if diverged:
                status = Status.DIVERGED
                message = (
                    f"epoch {epoch}: the loss or gradient became non-finite; training stopped with the last "
                    "finite parameters. Lower the learning rate or set clip_norm."
                )
                break
            final_state = prev_states[:, -1].copy()
            row = {
                "epoch": epoch,
                "loss": total / n_total if n_total else math.nan,
                "grad_norm": math.sqrt(grad_sq / max(n_updates, 1)),
                "n_chunks": len(windows),
                "n_skipped": n_skipped,
                "seconds": seconds,
                "time": elapsed,
            }
            if classification:
                row["accuracy"] = model.evaluate(theta, X, T, mask)["accuracy"]
            history.append(row)
            if bar is not None:
                bar.set_postfix(loss=f"{row['loss']:.4g}", refresh=False)
                bar.update(1)
            if callback is not None:
                try:
                    callback(TrainResult(x=theta, fun=row["loss"], nit=epoch, history=history))
                except StopIteration:
                    status, message = Status.CALLBACK, f"stopped by the callback after epoch {epoch}"
                    break
    finally:
        if bar is not None:
            bar.close()
    if status == Status.DIVERGED:
        warnings.warn(message, ConvergenceWarning, stacklevel=2)
    return TrainResult(
        x=theta, success=status in (Status.SUCCESS, Status.CALLBACK), status=status, message=message,
        nit=epoch, history=history, final_state=final_state, optimizer_state=state,
    )
