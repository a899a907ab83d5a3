"""Issue 10: nothing in a run folder, a config or a checkpoint can be turned against the user.

The threat model (docs/guarantees.md): a run folder, a TOML config or a checkpoint may come from
someone else. Nothing read from one may choose code to import or a path outside its folder; a
bad one gives a clear error (exit status 2), never a traceback, a hang or a file read elsewhere.
One test (or parametrised group) per numbered finding of the issue, each failing on the code
before the fix.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rbp.core.checkpoint
from rbp.cli import main
from rbp.report import RunFolder, RunFolderError, load_run

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"

#: An experiment of the user's own: trains a tiny MLP per seed with per-epoch checkpoints (so it resumes).
SCRIPT = '''
"""A tiny experiment of the user's own."""
import numpy as np

import rbp

DEFAULTS = {"train": {"epochs": 3, "learning_rate": 0.05}, "run": {"seeds": 1, "seed": 0}}


def run(config, folder, *, progress=None, resume=False):
    gen = np.random.default_rng(1)
    X = gen.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    runs, rows = [], []
    for seed in range(config["run"]["seed"], config["run"]["seed"] + config["run"]["seeds"]):
        net = rbp.MLP([2, 3, 2], loss="cross_entropy")
        trainer = rbp.StaticTrainer(net, epochs=config["train"]["epochs"],
                                    learning_rate=config["train"]["learning_rate"], progress=progress)
        result = trainer.fit(X, y, rng=seed, checkpoint=folder.checkpoint(f"mlp-seed{seed}"), resume=resume)
        runs.append({"label": "mlp", "seed": seed, "history": result.history})
        rows.append({"seed": seed, "accuracy": net.score(result.x, X, y)})
    return {"table": rows, "runs": runs, "figures": [], "standard_figures": False}
