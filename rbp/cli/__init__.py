"""The ``rbp`` command.

::

    rbp compare [--data digits|glyphs] [--seeds N] [--quick] [--out DIR] [--overwrite] [--set section.key=value ...]
    rbp run NAME|CONFIG.toml|SCRIPT.py [--config FILE.toml] [--set section.key=value ...] [--seeds N] [--quick]
            [--out DIR] [--overwrite] [--quiet] [--threads N]
    rbp run --resume DIR              (also: rbp compare --resume DIR; rbp run SCRIPT.py --resume DIR)
    rbp report RUN [RUN ...] [-o FILE|DIR] [--labels NAME ...]
    rbp list [--dir experiments]

``compare`` is the main job, the ``compare`` experiment: static backprop (an
MLP) against recurrent backprop (a FixedPointNet, adjoint solve and BPTT
through its relaxation) on the same OCR task and seeds; it prints the
comparison table and writes a run folder with ``report.html``. ``run`` runs
any installed experiment by name (``rbp list`` shows them), through a TOML
config that names one, or a script of your own by its path; ``report``
overlays several run folders in one report. Configs are validated, and the
experiment's models built, before anything is written. A run folder is
claimed through :class:`rbp.report.RunFolder`: an OS lock for the run's
lifetime; a new run into a folder that is not empty is refused unless
``--overwrite``. Progress bars appear on a terminal only, never with
``--quiet``. Ctrl-C stops a run with the exact command that continues it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shlex
import sys
import time
from pathlib import Path

from ..config import ConfigError, merge, parse_sets
from ..core.checkpoint import CheckpointError
from ..report.folder import RunFolder, RunFolderError

__all__ = ["main", "script_main", "build_parser"]

_DEFAULT_OUT = "runs/{name}-<YYYYmmdd>-<HHMMSS>"


def _add_run_options(p, *, data=False, name="<name>"):
    if data:
        p.add_argument("--data", choices=("digits", "glyphs"),
                       help="the OCR task (default: digits; glyphs also sets train.target_accuracy=0.8)")
    p.add_argument("--seeds", type=int, metavar="N", help="repeat with N seeds (mean ± spread in the report)")
    p.add_argument("--quick", action="store_true", help="a small, fast version (fewer samples and epochs)")
    p.add_argument("--out", metavar="DIR",
                   help=f"run folder (default: {_DEFAULT_OUT.format(name=name)}, under the current folder); "
                        "it must be new or empty unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a run folder that is not empty: everything in it is deleted first")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value, TOML syntax (repeatable), e.g. --set train.epochs=5")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or status lines")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the interrupted run in DIR with its saved config (training checkpoints "
                        "are written every epoch; the result is bit-identical to an uninterrupted run)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="BLAS threads during the run (default 1: the small matrix products here run fastest "
                        "single-threaded; 0 keeps the library default); needs threadpoolctl")


def build_parser() -> argparse.ArgumentParser:
    """The ``rbp`` command line: ``compare``, ``run``, ``report`` and ``list``."""
    parser = argparse.ArgumentParser(
        prog="rbp", description="Backpropagation research toolkit: experiment runs and convergence reports."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("compare", help="static vs recurrent backprop on the same OCR task (the main job)",
                       description="Train an MLP (static backprop) and a FixedPointNet (recurrent backprop "
                                   "and BPTT) on the same OCR task and seeds; print the comparison table and "
                                   "write a run folder with report.html. The same as: rbp run compare.")
    _add_run_options(p, data=True, name="compare")
    p = sub.add_parser("run", help="run an experiment by name, TOML config or script",
                       description="Run an installed experiment by NAME (rbp list shows them), through a TOML "
                                   "config naming one (experiment = \"NAME\"), or a script of your own by its path; "
                                   "the config is validated and the models built before anything is written.")
    p.add_argument("target", metavar="NAME|CONFIG.toml|SCRIPT.py", nargs="?",
                   help="an experiment name, experiments/<name>.toml, or your script (omit with --resume)")
    p.add_argument("--config", metavar="FILE.toml",
                   help="a TOML config for NAME or SCRIPT.py (sections overriding its DEFAULTS)")
    _add_run_options(p)
    p = sub.add_parser("report", help="overlay several runs in one report",
                       description="Overlay the learning curves and solver diagnostics of several run folders "
                                   "in one report.html (+ .md), with every run's table and figures.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (with summary.json or metrics.csv)")
    p.add_argument("-o", "--output", default="report.html", metavar="FILE|DIR",
                   help="the HTML file to write (default report.html; FILE.md and FILE_figures/ beside it); "
                        "a folder gets DIR/report.html")
    p.add_argument("--labels", nargs="+", metavar="NAME", help="a name per run (default: the folder names)")
    p.add_argument("--title", help="report title")
    p = sub.add_parser("list", help="show the experiments",
                       description="The installed experiments (from any folder), then every TOML config in --dir.")
    p.add_argument("--dir", default="experiments", help="folder of TOML configs (default: experiments)")
    return parser


def _default_out(name: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path("runs") / f"{name}-{stamp}"
    i = 2
    while os.path.lexists(out):
        out = Path("runs") / f"{name}-{stamp}-{i}"
        i += 1
    return out


@contextlib.contextmanager
def _blas_threads(n: int):
    """Limit BLAS threads to ``n`` while the block runs (no-op for 0 or without threadpoolctl)."""
    if n == 0:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _execute(exp, config: dict, args, meta: dict, *, resume: bool = False) -> int:
    """Check, claim the run folder, run the experiment, write the results and the report."""
    if args.threads < 0:
        raise ConfigError(f"--threads must be >= 0 (0: the BLAS library's default), got {args.threads}")
    exp.check(config)  # builds the models and data descriptions: nothing is written before this passes
    folder = RunFolder(args.out if args.out else _default_out(exp.name))
    progress = False if args.quiet else None
    args.resumable = exp.can_resume
    with folder.claim(resume=resume, overwrite=args.overwrite):
        args.claimed = folder
        if not resume:
            # The resolved config first, so an interrupted run can be resumed from its folder.
            folder.write_json(RunFolder.CONFIG, {**meta, **config, "invocation": _invocation(args)})
        if not args.quiet:
            print(f"rbp: {'resuming' if resume else 'running'} {exp.name} into {folder}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        with _blas_threads(args.threads):
            summary = exp.run(config, folder, progress=progress, resume=resume)
        return _finish(exp, config, args, meta, folder.path, summary, time.perf_counter() - t0)


def _invocation(args) -> dict:
    return {"argv": list(args.words), "quick": bool(args.quick), "sets": list(args.sets), "seeds": args.seeds,
            "threads": args.threads}


def _finish(exp, config, args, meta, out, summary, seconds) -> int:
    from ..report import write_run
    from ..report.tables import text_table

    summary.setdefault("experiment", exp.name)
    summary.setdefault("seconds", seconds)
    resolved = dict(meta)
    resolved.update(config)
    current = dict(_invocation(args), seconds=round(seconds, 3))
    if "invocation" in meta:  # a resumed run keeps the command that started it
        resolved["resumed"] = current
    else:
        resolved["invocation"] = current
    write_run(out, resolved, summary)
    title = summary.get("title") or exp.name
    print(title)
    print(text_table(summary.get("table") or []))
    for extra in summary.get("tables") or []:
        print()
        print(extra.get("title", ""))
        print(text_table(extra.get("rows") or []))
    print(f"\n{seconds:.1f} s; report: {out / 'report.html'}")
    return 0


# -- resuming: by name, or by a script typed again ----------------------------------------------------------


def _resumed_experiment(saved: dict, folder: RunFolder, typed):
    """``(experiment, meta)`` of the run saved in ``folder``: a registered name, or the script the user typed
    again (whose file name must be the one saved). Nothing named in the folder is imported."""
    from ..experiments import get_experiment, load_script

    script, name = saved.get("script"), saved.get("experiment")
    where = f"--resume {folder}"
    if isinstance(script, str) and name is None:
        saved_name = Path(script).name
        if not (isinstance(typed, str) and typed.endswith(".py")):
            raise ConfigError(
                f"{where}: the run was started from the script {saved_name[:100]!r}, and rbp imports no code that a "
                f"run folder names. Type the script again: rbp run path/to/{saved_name[:100]} --resume {folder}"
            )
        if Path(typed).name != saved_name:
            raise ConfigError(f"{where}: the run was started from the script {saved_name[:100]!r}, not "
                              f"{Path(typed).name!r}: nothing was run")
        return load_script(typed), {"script": saved_name}
    if isinstance(name, str) and script is None:
        if typed is not None and not typed.endswith(".py") and typed != name:
            raise ConfigError(f"{where}: the folder holds a run of {name[:100]!r}, not of {typed!r}; continue it "
                              f"with: rbp run --resume {folder}")
        exp = load_script(typed) if isinstance(typed, str) and typed.endswith(".py") else get_experiment(name)
        if exp.name != name or exp.script is not None:
            raise ConfigError(f"{where}: the folder holds a run of the installed experiment {name[:100]!r}, not of "
                              f"{typed!r}; continue it with: rbp run --resume {folder}")
        return exp, {"experiment": exp.name}
    raise ConfigError(f"{where}: config.json must name its experiment (\"experiment\": a name) or its script "
                      f"(\"script\": a file name), one of the two; it has experiment={name!r:.60}, script={script!r:.60}")


def _cmd_resume(args) -> int:
    folder = RunFolder(args.resume)
    extra = {"--config": getattr(args, "config", None), "--data": getattr(args, "data", None), "--set": args.sets,
             "--quick": args.quick, "--seeds": args.seeds, "--out": args.out, "--overwrite": args.overwrite}
    given = [k for k, v in extra.items() if v not in (None, False, [])]
    if given:
        raise ConfigError(f"--resume DIR continues a run with its saved config: drop {', '.join(given)}")
    if not folder.path.is_dir():
        raise RunFolderError(f"--resume {folder}: no such run folder")
    try:
        saved = folder.read_json(RunFolder.CONFIG)
    except RunFolderError as exc:
        raise ConfigError(f"--resume {folder}: no readable config.json (is it a run folder?): {exc}") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"--resume {folder}: config.json must hold a JSON object, got {type(saved).__name__}")
    exp, meta = _resumed_experiment(saved, folder, getattr(args, "target", None))
    if not exp.can_resume:
        raise ConfigError(
            f"experiment {exp.name!r} cannot resume: its run() takes no resume argument "
            "(it must pass checkpoint=... and resume=True to Trainer.fit)"
        )
    invocation = saved.get("invocation")
    meta["invocation"] = invocation if isinstance(invocation, dict) else {}
    config = exp.resolve(file_overrides={k: saved[k] for k in exp.defaults if k in saved},
                         file_name=str(folder / RunFolder.CONFIG))
    args.out = str(folder)
    return _execute(exp, config, args, meta, resume=True)


# -- the commands -----------------------------------------------------------------------------------------------


def _cmd_compare(args) -> int:
    from ..experiments import get_experiment

    args.target, args.resume_prefix = "compare", ["rbp", "compare"]
    if args.resume:
        return _cmd_resume(args)
    exp = get_experiment("compare")
    # the --data preset wins over --quick; explicit --set values win over both
    sets = merge(exp.module.PRESETS[args.data] if args.data else {}, parse_sets(args.sets))
    config = exp.resolve(quick=args.quick, sets=sets, seeds=args.seeds)
    return _execute(exp, config, args, {"experiment": "compare"})


def _cmd_run(args) -> int:
    from .targets import resolve_target

    script = isinstance(args.target, str) and args.target.endswith(".py")
    if not hasattr(args, "resume_prefix"):
        args.resume_prefix = ["rbp", "run"] + ([args.target] if script else [])
    if args.resume:
        return _cmd_resume(args)
    if not args.target:
        raise ConfigError("rbp run needs an experiment: a NAME (rbp list shows them), CONFIG.toml or SCRIPT.py; "
                          "or --resume DIR")
    target = resolve_target(args.target, args.config)
    config = target.exp.resolve(file_overrides=target.overrides, quick=args.quick, sets=parse_sets(args.sets),
                                seeds=args.seeds, file_name=target.source)
    return _execute(target.exp, config, args, target.meta)


def _report_path(output: str) -> Path:
    """The HTML file ``-o`` names: ``DIR/report.html`` for a folder, ``FILE.html`` otherwise."""
    path = Path(output)
    if output.endswith(("/", os.sep)) or path.is_dir():
        return path / "report.html"
    if path.suffix.lower() not in (".html", ".htm"):
        path = path.with_name(path.name + ".html")
    return path


def _cmd_report(args) -> int:
    from ..report import load_run
    from ..report.figures import standard_figures
    from ..report.render import write_report

    folders = [RunFolder(r) for r in args.runs]
    if args.labels and len(args.labels) != len(folders):
        raise ConfigError(f"--labels needs one name per run ({len(folders)}), got {len(args.labels)}")
    names = args.labels or [f.path.resolve().name for f in folders]
    html_path = _report_path(args.output)
    out_dir = html_path.parent
    fig_dir = out_dir / f"{html_path.stem}_figures"
    runs, table, figures, roots, notes = [], [], [], [], []
    for name, folder in zip(names, folders):
        _, summary = load_run(folder)  # only regular files inside the folder; a malformed one is a RunFolderError
        prefix = f"{name}: " if len(folders) > 1 else ""
        for r in summary.get("runs") or []:
            runs.append({**r, "label": prefix + str(r.get("label", "run"))})
        table += [{"run": name, **row} for row in summary.get("table") or []]
        notes += [f"{name}: {n}" for n in summary.get("notes") or []]
        for fig in summary.get("figures") or []:
            figures.append({"file": fig["file"], "caption": f"[{name}] {fig.get('caption', '')}"})
            roots.append(folder.path)
    overlay = standard_figures(runs, fig_dir, root=out_dir)
    summary = {
        "experiment": "overlay",
        "title": args.title or ("Overlay: " + " vs ".join(names)),
        "description": "Runs overlaid: " + ", ".join(f"{n} ({f})" for n, f in zip(names, folders)) + ".",
        "table": table,
        "table_caption": "The comparison tables of the runs, one block of rows per run.",
        "notes": notes,
        "figures": overlay + figures,
        "runs": runs,
    }
    config = {"runs": {n: str(f) for n, f in zip(names, folders)}}
    html_file, md_file = write_report(out_dir, config, summary, html_name=html_path.name,
                                      md_name=html_path.stem + ".md", figure_roots=[out_dir] * len(overlay) + roots)
    print(f"report: {html_file} (and {md_file}); {len(runs)} runs, {len(summary['figures'])} figures")
    return 0


def _cmd_list(args) -> int:
    from ..experiments import get_experiment, list_experiments
    from ..report.tables import text_table
    from .targets import config_files

    rows = []
    for name in list_experiments():
        try:
            description = get_experiment(name).description
        except (ConfigError, ImportError) as exc:
            description = f"(cannot be loaded: {exc})"
        rows.append({"name": name, "run with": "rbp compare" if name == "compare" else f"rbp run {name}",
                     "description": description})
    print(text_table(rows))
    configs = config_files(args.dir)
    if configs:
        print(f"\nConfig files in {args.dir}:")
        print(text_table(configs))
    return 0


def main(argv=None) -> int:
    """Entry point of the ``rbp`` command; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 2 for an invalid command line, config, run folder or
        checkpoint (the message, naming the offending key or file, goes to
        stderr); 1 when the disk refuses a write; 130 after Ctrl-C (the
        message gives the command that continues the run).

    Examples
    --------
    >>> main(["run", "static_ocr", "--set", "train.epochs=0"])  # stderr: ... train.epochs must be >= 1, got 0
    2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    args.words = ["rbp", *argv]
    commands = {"compare": _cmd_compare, "run": _cmd_run, "report": _cmd_report, "list": _cmd_list}
    return _dispatch(commands[args.command], args, f"rbp {args.command}")


