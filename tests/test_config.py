"""Config loading, validation (unknown keys, types, ranges) and --set overrides."""

import pytest

from rbp.config import (
    ConfigError,
    Range,
    dumps_toml,
    load_toml,
    merge,
    parse_sets,
    parse_value,
    resolve,
    tomllib,
    validate,
)

SCHEMA = {
    "data": {"name": "digits", "n_train": 0},
    "model": {"units": 100, "backward": ["gmres", "bptt"], "tol": 1e-6, "spectral": True},
    "train": {"epochs": 30, "learning_rate": 5e-3, "target_accuracy": 0.95},
    "run": {"seeds": 1},
}
CHOICES = {"data.name": ("digits", "glyphs"), "model.backward": ("direct", "gmres", "bptt")}


def test_valid_config_passes_and_ints_become_floats():
    out = validate({"train": {"learning_rate": 1, "epochs": 3}}, SCHEMA)
    assert out == {"train": {"learning_rate": 1.0, "epochs": 3}}
    assert isinstance(out["train"]["learning_rate"], float)


@pytest.mark.parametrize(
    "config, named, suggestion",
    [
        ({"train": {"epoch": 5}}, "'train.epoch'", "'train.epochs'"),
        ({"trian": {"epochs": 5}}, "'trian'", "'train'"),
        ({"model": {"backwrd": ["gmres"]}}, "'model.backwrd'", "'model.backward'"),
    ],
)
def test_unknown_key_is_named_with_the_nearest_valid_name(config, named, suggestion):
    with pytest.raises(ConfigError) as info:
        validate(config, SCHEMA, source="my.toml")
    message = str(info.value)
    assert message.startswith("my.toml: ")
    assert named in message and f"did you mean {suggestion}" in message


def test_unknown_key_without_a_near_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown key 'run\.zzz'.*valid keys in \[run\]: seeds"):
        validate({"run": {"zzz": 1}}, SCHEMA)


@pytest.mark.parametrize(
    "config, pattern",
    [
        ({"train": {"epochs": "abc"}}, r"train\.epochs must be an integer.*got 'abc' \(str\)"),
        ({"train": {"epochs": 2.5}}, r"train\.epochs must be an integer"),
        ({"train": {"epochs": True}}, r"train\.epochs must be an integer.*got True \(bool\)"),
        ({"train": {"learning_rate": True}}, r"train\.learning_rate must be a number"),
        ({"model": {"spectral": 1}}, r"model\.spectral must be true or false"),
        ({"data": {"name": 3}}, r"data\.name must be a string"),
        ({"model": {"backward": "gmres"}}, r"model\.backward must be a list"),
        ({"model": {"backward": ["gmres", 3]}}, r"model\.backward\[1\] must be a string"),
        ({"train": {"epochs": {"a": 1}}}, r"train\.epochs must be an integer, got a table"),
        ({"run": 3}, r"run must be a table"),
    ],
)
def test_wrong_types_are_named(config, pattern):
    with pytest.raises(ConfigError, match=pattern):
        validate(config, SCHEMA)


@pytest.mark.parametrize(
    "config, pattern",
    [
        ({"run": {"seeds": 0}}, r"run\.seeds must be >= 1, got 0"),
        ({"train": {"epochs": -1}}, r"train\.epochs must be >= 1"),
        ({"train": {"learning_rate": 0.0}}, r"train\.learning_rate must be > 0"),
        ({"model": {"tol": -1e-3}}, r"model\.tol must be > 0"),
        ({"train": {"target_accuracy": 1.5}}, r"train\.target_accuracy must be in \(0, 1\]"),
    ],
)
def test_ranges_are_checked(config, pattern):
    with pytest.raises(ConfigError, match=pattern):
        validate(config, SCHEMA)


def test_choices_and_per_key_constraints():
    with pytest.raises(ConfigError, match=r"data\.name must be one of \['digits', 'glyphs'\], got 'glyph'; "
                                          r"did you mean 'glyphs'"):
        validate({"data": {"name": "glyph"}}, SCHEMA, constraints=CHOICES)
    with pytest.raises(ConfigError, match=r"model\.backward must be one of .* got 'lu'"):
        validate({"model": {"backward": ["gmres", "lu"]}}, SCHEMA, constraints=CHOICES)
    with pytest.raises(ConfigError, match=r"model\.units must be >= 1"):
        validate({"model": {"units": 0}}, SCHEMA, constraints={"model.units": Range(1)})


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        validate({"train": {"epoch": 1, "learning_rate": -1}, "run": {"seeds": 0}}, SCHEMA)
    message = str(info.value)
    assert "train.epoch" in message and "train.learning_rate" in message and "run.seeds" in message


@pytest.mark.parametrize(
    "text, value",
    [("5", 5), ("1e-3", 1e-3), ("true", True), ('"gmres"', "gmres"), ("gmres", "gmres"),
     ('["gmres", "bptt"]', ["gmres", "bptt"]), ("abc def", "abc def")],
)
def test_parse_value_uses_toml_syntax_with_bare_strings(text, value):
    assert parse_value(text) == value


def test_parse_sets_builds_nested_overrides():
    assert parse_sets(["train.epochs=5", "model.backward=[\"bptt\"]", "data.name = glyphs"]) == {
        "train": {"epochs": 5}, "model": {"backward": ["bptt"]}, "data": {"name": "glyphs"},
    }


