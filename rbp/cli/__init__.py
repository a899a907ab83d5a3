"""The ``rbp`` command.

::

    rbp compare [--data digits|glyphs] [--seeds N] [--quick] [--out DIR] [--set section.key=value ...] [--quiet]
    rbp run CONFIG.toml|SCRIPT.py [--set section.key=value ...] [--seeds N] [--quick] [--out DIR] [--quiet]
    rbp run --resume DIR          (also: rbp compare --resume DIR)
    rbp report RUN [RUN ...] [-o FILE] [--labels NAME ...]
    rbp list [--dir experiments]

``compare`` is the main job: static backprop (an MLP) against recurrent
backprop (a FixedPointNet, adjoint solve and BPTT through its relaxation) on
the same OCR task and seeds; it prints the comparison table and writes a run
folder with ``report.html``. ``run`` runs any experiment script through its
TOML config; ``report`` overlays several run folders in one report; ``list``
shows the experiments. Configs are validated before anything runs.
Progress bars appear on a terminal only, never with ``--quiet``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
import time
from pathlib import Path

from ..config import ConfigError, merge, parse_sets

__all__ = ["main", "script_main", "build_parser", "run_lock"]


def _add_run_options(p, *, data=False):
    if data:
        p.add_argument("--data", choices=("digits", "glyphs"),
                       help="the OCR task (default: digits; glyphs also sets "
                            "train.target_accuracy=0.8)")
    p.add_argument("--seeds", type=int, metavar="N", help="repeat with N seeds (mean ± spread in the report)")
    p.add_argument("--quick", action="store_true", help="a small, fast version (fewer samples and epochs)")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<name>-<date>-<time>)")
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
    parser = argparse.ArgumentParser(
        prog="rbp", description="Backpropagation research toolkit: experiment runs and convergence reports."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("compare", help="static vs recurrent backprop on the same OCR task (the main job)",
                       description="Train an MLP (static backprop) and a FixedPointNet (recurrent backprop "
                                   "and BPTT) on the same OCR task and seeds; print the comparison table and "
                                   "write a run folder with report.html.")
    _add_run_options(p, data=True)
    p = sub.add_parser("run", help="run an experiment from its TOML config (or script)",
                       description="Load CONFIG (a TOML file naming its script, or a script), validate it "
                                   "against the script's DEFAULTS, run it and write the run folder and report.")
    p.add_argument("config", metavar="CONFIG", nargs="?",
                   help="experiments/<name>.toml (or an experiment script .py); omit with --resume")
    _add_run_options(p)
    p = sub.add_parser("report", help="overlay several runs in one report",
                       description="Overlay the learning curves and solver diagnostics of several run folders "
                                   "in one report.html (+ .md), with every run's table and figures.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (with summary.json or metrics.csv)")
    p.add_argument("-o", "--output", default="report.html", metavar="FILE",
                   help="the HTML file to write (default report.html; FILE.md and FILE_figures/ beside it)")
    p.add_argument("--labels", nargs="+", metavar="NAME", help="a name per run (default: the folder names)")
    p.add_argument("--title", help="report title")
    p = sub.add_parser("list", help="show the experiments",
                       description="The built-in experiments and every experiments/*.toml here.")
    p.add_argument("--dir", default="experiments", help="folder of TOML configs (default: experiments)")
    return parser


def _default_out(name: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path("runs") / f"{name}-{stamp}"
    i = 2
    while out.exists():
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


@contextlib.contextmanager
def run_lock(folder: Path):
    """Hold ``folder/.lock`` while a run writes into ``folder``.

    A second run on the same folder is refused (ConfigError naming the
    holder) instead of interleaving its files; a lock left by a process that
    no longer exists (a crash, SIGKILL) is taken over.
    """
    import json
    import os
    import socket

    lock = folder / ".lock"
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
                pid, host = int(holder["pid"]), holder.get("host")
            except (OSError, ValueError, KeyError, TypeError):
                holder, pid, host = {}, None, None
            alive = pid is not None and host == me["host"] and _pid_alive(pid)
            if alive or (pid is not None and host != me["host"]):
                raise ConfigError(
                    f"run folder {folder} is in use by process {pid} on {host} (lock file {lock}); "
                    "wait for it or choose another --out"
                ) from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            for tmp in folder.rglob(".*.tmp"):  # partial files of its interrupted atomic writes
                tmp.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _execute(exp, config: dict, args, meta: dict, resume: bool = False) -> int:
    import json

    from ..report import write_run
    from ..report.run import _jsonable, atomic_write
    from ..report.tables import text_table

    if args.threads < 0:
        raise ConfigError(f"--threads must be >= 0 (0: the BLAS library's default), got {args.threads}")
    out = Path(args.out) if args.out else _default_out(exp.name)
    out.mkdir(parents=True, exist_ok=True)
    progress = False if args.quiet else None
    with run_lock(out):
        if not resume:
            # The resolved config first, so an interrupted run can be resumed from its folder.
            started = {**meta, **config, "invocation": _invocation(args)}
            atomic_write(out / "config.json", json.dumps(_jsonable(started), indent=2) + "\n")
        if not args.quiet:
            print(f"rbp: {'resuming' if resume else 'running'} {exp.name} into {out}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        with _blas_threads(args.threads):
            summary = exp.run(config, out, progress=progress, resume=resume)
        seconds = time.perf_counter() - t0
        return _finish(exp, config, args, meta, out, summary, seconds, write_run, text_table)


def _invocation(args) -> dict:
    return {"argv": ["rbp"] + list(args.argv), "quick": bool(args.quick), "sets": list(args.sets),
            "seeds": args.seeds, "threads": args.threads}


def _finish(exp, config, args, meta, out, summary, seconds, write_run, text_table) -> int:
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


def _cmd_resume(args) -> int:
    import json

    from .experiments import builtin, load_script

    folder = Path(args.resume)
    try:
        saved = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--resume {folder}: no readable config.json (is it a run folder?): {exc}") from None
    extra = (getattr(args, "config", None), getattr(args, "data", None), args.sets, args.quick, args.out)
    if any(extra) or args.seeds is not None:
        raise ConfigError(
            "--resume DIR continues a run with its saved config: drop CONFIG, --data, --set, --quick, --seeds, --out"
        )
    if saved.get("script"):
        exp = load_script(Path(saved["script"]))
        meta = {"script": saved["script"]}
    else:
        exp = builtin(saved.get("experiment", "compare"))
        meta = {"experiment": exp.name}
    if not exp.can_resume:
        raise ConfigError(
            f"experiment {exp.name!r} cannot resume: its run() takes no resume argument "
            "(it must pass checkpoint=... and resume=True to Trainer.fit)"
        )
    meta["invocation"] = saved.get("invocation") or {}
    config = exp.resolve(file_overrides={k: saved[k] for k in exp.defaults if k in saved},
                         file_name=str(folder / "config.json"))
    args.out = str(folder)
    return _execute(exp, config, args, meta, resume=True)


def _cmd_compare(args) -> int:
    from .compare import PRESETS
    from .experiments import builtin

    if args.resume:
        return _cmd_resume(args)

    exp = builtin("compare")
    # the --data preset wins over --quick; explicit --set values win over both
    sets = merge(PRESETS[args.data] if args.data else {}, parse_sets(args.sets))
    config = exp.resolve(quick=args.quick, sets=sets, seeds=args.seeds)
    return _execute(exp, config, args, {"experiment": "compare"})


def _cmd_run(args) -> int:
    from .experiments import from_toml, load_script

    if args.resume:
        return _cmd_resume(args)
    if not args.config:
        raise ConfigError("rbp run needs CONFIG (experiments/<name>.toml or a script), or --resume DIR")
    path = Path(args.config)
    sets = parse_sets(args.sets)
    if path.suffix == ".py":
        exp, overrides = load_script(path), {}
        meta = {"script": str(path.resolve())}
    else:
        exp, overrides, description = from_toml(path)
        meta = {"script": str(exp.script)} if exp.script is not None else {"experiment": exp.name}
        if description:
            meta["description"] = description
    config = exp.resolve(file_overrides=overrides, quick=args.quick, sets=sets, seeds=args.seeds,
                         file_name=str(path))
    return _execute(exp, config, args, meta)


def _cmd_report(args) -> int:
    from ..report import load_run
    from ..report.figures import standard_figures
    from ..report.render import write_report

    dirs = [Path(r) for r in args.runs]
    if args.labels and len(args.labels) != len(dirs):
        raise ConfigError(f"--labels needs one name per run ({len(dirs)}), got {len(args.labels)}")
    names = args.labels or [d.resolve().name for d in dirs]
    html_path = Path(args.output)
    if html_path.suffix.lower() not in (".html", ".htm"):
        html_path = html_path.with_name(html_path.name + ".html")
    out_dir = html_path.parent
    fig_dir = out_dir / f"{html_path.stem}_figures"
    runs, table, figures, notes, configs = [], [], [], [], {}
    for name, d in zip(names, dirs):
        try:
            config, summary = load_run(d)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        configs[name] = {k: v for k, v in config.items() if k not in ("versions",)}
        prefix = f"{name}: " if len(dirs) > 1 else ""
        for r in summary.get("runs") or []:
            r = dict(r)
            r["label"] = prefix + str(r.get("label", "run"))
            runs.append(r)
        for row in summary.get("table") or []:
            table.append({"run": name, **row})
        for n in summary.get("notes") or []:
            notes.append(f"{name}: {n}")
        for fig in summary.get("figures") or []:
            path = d / fig["file"]
            figures.append({"file": fig["file"], "path": str(path.resolve()),
                            "caption": f"[{name}] {fig.get('caption', '')}"})
    overlay = standard_figures(runs, fig_dir, root=out_dir)
    summary = {
        "experiment": "overlay",
        "title": args.title or ("Overlay: " + " vs ".join(names)),
        "description": "Runs overlaid: " + ", ".join(f"{n} ({d})" for n, d in zip(names, dirs)) + ".",
        "table": table,
        "table_caption": "The comparison tables of the runs, one block of rows per run.",
        "notes": notes,
        "figures": overlay + figures,
        "runs": runs,
    }
    config = {"runs": {n: str(d) for n, d in zip(names, dirs)}}
    html_file, md_file = write_report(out_dir, config, summary, html_name=html_path.name,
                                      md_name=html_path.stem + ".md")
    print(f"report: {html_file} (and {md_file}); {len(runs)} runs, {len(summary['figures'])} figures")
    return 0


def _cmd_list(args) -> int:
    from ..report.tables import text_table
    from .experiments import discover

    rows = [{"name": e["name"], "run with": ("rbp compare" if e["config"] is None else f"rbp run {e['config']}"),
             "description": e["description"]} for e in discover(args.dir)]
    print(text_table(rows))
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
        0 on success, 2 for an invalid command line or config (the message,
        naming the offending key, goes to stderr).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    args.argv = argv
    commands = {"compare": _cmd_compare, "run": _cmd_run, "report": _cmd_report, "list": _cmd_list}
    return _dispatch(commands[args.command], args, f"rbp {args.command}")


def script_main(script, argv=None) -> int:
    """The command line of an experiment script, the same as ``rbp run SCRIPT``.

    ``python experiments/<name>.py [--quick] [--seeds N] [--seed S]
    [--set section.key=value ...] [--out DIR] [--quiet] [--threads N]``:
    the config is the script's DEFAULTS (with QUICK for ``--quick``),
    validated before anything runs; the run folder defaults to
    ``runs/<name>``.

    Parameters
    ----------
    script : path
        The script's own file (pass ``__file__``).
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, as :func:`main`.
    """
    path = Path(script)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog=f"python {path.name}",
        description=f"Run the experiment {path.stem} (the same as: rbp run {path.name} ...).",
    )
    _add_run_options(parser)
    parser.add_argument("--seed", type=int, metavar="S", help="first seed (the same as --set run.seed=S)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.seed is not None:
        args.sets.append(f"run.seed={args.seed}")
    args.config = None if args.resume else str(path)
    args.argv = ["run", str(path), *argv]
    if args.out is None and args.resume is None:
        args.out = str(Path("runs") / path.stem)
    return _dispatch(_cmd_run, args, f"python {path.name}")


def _dispatch(command, args, name: str) -> int:
    try:
        return command(args)
    except ConfigError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        if "scikit-learn" in str(exc):
            hint = "; or use --data glyphs, which needs nothing extra" if hasattr(args, "data") else ""
            print(f"{name}: error: {exc}{hint}", file=sys.stderr)
            return 2
        raise
