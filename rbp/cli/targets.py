"""What ``rbp run TARGET`` runs, and the configs ``rbp list`` shows.

TARGET is an experiment's name (``static_ocr``), a TOML config that names
one (``experiment = "static_ocr"``), or the path of a script of your own
(``my_experiment.py``), which is the only way a file's code is imported: by
a path typed on the command line. A TOML file that names a script instead
(``script = "x.py"``) is refused with the command that runs it
(``rbp run x.py --config FILE.toml``): a config file, like a run folder,
may come from someone else, and nothing read from it chooses code to import.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, load_toml
from ..experiments import BUILTIN, Experiment, get_experiment, load_script

__all__ = ["Target", "resolve_target", "read_config_file", "config_files"]

#: Top-level entries of a TOML config that are not sections of the experiment's DEFAULTS.
META_KEYS = ("experiment", "script", "description")


@dataclass
class Target:
    """An experiment to run, the overrides its config file sets, and what ``config.json`` records of it."""

    exp: Experiment
    overrides: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    source: str = "config"


def read_config_file(path) -> tuple:
    """``(overrides, experiment name or None, script name or None, description or None)`` of a TOML config.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.toml"
    >>> _ = p.write_text('experiment = "static_ocr"\\n[train]\\nepochs = 2\\n')
    >>> read_config_file(p)
    ({'train': {'epochs': 2}}, 'static_ocr', None, None)
    """
    path = Path(path)
    data = load_toml(path)
    for key in META_KEYS:
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{path}: {key} must be a string, got {data[key]!r:.80}")
    if "script" in data and "experiment" in data:
        raise ConfigError(f"{path}: give either experiment = ... or script = ..., not both")
    overrides = {k: v for k, v in data.items() if k not in META_KEYS}
    return overrides, data.get("experiment"), data.get("script"), data.get("description")


def _check_top_level(path, overrides: dict, exp: Experiment):
    stray = [k for k, v in overrides.items() if not isinstance(v, dict) and k not in exp.defaults]
    if stray:
        valid = list(META_KEYS) + sorted(exp.defaults)
        near = difflib.get_close_matches(stray[0], valid, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(
            f"{path}: unknown top-level key {stray[0]!r}{hint} (valid: {', '.join(valid)}; "
            "settings belong in a [section])"
        )


def _script_refused(path, script: str) -> ConfigError:
    name = Path(script).name
    return ConfigError(
        f"{path} names the script {script!r}: rbp imports no code that a file names. Type the script on the command "
        f"line instead: rbp run path/to/{name} --config {path}"
    )


def resolve_target(target: str, config_file=None) -> Target:
    """The experiment ``rbp run TARGET [--config FILE.toml]`` runs, with the overrides of the config file.

    Raises
    ------
    ConfigError
        For an unknown name, a missing or invalid file, a config file that
        names a script or another experiment than TARGET, or a folder given
        as TARGET.

    Examples
    --------
    >>> target = resolve_target("static_ocr")
    >>> target.exp.name, target.meta, target.overrides
    ('static_ocr', {'experiment': 'static_ocr'}, {})
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "theirs.toml"
    >>> _ = p.write_text('script = "/tmp/payload.py"\\n')
    >>> resolve_target(str(p))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rbp.config.ConfigError: ...theirs.toml names the script '/tmp/payload.py': rbp imports no code that a file names. ...
    """
    path = Path(target)
    if target.endswith(".toml"):
        if config_file is not None:
            raise ConfigError(f"give the config either as CONFIG ({target}) or with --config, not both")
        overrides, name, script, description = read_config_file(path)
        if script is not None:
            raise _script_refused(path, script)
        if name is None:
            raise ConfigError(f'{path}: missing experiment = "<name>" (one of {", ".join(BUILTIN)} or another '
                              "installed experiment; rbp list shows them)")
        exp = get_experiment(name)
        _check_top_level(path, overrides, exp)
        meta = {"experiment": exp.name}
        if description:
            meta["description"] = description
        return Target(exp, overrides, meta, str(path))
    if target.endswith(".py"):
        exp = load_script(path)  # a path typed on the command line
        meta = {"script": path.name} if exp.script is not None else {"experiment": exp.name}
    elif path.is_dir():
        raise ConfigError(f"{target!r} is a folder; expected an experiment NAME, FILE.toml or FILE.py "
                          f"(to continue the run in that folder: rbp run --resume {target})")
    elif os.sep in target or "/" in target or path.exists():
        raise ConfigError(f"{target!r} is neither an experiment name nor a config: a config file must end in "
                          ".toml, an experiment script in .py")
    else:
        exp = get_experiment(target)
        meta = {"experiment": exp.name}
    if config_file is None:
        return Target(exp, {}, meta, "config")
    overrides, name, script, description = read_config_file(config_file)
    mine = exp.script.name if exp.script is not None else None
    if name is not None and (mine is not None or name != exp.name):
        raise ConfigError(f"--config {config_file} is for the experiment {name!r}, not for {target!r}")
    if script is not None and Path(script).name != mine:
        raise ConfigError(f"--config {config_file} is for the script {Path(script).name!r}, not for {target!r}")
    _check_top_level(config_file, overrides, exp)
    if description:
        meta["description"] = description
    return Target(exp, overrides, meta, str(config_file))


def _first_doc_line(script: Path) -> str:
    """The first line of a script's module docstring, read (never run) with ``ast``."""
    import ast

    try:
        tree = ast.parse(script.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ""
    doc = ast.get_docstring(tree) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def config_files(folder) -> list:
    """Rows for ``rbp list``: every ``folder/*.toml``, the experiment it configures and the command that runs it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.toml").write_text('experiment = "compare"\\ndescription = "mine"\\n')
    >>> [(r["experiment"], r["description"]) for r in config_files(d)]
    [('compare', 'mine')]
    """
    folder = Path(folder)
    rows = []
    if not folder.is_dir():
        return rows
    for path in sorted(folder.glob("*.toml")):
        row = {"config": str(path), "experiment": "", "run with": f"rbp run {path}", "description": ""}
        try:
            _, name, script, description = read_config_file(path)
        except ConfigError as exc:
            row["description"] = f"(invalid: {exc})"
            rows.append(row)
            continue
        if script is not None:
            script_path = path.parent / script
            inside = script_path.resolve().parent == path.parent.resolve()
            row["experiment"] = f"script {Path(script).name}"
            row["run with"] = f"rbp run {script_path} --config {path}"
            description = description or (_first_doc_line(script_path) if inside and script_path.is_file() else "")
        elif name is not None:
            row["experiment"] = name
        rows.append({**row, "description": description or ""})
    return rows
