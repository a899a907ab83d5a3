"""Experiments, installed with rbp and found by name.

An experiment is a module with

* ``DEFAULTS`` -- ``section -> key -> default``: the whole configuration and
  the schema every config is validated against (:func:`rbp.config.validate`);
* optionally ``QUICK`` (the overrides of ``--quick``) and ``CONSTRAINTS``
  (extra per-key rules);
* optionally ``check(config)`` -- raises ``ValueError`` for a config that
  passes the schema but cannot run (a model that cannot be built, a data
  split that leaves no training sample), before anything is written;
* ``run(config, folder, *, progress=None, resume=False) -> summary`` --
  ``folder`` is the :class:`~rbp.report.RunFolder` to write into. Every
  training writes a checkpoint, ``folder.checkpoint(name)``, after each epoch;
  with ``resume=True`` a finished training is loaded instead of repeated and
  an interrupted one continues from its last epoch, so the numbers are those
  of an uninterrupted run, the timings aside.

The built-in experiments are ``compare`` (the main job, also ``rbp
compare``), ``static_ocr``, ``recurrent_ocr``, ``associative_memory``,
``gradient_error`` and ``bptt_sequences``. An installed package adds its own
under the entry-point group ``rbp.experiments`` (``name = "package.module"``
in its ``[project.entry-points."rbp.experiments"]`` table); code that imports
rbp adds one with :func:`register_experiment`. A module of your own that is
not installed runs by the path you type: ``rbp run my_experiment.py``
(:func:`load_script`).

Names are the only link from a file to code: a TOML config or a run folder's
``config.json`` names its experiment, and the name is looked up here. No path
read from a file is ever imported.

Examples
--------
>>> "compare" in list_experiments() and "static_ocr" in list_experiments()
True
>>> exp = get_experiment("static_ocr")
>>> exp.name, sorted(exp.defaults)
('static_ocr', ['data', 'model', 'run', 'train'])
>>> get_experiment("static_ocrr")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
rbp.config.ConfigError: unknown experiment 'static_ocrr'; did you mean 'static_ocr'? ...
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, resolve

__all__ = ["Experiment", "get_experiment", "list_experiments", "register_experiment", "load_script",
           "ENTRY_POINT_GROUP", "BUILTIN"]

#: The entry-point group installed packages register experiments under.
ENTRY_POINT_GROUP = "rbp.experiments"

#: The experiments that ship with rbp: name -> module.
BUILTIN = {
    "compare": "rbp.experiments.compare",
    "static_ocr": "rbp.experiments.static_ocr",
    "recurrent_ocr": "rbp.experiments.recurrent_ocr",
    "associative_memory": "rbp.experiments.associative_memory",
    "gradient_error": "rbp.experiments.gradient_error",
    "bptt_sequences": "rbp.experiments.bptt_sequences",
}

_REGISTERED: dict = {}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclass
class Experiment:
    """An experiment module, checked against the protocol (see the module docstring).

    Attributes
    ----------
    name : str
        The name it was found by (a script's file stem for :func:`load_script`).
    module : module
    source : str
        Where it came from, in words ("built in (rbp.experiments.compare)", ...).
    script : Path or None
        The script's path, for an experiment loaded by :func:`load_script`.
    """

    name: str
    module: object
    source: str
    script: Path | None = None
    defaults: dict = field(default_factory=dict)
    quick: dict = field(default_factory=dict)
    constraints: dict | None = None

    @property
    def description(self) -> str:
        """The first line of the module's docstring."""
        doc = inspect.getdoc(self.module) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

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

    def check(self, config: dict):
        """The module's ``check(config)``, if it has one; a ValueError becomes a ConfigError."""
        check = getattr(self.module, "check", None)
        if check is None:
            return
        try:
            check(config)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"{self.name}: {exc}") from None

    def _takes(self, name: str) -> bool:
        params = inspect.signature(self.module.run).parameters
        return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())

    @property
    def can_resume(self) -> bool:
        """Whether the module's ``run`` accepts ``resume=True`` (continue from its checkpoints)."""
        return self._takes("resume")

    def run(self, config: dict, folder, *, progress=None, resume=False) -> dict:
        """Call the module's ``run`` with the arguments it takes; returns its summary dict."""
        kwargs = {}
        if self._takes("progress"):
            kwargs["progress"] = progress
        if resume:
            if not self.can_resume:
                raise ConfigError(
                    f"experiment {self.name!r} cannot resume: its run() takes no resume argument "
                    "(it must pass checkpoint=... and resume=True to Trainer.fit)"
                )
            kwargs["resume"] = True
        summary = self.module.run(config, folder, **kwargs)
        if not isinstance(summary, dict):
            raise TypeError(f"{self.source}: run() must return the summary dict, got {type(summary).__name__}")
        return summary


