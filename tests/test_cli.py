"""The rbp command end to end, on tiny settings (seconds, not minutes)."""

import base64
import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from rbp import FixedPointNet
from rbp.cli import main
from rbp.core.checkpoint import load_params
from rbp.data import digits

PNG = b"\x89PNG\r\n\x1a\n"

# A protocol-following experiment script: DEFAULTS, QUICK, run(config, out_dir, progress), main.
SCRIPT = '''
"""Tiny XOR-ish experiment used by the CLI tests."""
import argparse
from pathlib import Path

import numpy as np

import rbp
from rbp.report import write_run
from rbp.report.figures import residual_traces

DEFAULTS = {
    "data": {"n": 64},
    "model": {"hidden": 4},
    "train": {"epochs": 5, "learning_rate": 0.05},
    "run": {"seeds": 1, "seed": 0},
}
QUICK = {"train": {"epochs": 2}}


def run(config, out_dir, *, progress=None):
    rng = np.random.default_rng(123)
    X = rng.normal(size=(config["data"]["n"], 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    runs, rows = [], []
    for i in range(config["run"]["seeds"]):
        seed = config["run"]["seed"] + i
        net = rbp.MLP([2, config["model"]["hidden"], 2], loss="cross_entropy")
        res = rbp.StaticTrainer(net, epochs=config["train"]["epochs"], learning_rate=config["train"]["learning_rate"],
                                validation_fraction=0.25, progress=progress).fit(X, y, rng=seed)
        runs.append({"label": "mlp", "seed": seed, "history": dict(res.history)})
        rows.append({"method": "mlp", "seed": seed, "accuracy": net.score(res.x, X, y)})
    fig = residual_traces([{"label": "demo", "residuals": [1.0, 0.1, 0.01]}], Path(out_dir) / "figures" / "demo.png",
                          title="demo", xlabel="step", ylabel="residual (relative)", caption="A demo trace.",
                          root=out_dir)
    return {"experiment": "tiny", "table": rows, "runs": runs, "figures": [fig], "notes": ["tiny run"]}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/tiny")
    args = ap.parse_args(argv)
    config = {k: dict(v) for k, v in DEFAULTS.items()}
    write_run(args.out, config, run(config, args.out))
'''

# compare, shrunk to a few seconds: 120 digits, 12 units, 2 epochs, 2 seeds.
TINY_COMPARE = ["--set", "data.n_train=120", "--set", "model.units=12", "--set", "train.epochs=2",
                "--set", "run.seeds=2", "--set", "run.n_traces=2", "--set", "train.target_accuracy=0.3"]


@pytest.fixture
def experiments(tmp_path):
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "tiny.py").write_text(SCRIPT)
    (folder / "tiny.toml").write_text('script = "tiny.py"\n\n[train]\nepochs = 3\n')
    return folder


def tiny(experiments, *extra):
    """``rbp run experiments/tiny.py --config experiments/tiny.toml ...``: the script typed, the TOML applied."""
    return ["run", str(experiments / "tiny.py"), "--config", str(experiments / "tiny.toml"), *extra]


