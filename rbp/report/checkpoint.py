"""Checkpoints: parameters as ``.npz`` (no pickle) plus JSON metadata.

``save_checkpoint(path, params, meta)`` writes ``path`` (``.npz``, one array
per named parameter, written atomically) and ``path`` with suffix ``.json``
(the metadata). :func:`load_checkpoint` reads them back with
``allow_pickle=False``: loading never executes code.

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> from rbp import MLP
>>> net = MLP([4, 3, 2])
>>> theta = net.init(np.random.default_rng(0))
>>> path = pathlib.Path(tempfile.mkdtemp()) / "mlp.npz"
>>> _ = save_checkpoint(path, net.params.unravel(theta), {"model": repr(net)})
>>> params, meta = load_checkpoint(path)
>>> bool(np.array_equal(net.params.ravel(params), theta)), meta["names"]
(True, ['W1', 'b1', 'W2', 'b2'])
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from .run import _jsonable, atomic_write

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path, params: dict, meta: dict | None = None) -> Path:
    """Write named parameter arrays to ``path`` (``.npz``) and metadata to ``.json``.

    Parameters
    ----------
    path : path-like
        Target ``.npz`` file (the suffix is added if missing).
    params : dict of str -> ndarray
        For example ``model.params.unravel(theta)``.
    meta : dict, optional
        JSON-serialisable facts: model, seed, accuracy... ``names`` (the
        parameter order) and ``shapes`` are added.

    Returns
    -------
    Path
        The ``.npz`` path.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays = {str(k): np.ascontiguousarray(v) for k, v in params.items()}
    for name, a in arrays.items():
        if a.dtype == object:
            raise ValueError(f"params[{name!r}] must be a numeric array, got dtype object")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue(), mode="wb")
    info = dict(meta or {})
    info["names"] = list(arrays)
    info["shapes"] = {k: list(v.shape) for k, v in arrays.items()}
    atomic_write(path.with_suffix(".json"), json.dumps(_jsonable(info), indent=2) + "\n")
    return path


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    params : dict of str -> ndarray
        In the saved order.
    meta : dict
        The JSON metadata ({} when the ``.json`` file is missing).
    """
    path = Path(path)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    with np.load(path, allow_pickle=False) as data:
        names = meta.get("names") or list(data.files)
        params = {name: data[name] for name in names}
    return params, meta
