"""Parameters and training checkpoints as ``.npz`` + JSON; loading never executes code.

A checkpoint holds everything a run needs to continue bit-identically: the
parameters, the optimizer state (its NamedTuple fields), the random
generator's state, the epoch counter and the history so far. Files are
written atomically (temporary file, fsync, rename), so a crash leaves either
the previous good file or the new complete one, never a partial file.
Loading uses ``numpy.load(allow_pickle=False)`` and refuses object arrays,
unknown format versions, oversized members (zip bombs) and shapes that do
not fit the model, with a ValueError that says what was wrong.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_write", "save_checkpoint", "load_checkpoint", "save_params", "load_params", "FORMAT_VERSION", "CheckpointError"]

FORMAT_VERSION = 1
#: Largest uncompressed size accepted for one array in a file (zip-bomb guard).
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_RATIO = 200


class CheckpointError(ValueError):
    """A file that is not a valid rbp checkpoint (truncated, corrupted, hostile
    or for another model)."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, data, mode: str = "w"):
    """Write ``data`` to ``path`` atomically: a temporary file in the same
    folder, flushed and fsynced, then renamed over the target. A reader never
    sees a partial file and a crash never leaves one.

    ``data`` is a str, bytes, or a callable ``writer(fh)`` that writes into
    the open (binary, for ``mode="wb"``) temporary file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write(p, "hello")
    >>> p.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, mode + ("b" if isinstance(data, bytes) and "b" not in mode else "")) as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_savez(path: Path, arrays: dict):
    atomic_write(path, lambda fh: np.savez(fh, **arrays), mode="wb")


def _json_default(obj):
    # Some bit generators (Philox, SFC64, MT19937) keep arrays in their state.
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _meta_array(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta, allow_nan=True, default=_json_default).encode(), dtype=np.uint8)


def _history_json(history) -> dict:
    return {k: [None if v is None else float(v) for v in col] for k, col in (history or {}).items()}


def save_checkpoint(
    path, theta, *, optimizer_state=None, rng=None, epoch: int = 0, history=None, meta=None, best=None
) -> Path:
    """Write a training checkpoint atomically.

    Parameters
    ----------
    path : path-like
        Target ``.npz`` file (replaced only once the new file is complete).
    theta : ndarray, shape (n_params,)
    optimizer_state : NamedTuple, optional
        An optimizer state from :mod:`rbp.core.optimizers`.
    rng : numpy.random.Generator, optional
        Its bit-generator state is saved, so shuffling continues identically.
    epoch : int
        Epochs completed.
    history : dict of lists, optional
    meta : dict, optional
        Any JSON-serialisable extras (model description, config).
    best : tuple (loss, theta, epoch), optional
        Early-stopping state: the best monitored loss, its parameters (None
        to store only the loss and epoch) and epoch.

    Returns
    -------
    Path

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ckpt.npz"
    >>> _ = save_checkpoint(p, np.arange(3.0), rng=np.random.default_rng(0), epoch=2)
    >>> ck = load_checkpoint(p, n_params=3)
    >>> ck["epoch"], ck["theta"].tolist()
    (2, [0.0, 1.0, 2.0])
    """
    theta = np.asarray(theta)
    arrays = {"theta": theta}
    info = {"format": "rbp-checkpoint", "version": FORMAT_VERSION, "epoch": int(epoch), "n_params": int(theta.size)}
    if optimizer_state is not None:
        fields, scalars = [], {}
        for name, value in optimizer_state._asdict().items():
            if isinstance(value, np.ndarray):
                arrays[f"opt__{name}"] = value
                fields.append(name)
            else:
                scalars[name] = value.item() if isinstance(value, np.generic) else value
        info["optimizer"] = {"type": type(optimizer_state).__name__, "arrays": fields, "scalars": scalars}
    if rng is not None:
        info["rng"] = rng.bit_generator.state
    if best is not None:
        if best[1] is not None:
            arrays["best_theta"] = np.asarray(best[1])
        info["best"] = {"loss": float(best[0]), "epoch": int(best[2])}
    info["history"] = _history_json(history)
    info["meta"] = meta or {}
    arrays["__meta__"] = _meta_array(info)
    path = Path(path)
    _atomic_savez(path, arrays)
    return path


def _check_zip(path: Path):
    """Declared sizes first (nothing is inflated for a bomb), then each .npy
    header against its member's size, then the CRCs."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            for m in members:
                if not m.filename.endswith(".npy"):
                    raise CheckpointError(f"{path} has an unexpected member {m.filename!r}; expected only .npy arrays")
                ratio = m.file_size / max(m.compress_size, 1)
                if m.file_size > MAX_MEMBER_BYTES or (ratio > MAX_RATIO and m.file_size > 1 << 20):
                    raise CheckpointError(
                        f"{path} member {m.filename!r} expands to {m.file_size} bytes from {m.compress_size}: "
                        "refused (zip bomb guard)"
                    )
            for m in members:
                with zf.open(m) as fh:
                    _check_npy_header(path, m, fh)
            bad = zf.testzip()
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable .npz file (truncated or corrupted): {exc}") from None
    if bad is not None:
        raise CheckpointError(f"{path} is corrupted: member {bad!r} fails its CRC check")