def _report_images(html):
    return [base64.b64decode(d, validate=True)
            for d in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def _check_report(out: Path):
    summary = json.loads((out / "summary.json").read_text())
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    images = _report_images(html)
    assert len(images) == len(summary["figures"]) > 0
    for fig, raw in zip(summary["figures"], images):
        assert raw.startswith(PNG) and raw == (out / fig["file"]).read_bytes()
        assert f"]({fig['file']})" in md
    return summary, html


@pytest.mark.filterwarnings("ignore::rbp.core.results.ConvergenceWarning")  # the simulated misses are warned about
def test_compare_end_to_end(tmp_path, capsys, monkeypatch):
    # FixedPointNet.evaluate reporting n_unconverged (the evaluation misses) is simulated: the table must show
    # them beside the accuracy they affect, and mark an accuracy computed with misses (issue 10.5)
    real = FixedPointNet.evaluate
    monkeypatch.setattr(FixedPointNet, "evaluate", lambda self, theta, *data: {**real(self, theta, *data),
                                                                              "n_unconverged": 3})
    out = tmp_path / "cmp"
    assert main(["compare", "--quick", "--quiet", "--out", str(out)] + TINY_COMPARE) == 0
    printed = capsys.readouterr().out
    assert "MLP · static backprop" in printed and "FixedPointNet · RBP (gmres)" in printed
    assert "FixedPointNet · BPTT (picard)" in printed and "report.html" in printed
    summary, html = _check_report(out)
    assert [row["method"] for row in summary["table"]] == [
        "MLP · static backprop", "FixedPointNet · RBP (gmres)", "FixedPointNet · BPTT (picard)"]
    static, *recurrent = summary["table"]
    assert static["test misses"] is None and static["val misses"] is None and "flag" not in static["test accuracy"]
    for row in recurrent:
        cols = list(row)
        assert cols.index("test misses") == cols.index("test accuracy") + 1
        assert row["test misses"] == 3 * 2 and row["val misses"] == 3 * 2 * 2  # 2 seeds; and 2 epochs each
        assert row["test accuracy"]["flag"] == "†"
    assert "†" in printed and any(n.startswith("† Test accuracy computed on test samples") for n in summary["notes"])
    assert len(summary["runs"]) == 6 and {r["seed"] for r in summary["runs"]} == {0, 1}
    files = {Path(f["file"]).name for f in summary["figures"]}
    assert {"loss.png", "accuracy.png", "gradient_cost.png", "spectral_radius.png", "forward_residuals.png",
            "adjoint_residuals.png", "confusion.png", "misclassified.png"} <= files
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("val_accuracy", "forward_iterations", "adjoint_iterations", "n_forward_failed", "spectral_radius",
                "val_n_unconverged"):
        assert key in header
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == "compare" and config["model"]["units"] == 12 and config["run"]["seeds"] == 2
    assert config["train"]["epochs"] == 2 and "rbp" in config["versions"]
    checkpoints = sorted((out / "checkpoints").glob("*-seed?.npz"))  # final parameters
    assert len(checkpoints) == 6
    assert len(sorted((out / "checkpoints").glob("*.train.npz"))) == 6  # training state, for --resume
    theta, meta = load_params(out / "checkpoints" / "rbp-gmres-seed1.npz")  # allow_pickle=False inside
    sidecar = json.loads((out / "checkpoints" / "rbp-gmres-seed1.json").read_text())
    assert meta == sidecar and meta["seed"] == 1 and meta["kwargs"]["backward"] == "gmres"
    net = FixedPointNet(meta["kwargs"].pop("n_in"), meta["kwargs"].pop("n_units"), meta["kwargs"].pop("n_out"),
                        **meta["kwargs"])
    run = next(r for r in summary["runs"] if r["key"] == "rbp-gmres" and r["seed"] == 1)
    test = digits(rng=0)
    assert net.score(theta, test.X_test, test.y_test) == pytest.approx(run["test_accuracy"])


def test_run_script_with_a_toml_config(tmp_path, experiments, capsys):
    out = tmp_path / "run1"
    assert main(tiny(experiments, "--out", str(out), "--quiet", "--seeds", "2")) == 0
    summary, html = _check_report(out)
    assert summary["figures"][0]["file"] == "figures/demo.png"  # the script's own figure, then the standard ones
    assert {Path(f["file"]).name for f in summary["figures"]} >= {"demo.png", "loss.png", "accuracy.png"}
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["epochs"] == 3 and config["run"]["seeds"] == 2  # from the TOML and --seeds
    assert config["script"] == "tiny.py"  # the file name only: a run folder names no path to import
    assert "tiny run" in html and "mlp" in capsys.readouterr().out
    # the written config.toml re-runs the same experiment with the script typed again; --quick and --set apply
    again = tmp_path / "run2"
    assert main(["run", str(experiments / "tiny.py"), "--config", str(out / "config.toml"), "--out", str(again),
                 "--quick", "--quiet", "--set", "model.hidden=3"]) == 0
    config = json.loads((again / "config.json").read_text())
    assert config["train"]["epochs"] == 2 and config["model"]["hidden"] == 3


def test_bad_config_is_rejected_before_running(tmp_path, experiments, capsys):
    bad = experiments / "bad.toml"
    bad.write_text('script = "tiny.py"\n\n[train]\nepoch = 3\n')
    script = str(experiments / "tiny.py")
    assert main(["run", script, "--config", str(bad), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'train.epoch'" in err and "did you mean 'train.epochs'" in err
    assert not (tmp_path / "never").exists()
    bad.write_text('script = "tiny.py"\nepochs = 3\n')
    assert main(["run", script, "--config", str(bad)]) == 2
    assert "unknown top-level key 'epochs'" in capsys.readouterr().err
    bad.write_text('experiment = "compare"\n\n[model]\nunit = 3\n')
    assert main(["run", str(bad)]) == 2
    assert "did you mean 'model.units'" in capsys.readouterr().err
    bad.write_text('[train]\nepochs = 3\n')
    assert main(["run", str(bad)]) == 2
    assert 'missing experiment = "<name>"' in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "train.epochs=abc"], "train.epochs must be an integer"),
        (["--set", "train.epochs=0"], "train.epochs must be >= 1"),
        (["--set", "model.backward=[\"gmres\", \"lu\"]"], "model.backward: backward must be one of"),
        (["--set", "model.unit=5"], "did you mean 'model.units'"),
        (["--set", "train.epochs"], "--set expects section.key=value"),
        (["--seeds", "0"], "run.seeds must be >= 1"),
    ],
)
def test_compare_overrides_are_type_checked(tmp_path, capsys, args, message):
    assert main(["compare", "--quiet", "--out", str(tmp_path / "never")] + args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_list_shows_compare_and_the_experiments_folder(experiments, monkeypatch, capsys):
    monkeypatch.chdir(experiments.parent)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^compare\s+rbp compare\s+Static vs recurrent backprop", out, re.M)
    assert re.search(r"^static_ocr\s+rbp run static_ocr\s+Static backprop OCR", out, re.M)
    assert re.search(r"^experiments/tiny\.toml\s+script tiny\.py\s+"
                     r"rbp run experiments/tiny\.py --config experiments/tiny\.toml\s+Tiny XOR-ish experiment", out, re.M)


def test_report_overlays_two_runs(tmp_path, experiments, capsys):
    for i in (1, 2):
        assert main(tiny(experiments, "--out", str(tmp_path / f"r{i}"), "--quiet", "--set", f"run.seed={i}")) == 0
    target = tmp_path / "both" / "overlay.html"
    assert main(["report", str(tmp_path / "r1"), str(tmp_path / "r2"), "-o", str(target)]) == 0
    html = target.read_text()
    md = (tmp_path / "both" / "overlay.md").read_text()
    images = _report_images(html)
    assert images and all(raw.startswith(PNG) for raw in images)
    assert "r1: mlp" in html and "r2: mlp" in html  # both runs' curves, labelled by run
    assert (tmp_path / "both" / "overlay_figures" / "loss.png").exists()
    assert len(re.findall(r"!\[Figure \d+\]\(([^)]+)\)", md)) == len(images)
    for link in re.findall(r"!\[Figure \d+\]\(([^)]+)\)", md):
        assert (tmp_path / "both" / link).exists()
    assert main(["report", str(tmp_path / "nothing-here")]) == 2


def test_console_script_and_python_m(tmp_path):
    script = Path(sysconfig.get_path("scripts")) / "rbp"
    if not script.exists():
        pytest.skip("the rbp console script is not installed in this environment")
    done = subprocess.run([str(script), "list"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0 and "compare" in done.stdout
    done = subprocess.run([sys.executable, "-m", "rbp", "run", "missing.toml"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "missing.toml" in done.stderr and "does not exist" in done.stderr


def test_help_exits_cleanly(capsys):
    assert main(["--help"]) == 0
    assert "compare" in capsys.readouterr().out
    assert main([]) == 2

