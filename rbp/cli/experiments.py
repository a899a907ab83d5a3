"""Finding, loading and configuring experiments for the ``rbp`` command.

An experiment is a module with ``DEFAULTS`` (the config schema,
``section -> key -> default``), optionally ``QUICK`` (overrides for
``--quick``) and ``CONSTRAINTS`` (extra per-key rules, see
:func:`rbp.config.validate`), and ``run(config, out_dir, *, progress=None) ->
summary``. The built-in one is ``compare`` (:mod:`rbp.cli.compare`); others
are scripts ``experiments/<name>.py`` named by a TOML file
``experiments/<name>.toml`` (``script = "<name>.py"``, relative to the TOML,
plus sections overriding ``DEFAULTS``). A TOML file may instead say
``experiment = "compare"`` to configure a built-in one.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, load_toml, resolve

__all__ = ["Experiment", "BUILTIN", "builtin", "load_script", "from_toml", "discover", "first_doc_line"]

#: Built-in experiments: name -> module.
BUILTIN = {"compare": "rbp.cli.compare"}

_META_KEYS = ("script", "experiment", "description")


@dataclass
class Experiment:
    """An experiment module checked against the protocol."""

    name: str
    module: object
    source: str
    script: Path | None = None
    defaults: dict = field(default_factory=dict)
    quick: dict = field(default_factory=dict)
    constraints: dict | None = None

    def resolve(self, *, file_overrides=None, quick=False, sets=None, seeds=None, file_name="config") -> dict:
        """The resolved config: DEFAULTS <- TOML file <- QUICK <- --set <- --seeds."""
        layers, sources = [file_overrides or {}], [file_name]
        if quick:
            layers.append(self.quick)
            sources.append(f"{self.name}.QUICK")
        layers.append(sets or {})
        sources.append("--set")
        if seeds is not None:
            if "seeds" not in self.defaults.get("run", {}):
                raise ConfigError(f"--seeds: experiment {self.name!r} has no run.seeds key in its DEFAULTS")
            layers.append({"run": {"seeds": seeds}})
            sources.append("--seeds")
        return resolve(self.defaults, *layers, constraints=self.constraints, sources=sources)

    @property
    def can_resume(self) -> bool:
        """Whether the script's ``run`` accepts ``resume=True`` (continue from its checkpoints)."""
        params = inspect.signature(self.module.run).parameters
        return "resume" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())

    def run(self, config: dict, out_dir, *, progress=None, resume=False) -> dict:
        fn = self.module.run
        params = inspect.signature(fn).parameters
        takes = lambda name: name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())  # noqa: E731
        kwargs = {}
        if takes("progress"):
            kwargs["progress"] = progress
        if resume:
            if not takes("resume"):
                raise ConfigError(
                    f"experiment {self.name!r} cannot resume: its run() takes no resume argument "
                    "(it must pass checkpoint=... and resume=True to Trainer.fit)"
                )
            kwargs["resume"] = True
        summary = fn(config, Path(out_dir), **kwargs)
        if not isinstance(summary, dict):
            raise TypeError(f"{self.source}: run() must return the summary dict, got {type(summary).__name__}")
        return summary


def _check_protocol(module, name, source, script=None) -> Experiment:
    defaults = getattr(module, "DEFAULTS", None)
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise ConfigError(
            f"{source} must define DEFAULTS, a dict section -> key -> default (the config schema), "
            f"got {type(defaults).__name__}"
        )
    if not callable(getattr(module, "run", None)):
        raise ConfigError(f"{source} must define run(config, out_dir, *, progress=None) -> summary dict")
    quick = getattr(module, "QUICK", None) or {}
    if not isinstance(quick, dict):
        raise ConfigError(f"{source}: QUICK must be a dict of overrides, got {type(quick).__name__}")
    constraints = getattr(module, "CONSTRAINTS", None)
    return Experiment(name=name, module=module, source=source, script=script, defaults=defaults, quick=quick,
                      constraints=constraints)


