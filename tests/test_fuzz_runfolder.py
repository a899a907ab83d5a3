"""Property-based fuzz of run folders (issue 10): random JSON, TOML, npz and file-kind mutations of real runs.

Two real, tiny run folders are made once: one of ``rbp compare`` (quick settings, shrunk) and one of a
small experiment registered from this file, whose run resumes in milliseconds. Every example copies one,
mutates one of its files, and gives the copy to

* ``rbp.report.load_run`` and ``rbp report`` (the overlay figures are not drawn: this fuzz is about what
  is read; drawing odd histories is tested in test_report.py),
* every loader: ``load_checkpoint`` / ``load_params`` on each ``.npz`` reached through the run folder,
  ``load_toml`` and the config validation of its ``config.toml``,
* ``rbp run --resume`` (the registered experiment, which really resumes) and ``rbp compare --resume``
  up to the point where the experiment would start (its ``run`` is replaced by a stub),

and checks that only the documented errors come out (``ConfigError``, ``CheckpointError``,
``RunFolderError``: ValueErrors; the command's exit status 2, or 1 for a write the disk refuses, one
line, no traceback), that nothing outside the folder is read (a sentinel file outside is never opened
and never appears in any output), that nothing is executed (a payload's marker never appears), and that
every example ends in bounded time. The example counts keep the whole file under 20 s.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import shutil
import signal
import sys
import types
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rbp.experiments
from rbp.cli import main
from rbp.cli.targets import resolve_target
from rbp.config import ConfigError, load_toml
from rbp.core.checkpoint import CheckpointError, load_checkpoint, load_params
from rbp.report import RunFolder, RunFolderError, load_run

FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SENTINEL = b"SENTINEL-5eaf00d"
DOCUMENTED = (ConfigError, CheckpointError, RunFolderError)

TINY_COMPARE = ["--quick", "--quiet", "--set", "data.n_train=100", "--set", "model.units=8", "--set",
                "train.epochs=2", "--set", "run.seeds=1", "--set", "run.n_traces=1", "--set",
                "train.target_accuracy=0.3", "--set", 'model.backward=["gmres"]']


def _tiny_run(config, folder, *, progress=None, resume=False):
    gen = np.random.default_rng(1)
    X = gen.normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    runs = []
    for seed in range(config["run"]["seed"], config["run"]["seed"] + config["run"]["seeds"]):
        net = rbp.MLP([2, 3, 2], loss="cross_entropy")
        trainer = rbp.StaticTrainer(net, epochs=config["train"]["epochs"], learning_rate=0.05,
                                    validation_fraction=0.2, early_stopping=5, progress=progress)
        result = trainer.fit(X, y, rng=seed, checkpoint=folder.checkpoint(f"mlp-seed{seed}"), resume=resume)
        runs.append({"label": "mlp", "seed": seed, "history": result.history})
    return {"table": [{"runs": len(runs)}], "runs": runs, "figures": [], "standard_figures": False}


TINY = types.ModuleType("fuzz_tiny", "A tiny experiment for the run-folder fuzz.")
TINY.DEFAULTS = {"train": {"epochs": 3}, "run": {"seeds": 1, "seed": 0}}
TINY.run = _tiny_run


class Reached(Exception):
    """compare --resume got through every check: the experiment would start now."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The two run folders, the sentinel outside them and the payloads an attacker would plant."""
    root = tmp_path_factory.mktemp("fuzz")
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"\x89PNG\r\n\x1a\n" + SENTINEL)
    (outside / "secret.json").write_bytes(SENTINEL)
    marker = root / "PWNED"
    payload = root / "payloads"
    payload.mkdir()
    for name in ("evil.py", "fuzz_evil.py"):
        (payload / name).write_text(f"open({str(marker)!r}, 'w').write('pwned')\nDEFAULTS = {{}}\n")
    old = rbp.experiments._REGISTERED.copy()
    rbp.experiments.register_experiment("fuzz_tiny", TINY, replace=True)
    compare, tiny = root / "compare", root / "tiny"
    assert main(["compare", *TINY_COMPARE, "--out", str(compare)]) == 0
    assert main(["run", "fuzz_tiny", "--quiet", "--out", str(tiny)]) == 0
    # a valid checkpoint outside, for a symbolic link to lead to
    shutil.copy(next((tiny / "checkpoints").glob("*.train.npz")), outside / "secret.npz")
    sys.path.insert(0, str(payload))
    yield {"root": root, "outside": outside, "marker": marker, "payload": payload, "compare": compare, "tiny": tiny}
    sys.path.remove(str(payload))
    rbp.experiments._REGISTERED.clear()
    rbp.experiments._REGISTERED.update(old)