'''

#: Importing this module creates its marker file: a payload that must never run.
PAYLOAD = 'from pathlib import Path\nPath({marker!r}).write_text("pwned")\nDEFAULTS = {{}}\n'


@pytest.fixture
def payload(tmp_path, monkeypatch):
    """``(folder, marker)``: ``folder/evil.py`` and ``folder/rbp_evil.py`` create ``marker`` when imported;
    ``folder`` is on sys.path and the current folder, as an attacker would wish."""
    folder = tmp_path / "attacker"
    folder.mkdir()
    marker = tmp_path / "PWNED"
    for name in ("evil.py", "rbp_evil.py"):
        (folder / name).write_text(PAYLOAD.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(folder)
    return folder, marker


@pytest.fixture
def script_run(tmp_path):
    """``(script, run folder)``: the user's script and a finished run of it."""
    script = tmp_path / "mine" / "my_exp.py"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    assert main(["run", str(script), "--quiet", "--out", str(out)]) == 0
    return script, out


def _edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def _digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


# -- 1. a run folder executes code -----------------------------------------------------------------------------


def test_a_script_run_saves_a_name_not_a_path(script_run):
    _, out = script_run
    assert json.loads((out / "config.json").read_text())["script"] == "my_exp.py"


@pytest.mark.parametrize("changes", [
    {"script": "PAYLOAD", "experiment": None},                   # the path the old code imported
    {"script": "PAYLOAD", "experiment": "static_ocr"},           # both: refused, nothing imported
    {"script": None, "experiment": "evil"},                      # a module on sys.path, by name
    {"script": None, "experiment": "rbp_evil"},
    {"script": None, "experiment": "../attacker/evil"},
    {"script": None, "experiment": "rbp.experiments.compare"},   # a module path is not a name
], ids=["script-path", "script-and-name", "module-name", "rbp-prefixed-name", "relative-path", "dotted-module"])
def test_resume_never_imports_what_config_json_names(script_run, payload, changes, capsys):
    script, out = script_run
    folder, marker = payload
    changes = {k: (str(folder / "evil.py") if v == "PAYLOAD" else v) for k, v in changes.items()}
    _edit_config(out, **changes)
    before = _digest(out)
    for argv in (["run", "--resume", str(out)], ["compare", "--resume", str(out)],
                 ["run", str(script), "--resume", str(out)]):
        assert main(argv) == 2
        assert "Traceback" not in capsys.readouterr().err
    assert not marker.exists()
    assert _digest(out) == before  # refused before anything ran or was written


def test_resuming_a_script_run_needs_the_script_typed_again(script_run, payload, capsys):
    script, out = script_run
    folder, marker = payload
    assert main(["run", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "started from the script 'my_exp.py'" in err and f"rbp run path/to/my_exp.py --resume {out}" in err
    # another script is not imported: its file name is checked first
    assert main(["run", str(folder / "evil.py"), "--resume", str(out)]) == 2
    assert "not 'evil.py'" in capsys.readouterr().err and not marker.exists()
    assert main(["run", str(script), "--resume", str(out), "--quiet"]) == 0


def test_a_config_file_naming_a_script_is_refused_and_nothing_imported(tmp_path, payload, capsys):
    folder, marker = payload
    config = tmp_path / "config.toml"
    config.write_text(f'script = "{folder / "evil.py"}"\n')
    assert main(["run", str(config)]) == 2
    assert "rbp imports no code that a file names" in capsys.readouterr().err
    assert not marker.exists()
    config.write_text('experiment = "evil"\n')
    assert main(["run", str(config)]) == 2
    assert "unknown experiment 'evil'" in capsys.readouterr().err
    assert not marker.exists()


def test_a_received_config_toml_does_not_choose_the_script(script_run, payload, capsys):
    script, out = script_run
    folder, marker = payload
    toml = out / "config.toml"
    toml.write_text(toml.read_text().replace('script = "my_exp.py"', 'script = "evil.py"'))
    assert main(["run", str(toml), "--out", str(out.parent / "never")]) == 2
    assert main(["run", str(script), "--config", str(toml), "--out", str(out.parent / "never")]) == 2
    assert "is for the script 'evil.py'" in capsys.readouterr().err
    assert not marker.exists() and not (out.parent / "never").exists()


# -- 2. rbp report reads any local file ------------------------------------------------------------------------


@pytest.fixture
def report_run(tmp_path):
    """A run folder with one real figure, and a sentinel PNG outside it that must never be read."""
    out = tmp_path / "run"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "own.png").write_bytes(PNG + b"own figure")
    sentinel = tmp_path / "outside" / "secret.png"
    sentinel.parent.mkdir()
    sentinel.write_bytes(PNG + b"SENTINEL-c0ffee")
    summary = {"experiment": "x", "table": [{"a": 1}], "runs": [],
               "figures": [{"file": "figures/own.png", "caption": "own"}]}
    (out / "summary.json").write_text(json.dumps(summary))
    return out, sentinel


def _add_figure(out, file):
    summary = json.loads((out / "summary.json").read_text())
    summary["figures"].append({"file": file, "caption": "hostile"})
    (out / "summary.json").write_text(json.dumps(summary))


def _timeout(seconds):
    def handler(signum, frame):
        raise TimeoutError(f"no answer after {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return old


@contextlib.contextmanager
def time_limit(seconds):
    old = _timeout(seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink-out", "symlinked-folder", "fifo", "dev-zero",
                                  "directory", "too-large", "not-png", "backslash"])
def test_report_embeds_only_regular_files_inside_the_run_folder(report_run, tmp_path, kind, monkeypatch, capsys):
    out, sentinel = report_run
    if kind == "absolute":
        _add_figure(out, str(sentinel))
    elif kind == "dotdot":
        _add_figure(out, "../outside/secret.png")
    elif kind == "symlink-out":
        (out / "figures" / "link.png").symlink_to(sentinel)
        _add_figure(out, "figures/link.png")
    elif kind == "symlinked-folder":
        (out / "linked").symlink_to(sentinel.parent)
        _add_figure(out, "linked/secret.png")
    elif kind == "fifo":
        os.mkfifo(out / "figures" / "pipe.png")
        _add_figure(out, "figures/pipe.png")
    elif kind == "dev-zero":
        _add_figure(out, "/dev/zero")
    elif kind == "directory":
        _add_figure(out, "figures")
    elif kind == "too-large":
        monkeypatch.setattr("rbp.report.render.MAX_FIGURE_BYTES", 64)
        (out / "figures" / "big.png").write_bytes(PNG + b"x" * 100)
        _add_figure(out, "figures/big.png")
    elif kind == "not-png":
        (out / "figures" / "page.png").write_text("<script>alert(1)</script>")
        _add_figure(out, "figures/page.png")
    else:
        _add_figure(out, "figures\\..\\..\\outside\\secret.png")
    target = tmp_path / "report" / "r.html"
    with time_limit(10), pytest.warns(UserWarning, match="listed in the summary but"):
        assert main(["report", str(out), "-o", str(target)]) == 0
    html = target.read_text()
    assert base64.b64encode(PNG + b"own figure").decode() in html  # the honest figure is embedded
    assert base64.b64encode(sentinel.read_bytes()).decode() not in html and "SENTINEL" not in html
    assert "(not shown)" in html and "<script>" not in html
    md = (target.with_suffix(".md")).read_text()
    assert "outside/secret.png)" not in md


@pytest.mark.parametrize("kind", ["symlink-out", "fifo", "directory", "not-json", "deep", "list", "runs-not-list",
                                  "figure-without-file", "table-row-not-object", "history-not-object",
                                  "config-not-object", "metrics-not-csv"])
def test_a_malformed_run_folder_is_exit_status_2_with_the_file_named(report_run, tmp_path, kind, capsys):
    out, sentinel = report_run
    summary = out / "summary.json"
    if kind == "symlink-out":
        summary.unlink()
        summary.symlink_to(sentinel)
    elif kind == "fifo":
        summary.unlink()
        os.mkfifo(summary)
    elif kind == "directory":
        summary.unlink()
        summary.mkdir()
    elif kind == "not-json":
        summary.write_text("{not json")
    elif kind == "deep":
        summary.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "list":
        summary.write_text("[1, 2]")
    elif kind == "runs-not-list":
        summary.write_text(json.dumps({"runs": "x"}))
    elif kind == "figure-without-file":
        summary.write_text(json.dumps({"figures": [{"caption": "c"}]}))
    elif kind == "table-row-not-object":
        summary.write_text(json.dumps({"table": [1, 2]}))
    elif kind == "history-not-object":
        summary.write_text(json.dumps({"runs": [{"history": [1]}]}))
    elif kind == "config-not-object":
        (out / "config.json").write_text("[1]")
    else:
        summary.unlink()
        (out / "metrics.csv").write_bytes(b"run,seed,epoch\n\"x" + b"a" * 200_000 + b"\n")
    with time_limit(10):
        with pytest.raises(RunFolderError) as info:
            load_run(out)
        assert main(["report", str(out), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(out) in err and str(out) in str(info.value)
    assert "SENTINEL" not in err


def test_report_o_a_folder_writes_report_html_inside_it(report_run, tmp_path, capsys):
    """-o DIR wrote DIR.html beside the folder."""
    out, _ = report_run
    target = tmp_path / "reports"
    target.mkdir()
    assert main(["report", str(out), "-o", str(target)]) == 0
    assert (target / "report.html").is_file() and (target / "report.md").is_file()
    assert not (tmp_path / "reports.html").exists()
    assert main(["report", str(out), "-o", str(tmp_path / "new") + "/"]) == 0
    assert (tmp_path / "new" / "report.html").is_file()


# -- 3. the run-folder lock ------------------------------------------------------------------------------------


HOLD = """
import sys, time
from rbp.report import RunFolder
with RunFolder(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of ``tmp_path / "run"`` (killed at the end)."""
    folder = tmp_path / "run"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield folder, proc
    proc.kill()
    proc.wait()


@pytest.mark.skipif(rbp.report.folder.fcntl is None, reason="the fcntl lock")
def test_the_lock_is_an_os_lock_held_for_the_run_and_never_unlinked(holder, capsys):
    """An empty .lock counted as stale and was removed; a second run could take over a held lock."""
    folder, proc = holder
    lock = folder / ".lock"
    inode = lock.stat().st_ino
    lock.write_text("")  # the state the race left behind: the holder's pid not (yet) written
    assert main(["run", "static_ocr", "--quick", "--quiet", "--out", str(folder)]) == 2
    assert "is in use by" in capsys.readouterr().err
    assert lock.stat().st_ino == inode  # not removed and re-created by the refused run
    with pytest.raises(RunFolderError, match="is in use by"):
        with RunFolder(folder).claim(resume=True):
            pass
    proc.kill()
    proc.wait()
    # the kernel released the lock with the process: no stale-lock guessing, the file stays
    with RunFolder(folder).lock():
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert lock.exists() and lock.stat().st_ino == inode


def test_without_fcntl_the_lock_is_an_exclusive_file_removed_by_its_holder(tmp_path, monkeypatch):
    monkeypatch.setattr(rbp.report.folder, "fcntl", None)
    folder = RunFolder(tmp_path)
    with folder.lock():
        with pytest.raises(RunFolderError, match="is locked .* delete that file"):
            with RunFolder(tmp_path).lock():
                pass
        assert (tmp_path / ".lock").exists()  # the refused one removed nothing
    assert not (tmp_path / ".lock").exists()


def test_a_symlinked_lock_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(target)
    with pytest.raises(RunFolderError, match="symbolic link"):
        with RunFolder(tmp_path / "run").lock():
            pass
    assert not target.exists()


# -- 4. reusing --out destroys an earlier run ---------------------------------------------------------------


def test_a_new_run_into_a_folder_that_is_not_empty_is_refused_before_anything_is_written(script_run, capsys):
    script, out = script_run
    (out / "checkpoints" / "mlp-seed7.npz").write_bytes(b"an earlier run's parameters")
    before = _digest(out)
    assert main(["run", str(script), "--quiet", "--out", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert _digest(out) == before


def test_overwrite_clears_the_folder_completely(script_run):
    script, out = script_run
    (out / "checkpoints" / "mlp-seed7.npz").write_bytes(b"an earlier run's parameters")
    (out / "notes.txt").write_text("mine")
    assert main(["run", str(script), "--quiet", "--overwrite", "--out", str(out)]) == 0
    assert not (out / "checkpoints" / "mlp-seed7.npz").exists() and not (out / "notes.txt").exists()
    assert (out / "summary.json").exists()


def test_overwrite_never_clears_a_folder_that_is_not_a_run_folder(tmp_path, capsys):
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert main(["run", "static_ocr", "--quick", "--overwrite", "--out", str(mine)]) == 2
    assert "is not an rbp run folder" in capsys.readouterr().err
    assert (mine / "thesis.tex").read_text() == "years of work" and sorted(os.listdir(mine)) == ["thesis.tex"]


def test_out_on_a_file_and_resume_with_overwrite_are_refused(tmp_path, capsys):
    file = tmp_path / "file.txt"
    file.write_text("x")
    assert main(["run", "static_ocr", "--quick", "--out", str(file)]) == 2
    assert "is a regular file, not a folder" in capsys.readouterr().err
    assert file.read_text() == "x"
    assert main(["run", "--resume", str(tmp_path), "--overwrite"]) == 2
    assert "drop --overwrite" in capsys.readouterr().err


# -- 9. config values that passed the schema and crashed after the run folder existed ------------------------


BAD_CONFIGS = [
    (["compare", "--set", "train.static_learning_rate=inf"], "train.static_learning_rate must be a finite number"),
    (["compare", "--set", "model.tol=nan"], "model.tol must be a finite number"),
    (["compare", "--set", "run.seed=-5"], "run.seed must be >= 0"),
    (["compare", "--set", "data.n_train=1"], "leaves no training samples out of 1"),
    (["compare", "--set", "data.test_size=0.999"], "data.test_size: test_size must be"),
    (["compare", "--set", 'model.backward=["gmres", "gmres"]'], "model.backward must not repeat a method"),
    (["run", "static_ocr", "--set", "data.tasks=[]"], "data.tasks must be a non-empty list"),
    (["run", "static_ocr", "--set", 'data.tasks=["digits", "digits"]'], "data.tasks must be a non-empty list"),
    (["run", "static_ocr", "--set", "model.digits_hidden=[0]"], "model.digits_hidden: sizes[1] must be"),
    (["run", "static_ocr", "--set", "train.optimizer=adm"], "did you mean 'adam'"),
    (["run", "static_ocr", "--set", "model.activation=rleu"], "model.activation: hidden must be one of"),
    (["run", "recurrent_ocr", "--set", "model.activation=tnah"], "model.activation: activation must be one of"),
    (["run", "recurrent_ocr", "--set", "data.n_train=1"], "leaves no training samples"),
    (["run", "bptt_sequences", "--set", "train.optimizer=adm"], "train.optimizer: optimizer must be one of"),
    (["run", "bptt_sequences", "--set", 'data.tasks=["adding", "adding"]'], "data.tasks must be a non-empty list"),
    (["run", "associative_memory", "--set", "model.methods=[]"], "model.methods must be a non-empty list"),
    (["run", "associative_memory", "--set", 'model.methods=["gmres", "gmres"]'], "model.methods must be a non-empty"),
    (["run", "gradient_error", "--set", "sweep.tols=[-1.0]"], "sweep.tols"),
]


@pytest.mark.parametrize("argv, message", BAD_CONFIGS, ids=[" ".join(a[-2:]) for a, _ in BAD_CONFIGS])
def test_a_config_that_cannot_run_is_refused_before_anything_is_written(tmp_path, argv, message, capsys):
    out = tmp_path / "never"
    assert main(argv + ["--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# -- 11. tracebacks instead of messages ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["not-utf8", "deep", "directory", "fifo"])
def test_a_bad_config_file_is_a_message(tmp_path, kind, capsys):
    config = tmp_path / "c.toml"
    if kind == "not-utf8":
        config.write_bytes(b'experiment = "static_ocr"\n# \xff\xfe\n')
    elif kind == "deep":
        config.write_bytes(b'experiment = "static_ocr"\nv = ' + b"[" * 10_000 + b"]" * 10_000 + b"\n")
    elif kind == "directory":
        config = tmp_path
    else:
        os.mkfifo(config)
    with time_limit(10):
        assert main(["run", str(config), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


def test_a_full_disk_during_a_run_is_one_line_and_exit_status_1(script_run, tmp_path, monkeypatch, capsys):
    script, _ = script_run
    real = os.replace

    def full(src, dst):
        if str(dst).endswith(".train.npz"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(rbp.core.checkpoint.os, "replace", full)
    out = tmp_path / "full"
    assert main(["run", str(script), "--quiet", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]
    assert f"continue with: rbp run {script} --resume {out}" in err[0]
    assert not list(out.rglob("*.tmp"))  # the atomic writer cleaned up after itself


def test_a_read_only_disk_is_a_message(tmp_path, monkeypatch, capsys):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(["run", "static_ocr", "--quick", "--out", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "cannot create run folder" in err and "Read-only file system" in err and "Traceback" not in err


# -- 7. Ctrl-C ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_prints_the_command_that_continues_the_run(tmp_path):
    out = tmp_path / "cmp"
    child = subprocess.Popen([sys.executable, "-m", "rbp", "compare", "--quick", "--quiet", "--set", "run.seeds=1",
                              "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("checkpoints/*.train.npz")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child.poll() is None, "the run finished before it could be interrupted: " + child.stderr.read()
    child.send_signal(signal.SIGINT)
    err = child.communicate(timeout=60)[1]
    assert child.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.strip() == f"rbp compare: interrupted; continue the run with: rbp compare --resume {out}"
    assert main(["compare", "--resume", str(out), "--quiet"]) == 0
    assert (out / "report.html").exists()


# -- rbp list and rbp run NAME from an installed package, in any folder ---------------------------------------


def test_an_installed_copy_lists_and_runs_experiments_by_name_from_any_folder(tmp_path):
    """Outside the checkout, `rbp list` silently showed only compare: the experiments lived in the repository."""
    import sysconfig

    site = tmp_path / "site"
    shutil.copytree(REPO / "rbp", site / "rbp", ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_path("purelib")])}
    code = ("import sys, rbp; from rbp.cli import main; print(rbp.__file__); "
            "sys.exit(main(sys.argv[1:]))")
    run = lambda *args: subprocess.run([sys.executable, "-S", "-c", code, *args], cwd=elsewhere, env=env,  # noqa
                                       capture_output=True, text=True, timeout=120)
    done = run("list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(str(site))  # the copy, not the checkout
    for name in ("compare", "static_ocr", "recurrent_ocr", "associative_memory", "gradient_error", "bptt_sequences"):
        assert f"rbp run {name}" in done.stdout or name == "compare"
    done = run("run", "static_ocr", "--quick", "--quiet", "--set", 'data.tasks=["digits"]', "--out", "r")
    assert done.returncode == 0, done.stderr
    assert json.loads((elsewhere / "r" / "config.json").read_text())["experiment"] == "static_ocr"


def test_entry_points_and_registered_experiments_are_found_by_name(tmp_path, monkeypatch, capsys):
    import importlib.metadata
    import types

    import rbp.experiments as E

    (tmp_path / "third_party_exp.py").write_text('"""A third-party experiment."""\n' + SCRIPT.split('"""', 2)[2])
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint(name="third", value="third_party_exp", group=E.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [ep] if kw.get("group") == E.ENTRY_POINT_GROUP else real(**kw))
    mine = types.ModuleType("mine", "A registered experiment.")
    mine.DEFAULTS, mine.run = {"run": {"seed": 0}}, lambda config, folder: {"table": [{"ok": 1}]}
    monkeypatch.setattr(E, "_REGISTERED", {})
    E.register_experiment("mine", mine)
    with pytest.raises(ValueError, match="exists already"):
        E.register_experiment("compare", mine)
    with pytest.raises(ValueError, match="name must be"):
        E.register_experiment("../x", mine)
    assert E.list_experiments()[-2:] == ["third", "mine"]
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "rbp run third" in listed and "A third-party experiment." in listed and "rbp run mine" in listed
    assert main(["run", "third", "--quiet", "--out", str(tmp_path / "t")]) == 0
    assert main(["run", "--resume", str(tmp_path / "t"), "--quiet"]) == 0  # resumed by its name
    assert main(["run", "mine", "--quiet", "--out", str(tmp_path / "m")]) == 0


def test_python_experiments_script_help_states_the_real_default_folder():
    done = subprocess.run([sys.executable, str(REPO / "experiments" / "static_ocr.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "default: runs/static_ocr-<YYYYmmdd>-<HHMMSS>" in text and "--overwrite" in text
