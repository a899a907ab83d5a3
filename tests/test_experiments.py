"""Smoke tests of the built-in experiments (``rbp.experiments.<name>``) and their scripts in ``experiments/``.

Each experiment is imported by name (as ``rbp run`` finds it) and its ``run``
is called once with its ``QUICK`` overrides on a temporary folder; the tests
then check the summary protocol (keys, table rows, figures that are real PNG
files, JSON-serialisable) and that the numbers are sane. One is also run
through its script's command line (``rbp.cli.script_main``) to check the run
folder that ``rbp.report.write_run`` writes. The whole file takes well under
30 s.
"""

from __future__ import annotations

import copy
import csv
import importlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rbp.core.loop

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
NAMES = ("static_ocr", "recurrent_ocr", "associative_memory", "gradient_error", "bptt_sequences")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_REAL_FIT = rbp.core.loop.fit  # the core training loop that every trainer drives


def load(name):
    """The installed experiment module ``rbp.experiments.<name>``."""
    return importlib.import_module(f"rbp.experiments.{name}")


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) else copy.deepcopy(value)
    return out


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """``{name: (module, out_dir, summary)}``: every script's ``run`` on its QUICK config, once."""
    old = np.seterr(over="raise", divide="raise", invalid="raise")
    try:
        out = {}
        for name in NAMES:
            module = load(name)
            folder = tmp_path_factory.mktemp(name)
            summary = module.run(merge(module.DEFAULTS, module.QUICK), folder, progress=False)
            out[name] = (module, folder, summary)
        return out
    finally:
        np.seterr(**old)


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.parametrize("name", NAMES)
def test_protocol(name):
    module = load(name)
    assert module.__doc__ and len(module.__doc__.strip().splitlines()) > 5
    assert isinstance(module.DEFAULTS, dict) and all(isinstance(v, dict) for v in module.DEFAULTS.values())
    assert module.DEFAULTS["run"]["seeds"] == 1
    for section, values in module.QUICK.items():  # QUICK only overrides keys that exist, with the same types
        for key, value in values.items():
            default = module.DEFAULTS[section][key]
            assert type(value) is type(default) or (isinstance(default, float) and isinstance(value, int)), (
                f"{name}.QUICK[{section!r}][{key!r}]")
    assert callable(module.run) and callable(module.check)
    # the script in experiments/ is the one shared preamble: it names the installed experiment, nothing more
    script = (EXPERIMENTS / f"{name}.py").read_text()
    assert f'EXPERIMENT = "{name}"' in script and "script_main(EXPERIMENT)" in script
    assert len(script.splitlines()) < 25 and "DEFAULTS" not in script


@pytest.mark.parametrize("name", NAMES)
def test_toml_config_matches_defaults(name):
    config = tomllib.loads((EXPERIMENTS / f"{name}.toml").read_text())
    assert config.pop("experiment") == name
    config.pop("description", None)
    defaults = load(name).DEFAULTS
    for section, values in config.items():
        assert section in defaults, f"{name}.toml: unknown section {section!r}"
        for key, value in values.items():
            assert key in defaults[section], f"{name}.toml: unknown key {section}.{key}"
            assert type(value) is type(defaults[section][key]) or isinstance(defaults[section][key], float)


@pytest.mark.parametrize("name", NAMES)
def test_summary_and_figures(name, quick_runs):
    _, folder, summary = quick_runs[name]
    assert {"experiment", "table", "runs", "figures", "notes"} <= set(summary)
    assert summary["experiment"] == name
    json.dumps(summary)  # JSON-serialisable as returned
    assert summary["table"] and all(isinstance(row, dict) for row in summary["table"])
    assert summary["runs"]
    for run in summary["runs"]:
        assert isinstance(run["label"], str) and isinstance(run["seed"], int)
        lengths = {len(v) for v in run["history"].values()}
        assert len(lengths) == 1 and lengths.pop() > 0, f"{run['label']}: history columns differ in length"
    assert summary["figures"]
    for fig in summary["figures"]:
        path = folder / fig["file"]
        assert fig["file"].startswith("figures/") and fig["file"].endswith(".png")
        assert path.is_file() and path.stat().st_size > 1000
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert isinstance(fig["caption"], str) and len(fig["caption"]) > 20
    assert all(isinstance(n, str) for n in summary["notes"])


