"""Run folders, checkpoints, figures and the HTML/Markdown report."""

import base64
from html import escape as html_escape
import csv
import json
import os
import re
import stat

import numpy as np
import pytest

from rbp.config import tomllib
from rbp.report import load_run, metrics_csv, read_metrics_csv, write_run
from rbp.report import figures as F
from rbp.report.run import atomic_write
from rbp.report.tables import format_cell, markdown_table, mean_sd, text_table

PNG = b"\x89PNG\r\n\x1a\n"


def _history(n, seed, recurrent):
    rng = np.random.default_rng(seed)
    loss = list(2.0 * np.exp(-0.4 * np.arange(n)) + 0.01 * rng.random(n))
    h = {
        "epoch": list(range(1, n + 1)), "loss": loss, "val_loss": [v * 1.1 for v in loss],
        "accuracy": list(np.linspace(0.3, 0.95, n)), "val_accuracy": list(np.linspace(0.25, 0.9, n)),
        "grad_norm": list(np.linspace(1, 0.1, n)), "seconds": [0.1] * n, "time": list(0.1 * np.arange(1, n + 1)),
    }
    if recurrent:
        h.update(forward_iterations=list(np.linspace(5, 20, n)), forward_iterations_max=list(np.linspace(9, 40, n)),
                 adjoint_iterations=list(np.linspace(4, 15, n)), n_forward_failed=[0] * n,
                 n_adjoint_failed=[0] * (n - 1) + [1], spectral_radius=list(np.linspace(0.3, 0.8, n)))
        h["val_loss"][2] = float("nan")  # a missing value must survive CSV and JSON
    return h


@pytest.fixture
def summary(tmp_path):
    runs = [{"label": label, "seed": seed, "history": _history(6, seed, label != "static"), "status": "SUCCESS",
             "test_accuracy": 0.9}
            for seed in (0, 1) for label in ("static", "recurrent")]
    own = F.residual_traces(
        [{"label": "a", "residuals": [1.0, 0.1, 0.01, 0.0]}, {"label": "b", "residuals": [1.0, 0.5]}],
        tmp_path / "run" / "figures" / "own.png", title="t", xlabel="step", ylabel="residual (relative)",
        caption="An experiment's own figure.", tol=1e-3, root=tmp_path / "run",
    )
    return {
        "experiment": "demo",
        "table": [{"method": "static", "accuracy": {"mean": 0.95, "sd": 0.01}},
                  {"method": "recurrent", "accuracy": {"mean": 0.94, "sd": 0.02}}],
        "notes": ["a note"],
        "figures": [own],
        "runs": runs,
    }


def _images(html):
    return re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)">', html)


def test_write_run_writes_the_folder_and_a_report_with_every_figure(tmp_path, summary):
    out = write_run(tmp_path / "run", {"train": {"epochs": 6}, "run": {"seeds": 2}}, summary)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "config.toml", "metrics.csv", "summary.json", "report.html", "report.md", "figures"} <= names
    saved = json.loads((out / "summary.json").read_text())
    files = [f["file"] for f in saved["figures"]]
    assert files[0] == "figures/own.png"  # the experiment's own figures first
    assert {"figures/loss.png", "figures/accuracy.png", "figures/gradient_cost.png",
            "figures/spectral_radius.png"} <= set(files)
    html = (out / "report.html").read_text()
    images = _images(html)
    assert len(images) == len(files)
    for fig, data in zip(saved["figures"], images):
        raw = base64.b64decode(data, validate=True)
        assert raw.startswith(PNG)
        assert raw == (out / fig["file"]).read_bytes()
        assert fig["caption"] and html_escape(fig["caption"]) in html
    assert html.index("<table>") < html.index("<img")  # the comparison table comes first
    assert "0.950 ± 0.010" in html and "a note" in html
    md = (out / "report.md").read_text()
    for fig in saved["figures"]:
        assert f"]({fig['file']})" in md
    assert md.index("| method |") < md.index("![Figure 1]")
    config = json.loads((out / "config.json").read_text())
    assert config["train"] == {"epochs": 6} and "numpy" in config["versions"]
    assert tomllib.loads((out / "config.toml").read_text())["run"] == {"seeds": 2}
    assert not [p for p in out.rglob("*.tmp")]


def test_metrics_csv_has_every_history_column_and_reads_back(tmp_path, summary):
    out = write_run(tmp_path / "run", {}, summary, report=False)
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * 6
    header = list(rows[0])
    assert header[:7] == ["run", "seed", "epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    for key in ("grad_norm", "seconds", "time", "forward_iterations", "forward_iterations_max",
                "adjoint_iterations", "n_forward_failed", "n_adjoint_failed", "spectral_radius"):
        assert key in header
    runs = read_metrics_csv(out / "metrics.csv")
    assert [(r["label"], r["seed"]) for r in runs] == [(r["label"], r["seed"]) for r in summary["runs"]]
    back = runs[1]["history"]
    assert np.isnan(back["val_loss"][2]) and back["epoch"] == list(range(1, 7))
    np.testing.assert_allclose(back["loss"], summary["runs"][1]["history"]["loss"])
    assert np.isnan(runs[0]["history"]["spectral_radius"]).all()  # static runs have no spectrum