def builtin(name: str) -> Experiment:
    """A built-in experiment by name (``compare``)."""
    if name not in BUILTIN:
        import difflib

        near = difflib.get_close_matches(name, list(BUILTIN), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"experiment must be one of {sorted(BUILTIN)}, got {name!r}{hint}")
    module = importlib.import_module(BUILTIN[name])
    return _check_protocol(module, name, f"built-in experiment {name!r} ({BUILTIN[name]})")


def load_script(path) -> Experiment:
    """Import an experiment script by path (its folder is importable while it loads)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"experiment script {str(path)!r} does not exist")
    module_name = f"rbp_experiment_{path.stem}_{abs(hash(str(path))) % 10**8}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    folder = str(path.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    return _check_protocol(module, path.stem, str(path), script=path)


def from_toml(path):
    """``(experiment, overrides, description)`` from a TOML config file.

    The file names its experiment by ``script = "x.py"`` (relative to the file)
    or ``experiment = "compare"``; every other top-level entry must be a
    section of the experiment's ``DEFAULTS``.
    """
    path = Path(path)
    data = load_toml(path)
    script, name = data.get("script"), data.get("experiment")
    if script is not None and name is not None:
        raise ConfigError(f"{path}: give either script = ... or experiment = ..., not both")
    if script is None and name is None:
        raise ConfigError(
            f"{path}: missing script = \"<name>.py\" (the experiment script, relative to this file) "
            f"or experiment = \"<built-in name>\" (one of {sorted(BUILTIN)})"
        )
    for key in ("script", "experiment", "description"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{path}: {key} must be a string, got {data[key]!r}")
    if script is not None:
        script_path = Path(script)
        if not script_path.is_absolute():
            script_path = path.resolve().parent / script_path
        exp = load_script(script_path)
        exp.name = path.stem
    else:
        exp = builtin(name)
    overrides = {k: v for k, v in data.items() if k not in _META_KEYS}
    stray = [k for k, v in overrides.items() if not isinstance(v, dict) and k not in exp.defaults]
    if stray:
        import difflib

        valid = list(_META_KEYS) + sorted(exp.defaults)
        near = difflib.get_close_matches(stray[0], valid, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(
            f"{path}: unknown top-level key {stray[0]!r}{hint} (valid: {', '.join(valid)}; "
            "settings belong in a [section])"
        )
    return exp, overrides, data.get("description")


def first_doc_line(script) -> str:
    """The first line of a script's module docstring, read without running it."""
    try:
        tree = ast.parse(Path(script).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ""
    doc = ast.get_docstring(tree) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def discover(folder="experiments") -> list:
    """Experiments: the built-in ones, then every ``folder/*.toml``.

    Returns
    -------
    list of dict
        ``name``, ``config`` (the TOML path or None), ``source``, ``description``.
    """
    found = []
    for name, module in BUILTIN.items():
        doc = inspect.getdoc(importlib.import_module(module)) or ""
        found.append({"name": name, "config": None, "source": f"built in ({module})",
                      "description": doc.strip().splitlines()[0] if doc else ""})
    folder = Path(folder)
    if folder.is_dir():
        for toml_path in sorted(folder.glob("*.toml")):
            entry = {"name": toml_path.stem, "config": str(toml_path), "source": str(toml_path), "description": ""}
            try:
                data = load_toml(toml_path)
            except ConfigError as exc:
                entry["description"] = f"(invalid: {exc})"
                found.append(entry)
                continue
            desc = data.get("description") if isinstance(data.get("description"), str) else ""
            script = data.get("script")
            if isinstance(script, str):
                script_path = Path(script) if Path(script).is_absolute() else toml_path.parent / script
                entry["source"] = f"{toml_path} -> {script}"
                desc = desc or (first_doc_line(script_path) if script_path.exists() else f"(missing {script})")
            elif isinstance(data.get("experiment"), str):
                entry["source"] = f"{toml_path} -> built-in {data['experiment']}"
            entry["description"] = desc
            found.append(entry)
    return found