def _check_npy_header(path, member, fh):
    from numpy.lib import format as npy

    version = npy.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = npy.read_array_header_2_0(fh)
    else:
        raise CheckpointError(f"{path} member {member.filename!r} has unsupported .npy version {version}")
    if dtype.hasobject:
        raise CheckpointError(f"{path} array {member.filename!r} has dtype object (a pickle payload); refused")
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize + fh.tell()
    if expected != member.file_size:
        raise CheckpointError(
            f"{path} member {member.filename!r} declares shape {shape} of {dtype} ({expected} bytes) but holds "
            f"{member.file_size} bytes: refused"
        )


def _load_npz(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    _check_zip(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise CheckpointError(f"{path} contains object arrays (a pickle payload); refused to load: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} could not be read: {exc}") from None
    for name, a in arrays.items():
        if a.dtype.hasobject:
            raise CheckpointError(f"{path} array {name!r} has dtype object; refused")
    if "__meta__" not in arrays or arrays["__meta__"].dtype != np.uint8:
        raise CheckpointError(f"{path} has no rbp metadata: not an rbp file")
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} metadata is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") not in ("rbp-checkpoint", "rbp-params"):
        raise CheckpointError(f"{path} is not an rbp file (format {meta.get('format') if isinstance(meta, dict) else meta!r})")
    version = meta.get("version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {version!r}; this rbp reads version {FORMAT_VERSION}")
    _validate_meta(path, meta)
    return arrays, meta


def _validate_meta(path, meta):
    """Types of every metadata field, so a crafted file fails with a clear message."""

    def bad(field, expected, got):
        raise CheckpointError(f"{path}: metadata field {field!r} must be {expected}, got {got!r}")

    epoch = meta.get("epoch", 0)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        bad("epoch", "an integer >= 0", epoch)
    history = meta.get("history", {})
    if not isinstance(history, dict) or not all(
        isinstance(col, list) and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in col)
        for col in history.values()
    ):
        bad("history", "a dict of lists of numbers", type(history).__name__)
    if not isinstance(meta.get("meta", {}), dict):
        bad("meta", "a dict", type(meta.get("meta")).__name__)
    opt = meta.get("optimizer")
    if opt is not None:
        if (
            not isinstance(opt, dict) or not isinstance(opt.get("type"), str)
            or not isinstance(opt.get("arrays", []), list) or not isinstance(opt.get("scalars", {}), dict)
        ):
            bad("optimizer", "a dict with 'type', 'arrays' (list) and 'scalars' (dict)", opt)
        for name, value in opt.get("scalars", {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                bad(f"optimizer.scalars.{name}", "a number", value)
    rng = meta.get("rng")
    if rng is not None and not (isinstance(rng, dict) and isinstance(rng.get("bit_generator"), str)):
        bad("rng", "a numpy bit-generator state (dict)", type(rng).__name__)


def _check_theta(path, theta, n_params):
    if theta.ndim != 1 or not np.issubdtype(theta.dtype, np.floating):
        raise CheckpointError(f"{path}: theta must be a 1-D float array, got shape {theta.shape} dtype {theta.dtype}")
    if n_params is not None and theta.size != n_params:
        raise CheckpointError(f"{path}: theta has {theta.size} parameters but the model has {n_params}")
    if not np.all(np.isfinite(theta)):
        raise CheckpointError(f"{path}: theta contains NaN or inf")


def load_checkpoint(path, *, n_params: int | None = None, optimizer_state=None) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; executes nothing.

    Parameters
    ----------
    path : path-like
    n_params : int, optional
        The model's parameter count; a mismatch is an error.
    optimizer_state : NamedTuple, optional
        A fresh state of the optimizer in use (``optimizer.init(theta)``); the
        saved fields are checked against it and loaded into it.

    Returns
    -------
    dict
        ``theta``, ``epoch``, ``history``, ``meta``, ``optimizer_state`` (when
        ``optimizer_state`` was given), ``rng`` (a restored Generator or None),
        ``best`` (the early-stopping state ``(loss, theta, epoch)`` or None).

    Raises
    ------
    CheckpointError
        (a ValueError) for a missing, truncated, corrupted, hostile,
        wrong-version or mismatched file.
    """
    arrays, meta = _load_npz(path)
    if meta.get("format") != "rbp-checkpoint":
        raise CheckpointError(f"{path} holds parameters only, not a training checkpoint")
    theta = arrays.get("theta")
    if theta is None:
        raise CheckpointError(f"{path} has no 'theta' array")
    _check_theta(path, theta, n_params)
    out = {"theta": theta, "epoch": int(meta.get("epoch", 0)), "history": meta.get("history", {}), "meta": meta.get("meta", {})}
    out["best"] = None
    if "best" in meta:
        best, best_theta = meta["best"], arrays.get("best_theta")
        if (
            not isinstance(best, dict) or (best_theta is not None and best_theta.shape != theta.shape)
            or not isinstance(best.get("epoch"), int) or isinstance(best.get("loss"), bool)
            or not isinstance(best.get("loss"), (int, float))
        ):
            raise CheckpointError(f"{path}: invalid early-stopping state")
        out["best"] = (float(best["loss"]), best_theta, int(best["epoch"]))
    if optimizer_state is not None:
        saved = meta.get("optimizer")
        if saved is None or saved.get("type") != type(optimizer_state).__name__:
            raise CheckpointError(
                f"{path} has optimizer state {None if saved is None else saved.get('type')!r}, "
                f"expected {type(optimizer_state).__name__!r}"
            )
        fields = {}
        for name, value in optimizer_state._asdict().items():
            if isinstance(value, np.ndarray):
                a = arrays.get(f"opt__{name}")
                if a is None or a.shape != value.shape:
                    raise CheckpointError(f"{path}: optimizer field {name!r} missing or of the wrong shape")
                if not np.all(np.isfinite(a)):
                    raise CheckpointError(f"{path}: optimizer field {name!r} contains NaN or inf")
                fields[name] = a.astype(value.dtype, copy=False)
            else:
                if name not in saved.get("scalars", {}):
                    raise CheckpointError(f"{path}: optimizer field {name!r} missing")
                scalar = saved["scalars"][name]
                if isinstance(value, (int, np.integer)) and scalar != int(scalar):
                    raise CheckpointError(f"{path}: optimizer field {name!r} must be an integer, got {scalar!r}")
                fields[name] = type(value)(scalar)
        out["optimizer_state"] = optimizer_state._replace(**fields)
    rng_state = meta.get("rng")
    if rng_state is not None:
        try:
            bitgen = getattr(np.random, rng_state["bit_generator"])
            if bitgen not in (np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64, np.random.MT19937):
                raise AttributeError(rng_state["bit_generator"])
            gen = np.random.Generator(bitgen())
            gen.bit_generator.state = rng_state
        except (KeyError, AttributeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: invalid random generator state: {exc}") from None
        out["rng"] = gen
    else:
        out["rng"] = None
    return out


def save_params(path, theta, meta=None) -> Path:
    """Save a parameter vector (``.npz`` + JSON metadata), atomically.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "model.npz"
    >>> _ = save_params(p, np.ones(4), meta={"model": "MLP([1, 2, 1])"})
    >>> load_params(p, n_params=4)[0].tolist(), load_params(p)[1]["model"]
    ([1.0, 1.0, 1.0, 1.0], 'MLP([1, 2, 1])')
    """
    theta = np.asarray(theta)
    info = {"format": "rbp-params", "version": FORMAT_VERSION, "n_params": int(theta.size), "meta": meta or {}}
    path = Path(path)
    _atomic_savez(path, {"theta": theta, "__meta__": _meta_array(info)})
    return path


def load_params(path, *, n_params: int | None = None):
    """Load ``(theta, meta)`` saved by :func:`save_params` or :func:`save_checkpoint`."""
    arrays, meta = _load_npz(path)
    theta = arrays.get("theta")
    if theta is None:
        raise CheckpointError(f"{path} has no 'theta' array")
    _check_theta(path, theta, n_params)
    return theta, meta.get("meta", {})
