"""The run folder: one object owns its lock, its file names, its writes and its reads.

A run folder may come from someone else (mailed, downloaded, unpacked from an
archive). Everything read from one is data: files are read only when they are
regular files inside the folder (no absolute paths, no ``..``, no symbolic
link leading out, no FIFO or device), size-capped, and JSON nested at most
:data:`MAX_JSON_DEPTH` deep. Nothing read from a run folder chooses code to
import or a path outside it.

While a run writes into a folder it holds an operating-system lock on
``DIR/.lock`` (``fcntl.flock``) for its whole lifetime; the process id in the
file is information only. The lock is released by the kernel when the process
ends, however it ends, so a crashed run never blocks the folder, and the file
is never removed (removing a lock file that another process may have opened
is how lock files race). Where ``fcntl`` is missing, the lock is an
exclusively created file that its holder removes; one left behind by a crash
must be deleted by hand.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import math
import os
import shutil
import socket
import stat
from pathlib import Path, PurePosixPath

import numpy as np

from ..core.checkpoint import atomic_write, file_kind, json_depth_ok, read_regular_file, save_params

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["RunFolder", "RunFolderError", "jsonable", "MAX_JSON_BYTES", "MAX_FIGURE_BYTES", "MAX_JSON_DEPTH"]

#: Largest JSON or CSV file read from a run folder.
MAX_JSON_BYTES = 64 * 1024**2
#: Largest figure embedded in a report.
MAX_FIGURE_BYTES = 32 * 1024**2
#: Deepest nesting of lists and objects accepted in a run folder's JSON.
MAX_JSON_DEPTH = 64

#: What marks a folder as an rbp run folder (``--overwrite`` clears nothing else).
_RUN_MARKERS = (".lock", "config.json", "summary.json", "metrics.csv", "checkpoints")


def jsonable(obj):
    """``obj`` with numpy values as Python ones and NaN/inf as None, ready for ``json.dumps``.

    Examples
    --------
    >>> jsonable({"a": np.float64(0.5), "b": [np.int64(2), float("nan")], 3: (1, 2)})
    {'a': 0.5, 'b': [2, None], '3': [1, 2]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


class RunFolderError(ValueError):
    """A run folder that cannot be used: in use, not empty, not a folder, or holding a file that is refused."""


class RunFolder:
    """A run folder: its lock, its file names, atomic writes and safe reads.

    ``rbp run``, ``rbp compare`` and every experiment use one: the command
    claims it (:meth:`claim`: checks, lock, optional clearing) and passes it to
    the experiment's ``run(config, folder)``, which names its files through
    it (:meth:`checkpoint`, :meth:`params`, :meth:`figure`). A run folder
    converts to its path (``os.fspath(folder)``, ``folder / "x"``), so an
    experiment written for a plain path works unchanged.

    Parameters
    ----------
    path : path-like
        The folder (it need not exist yet).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = RunFolder(pathlib.Path(tempfile.mkdtemp()) / "run")
    >>> with folder.claim():                       # new, empty: created and locked
    ...     _ = folder.write("notes.txt", "hello")
    ...     folder.checkpoint("mlp-seed0").name
    'mlp-seed0.train.npz'
    >>> folder.read_text("notes.txt")
    'hello'
    >>> with folder.claim():                       # not empty: refused unless resume or overwrite
    ...     pass  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rbp.report.folder.RunFolderError: run folder ... is not empty ...
    >>> folder.read_text("/etc/passwd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rbp.report.folder.RunFolderError: ...: '/etc/passwd' is an absolute path; ...
    """

    LOCK = ".lock"
    CONFIG = "config.json"

    def __init__(self, path):
        if isinstance(path, RunFolder):
            path = path.path
        self.path = Path(path)
        self._lock_fd = None
        self._lock_created = False

    # -- a path ----------------------------------------------------------------------------------

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __truediv__(self, other) -> Path:
        return self.path / other

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @classmethod
    def of(cls, out_dir, *, resume: bool = False) -> RunFolder:
        """The run folder an experiment's ``run(config, out_dir)`` writes into.

        A :class:`RunFolder` (from the ``rbp`` command, already claimed) is
        returned as it is. A plain path (a direct call from Python) is checked
        as :meth:`claim` checks it, without a lock: a new run (``resume=False``)
        refuses a folder that is not empty, so that nothing of an earlier run is
        mixed with, or continued by, this one.

        Examples
        --------
        >>> import tempfile
        >>> folder = RunFolder.of(tempfile.mkdtemp())
        >>> sorted(p.name for p in folder.path.iterdir()), RunFolder.of(folder) is folder
        (['figures'], True)
        """
        if isinstance(out_dir, RunFolder):
            return out_dir
        folder = cls(out_dir)
        folder._check_target(resume=resume, overwrite=False)
        folder._make()
        folder._make("figures")
        return folder

    # -- file names --------------------------------------------------------------------------------

    @staticmethod
    def _name(name: str, what: str) -> str:
        if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0"):
            raise ValueError(f"{what} must be a plain file name (no folders), got {name!r}")
        return name

    def _inside(self, relpath: str) -> Path:
        """``DIR/relpath``; if something is there already, it must not lead out of the folder (a symbolic
        link to a file elsewhere would make a resumed run read, or overwrite, that file)."""
        path = self.path / relpath
        if os.path.lexists(path):
            self.locate(relpath)
        return path

    def checkpoint(self, name: str) -> Path:
        """``DIR/checkpoints/<name>.train.npz``: the per-epoch training checkpoint of one training."""
        return self._inside(f"checkpoints/{self._name(name, 'checkpoint name')}.train.npz")

    def params(self, name: str) -> Path:
        """``DIR/checkpoints/<name>.npz``: final parameters (:func:`rbp.core.checkpoint.save_params`)."""
        return self._inside(f"checkpoints/{self._name(name, 'parameter file name')}.npz")

    def figure(self, name: str) -> Path:
        """``DIR/figures/<name>`` (the folder is created)."""
        path = self.path / "figures" / self._name(name, "figure name")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def relative(self, path) -> str:
        """``path`` relative to the folder, with ``/`` separators (as summaries list files)."""
        return Path(path).relative_to(self.path).as_posix()

    # -- writes (atomic) -----------------------------------------------------------------------------

    def write(self, relpath: str, data, mode: str = "w") -> Path:
        """Write ``DIR/relpath`` atomically (:func:`rbp.core.checkpoint.atomic_write`)."""
        path = self.path / self._relative(relpath)
        atomic_write(path, data, mode="wb" if isinstance(data, bytes) else mode)
        return path

    def write_json(self, relpath: str, obj) -> Path:
        """Write JSON (NaN and inf become ``null``) atomically."""
        return self.write(relpath, json.dumps(jsonable(obj), indent=2) + "\n")

    def save_params(self, name: str, theta, meta: dict) -> str:
        """Save final parameters as ``checkpoints/<name>.npz`` and the metadata beside it as
        ``<name>.json`` (readable without Python); returns the ``.npz`` file relative to the folder."""
        meta = jsonable(meta)
        path = save_params(self.params(name), theta, meta)
        atomic_write(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
        return self.relative(path)

    # -- reads (only regular files inside the folder) ------------------------------------------------

    def _relative(self, relpath) -> PurePosixPath:
        """``relpath`` as a safe relative path, or a RunFolderError saying why not."""
        where = f"run folder {str(self.path)!r}"
        if not isinstance(relpath, str) or not relpath:
            raise RunFolderError(f"{where}: a file name must be a non-empty string, got {relpath!r:.80}")
        if "\0" in relpath or "\\" in relpath:
            raise RunFolderError(f"{where}: {relpath!r:.80} is not a relative path with '/' separators")
        pure = PurePosixPath(relpath)
        if pure.is_absolute() or (len(relpath) > 1 and relpath[1] == ":"):
            raise RunFolderError(f"{where}: {relpath!r:.80} is an absolute path; only files inside the folder "
                                 "are read")
        if ".." in pure.parts:
            raise RunFolderError(f"{where}: {relpath!r:.80} leads out of the folder ('..'); only files inside "
                                 "the folder are read")
        return pure

    def locate(self, relpath: str) -> Path:
        """The real path of ``DIR/relpath`` after checking it stays inside the folder.

        Raises
        ------
        RunFolderError
            For an absolute path, ``..``, or a symbolic link leading out of the folder.
        """
        pure = self._relative(relpath)
        root = self.path.resolve()
        real = (root / pure).resolve()
        if real != root and root not in real.parents:
            raise RunFolderError(f"run folder {str(self.path)!r}: {relpath!r:.80} is a symbolic link leading out "
                                 "of the folder; only files inside the folder are read")
        return real

    def read_bytes(self, relpath: str, *, max_bytes: int = MAX_JSON_BYTES) -> bytes:
        """The bytes of ``DIR/relpath``: a regular file inside the folder of at most ``max_bytes``.

        Raises
        ------
        RunFolderError
            For a path leading out of the folder, a missing file, a folder,
            FIFO or device, or a file larger than ``max_bytes``.
        """
        real = self.locate(relpath)
        return read_regular_file(real, max_bytes=max_bytes, error=RunFolderError, what="run-folder file")

    def read_text(self, relpath: str, *, max_bytes: int = MAX_JSON_BYTES) -> str:
        """``read_bytes`` decoded as UTF-8 (a RunFolderError if it is not)."""
        try:
            return self.read_bytes(relpath, max_bytes=max_bytes).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RunFolderError(f"{self.path / relpath}: not UTF-8 text: {exc}") from None

    def read_json(self, relpath: str):
        """Parsed JSON from ``DIR/relpath`` (NaN/Infinity allowed, nesting at most :data:`MAX_JSON_DEPTH`)."""
        text = self.read_text(relpath)
        try:
            obj, deep = json.loads(text), False
        except ValueError as exc:
            raise RunFolderError(f"{self.path / relpath}: not valid JSON: {exc}") from None
        except RecursionError:
            obj, deep = None, True
        if deep or not json_depth_ok(obj, MAX_JSON_DEPTH):
            raise RunFolderError(f"{self.path / relpath}: JSON nested deeper than {MAX_JSON_DEPTH} levels: refused")
        return obj

    def exists(self, relpath: str) -> bool:
        """Whether ``DIR/relpath`` exists (a symbolic link counts, wherever it leads)."""
        return os.path.lexists(self.path / self._relative(relpath))

    # -- claiming: checks, lock, clearing -------------------------------------------------------------

    def _entries(self) -> list:
        return [p for p in self.path.iterdir() if p.name != self.LOCK]

    def _check_target(self, *, resume: bool, overwrite: bool):
        """Refuse what cannot be a run folder for this run, before anything is written."""
        if os.path.lexists(self.path) and not self.path.is_dir():
            kind = "a symbolic link" if self.path.is_symlink() else file_kind(os.stat(self.path).st_mode)
            raise RunFolderError(f"run folder {str(self.path)!r} is {kind}, not a folder: choose another --out")
        if resume:
            if not self.path.is_dir():
                raise RunFolderError(f"--resume {str(self.path)!r}: no such run folder")
            return
        if not self.path.is_dir():
            return
        try:
            entries = self._entries()
        except OSError as exc:
            raise RunFolderError(f"run folder {str(self.path)!r} cannot be listed: {exc.strerror or exc}") from None
        if not entries:
            return
        if not overwrite:
            shown = ", ".join(sorted(p.name for p in entries)[:5]) + (", ..." if len(entries) > 5 else "")
            raise RunFolderError(
                f"run folder {str(self.path)!r} is not empty ({shown}): nothing was written. Continue the run in it "
                "with --resume DIR, replace it with --overwrite (which deletes everything in it), or choose another "
                "--out"
            )
        if not any(os.path.lexists(self.path / m) for m in _RUN_MARKERS):
            raise RunFolderError(
                f"--overwrite: {str(self.path)!r} is not empty and is not an rbp run folder (it has none of "
                f"{', '.join(_RUN_MARKERS)}); refusing to delete it: choose another --out"
            )

    def _make(self, sub: str = ""):
        try:
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create run folder {str(self.path)!r}: {exc.strerror or exc}") from None

    def _clear(self):
        """Delete everything in the folder but the lock (held by this process)."""
        for entry in self._entries():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def _refuse_folders_leading_out(self):
        """A resumed run writes into ``figures/``, ``checkpoints/``...: none may be a symbolic link leading out."""
        for top, dirs, _ in os.walk(self.path):
            for d in dirs:
                full = Path(top) / d
                if full.is_symlink():
                    self.locate(full.relative_to(self.path).as_posix())

    def _sweep_partial_writes(self):
        """Remove the temporary files of atomic writes cut short by a crash (this process holds the lock)."""
        for tmp in self.path.rglob(".*.tmp"):
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def claim(self, *, resume: bool = False, overwrite: bool = False):
        """Check, create and lock the folder for one run; release the lock at the end.

        Parameters
        ----------
        resume : bool
            Continue the run already in the folder (it must exist).
        overwrite : bool
            Start a new run in a folder that is not empty: everything in it is
            deleted first (only in a folder that holds an rbp run).

        Raises
        ------
        RunFolderError
            The folder is a file, is in use by another run, is not empty (a new
            run without ``overwrite``), or cannot be created. Nothing is
            written in these cases.
        """
        if resume and overwrite:
            raise RunFolderError("--resume and --overwrite exclude each other: resume continues the run in the "
                                 "folder, overwrite deletes it")
        self._check_target(resume=resume, overwrite=overwrite)
        self._probe_lock()
        self._make()
        with self.lock():
            if resume:
                self._refuse_folders_leading_out()
            else:
                try:
                    self._check_target(resume=False, overwrite=overwrite)  # again, now that it is ours
                    if overwrite:
                        self._clear()
                except OSError as exc:
                    raise RunFolderError(f"--overwrite: cannot clear {str(self.path)!r}: {exc}") from None
            self._sweep_partial_writes()
            self._make("figures")
            yield self

    # -- the lock ---------------------------------------------------------------------------------------

    def _holder(self, fd=None) -> str:
        try:
            if fd is not None:
                raw = os.pread(fd, 4096, 0) if hasattr(os, "pread") else b""
            else:
                raw = read_regular_file(self.path / self.LOCK, max_bytes=4096)
            info = json.loads(raw.decode("utf-8"))
            return f"process {int(info['pid'])} on {str(info.get('host'))[:100]}"
        except (OSError, ValueError, KeyError, TypeError, OverflowError):
            return "another process"

    def _busy(self, fd=None) -> RunFolderError:
        lock = self.path / self.LOCK
        return RunFolderError(
            f"run folder {str(self.path)!r} is in use by {self._holder(fd)} (it holds the lock {str(lock)!r}); "
            "wait for that run to end or choose another --out"
        )

    def _probe_lock(self):
        """Refuse a folder another run holds, without creating or writing anything."""
        lock = self.path / self.LOCK
        if fcntl is None or not lock.is_file() or lock.is_symlink():
            return
        try:
            fd = os.open(lock, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise self._busy(fd) from None
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def lock(self):
        """Hold ``DIR/.lock`` while the block runs (a RunFolderError if another run holds it).

        With ``fcntl`` it is an ``flock`` on the file, released by the kernel
        when this process ends however it ends; the file stays. Without
        ``fcntl``, an exclusively created file that is removed at the end.
        """
        if self._lock_fd is not None:
            raise RunFolderError(f"run folder {str(self.path)!r} is already locked by this run")
        path = self.path / self.LOCK
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        if fcntl is None:
            flags |= os.O_EXCL
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            raise RunFolderError(
                f"run folder {str(self.path)!r} is locked ({str(path)!r} exists); if no run uses the folder any more, "
                "delete that file"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RunFolderError(f"{str(path)!r} is a symbolic link, not a lock file: refused") from None
            raise RunFolderError(f"cannot create the lock {str(path)!r}: {exc.strerror or exc}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RunFolderError(f"{str(path)!r} is not a regular file: refused as a lock")
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise self._busy(fd) from None
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "since": datetime.datetime.now().isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(info) + "\n").encode())
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        try:
            yield self
        finally:
            self._lock_fd = None
            if fcntl is None:
                with contextlib.suppress(OSError):
                    path.unlink()
            os.close(fd)  # releases the flock; the file stays (unlinking it would race)
