"""`rbp compare --resume DIR` after a SIGKILL, and the run-folder lock."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rbp.cli import main
from rbp.core.checkpoint import load_params
from rbp.report import RunFolder, RunFolderError

TINY = ["--quick", "--quiet", "--set", "run.seeds=1"]


def _rbp(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "rbp", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kwargs)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_compare_killed_mid_run_then_resumed_is_bit_identical(tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    reference = _rbp("compare", *TINY, "--out", str(whole))
    child = _rbp("compare", *TINY, "--out", str(broken))
    # Kill once the recurrent net has finished some epochs, i.e. mid-run.
    target = broken / "checkpoints" / "rbp-gmres-seed0.train.npz"
    deadline = time.monotonic() + 120
    while not target.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child.poll() is None, "the run finished before it could be killed; " + child.stderr.read().decode()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert (broken / ".lock").exists(), "the killed run leaves its lock behind"
    assert not (broken / "summary.json").exists()

    assert main(["compare", "--resume", str(broken), "--quiet"]) == 0
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()
    for name in ("static-seed0", "rbp-gmres-seed0", "bptt-seed0"):
        a, _ = load_params(whole / "checkpoints" / f"{name}.npz")
        b, _ = load_params(broken / "checkpoints" / f"{name}.npz")
        np.testing.assert_array_equal(a, b, err_msg=name)
    with RunFolder(broken).lock():  # the lock file stays, and nobody holds it
        pass


def test_a_second_run_on_a_locked_folder_is_refused(tmp_path, capsys):
    with RunFolder(tmp_path).lock():
        assert main(["compare", *TINY, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is in use by process" in err and str(tmp_path / ".lock") in err
    assert not (tmp_path / "summary.json").exists()


def test_a_stale_lock_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    (tmp_path / "checkpoints").mkdir()
    partial = tmp_path / "checkpoints" / ".static-seed0.train.npz.abc123.tmp"  # a write cut by SIGKILL
    partial.write_bytes(b"PK")
    with RunFolder(tmp_path).claim(resume=True):
        assert not partial.exists()
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    with RunFolder(tmp_path).lock():  # released at the end (the file stays: removing it would race)
        pass


def test_nested_lock_on_the_same_folder_is_refused(tmp_path):
    with RunFolder(tmp_path).lock():
        with pytest.raises(RunFolderError, match="is in use by process"):
            with RunFolder(tmp_path).lock():
                pass


def test_resume_needs_a_run_folder(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "no readable config.json" in capsys.readouterr().err