# -- mutations -------------------------------------------------------------------------------------------------


def _hostile_values(world, folder=None):
    secret = world["outside"] / "secret.png"
    dotdot = os.path.relpath(secret, folder) if folder is not None else "../outside/secret.png"
    return [
        None, True, -1, 0, 10**30, -(10**400), 1e308, float("nan"), float("inf"), "", "x" * 5000,
        str(secret), dotdot, "figures/../" + dotdot, "/dev/zero", "figures", "config.json",
        str(world["payload"] / "evil.py"), "evil", "fuzz_evil", "rbp.experiments.compare", [], {}, [[[[[]]]]],
        {"file": str(secret), "caption": "c"}, [{"file": dotdot}], {"bit_generator": "PCG64"},
        {"mean": "x", "sd": 10**400}, ["a", None, 1.5],
    ]


def _paths(obj, prefix=()):
    """Every path (tuple of keys/indices) into a JSON value, the root included."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:20]):
            yield from _paths(v, prefix + (i,))


def _mutate_json(data, obj, world, folder=None):
    """``obj`` with one value replaced (or a top-level key added) by a hostile one."""
    values = _hostile_values(world, folder)
    if isinstance(obj, dict) and data.draw(st.booleans(), label="add key"):
        key = data.draw(st.sampled_from(["script", "experiment", "figures", "runs", "table", "tables", "notes",
                                         "invocation", "train", "model", "run", "data", "format", "rng", "best",
                                         "optimizer", "history", "meta", "epoch"]), label="key")
        obj[key] = data.draw(st.sampled_from(values), label="value")
        return obj
    paths = list(_paths(obj))
    path = data.draw(st.sampled_from(paths), label="path")
    value = data.draw(st.sampled_from(values), label="value")
    if not path:
        return value
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return obj


def _deep(n):
    return "[" * n + "]" * n


def _mutate_npz(data, path, world):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__meta__"].tobytes().decode())
    kind = data.draw(st.sampled_from(["meta", "theta", "member", "raw"]), label="npz mutation")
    if kind == "meta":
        meta = _mutate_json(data, meta, world)
        text = data.draw(st.sampled_from([json.dumps(meta, allow_nan=True), _deep(3000)]), label="meta text")
        arrays["__meta__"] = np.frombuffer(text.encode(), dtype=np.uint8)
    elif kind == "theta":
        name = data.draw(st.sampled_from(sorted(k for k in arrays if k != "__meta__")), label="array")
        a = arrays[name]
        arrays[name] = data.draw(st.sampled_from([
            np.full_like(a, np.nan), a.astype(complex), a[:-1], a.reshape(1, -1), a.astype(np.int64),
            np.zeros(0), np.array(["x"] * a.size), a.astype(np.float32)]), label="array value")
    if kind in ("meta", "theta"):
        np.savez(path, **arrays)
        return
    if kind == "member":
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.array([1.0, 2.0]))
        name = data.draw(st.sampled_from(["theta.npy", "../x.npy", "extra.txt", "best_theta.npy"]), label="member")
        with zipfile.ZipFile(path, "a") as zf, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about a duplicate name: that is the point
            zf.writestr(name, buf.getvalue())
        return
    _mutate_bytes(data, path)


def _mutate_bytes(data, path):
    raw = bytearray(path.read_bytes())
    kind = data.draw(st.sampled_from(["truncate", "flip", "garbage", "empty"]), label="bytes")
    if kind == "truncate" and raw:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")]
    elif kind == "flip" and raw:
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            i = data.draw(st.integers(0, len(raw) - 1), label="at")
            raw[i] ^= 0xFF
    elif kind == "garbage":
        raw = bytearray(data.draw(st.binary(max_size=200), label="garbage"))
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))


def _mutate_kind(data, path, world):
    kind = data.draw(st.sampled_from(["symlink-out", "fifo", "directory", "missing"]), label="file kind")
    target = {".png": "secret.png", ".npz": "secret.npz"}.get(path.suffix, "secret.json")
    path.unlink()
    if kind == "symlink-out":
        path.symlink_to(world["outside"] / target)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()


def mutate(data, folder: Path, world):
    """One random mutation of ``folder``: of what a report embeds, of what names the experiment, of a
    checkpoint, of a file's kind or bytes, or of any JSON value."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".lock")
    how = data.draw(st.sampled_from(["figure", "figure", "name", "name", "npz", "npz", "kind", "toml", "bytes",
                                     "json"]), label="how")
    if how == "figure" and (folder / "summary.json").is_file():
        summary = json.loads((folder / "summary.json").read_text())
        secret = world["outside"] / "secret.png"
        dotdot = os.path.relpath(secret, folder)
        (folder / "figures" / "link.png").symlink_to(secret)
        (folder / "figures" / "linked").symlink_to(world["outside"], target_is_directory=True)
        os.mkfifo(folder / "figures" / "pipe.png")
        value = data.draw(st.sampled_from([str(secret), dotdot, "figures/../" + dotdot, "figures/link.png",
                                           "figures/linked/secret.png", "figures/pipe.png", "/dev/zero",
                                           "figures", "config.json", "figures\\..\\" + dotdot]),
                          label="figure file")
        summary.setdefault("figures", []).insert(0, {"file": value, "caption": "hostile"})
        (folder / "summary.json").write_text(json.dumps(summary))
    elif how == "name":
        config = json.loads((folder / "config.json").read_text())
        for key in data.draw(st.sampled_from([["script"], ["experiment"], ["script", "experiment"]]), label="keys"):
            config[key] = data.draw(st.sampled_from([
                str(world["payload"] / "evil.py"), "evil.py", "evil", "fuzz_evil", "../payloads/evil", "compare",
                "fuzz_tiny", "static_ocr", None, 3, ["evil"]]), label=key)
        (folder / "config.json").write_text(json.dumps(config))
    elif how == "npz" and list(folder.rglob("*.npz")):
        _mutate_npz(data, data.draw(st.sampled_from(sorted(folder.rglob("*.npz"))), label="npz"), world)
    elif how == "kind":
        _mutate_kind(data, data.draw(st.sampled_from(files), label="file"), world)
    elif how == "toml" and (folder / "config.toml").is_file():
        path = folder / "config.toml"
        path.write_text(data.draw(st.sampled_from([
            f'script = "{world["payload"] / "evil.py"}"\n', 'experiment = "evil"\n', "v = " + _deep(3000) + "\n",
            'experiment = "compare"\n[model]\nunits = -1\n', 'experiment = "compare"\n[train]\nepochs = inf\n']),
            label="toml"))
        if data.draw(st.booleans(), label="toml bytes"):
            _mutate_bytes(data, path)
    elif how == "bytes":
        _mutate_bytes(data, data.draw(st.sampled_from(files), label="file"))
    else:
        path = data.draw(st.sampled_from([p for p in files if p.suffix == ".json"]), label="json file")
        obj = _mutate_json(data, json.loads(path.read_text()), world, folder)
        text = json.dumps(obj, allow_nan=True) if data.draw(st.booleans(), label="valid json") else _deep(5000)
        path.write_text(text)