def _checked(module, name: str, source: str, script=None) -> Experiment:
    defaults = getattr(module, "DEFAULTS", None)
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise ConfigError(
            f"{source} must define DEFAULTS, a dict section -> key -> default (the config schema), "
            f"got {type(defaults).__name__}"
        )
    if not callable(getattr(module, "run", None)):
        raise ConfigError(f"{source} must define run(config, folder, *, progress=None) -> summary dict")
    quick = getattr(module, "QUICK", None) or {}
    if not isinstance(quick, dict):
        raise ConfigError(f"{source}: QUICK must be a dict of overrides, got {type(quick).__name__}")
    check = getattr(module, "check", None)
    if check is not None and not callable(check):
        raise ConfigError(f"{source}: check must be a function check(config), got {type(check).__name__}")
    return Experiment(name=name, module=module, source=source, script=script, defaults=defaults, quick=quick,
                      constraints=getattr(module, "CONSTRAINTS", None))


def register_experiment(name: str, module, *, replace: bool = False) -> None:
    """Make ``module`` the experiment ``name`` for ``rbp.cli.main``, TOML configs and ``--resume``.

    Parameters
    ----------
    name : str
        Letters, digits, ``_`` and ``-``, starting with a letter.
    module : module or str
        The experiment module, or its dotted name (imported when first used).
    replace : bool
        Allow replacing an experiment of that name (a built-in one included).

    Examples
    --------
    >>> import types
    >>> demo = types.ModuleType("demo", "A demo experiment.")
    >>> demo.DEFAULTS = {"run": {"seeds": 1, "seed": 0}}
    >>> demo.run = lambda config, folder, progress=None: {"table": [{"seeds": config["run"]["seeds"]}]}
    >>> register_experiment("demo", demo, replace=True)
    >>> get_experiment("demo").description
    'A demo experiment.'
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name must be letters, digits, '_' and '-', starting with a letter, got {name!r}")
    if not isinstance(module, (str, types.ModuleType)):
        raise ValueError(f"module must be a module or a dotted module name, got {type(module).__name__}")
    if not replace and (name in _REGISTERED or name in BUILTIN):
        raise ValueError(f"an experiment {name!r} exists already; pass replace=True to replace it")
    if isinstance(module, types.ModuleType):
        _checked(module, name, f"experiment {name!r} ({module.__name__})")
    _REGISTERED[name] = module


def _entry_points() -> dict:
    try:
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # a broken installed distribution must not break rbp
        return {}
    return {ep.name: ep for ep in found if ep.name not in BUILTIN and ep.name not in _REGISTERED}


def list_experiments() -> list:
    """The names of every experiment: built in, then installed (entry points), then registered.

    Examples
    --------
    >>> list_experiments()[:3]
    ['compare', 'static_ocr', 'recurrent_ocr']
    """
    names = [n for n in BUILTIN if n not in _REGISTERED] + sorted(_entry_points())
    return names + [n for n in _REGISTERED if n not in names]


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``, its module imported and checked against the protocol.

    Raises
    ------
    ConfigError
        For a name that is not an installed or registered experiment (with
        the nearest one and the list), or a module that breaks the protocol.

    Examples
    --------
    >>> exp = get_experiment("compare")
    >>> exp.module.__name__, exp.can_resume, exp.defaults["train"]["epochs"]
    ('rbp.experiments.compare', True, 30)
    >>> config = exp.resolve(quick=True, sets={"train": {"epochs": 2}})
    >>> config["train"]["epochs"], config["model"]["units"]
    (2, 40)
    """
    if not isinstance(name, str):
        raise ConfigError(f"an experiment name must be a string, got {type(name).__name__}")
    if name in _REGISTERED:
        module, source = _REGISTERED[name], "registered"
    elif name in BUILTIN:
        module, source = BUILTIN[name], "built in"
    else:
        eps = _entry_points()
        if name not in eps:
            names = list_experiments()
            near = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"unknown experiment {name[:100]!r}{hint} (installed: {', '.join(names)}; "
                              "a file of your own runs by its path: rbp run my_experiment.py)")
        module, source = eps[name].load(), f"entry point {eps[name].value}"
    if isinstance(module, str):
        source = f"{source} ({module})"
        module = importlib.import_module(module)
    elif source == "registered":
        source = f"registered ({module.__name__})"
    return _checked(module, name, f"experiment {name!r}, {source}")


def load_script(path) -> Experiment:
    """The experiment in the script at ``path``: a path typed on the command line.

    The script is imported (its folder is importable while it loads). A thin
    script that only names an installed experiment (``EXPERIMENT = "name"``,
    as the scripts in ``experiments/`` do) gives that experiment.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny.py"
    >>> _ = p.write_text('"Tiny."\\nDEFAULTS = {"run": {"seed": 0}}\\ndef run(config, folder):\\n    return {}\\n')
    >>> exp = load_script(p)
    >>> exp.name, exp.description, exp.script == p
    ('tiny', 'Tiny.', True)
    """
    path = Path(path).resolve()
    if path.suffix != ".py":
        raise ConfigError(f"an experiment script must be a .py file, got {str(path)!r}")
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
    named = getattr(module, "EXPERIMENT", None)
    if getattr(module, "DEFAULTS", None) is None and isinstance(named, str):
        return get_experiment(named)
    return _checked(module, path.stem, str(path), script=path)

