"""Parameters and training checkpoints as ``.npz`` + JSON; loading never executes code.

A checkpoint holds everything a run needs to continue bit-identically: the
parameters, the optimizer state (its NamedTuple fields), the random
generator's state, the epoch counter and the history so far. Files are
written atomically (temporary file, fsync, rename), so a crash leaves either
the previous good file or the new complete one, never a partial file.
Loading uses ``numpy.load(allow_pickle=False)`` and refuses object arrays,
unknown format versions, oversized members (zip bombs), more members than a
checkpoint can have, duplicate members, deeply nested or non-finite metadata
and shapes that do not fit the model, with a :class:`CheckpointError` (a
ValueError) that names the file and says what was wrong. Nothing but a
regular file is opened: a FIFO or a device is refused before it is read.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = [
    "atomic_write", "read_regular_file", "save_checkpoint", "load_checkpoint", "save_params", "load_params",
    "FORMAT_VERSION", "CheckpointError",
]

FORMAT_VERSION = 1
#: Largest uncompressed size accepted for one array in a file (zip-bomb guard).
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_RATIO = 200
#: Most members a file may have: theta, best_theta, the metadata and the optimizer's arrays.
MAX_MEMBERS = 64
#: Deepest nesting of lists and dicts accepted in the JSON metadata.
MAX_JSON_DEPTH = 64
#: Largest integer accepted in the metadata's numbers (counts, epochs, history values).
MAX_INT = 2**63


class CheckpointError(ValueError):
    """A file that is not a valid rbp checkpoint (truncated, corrupted, hostile
    or for another model)."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words (``"a directory"``, ``"a FIFO"``, ...).

    Examples
    --------
    >>> import os, tempfile
    >>> file_kind(os.stat(tempfile.gettempdir()).st_mode)
    'a directory'
    """
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path, *, max_bytes: int, error=ValueError, what: str = "file") -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; never blocks.

    A FIFO, a device, a socket or a folder is refused before anything is read
    (the file is opened non-blocking and checked with ``fstat``), and so is a
    file larger than ``max_bytes``; the error (of class ``error``) names the
    file and what it is.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_text("hello")
    >>> read_regular_file(p, max_bytes=10)
    b'hello'
    >>> read_regular_file(p.parent, max_bytes=10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: file ... is a directory, not a regular file
    """
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{what} {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} {str(path)!r} is a directory, not a regular file") from None
    except OSError as exc:
        raise error(f"{what} {str(path)!r} cannot be opened: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {str(path)!r} is {file_kind(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise error(f"{what} {str(path)!r} has {info.st_size} bytes, more than the {max_bytes} accepted")
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise error(f"{what} {str(path)!r} grew past the {max_bytes} bytes accepted while it was read")
    except OSError as exc:
        raise error(f"{what} {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def json_depth_ok(obj, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``obj`` nests lists and dicts at most ``limit`` deep (checked without recursion).

    Examples
    --------
    >>> json_depth_ok({"a": [1, [2]]}, limit=3), json_depth_ok([[[[]]]], limit=3)
    (True, False)
    """
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return True


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


def _history_value(v):
    """Counters stay integers (a resumed metrics.csv matches an uninterrupted one byte for byte)."""
    if v is None:
        return None
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return int(v)
    return float(v)


def _history_json(history) -> dict:
    return {k: [_history_value(v) for v in col] for k, col in (history or {}).items()}


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


def _declared_members(path: Path):
    """The member count the zip's end-of-central-directory record declares (None if it is not found),
    read from the file's tail before the central directory is parsed."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - (1 << 16) - 22))
        tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    count = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    if count == 0xFFFF:  # zip64: the real count is in the zip64 end record
        loc = tail.rfind(b"PK\x06\x07", 0, at)
        if loc < 0 or loc + 20 > len(tail):
            return None
        offset = struct.unpack("<Q", tail[loc + 8 : loc + 16])[0]
        with open(path, "rb") as fh:
            fh.seek(offset)
            record = fh.read(56)
        if len(record) < 40 or record[:4] != b"PK\x06\x06":
            return None
        count = struct.unpack("<Q", record[32:40])[0]
    return count


def _check_zip(path: Path):
    """Member count first (read from the file's tail), then declared sizes (nothing is inflated
    for a bomb), names (no duplicates, no folders), each .npy header against its member's size,
    then the CRCs."""
    try:
        declared = _declared_members(path)
        if declared is not None and declared > MAX_MEMBERS:
            raise CheckpointError(f"{path} declares {declared} members; a checkpoint has at most {MAX_MEMBERS}: refused")
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            if len(members) > MAX_MEMBERS:
                raise CheckpointError(f"{path} has {len(members)} members; a checkpoint has at most {MAX_MEMBERS}: refused")
            seen = set()
            for m in members:
                if not m.filename.endswith(".npy"):
                    raise CheckpointError(f"{path} has an unexpected member {m.filename!r}; expected only .npy arrays")
                if "/" in m.filename or "\\" in m.filename:
                    raise CheckpointError(f"{path} has a member in a folder, {m.filename!r}; expected only .npy arrays")
                if m.filename in seen:
                    raise CheckpointError(f"{path} has two members named {m.filename!r}: refused (which one is meant?)")
                seen.add(m.filename)
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
    if any(d < 0 for d in shape):
        raise CheckpointError(f"{path} member {member.filename!r} declares a negative shape {shape}: refused")
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize + fh.tell()
    if expected != member.file_size:
        raise CheckpointError(
            f"{path} member {member.filename!r} declares shape {shape} of {dtype} ({expected} bytes) but holds "
            f"{member.file_size} bytes: refused"
        )


def _load_npz(path) -> dict:
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"checkpoint {path} is {file_kind(mode)}, not a checkpoint file")
    _check_zip(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:  # headers were checked above (object dtypes refused there)
        raise CheckpointError(f"{path} holds an array numpy cannot read without pickle; refused to load: {exc}") from None
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
    except RecursionError:
        meta = None
    if meta is None or not json_depth_ok(meta):
        raise CheckpointError(f"{path} metadata nests deeper than {MAX_JSON_DEPTH} levels: refused")
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
        shown = repr(got)
        raise CheckpointError(f"{path}: metadata field {field!r} must be {expected}, got "
                              f"{shown if len(shown) <= 80 else shown[:77] + '...'}")

    def number(v):
        return not isinstance(v, bool) and (isinstance(v, float) or (isinstance(v, int) and abs(v) < MAX_INT))

    epoch = meta.get("epoch", 0)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < MAX_INT:
        bad("epoch", "an integer >= 0", epoch)
    history = meta.get("history", {})
    if not isinstance(history, dict) or not all(
        isinstance(col, list) and all(v is None or number(v) for v in col) for col in history.values()
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
            if not number(value) or not math.isfinite(value):
                bad(f"optimizer.scalars.{name}", "a finite number", value)
    rng = meta.get("rng")
    if rng is not None and not (isinstance(rng, dict) and isinstance(rng.get("bit_generator"), str)):
        bad("rng", "a numpy bit-generator state (dict)", type(rng).__name__)


def _check_theta(path, theta, n_params, name="theta"):
    if theta.ndim != 1 or not np.issubdtype(theta.dtype, np.floating):
        raise CheckpointError(f"{path}: {name} must be a 1-D float array, got shape {theta.shape} dtype {theta.dtype}")
    if n_params is not None and theta.size != n_params:
        raise CheckpointError(f"{path}: {name} has {theta.size} parameters but the model has {n_params}")
    if not np.all(np.isfinite(theta)):
        raise CheckpointError(f"{path}: {name} contains NaN or inf")


def _best_state(path, best, best_theta, theta):
    """The early-stopping state ``(loss, theta or None, epoch)``, checked like theta itself."""
    if (
        not isinstance(best, dict) or isinstance(best.get("epoch"), bool) or not isinstance(best.get("epoch"), int)
        or not 0 <= best["epoch"] < MAX_INT or isinstance(best.get("loss"), bool)
        or not isinstance(best.get("loss"), (int, float)) or math.isnan(best["loss"])
    ):
        raise CheckpointError(f"{path}: invalid early-stopping state {best!r:.80}: expected "
                              "{'loss': a number (not NaN), 'epoch': an integer >= 0}")
    if best_theta is not None:
        _check_theta(path, best_theta, theta.size, name="best_theta")
        if best_theta.dtype != theta.dtype:
            raise CheckpointError(f"{path}: best_theta has dtype {best_theta.dtype} but theta has {theta.dtype}")
    return float(best["loss"]), best_theta, int(best["epoch"])


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
        out["best"] = _best_state(path, meta["best"], arrays.get("best_theta"), theta)
    elif "best_theta" in arrays:
        raise CheckpointError(f"{path} has a best_theta array but no early-stopping state")
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
                if a.dtype.kind != value.dtype.kind:
                    raise CheckpointError(f"{path}: optimizer field {name!r} has dtype {a.dtype}, expected {value.dtype}")
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
            restored = json.loads(json.dumps(gen.bit_generator.state, default=_json_default))
        except (KeyError, AttributeError, TypeError, ValueError, OverflowError, IndexError) as exc:
            raise CheckpointError(f"{path}: invalid random generator state: {type(exc).__name__}: {exc}") from None
        if restored != rng_state:  # numpy ignored part of it: a truncated or padded state
            raise CheckpointError(f"{path}: invalid random generator state: it does not round-trip through "
                                  f"{rng_state['bit_generator']}")
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