def test_static_ocr_numbers(quick_runs):
    module, _, summary = quick_runs["static_ocr"]
    rows = summary["table"]
    assert [r["task"] for r in rows] == ["glyphs"] * 4 + ["digits"]
    assert rows[0]["test_set"] == "held-out typefaces"
    fonts = ("DejaVuSerif", "STIXGeneralItalic", "cmtt10")
    assert [r["test_set"] for r in rows[1:4]] == [f"typeface {f}" for f in fonts]
    for row in rows:
        assert 0.0 <= row["test_accuracy"] <= 1.0 and finite(row["seconds"]) and row["params"] > 0
    # the overall glyph accuracy is the mean over the (equal-sized) held-out typefaces
    assert rows[0]["test_accuracy"] == pytest.approx(np.mean([r["test_accuracy"] for r in rows[1:4]]))
    assert rows[4]["test_accuracy"] > 0.5  # 3 epochs on the digits already beat chance (0.1) by far
    for run in summary["runs"]:
        h = run["history"]
        assert all(finite(v) and v > 0 for v in h["loss"])
        assert all(0.0 <= v <= 1.0 for v in h["test_accuracy"])


def test_static_ocr_rejects_unknown_keys(tmp_path):
    module = load("static_ocr")
    with pytest.raises(ValueError, match="train.epoch"):
        module.run({"train": {"epoch": 3}}, tmp_path)


def test_recurrent_ocr_numbers(quick_runs):
    _, _, summary = quick_runs["recurrent_ocr"]
    rows = summary["table"]
    assert [(r["task"], r["model"]) for r in rows] == [
        ("digits", "MLP"), ("digits", "FixedPointNet"), ("glyphs", "MLP"), ("glyphs", "FixedPointNet")]
    for mlp, fpn in (rows[0:2], rows[2:4]):
        assert abs(mlp["params"] - fpn["params"]) <= 0.05 * fpn["params"]  # comparable parameter counts
    for row in rows:
        assert 0.0 <= row["test_accuracy"] <= 1.0
    for row in rows[1::2]:
        assert row["fwd_iters_last"] >= 1 and row["adj_iters_last"] >= 1
        assert row["fwd_failed"] == 0 and row["adj_failed"] == 0
        assert 0.0 < row["spectral_radius_last"] < 1.0
    for run in summary["runs"]:
        if run["model"] == "FixedPointNet":
            h = run["history"]
            for key in ("forward_iterations", "adjoint_iterations", "n_forward_failed", "spectral_radius"):
                assert all(finite(v) for v in h[key]), key


def test_associative_memory_numbers(quick_runs):
    module, _, summary = quick_runs["associative_memory"]
    rows = summary["table"]
    methods = module.DEFAULTS["model"]["methods"]
    assert len(rows) == len(methods) + 1 and rows[-1]["method"] == "corrupted cue (no network)"
    for row in rows:
        for key in ("test_pixel_error", "fixed_point_pixel_error", "test_perfect_recall"):
            assert 0.0 <= row[key] <= 1.0
    untruncated = ("RBP (direct)", "RBP (GMRES)", "CG-RBP", "BPTT")
    exact = [r["final_train_loss"] for r in rows[:-1] if r["method"] in untruncated]
    assert len(exact) == 4 and all(finite(v) for v in exact)
    # the untruncated methods compute the same gradient, so they follow the same training path
    assert max(exact) - min(exact) <= 1e-4 * max(exact)
    for run in summary["runs"]:
        losses = run["history"]["loss"]
        assert losses[-1] < losses[0]


def test_gradient_error_numbers(quick_runs):
    _, _, summary = quick_runs["gradient_error"]
    by_method = {}
    for run in summary["runs"]:
        by_method[run["method"]] = run["history"]
        assert all(finite(e) and e >= 0 for e in run["history"]["relative_error"])
    assert {"gmres", "lgmres", "bicgstab", "cg-normal", "neumann", "relax", "bptt", "rbp-at-xk"} <= set(by_method)
    assert min(by_method["gmres"]["relative_error"]) < 1e-6  # a tight Krylov solve recovers the exact gradient
    for method in ("neumann", "relax"):  # more series terms, smaller error
        err = by_method[method]["relative_error"]
        assert err[-1] < err[0]
    bptt = by_method["bptt"]["relative_error"]
    assert bptt[-1] < 1e-2 * bptt[0]  # BPTT approaches the RBP gradient as the unrolled steps grow
    for h in by_method.values():
        if "matvecs" in h:
            assert all(m >= 0 for m in h["matvecs"]) and all(finite(s) and s > 0 for s in h["seconds"])
    assert summary["table"][-1]["best_error"] == 0.0


