"""Experiment configuration: TOML files, ``--set`` overrides, validation against a schema.

A schema is an experiment's ``DEFAULTS`` dict, ``section -> key -> default``;
the type of each default is the type the key takes (an int is accepted where
the default is a float, a bool never stands for a number). Every config
layer (a TOML file, ``--quick`` overrides, ``--set section.key=value``) is
checked against it *before anything runs*: an unknown section or key is
rejected with the nearest valid name, a wrong type or an out-of-range value
is named with what was expected. A number must be finite (TOML's ``inf`` and
``nan`` are refused). Nothing is silently ignored. Values that only the
experiment can judge (a model that cannot be built from them, a data split
that leaves no training sample) are checked by the experiment's ``check``
before anything runs; :func:`about` turns its ``ValueError`` into a
:class:`ConfigError` naming the keys.

Public names: :func:`load_toml`, :func:`parse_value`, :func:`parse_sets`,
:func:`validate`, :func:`resolve`, :func:`merge`, :func:`dumps_toml`,
:func:`about`, :class:`Range`, :data:`CONSTRAINTS`, :class:`ConfigError`.

Examples
--------
>>> schema = {"train": {"epochs": 30, "learning_rate": 0.005}, "run": {"seeds": 1}}
>>> resolve(schema, {"train": {"learning_rate": 1}}, parse_sets(["run.seeds=3"]))
{'train': {'epochs': 30, 'learning_rate': 1.0}, 'run': {'seeds': 3}}
>>> validate({"train": {"epoch": 5}}, schema)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
rbp.config.ConfigError: config: unknown key 'train.epoch'; did you mean 'train.epochs'? (valid keys ...)
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from .core.checkpoint import json_depth_ok, read_regular_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "Range",
    "CONSTRAINTS",
    "load_toml",
    "parse_value",
    "parse_sets",
    "validate",
    "resolve",
    "merge",
    "dumps_toml",
    "about",
]

#: Largest config file read, and deepest nesting of tables and arrays accepted in one.
MAX_CONFIG_BYTES = 16 * 1024**2
MAX_CONFIG_DEPTH = 32


class ConfigError(ValueError):
    """An invalid configuration: unknown key, wrong type or value out of range."""


@dataclass(frozen=True)
class Range:
    """An allowed interval for a number: ``low <(=) value <(=) high``.

    Examples
    --------
    >>> Range(0, 1, low_open=True).contains(0.0), str(Range(0, low_open=True))
    (False, '> 0')
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def __str__(self):
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high}"
        return "any number"


#: Constraints that hold for a key of this name in any experiment (a key
#: matches ``name`` itself or any ``*_name``); an experiment adds its own per
#: dotted key (``CONSTRAINTS = {"model.units": Range(1)}`` or a tuple of
#: allowed values).
CONSTRAINTS = {
    "seed": Range(0),
    "seeds": Range(1),
    "epochs": Range(1),
    "batch_size": Range(1),
    "max_iter": Range(1),
    "learning_rate": Range(0, low_open=True),
    "lr": Range(0, low_open=True),
    "tol": Range(0, low_open=True),
    "validation_fraction": Range(0, 1, low_open=True, high_open=True),
    "target_accuracy": Range(0, 1, low_open=True),
    "damping": Range(0, 1, low_open=True),
    "weight_decay": Range(0),
}


def _constraint_for(path: str, extra: dict | None):
    if extra and path in extra:
        return extra[path]
    name = path.rsplit(".", 1)[-1]
    for key, rule in CONSTRAINTS.items():
        if name == key or name.endswith("_" + key):
            return rule
    return None


