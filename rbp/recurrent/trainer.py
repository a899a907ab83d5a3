"""The recurrent trainer: the core loop, with solver diagnostics per epoch."""

from __future__ import annotations

from ..core.loop import Trainer

__all__ = ["RecurrentTrainer"]


class RecurrentTrainer(Trainer):
    """Train a :class:`~rbp.FixedPointNet` or :class:`~rbp.ElmanRNN` with the core loop.

    The loop is the one :class:`~rbp.StaticTrainer` drives; what differs is
    what the model reports with each gradient: forward and adjoint iterations,
    residuals and misses are aggregated per epoch into the history
    (``forward_iterations``, ``forward_iterations_max``, ``n_forward_failed``,
    ``adjoint_iterations``, ``adjoint_matvecs``, ``n_adjoint_failed``,
    ``n_skipped``, and ``spectral_radius`` when the model measures it).
    A model built with ``contraction=gamma`` is projected back onto
    ``||W||_2 Lip(f) <= gamma`` after every update. For sequence models,
    pass ``mask=`` to :meth:`fit` and consider ``clip_norm``.

    Examples
    --------
    >>> import numpy as np
    >>> from rbp import FixedPointNet, RecurrentTrainer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 3)); y = (X[:, 0] > 0).astype(int)
    >>> net = FixedPointNet(3, 8, 2, loss="cross_entropy", contraction=0.9)
    >>> result = RecurrentTrainer(net, epochs=30, learning_rate=0.05).fit(X, y, rng=0)
    >>> bool(net.score(result.x, X, y) > 0.9), "forward_iterations" in result.history
    (True, True)
    """

    def __init__(self, model, optimizer="adam", *, learning_rate=None, epochs=30, batch_size="default", **kwargs):
        if learning_rate is None and optimizer == "adam":
            learning_rate = 5e-3
        super().__init__(model, optimizer, learning_rate=learning_rate, epochs=epochs, batch_size=batch_size, **kwargs)