def test_bptt_sequences_numbers(quick_runs):
    module, _, summary = quick_runs["bptt_sequences"]
    rows = summary["table"]
    methods = ["full BPTT", "TBPTT(k1=4, k2=8)", "TBPTT(k1=2, k2=3)", "full BPTT", "TBPTT(k1=5, k2=10)",
               "TBPTT(k1=2, k2=4)", "full BPTT", "TBPTT(k1=3, k2=3)", "TBPTT(k1=1, k2=1)", "random weight guessing"]
    assert [r["task"] for r in rows] == ["embedded_reber"] * 3 + ["adding"] * 3 + ["temporal_xor"] * 4
    assert [r["method"] for r in rows] == methods
    assert all(finite(r["final"]) and finite(r["baseline"]) and finite(r["seconds"]) for r in rows)
    assert [r["baseline"] for r in rows] == pytest.approx([0.5] * 3 + [1 / 6] * 3 + [0.5] * 4)
    reber, adding, xor = rows[0:3], rows[3:6], rows[6:10]
    for r in reber + xor:
        assert 0.0 <= r["final"] <= 1.0
    # full BPTT solves the embedded Reber grammar; a 3-step window cannot carry its second symbol to the end
    assert reber[0]["final"] > 0.9 and reber[0]["beats_baseline"]
    assert reber[2]["final"] < reber[0]["final"] - 0.2
    assert adding[0]["final"] < adding[0]["baseline"] and adding[0]["beats_baseline"]  # below 1/6
    assert xor[0]["final"] < 0.1 and xor[0]["beats_baseline"]  # one step of memory: full BPTT learns it
    guess = xor[3]
    assert guess["budget"] == xor[0]["budget"] > 0  # as many guesses as full BPTT computed gradients
    assert 0.0 <= guess["final"] <= 1.0
    for run in summary["runs"]:
        h = run["history"]
        assert len(h["epoch"]) == run["epochs"] == module.QUICK["train"][f"{run['task']}_epochs"]
        assert all(finite(v) and v > 0 for v in h["loss"])
        assert all(finite(v) for v in h[f"test_{run['metric']}"])
    files = [f["file"] for f in summary["figures"]]
    assert files == [f"figures/{t}.png" for t in module.DEFAULTS["data"]["tasks"]]


def test_bptt_sequences_rejects_bad_config(tmp_path):
    module = load("bptt_sequences")
    with pytest.raises(ValueError, match="train.epochs"):
        module.run({"train": {"epochs": 3}}, tmp_path)
    with pytest.raises(ValueError, match=r"train\.adding_truncations.*1 <= k1 <= k2"):
        module.run({"train": {"adding_truncations": [[4, 2]]}}, tmp_path)
    with pytest.raises(ValueError, match="data.tasks"):
        module.run({"data": {"tasks": ["xor"]}}, tmp_path)
    from rbp.config import ConfigError, resolve

    with pytest.raises(ConfigError, match="train.adding_truncations"):  # `rbp run` rejects it before running
        resolve(module.DEFAULTS, {"train": {"adding_truncations": [[4, 2]]}}, constraints=module.CONSTRAINTS)
    assert not any(tmp_path.iterdir())  # nothing was trained or written


def test_main_writes_a_run_folder(tmp_path, monkeypatch, capsys):
    from rbp.cli import script_main

    module = load("static_ocr")
    monkeypatch.setattr(sys, "argv", ["experiments/static_ocr.py"])
    assert script_main("static_ocr", ["--quick", "--out", str(tmp_path)]) == 0
    for name in ("summary.json", "metrics.csv", "config.json"):
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["experiment"] == "static_ocr" and summary["table"]
    for fig in summary["figures"]:
        assert (tmp_path / fig["file"]).is_file()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"]["epochs"] == module.QUICK["train"]["epochs"]
    with open(tmp_path / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"run", "seed", "epoch", "loss"} <= set(rows[0])
    assert {r["run"] for r in rows} == {"glyphs", "digits"}
    printed = capsys.readouterr().out
    assert "held-out typefaces" in printed and "test_accuracy" in printed


# --- rbp run --resume: training checkpoints of the experiment scripts ------------------------------------------

#: static_ocr on QUICK with a learning rate that overshoots: the glyph net's best validation epoch (2) is not its
#: last (4), so its result is the restored best epoch, and the digits' best training epoch (3) is not the last.
STATIC_RESUME = {"train": {"epochs": 4, "learning_rate": 0.02, "glyphs_early_stopping": 3}}
TIMINGS = {"seconds", "time", "train_seconds", "ms_per_epoch"}