@pytest.mark.parametrize("item", ["train.epochs", "epochs=5", ".epochs=5", "train.=5"])
def test_parse_sets_rejects_malformed_items(item):
    with pytest.raises(ConfigError, match="--set expects section.key=value"):
        parse_sets([item])


def test_set_override_is_type_checked_against_the_schema():
    with pytest.raises(ConfigError, match=r"^--set: train\.epochs must be an integer.*got 'abc'"):
        resolve(SCHEMA, {}, parse_sets(["train.epochs=abc"]), sources=["file.toml", "--set"])


def test_resolve_merges_layers_in_order_without_touching_the_defaults():
    out = resolve(SCHEMA, {"train": {"epochs": 10}, "run": {"seeds": 2}}, {"train": {"epochs": 3}})
    assert out["train"] == {"epochs": 3, "learning_rate": 5e-3, "target_accuracy": 0.95}
    assert out["run"] == {"seeds": 2}
    assert SCHEMA["train"]["epochs"] == 30
    out["model"]["backward"].append("x")
    assert SCHEMA["model"]["backward"] == ["gmres", "bptt"]


def test_merge_is_deep():
    merged = merge({"a": {"x": 1, "y": {"p": 1, "q": 2}}}, {"a": {"y": {"q": 3}}})
    assert merged == {"a": {"x": 1, "y": {"p": 1, "q": 3}}}


def test_load_toml_reports_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = \n")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")


def test_dumps_toml_round_trips():
    config = {"script": "x.py", "data": {"name": "digits", "frac": 0.5}, "model": {"backward": ["gmres"],
              "spectral": False, "nested": {"a": 1}}, "run": {"seeds": 3, "skip": None}}
    back = tomllib.loads(dumps_toml(config, header="a header"))
    expected = {**config, "run": {"seeds": 3}}
    assert back == expected


# -- issue 10: values that passed the schema and crashed later, files that gave a traceback -------------


@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "+inf"])
def test_non_finite_numbers_are_refused(text):
    """An inf learning rate or tolerance passed the schema and crashed the run after its folder existed."""
    with pytest.raises(ConfigError, match=r"train\.learning_rate must be a finite number.*got"):
        resolve(SCHEMA, parse_sets([f"train.learning_rate={text}"]))
    with pytest.raises(ConfigError, match=r"model\.tol must be a finite number"):
        validate({"model": {"tol": float(text)}}, SCHEMA)


def test_a_list_of_numbers_must_be_finite_too():
    schema = {"sweep": {"tols": [1e-3, 1e-6]}}
    with pytest.raises(ConfigError, match=r"sweep\.tols\[1\] must be a finite number"):
        validate({"sweep": {"tols": [1e-3, float("inf")]}}, schema)


def test_a_seed_must_not_be_negative():
    schema = {"run": {"seed": 0, "seeds": 1}, "data": {"seed": 0}}
    with pytest.raises(ConfigError, match=r"run\.seed must be >= 0, got -5"):
        validate({"run": {"seed": -5}}, schema)
    with pytest.raises(ConfigError, match=r"data\.seed must be >= 0"):
        validate({"data": {"seed": -1}}, schema)


def test_a_huge_integer_for_a_float_key_is_refused_not_an_overflow():
    with pytest.raises(ConfigError, match=r"train\.learning_rate must be a number"):
        validate({"train": {"learning_rate": 10**400}}, SCHEMA)


@pytest.mark.parametrize("content, message", [
    (b"[train]\nname = '\xff\xfe'\n", r"not UTF-8 text"),
    (b"v = " + b"[" * 5000 + b"]" * 5000 + b"\n", r"nested deeper than 32 levels"),
    (b"v = " + b"[" * 100 + b"]" * 100 + b"\n", r"nested deeper than 32 levels"),
    (b"a = {b = {c = {d = 1}}}\n" + b"x." * 40 + b"y = 1\n", r"nested deeper than 32 levels"),
])
def test_hostile_toml_is_a_config_error(tmp_path, content, message):
    """Non-UTF-8 and deeply nested TOML raised UnicodeDecodeError and RecursionError."""
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_toml(path)
    assert "bad.toml" in str(info.value)


def test_a_folder_or_a_fifo_as_config_is_a_config_error(tmp_path):
    import os

    with pytest.raises(ConfigError, match=r"is a directory, not a regular file"):
        load_toml(tmp_path)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.toml")  # reading it would block forever
        with pytest.raises(ConfigError, match=r"is a FIFO \(named pipe\), not a regular file"):
            load_toml(tmp_path / "pipe.toml")


def test_a_deeply_nested_set_value_is_a_config_error():
    with pytest.raises(ConfigError, match=r"nested deeper than"):
        parse_sets(["a.b=" + "[" * 5000 + "]" * 5000])


def test_about_names_the_config_key_of_a_refused_argument():
    from rbp.config import about

    with pytest.raises(ConfigError, match=r"^config: train\.optimizer: optimizer must be one of"):
        with about("train.optimizer", "train.learning_rate"):
            raise ValueError("optimizer must be one of ['adam'], got 'adm'")
    with pytest.raises(ConfigError, match=r"^config: model\.static_activation: hidden must be"):
        with about("model.units", arguments={"hidden": "model.static_activation"}):
            raise ValueError("hidden must be one of ['relu'], got 'x'")
    with pytest.raises(ConfigError, match=r"^config: data\.n_train / data\.validation_fraction: leaves"):
        with about("data.n_train", "data.validation_fraction"):
            raise ValueError("leaves no training samples")