# -- the properties ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def watched(world):
    """Record every file opened under the outside folder; time-limit the block; check nothing ran."""
    opened, outside = [], os.path.realpath(world["outside"])

    def note(file):
        if isinstance(file, (str, bytes, os.PathLike)):
            real = os.path.realpath(os.fsdecode(file))
            if real == outside or real.startswith(outside + os.sep):
                opened.append(real)

    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *args, **kwargs):
        note(file)
        return real_open(file, *args, **kwargs)

    def spy_os_open(file, *args, **kwargs):
        note(file)
        return real_os_open(file, *args, **kwargs)

    def timeout(signum, frame):
        raise TimeoutError("no answer within 10 s")

    builtins.open = io.open = spy_open
    os.open = spy_os_open
    old = signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, 10)
    try:
        yield opened
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        builtins.open = io.open = real_open
        os.open = real_os_open
    assert not opened, f"read outside the run folder: {opened}"
    assert not world["marker"].exists(), "a payload was executed"


def documented(call):
    """``call()``'s value, or None when it raised one of the documented errors."""
    try:
        return call()
    except DOCUMENTED:
        return None


def exit_status(argv, capsys):
    status = main(argv)
    err = capsys.readouterr().err
    assert status in (0, 1, 2), status
    assert "Traceback" not in err and SENTINEL.decode() not in err
    if status:
        assert len(err.strip().splitlines()) == 1, err
    return status