class Interrupted(Exception):
    """Stands for a crash, a kill or Ctrl-C in the middle of a run."""


def _quick_config(name):
    module = load(name)
    config = merge(module.DEFAULTS, module.QUICK)
    return module, merge(config, STATIC_RESUME) if name == "static_ocr" else config


def patch_fit(monkeypatch, *, cut=None, after=None, before_callback=False):
    """Record the trainings (``(start_epoch, epochs)`` per call of the core loop); with ``cut=k``, the k-th
    training dies after epoch ``after``: its checkpoint of that epoch is written, then the run stops, before or
    after the script's per-epoch callback."""
    real, calls = _REAL_FIT, []

    def fit(*args, **kwargs):
        calls.append((kwargs.get("start_epoch", 0), kwargs["epochs"]))
        if len(calls) == cut:
            callback = kwargs.get("callback")

            def dying(intermediate):
                if intermediate.nit >= after and before_callback:
                    raise Interrupted
                if callback is not None:
                    callback(intermediate)
                if intermediate.nit >= after:
                    raise Interrupted

            kwargs["callback"] = dying
        return real(*args, **kwargs)

    monkeypatch.setattr(rbp.core.loop, "fit", fit)
    return calls


def numbers(summary):
    """The summary as JSON stores it, without timings and notes."""

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in TIMINGS}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    out = strip(json.loads(json.dumps(summary)))
    out.pop("notes")
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """``name -> (summary, seconds, folder)`` of one uninterrupted run on the resume config (once per script)."""
    cache = {}

    def get(name):
        if name not in cache:
            module, config = _quick_config(name)
            folder = tmp_path_factory.mktemp(f"{name}-whole")
            t0 = time.perf_counter()
            summary = module.run(config, folder, progress=False)
            cache[name] = (summary, time.perf_counter() - t0, folder)
        return cache[name]

    return get


@pytest.mark.parametrize("name", ["static_ocr", "bptt_sequences"])
def test_resuming_a_finished_run_trains_nothing_and_changes_no_number(name, uninterrupted, monkeypatch):
    first, seconds, folder = uninterrupted(name)
    expected = {"static_ocr": ["digits-seed0", "glyphs-seed0"],
                "bptt_sequences": [f"{t}-{m}-seed0" for t, ms in (("adding", ("bptt", "tbptt2-4", "tbptt5-10")),
                                                                  ("embedded_reber", ("bptt", "tbptt2-3", "tbptt4-8")),
                                                                  ("temporal_xor", ("bptt", "tbptt1-1", "tbptt3-3")))
                                   for m in ms]}[name]
    files = sorted(p.name for p in (folder / "checkpoints").iterdir())
    assert files == sorted(f"{n}.train.npz" for n in expected)  # per-epoch curves live in the checkpoint's history

    module, config = _quick_config(name)
    calls = patch_fit(monkeypatch)
    t0 = time.perf_counter()
    again = module.run(config, folder, progress=False, resume=True)
    resumed_seconds = time.perf_counter() - t0
    assert calls == []  # every training is loaded from its checkpoint, none repeated: the time is plotting only
    print(f"{name}: run {seconds:.2f} s, resumed {resumed_seconds:.2f} s")
    if name == "bptt_sequences":  # training is most of its time (static_ocr's QUICK run is mostly plotting)
        assert resumed_seconds < 0.5 * seconds
    np.testing.assert_equal(numbers(again), numbers(first))
    key = "test_accuracy" if name == "static_ocr" else "final"
    np.testing.assert_array_equal([r[key] for r in again["runs"]], [r[key] for r in first["runs"]])
    # the training times recorded in the first session are kept
    assert [r["seconds"] for r in again["runs"]] == [r["seconds"] for r in first["runs"]]
    assert any("Resumed run" in n for n in again["notes"]) and not any("Resumed run" in n for n in first["notes"])