def script_main(experiment, argv=None) -> int:
    """The command line of an experiment script: ``python experiments/<name>.py ...`` is ``rbp run <name> ...``.

    ``python experiments/<name>.py [--quick] [--seeds N] [--seed S]
    [--set section.key=value ...] [--out DIR] [--overwrite] [--quiet]
    [--threads N] [--resume DIR]``: the experiment's config (its DEFAULTS,
    with QUICK for ``--quick``) is validated before anything runs; the run
    folder defaults to ``runs/<name>-<date>-<time>``.

    Parameters
    ----------
    experiment : str
        The installed experiment's name (the scripts in ``experiments/`` pass
        theirs), or the path of a script of your own (``__file__``).
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, as :func:`main`.

    Examples
    --------
    >>> script_main("static_ocr", ["--set", "model.activation=rleu"])  # stderr: ... did you mean 'relu'?
    2
    """
    target = str(experiment)
    name = Path(target).stem if target.endswith(".py") else target
    argv = list(sys.argv[1:] if argv is None else argv)
    script = sys.argv[0] if sys.argv and sys.argv[0].endswith(".py") else f"{name}.py"
    prog = f"python {script}"
    parser = argparse.ArgumentParser(
        prog=prog, description=f"Run the experiment {name} (the same as: rbp run {name} ...)."
    )
    _add_run_options(parser, name=name)
    parser.add_argument("--seed", type=int, metavar="S", help="first seed (the same as --set run.seed=S)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.seed is not None:
        args.sets.append(f"run.seed={args.seed}")
    args.target, args.config = target, None
    args.words = ["python", script, *argv]
    args.resume_prefix = ["python", script]
    return _dispatch(_cmd_run, args, prog)


def _resume_command(args) -> str:
    words = list(getattr(args, "resume_prefix", ["rbp", "run"])) + ["--resume", str(args.claimed)]
    if args.threads != 1:
        words += ["--threads", str(args.threads)]
    return shlex.join(words)


def _dispatch(command, args, name: str) -> int:
    """Run a command; every expected failure is one line on stderr and an exit status, never a traceback."""
    args.claimed = None
    try:
        return command(args)
    except KeyboardInterrupt:
        folder = args.claimed
        if folder is None:
            print(f"{name}: interrupted; nothing was written", file=sys.stderr)
        elif getattr(args, "resumable", False):
            print(f"{name}: interrupted; continue the run with: {_resume_command(args)}", file=sys.stderr)
        else:
            print(f"{name}: interrupted; this experiment cannot resume (what it wrote is in {folder})",
                  file=sys.stderr)
        return 130
    except (ConfigError, RunFolderError, CheckpointError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        if "scikit-learn" in str(exc):
            hint = "; or use --data glyphs, which needs nothing extra" if hasattr(args, "data") else ""
            print(f"{name}: error: {exc}{hint}", file=sys.stderr)
            return 2
        raise
    except ValueError as exc:  # invalid input found during the run (DESIGN: ValueError names the argument)
        if os.environ.get("RBP_TRACEBACK"):
            raise
        where = f" (the run folder {args.claimed} keeps what was written)" if args.claimed is not None else ""
        print(f"{name}: error: {exc}{where}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full or read-only disk, a file that cannot be written
        if os.environ.get("RBP_TRACEBACK"):
            raise
        more = ""
        if args.claimed is not None and getattr(args, "resumable", False):
            more = f"; once that is fixed, continue with: {_resume_command(args)}"
        print(f"{name}: error: {exc}{more}", file=sys.stderr)
        return 1