def _copy(world, name, tmp_path_factory):
    copy = tmp_path_factory.mktemp(name) / "run"
    shutil.copytree(world[name], copy, symlinks=True)
    return copy


@pytest.mark.filterwarnings("ignore:report. figure file:UserWarning")
@settings(max_examples=25, **FUZZ)
@given(data=st.data())
def test_report_and_loaders_refuse_a_mutated_run_folder_cleanly(data, world, tmp_path_factory, monkeypatch,
                                                                  capsys):
    copy = _copy(world, "compare", tmp_path_factory)
    mutate(data, copy, world)
    monkeypatch.setattr("rbp.report.figures.standard_figures", lambda runs, fig_dir, **kw: [])
    monkeypatch.setattr(rbp.experiments.Experiment, "run", lambda *a, **k: (_ for _ in ()).throw(Reached()))
    folder = RunFolder(copy)
    with watched(world):
        documented(lambda: load_run(copy))
        report = copy.parent / "report" / "r.html"
        exit_status(["report", str(copy), "-o", str(report)], capsys)
        if report.exists():
            assert SENTINEL not in report.read_bytes() and SENTINEL not in report.with_suffix(".md").read_bytes()
        for npz in sorted(copy.rglob("*.npz")):
            rel = npz.relative_to(copy).as_posix()
            if documented(lambda: folder.locate(rel)) is not None:  # as the commands reach a file
                documented(lambda: load_checkpoint(npz))
                documented(lambda: load_params(npz))
        if documented(lambda: folder.locate("config.toml")) is not None:
            documented(lambda: load_toml(copy / "config.toml"))
            target = documented(lambda: resolve_target(str(copy / "config.toml")))
            if target is not None:
                config = documented(lambda: target.exp.resolve(file_overrides=target.overrides))
                if config is not None:
                    documented(lambda: target.exp.check(config))
        try:
            exit_status(["compare", "--resume", str(copy), "--quiet"], capsys)
        except Reached:
            pass


@pytest.mark.filterwarnings("ignore:report. figure file:UserWarning")
@settings(max_examples=25, **FUZZ)
@given(data=st.data())
def test_resume_of_a_mutated_run_folder_runs_nothing_it_names(data, world, tmp_path_factory, capsys):
    copy = _copy(world, "tiny", tmp_path_factory)
    mutate(data, copy, world)
    with watched(world):
        exit_status(["run", "--resume", str(copy), "--quiet"], capsys)
        report = copy / "report.html"
        if report.exists() and not report.is_symlink():
            assert SENTINEL not in report.read_bytes()