def test_load_run_falls_back_to_metrics_csv(tmp_path, summary):
    out = write_run(tmp_path / "run", {"run": {"seeds": 2}}, summary, report=False)
    data = json.loads((out / "summary.json").read_text())
    for r in data["runs"]:
        del r["history"]
    (out / "summary.json").write_text(json.dumps(data))
    config, loaded = load_run(out)
    assert config["run"] == {"seeds": 2}
    assert len(loaded["runs"]) == 4 and "loss" in loaded["runs"][0]["history"]
    with pytest.raises(ValueError, match="not a run folder"):
        load_run(tmp_path)


def test_standard_figures_skip_what_the_histories_lack(tmp_path):
    runs = [{"label": "mlp", "seed": 0, "history": {"epoch": [1, 2], "loss": [1.0, 0.5]}}]
    figs = F.standard_figures(runs, tmp_path, root=tmp_path)
    assert [f["file"] for f in figs] == ["loss.png"]
    assert F.standard_figures([{"label": "x", "history": {}}], tmp_path) == []


def test_odd_histories_do_not_break_the_report(tmp_path):
    runs = [{"label": "odd", "seed": 0, "history": {"epoch": [1, 2], "loss": [1.0, "n/a"], "note": "text",
                                                    "grad_norm": [[1, 2], None]}}]
    out = write_run(tmp_path / "run", {}, {"experiment": "x", "table": [{"a": [1, 2]}], "runs": runs})
    assert (out / "figures" / "loss.png").exists() and "report.html" in {p.name for p in out.iterdir()}
    assert (out / "metrics.csv").read_text().splitlines() == [
        "run,seed,epoch,loss,grad_norm", "odd,0,1,1.0,\"[1, 2]\"", "odd,0,2,n/a,"]


def test_an_experiment_figure_with_a_standard_name_is_kept(tmp_path, summary):
    own = tmp_path / "run" / "figures" / "loss.png"
    (tmp_path / "run" / "figures" / "own.png").rename(own)
    mine = own.read_bytes()
    summary["figures"] = [{"file": "figures/loss.png", "caption": "The experiment's loss figure."}]
    out = write_run(tmp_path / "run", {}, summary)
    assert own.read_bytes() == mine
    files = [f["file"] for f in json.loads((out / "summary.json").read_text())["figures"]]
    assert files[0] == "figures/loss.png" and "figures/convergence_loss.png" in files


def test_missing_figure_is_flagged_not_fatal(tmp_path):
    summary = {"experiment": "x", "table": [], "figures": [{"file": "figures/nope.png", "caption": "c"}]}
    with pytest.warns(UserWarning, match="nope.png"):
        out = write_run(tmp_path / "run", {}, summary)
    assert "is missing" in (out / "report.html").read_text()


def test_confusion_and_misclassified_figures(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((20, 16))
    y = rng.integers(0, 3, 20)
    pred = y.copy()
    pred[:5] = (pred[:5] + 1) % 3
    a = F.confusion_matrices([("net", y, pred), ("other", y, y)], ("a", "b", "c"), tmp_path / "cm.png", caption="c")
    b = F.misclassified_grid(X, y, pred, ("a", "b", "c"), (4, 4), tmp_path / "wrong.png", title="t", caption="c",
                             also_wrong=np.arange(20) < 2)
    for fig in (a, b):
        assert open(fig["file"], "rb").read(8) == PNG


def test_atomic_write_replaces_whole_files_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write(target, "one")
    atomic_write(target, b"two", mode="wb")
    assert target.read_text() == "two"
    assert stat.S_IMODE(os.stat(target).st_mode) & 0o044  # readable by others, unlike mkstemp's 0600
    assert os.listdir(target.parent) == ["f.txt"]


def test_tables_format_mean_and_spread():
    assert format_cell({"mean": 0.96123, "sd": 0.0041}) == "0.9612 ± 0.0041"
    assert format_cell({"mean": 12.0, "sd": None}) == "12"
    assert format_cell(None) == "—" and format_cell(float("nan")) == "—" and format_cell(3) == "3"
    assert mean_sd([]) is None
    rows = [{"a": 1, "b": "x|y"}, {"a": 2.5}]
    assert "x\\|y" in markdown_table(rows)
    assert text_table(rows).splitlines()[0].split() == ["a", "b"]


def test_metrics_csv_of_no_runs_is_a_header():
    assert metrics_csv([]) == "run,seed\n"