@pytest.mark.parametrize("name, cut, cut_name, after, before_callback, stale", [
    ("static_ocr", 2, "digits-seed0", 2, False, "digits-seed0"),
    ("static_ocr", 2, "digits-seed0", 2, True, "digits-seed0"),  # dies after the checkpoint, before the callback
    ("recurrent_ocr", 2, "digits-fpn-seed0", 1, False, "glyphs-fpn-seed0"),
])
def test_an_interrupted_run_resumes_to_the_uninterrupted_numbers(name, cut, cut_name, after, before_callback, stale,
                                                                 uninterrupted, tmp_path, monkeypatch):
    from rbp.core.checkpoint import load_checkpoint

    from rbp.report import RunFolderError

    whole, _, _ = uninterrupted(name)
    module, config = _quick_config(name)
    # garbage of an earlier run in this folder: a new run refuses the folder (nothing written, nothing deleted),
    # so that --resume never continues from a file that is not this run's
    (tmp_path / "checkpoints").mkdir()
    stale_file = tmp_path / "checkpoints" / f"{stale}.train.npz"
    stale_file.write_bytes(b"not this run's")
    with pytest.raises(RunFolderError, match="is not empty"):
        module.run(config, tmp_path, progress=False)
    assert stale_file.read_bytes() == b"not this run's" and len(list(tmp_path.rglob("*"))) == 2
    stale_file.unlink()
    stale_file.parent.rmdir()
    patch_fit(monkeypatch, cut=cut, after=after, before_callback=before_callback)
    with pytest.raises(Interrupted):
        module.run(config, tmp_path, progress=False)
    assert len(list((tmp_path / "checkpoints").glob("*.train.npz"))) == cut
    assert load_checkpoint(tmp_path / "checkpoints" / f"{cut_name}.train.npz")["epoch"] == after
    assert not (tmp_path / "summary.json").exists()

    calls = patch_fit(monkeypatch)
    resumed = module.run(config, tmp_path, progress=False, resume=True)
    assert calls[0] == (after, calls[0][1])  # the interrupted training continues from its checkpoint
    assert len(calls) == len(whole["runs"]) - cut + 1  # the ones finished before are not repeated
    for key in ("test_accuracy", "epochs", "best_epoch"):
        np.testing.assert_array_equal([r[key] for r in resumed["runs"]], [r[key] for r in whole["runs"]], key)
    for r, w in zip(resumed["runs"], whole["runs"]):
        np.testing.assert_array_equal(r["history"]["test_loss"], w["history"]["test_loss"])
    np.testing.assert_equal(numbers(resumed), numbers(whole))


def test_rbp_run_resume_continues_an_interrupted_script_run(tmp_path, quick_runs, monkeypatch, capsys):
    from rbp.cli import main

    folder = tmp_path / "run"
    patch_fit(monkeypatch, cut=2, after=2)  # the digits net (3 epochs) dies after its second epoch
    with pytest.raises(Interrupted):
        main(["run", str(EXPERIMENTS / "static_ocr.toml"), "--quick", "--quiet", "--out", str(folder)])
    assert (folder / "config.json").is_file() and not (folder / "summary.json").exists()
    from rbp.report import RunFolder

    with RunFolder(folder).lock():  # the interrupted run released its lock
        pass
    calls = patch_fit(monkeypatch)
    assert main(["run", "--resume", str(folder), "--quiet"]) == 0
    assert calls == [(2, 1)]  # only the rest of the interrupted training
    summary = json.loads((folder / "summary.json").read_text())
    whole = quick_runs["static_ocr"][2]  # the same config, uninterrupted
    np.testing.assert_array_equal([r["test_accuracy"] for r in summary["runs"]],
                                  [r["test_accuracy"] for r in whole["runs"]])
    for key in ("table", "runs"):
        np.testing.assert_equal(numbers({key: summary[key], "notes": []}), numbers({key: whole[key], "notes": []}))
    config = json.loads((folder / "config.json").read_text())
    assert config["invocation"]["quick"] and config["resumed"]["argv"][:3] == ["rbp", "run", "--resume"]
    assert "Resumed run" in " ".join(summary["notes"]) and "test_accuracy" in capsys.readouterr().out
    # metrics.csv is the one an uninterrupted run writes, byte for byte but for the timings (integer counters
    # were written as 0.0 after a resume)
    patch_fit(monkeypatch)
    whole = tmp_path / "whole"
    assert main(["run", str(EXPERIMENTS / "static_ocr.toml"), "--quick", "--quiet", "--out", str(whole)]) == 0

    def untimed(path):
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        timed = [i for i, c in enumerate(rows[0]) if c in TIMINGS]
        return [[c if i not in timed else "" for i, c in enumerate(r)] for r in rows]

    assert "n_skipped" in untimed(whole / "metrics.csv")[0]
    assert untimed(folder / "metrics.csv") == untimed(whole / "metrics.csv")