def load_toml(path) -> dict:
    """Read a TOML file; every problem becomes a :class:`ConfigError` naming the file.

    Only a regular file of at most 16 MiB is read (a folder, a FIFO or a
    device is refused before reading); it must be UTF-8 TOML nested at most
    32 tables or arrays deep.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.toml"
    >>> _ = p.write_bytes(b"[train]\\nepochs = 3\\n")
    >>> load_toml(p)
    {'train': {'epochs': 3}}
    >>> _ = p.write_bytes(b"name = '\\xff'")
    >>> load_toml(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rbp.config.ConfigError: ...c.toml: not UTF-8 text: ...
    """
    path = Path(path)
    raw = read_regular_file(path, max_bytes=MAX_CONFIG_BYTES, error=ConfigError, what="config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        data = None
    if data is None or not json_depth_ok(data, MAX_CONFIG_DEPTH):
        raise ConfigError(f"{path}: tables or arrays nested deeper than {MAX_CONFIG_DEPTH} levels: refused")
    return data


def parse_value(text: str):
    """A ``--set`` value in TOML syntax (``5``, ``1e-3``, ``true``, ``"gmres"``,
    ``[1, 2]``); anything that is not valid TOML is taken as a bare string.

    Examples
    --------
    >>> parse_value("5"), parse_value("1e-3"), parse_value('"gmres"'), parse_value("gmres"), parse_value("[1, 2]")
    (5, 0.001, 'gmres', 'gmres', [1, 2])
    """
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:
        value = None
    if value is None or not json_depth_ok(value, MAX_CONFIG_DEPTH):
        raise ConfigError(f"--set value nested deeper than {MAX_CONFIG_DEPTH} levels: refused")
    return value


def parse_sets(items) -> dict:
    """``["section.key=value", ...]`` -> a nested override dict.

    Raises
    ------
    ConfigError
        For an item without ``=`` or without a dotted key.

    Examples
    --------
    >>> parse_sets(["train.epochs=5", 'model.backward="bptt"'])
    {'train': {'epochs': 5}, 'model': {'backward': 'bptt'}}
    """
    out: dict = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ConfigError(
                f"--set expects section.key=value (for example train.epochs=5), got {item!r}"
            )
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is set both as a value and as a section")
        node[parts[-1]] = parse_value(text.strip())
    return out


def merge(base: dict, *overrides: dict) -> dict:
    """Deep merge: a new dict with each override's values replacing ``base``'s,
    section by section (nested dicts merge, everything else replaces).

    Examples
    --------
    >>> merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {"b": 4})
    {'a': {'x': 1, 'y': 3}, 'b': 4}
    """
    out = copy.deepcopy(base)
    for override in overrides:
        for key, value in (override or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def _type_name(default) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, list):
        return "a list" + (f" of {_type_name(default[0]).split(' ', 1)[-1]}s" if default else "")
    return type(default).__name__


def _show(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check_type(value, default, path: str):
    """``value`` converted to the default's type, or an error string."""
    if default is None:
        return value, None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            try:
                value = float(value)
            except OverflowError:
                ok = False
        if ok and not math.isfinite(value):
            return value, f"{path} must be a finite number (default {json.dumps(default)}), got {value!r}"
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, list):
        if not isinstance(value, list):
            ok = False
        elif default:
            items = []
            for i, item in enumerate(value):
                item, err = _check_type(item, default[0], f"{path}[{i}]")
                if err:
                    return value, err
                items.append(item)
            return items, None
        else:
            ok = True
    else:
        ok = isinstance(value, type(default))
    if not ok:
        return value, f"{path} must be {_type_name(default)} (default {json.dumps(default)}), got {_show(value)}"
    return value, None


def _check_rule(value, rule, path: str):
    if rule is None:
        return None
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(rule, Range):
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not rule.contains(v):
                return f"{path} must be {rule}, got {v!r}"
        elif v not in rule:
            near = difflib.get_close_matches(str(v), [str(c) for c in rule], n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            return f"{path} must be one of {list(rule)}, got {v!r}{hint}"
    return None


def validate(config: dict, schema: dict, *, constraints: dict | None = None, source: str = "config") -> dict:
    """Check a (partial) config against a schema; return it with values
    converted to the schema's types (ints to floats where a float is due).

    Parameters
    ----------
    config : dict
        ``section -> key -> value``, any subset of the schema.
    schema : dict
        ``section -> key -> default`` (an experiment's ``DEFAULTS``).
    constraints : dict, optional
        Extra rules per dotted key: a :class:`Range` or a tuple of allowed
        values (checked per item for lists). :data:`CONSTRAINTS` applies by
        key name.
    source : str
        Where the config came from, for the message (a file name, ``--set``).

    Raises
    ------
    ConfigError
        Naming every unknown key (with the nearest valid name), wrong type and
        out-of-range value at once.
    """
    errors: list[str] = []
    out = _validate(config, schema, constraints, "", errors)
    if errors:
        raise ConfigError(f"{source}: " + "; ".join(errors))
    return out


def _validate(config, schema, constraints, prefix, errors):
    if not isinstance(config, dict):
        errors.append(f"{prefix.rstrip('.') or 'config'} must be a table of keys, got {_show(config)}")
        return config
    out = {}
    for key, value in config.items():
        path = prefix + str(key)
        if key not in schema:
            kind = "section" if not prefix else "key"
            valid = sorted(schema)
            near = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
            hint = f"; did you mean {prefix + near[0]!r}?" if near else ""
            where = f"[{prefix.rstrip('.')}]" if prefix else "the config"
            errors.append(f"unknown {kind} {path!r}{hint} (valid {kind}s in {where}: {', '.join(valid)})")
            continue
        default = schema[key]
        if isinstance(default, dict):
            out[key] = _validate(value, default, constraints, path + ".", errors)
            continue
        if isinstance(value, dict):
            errors.append(f"{path} must be {_type_name(default)}, got a table {value!r}")
            continue
        value, err = _check_type(value, default, path)
        err = err or _check_rule(value, _constraint_for(path, constraints), path)
        if err:
            errors.append(err)
        out[key] = value
    return out


def resolve(schema: dict, *layers: dict, constraints: dict | None = None, sources=None) -> dict:
    """Validate each override layer, then deep-merge them over the defaults.

    Parameters
    ----------
    schema : dict
        The defaults, which are also the schema.
    *layers : dict
        Overrides in increasing priority (TOML file, ``--quick``, ``--set``).
    constraints : dict, optional
        As in :func:`validate`.
    sources : sequence of str, optional
        A name per layer for the error messages.

    Returns
    -------
    dict
        The complete, resolved config.
    """
    sources = list(sources or [])
    checked = []
    for i, layer in enumerate(layers):
        name = sources[i] if i < len(sources) else "config"
        checked.append(validate(layer or {}, schema, constraints=constraints, source=name))
    resolved = merge(schema, *checked)
    validate(resolved, schema, constraints=constraints, source="resolved config")
    return resolved


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def dumps_toml(config: dict, *, header: str = "") -> str:
    """Serialise a config (top-level scalars, then ``[section]`` tables,
    nested tables as ``[a.b]``) to TOML text; ``None`` values are left out.

    Examples
    --------
    >>> text = dumps_toml({"script": "x.py", "train": {"epochs": 5, "lr": 0.1}})
    >>> print(text)
    script = "x.py"
    <BLANKLINE>
    [train]
    epochs = 5
    lr = 0.1
    <BLANKLINE>
    >>> tomllib.loads(text) == {"script": "x.py", "train": {"epochs": 5, "lr": 0.1}}
    True
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]

    def emit(table: dict, name: str):
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and v is not None}
        if name:
            if lines:
                lines.append("")
            lines.append(f"[{name}]")
        for key, value in scalars.items():
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        for key, value in table.items():
            if isinstance(value, dict):
                emit(value, f"{name}.{_toml_key(key)}" if name else _toml_key(key))

    emit(config, "")
    return "\n".join(lines) + "\n"


def _toml_key(key) -> str:
    key = str(key)
    if key and all(c.isalnum() or c in "_-" for c in key):
        return key
    return json.dumps(key)


@contextlib.contextmanager
def about(*keys: str, source: str = "config", arguments: dict | None = None):
    """Turn a ``ValueError`` raised in the block into a :class:`ConfigError` about config ``keys``.

    An experiment's ``check(config)`` builds its models and data descriptions
    from the config; a constructor that refuses a value names its own
    argument (``backward must be one of ...``). The error names the config
    key that argument came from: the key whose last part is the argument's
    name, or the one ``arguments`` maps it to (``{"hidden":
    "model.activation"}``); failing both, all of ``keys``.

    Examples
    --------
    >>> with about("model.activation", "model.backward"):
    ...     raise ValueError("backward must be one of ['direct', 'gmres'], got 'lu'")
    Traceback (most recent call last):
    ...
    rbp.config.ConfigError: config: model.backward: backward must be one of ['direct', 'gmres'], got 'lu'
    >>> with about("model.hidden", arguments={"sizes": "model.hidden"}):
    ...     raise ValueError("sizes[1] must be an integer >= 1, got 0")
    Traceback (most recent call last):
    ...
    rbp.config.ConfigError: config: model.hidden: sizes[1] must be an integer >= 1, got 0
    """
    try:
        yield
    except ConfigError:
        raise
    except ValueError as exc:
        message = str(exc)
        names = {key.rsplit(".", 1)[-1]: key for key in keys}
        names.update(arguments or {})
        first = message.split(maxsplit=1)[0] if message.split() else ""
        argument = first.split("[", 1)[0].rstrip(":,")
        key = names.get(argument, " / ".join(keys))
        raise ConfigError(f"{source}: {key}: {message}") from None
