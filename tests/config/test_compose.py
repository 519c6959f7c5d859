"""Configs that compose: `extends:` and several files on the command line (modalities/config/compose.py).

Expectations are written by hand: the merged tree, and each position as (file, line, column) counted in the
texts below (1-based; a value's column is where its text starts)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from modalities.cli.main import main
from modalities.config.compiler import compile_file
from modalities.config.compose import compose_files
from modalities.config.diagnostics import ConfigError
from modalities.config.load import load_document
from tests.config.conftest import provenance_comments

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "configs" / "quickstart.yaml"

BASE = """\
settings:
  steps: 10
  lr: 0.1
  sizes: [1, 2, 3]
model:
  component_key: toy_model
  variant_key: linear
  config:
    width: 8
    activation: gelu
"""
EXP = """\
extends: base.yaml
settings:
  steps: 20
  sizes: [4]
model:
  config:
    width: 16
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def where(span) -> tuple[str, int, int]:
    return Path(span.file).name, span.line, span.col


def compose_error(*args, **kwargs):
    with pytest.raises(ConfigError) as raised:
        compose_files(*args, **kwargs)
    return raised.value.diagnostics


# --- the merge --------------------------------------------------------------------------------------------------


def test_overlay_values_win_and_inherited_values_keep_the_base_positions(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    exp = write(tmp_path, "exp.yaml", EXP)
    document = compose_files(exp)
    assert document.values == {
        "settings": {"steps": 20, "lr": 0.1, "sizes": [4]},
        "model": {"component_key": "toy_model", "variant_key": "linear", "config": {"width": 16, "activation": "gelu"}},
    }
    values, keys = document.source_map.values, document.source_map.keys
    assert where(values[("settings", "steps")]) == ("exp.yaml", 3, 10)
    assert where(values[("settings", "lr")]) == ("base.yaml", 3, 7)
    assert where(keys[("settings", "lr")]) == ("base.yaml", 3, 3)
    assert where(values[("settings", "sizes")]) == ("exp.yaml", 4, 10)
    assert where(values[("settings", "sizes", 0)]) == ("exp.yaml", 4, 11)
    assert ("settings", "sizes", 2) not in values  # the base's list is gone, with its positions
    assert where(values[("model", "variant_key")]) == ("base.yaml", 7, 16)
    assert where(values[("model", "config", "width")]) == ("exp.yaml", 7, 12)
    assert where(values[("model", "config", "activation")]) == ("base.yaml", 10, 17)
    assert where(keys[("model", "config", "activation")]) == ("base.yaml", 10, 5)
    assert where(values[("model", "config")]) == ("exp.yaml", 7, 5)  # a mapping both write: the overlay's
    assert ("extends",) not in values and ("extends",) not in keys
    assert document.config_path == exp.resolve()
    assert [(Path(s.name).name, s.given) for s in document.files] == [("base.yaml", False), ("exp.yaml", True)]


def test_the_files_of_a_command_line_merge_as_extends_does(tmp_path):
    base = write(tmp_path, "base.yaml", BASE)
    exp = write(tmp_path, "exp.yaml", EXP.replace("extends: base.yaml\n", ""))
    listed = compose_files([base, exp])
    extended = compose_files(write(tmp_path, "exp2.yaml", EXP))
    assert listed.values == extended.values
    assert where(listed.source_map.values[("settings", "steps")]) == ("exp.yaml", 2, 10)
    # A file listed again after a file that extends it is merged once, where it first appeared.
    again = compose_files([write(tmp_path, "exp3.yaml", EXP), base])
    assert again.values["settings"]["steps"] == 20


SCHEDULER_BASE = """\
lr_scheduler:
  component_key: scheduler
  variant_key: onecycle_lr
  config:
    max_lr: 0.003
    div_factor: 10
"""


def test_a_changed_variant_replaces_the_node_and_keeps_its_component_key(tmp_path):
    write(tmp_path, "base.yaml", SCHEDULER_BASE)
    exp = write(tmp_path, "exp.yaml", """\
        extends: base.yaml
        lr_scheduler:
          variant_key: step_lr
          config:
            step_size: 5
        """)
    document = compose_files(exp)
    assert document.values == {
        "lr_scheduler": {"component_key": "scheduler", "variant_key": "step_lr", "config": {"step_size": 5}}
    }
    values = document.source_map.values
    assert where(values[("lr_scheduler", "component_key")]) == ("base.yaml", 2, 18)
    assert where(values[("lr_scheduler", "variant_key")]) == ("exp.yaml", 3, 16)
    assert ("lr_scheduler", "config", "max_lr") not in values


@pytest.mark.parametrize(
    ("overlay", "merged"),
    [
        # another component_key: the node as written, nothing inherited
        ("lr_scheduler: {component_key: other, variant_key: x}", {"component_key": "other", "variant_key": "x"}),
        # a component that becomes a reference, and the reverse
        ("lr_scheduler: {instance_key: s, pass_type: BY_REFERENCE}",
         {"instance_key": "s", "pass_type": "BY_REFERENCE"}),
        # the same variant written again: merged key by key
        ("lr_scheduler: {variant_key: onecycle_lr, config: {div_factor: 4}}",
         {"component_key": "scheduler", "variant_key": "onecycle_lr", "config": {"max_lr": 0.003, "div_factor": 4}}),
        # !replace: the node as written, even without its component_key
        ("lr_scheduler: !replace {variant_key: onecycle_lr}", {"variant_key": "onecycle_lr"}),
        # a scalar where a mapping was, and a mapping where a scalar was
        ("lr_scheduler: 3", 3),
    ],
    ids=["component_key", "to-reference", "same-variant", "replace-tag", "scalar"],
)
def test_what_replaces_a_component_node_and_what_merges_into_it(tmp_path, overlay, merged):
    write(tmp_path, "base.yaml", SCHEDULER_BASE)
    exp = write(tmp_path, "exp.yaml", "extends: base.yaml\n" + overlay + "\n")
    assert compose_files(exp).values == {"lr_scheduler": merged}


def test_a_reference_that_becomes_a_component_is_replaced(tmp_path):
    write(tmp_path, "base.yaml", "m: {instance_key: x, pass_type: BY_REFERENCE}\n")
    exp = write(tmp_path, "exp.yaml", "extends: base.yaml\nm: {component_key: toy_model, variant_key: linear}\n")
    assert compose_files(exp).values == {"m": {"component_key": "toy_model", "variant_key": "linear"}}


def test_switching_the_quickstart_scheduler_to_step_lr_brings_none_of_onecycles_fields(tmp_path):
    exp = write(tmp_path, "exp.yaml", f"""\
        extends: {QUICKSTART}
        lr_scheduler:
          variant_key: step_lr
          config:
            optimizer: {{instance_key: optimizer, pass_type: BY_REFERENCE}}
            step_size: 10
            gamma: 0.5
        """)
    compiled = compile_file(exp, experiment_id="compose")
    assert [d.message for d in compiled.diagnostics if d.severity == "error"] == []
    assert compiled.document.values["lr_scheduler"]["config"] == {
        "optimizer": {"instance_key": "optimizer", "pass_type": "BY_REFERENCE"}, "step_size": 10, "gamma": 0.5}


def test_delete_removes_an_inherited_key_and_its_positions(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    exp = write(tmp_path, "exp.yaml", """\
        extends: base.yaml
        settings:
          lr: !delete
        model:
          config:
            activation: !delete
        """)
    document = compose_files(exp)
    assert document.values == {
        "settings": {"steps": 10, "sizes": [1, 2, 3]},
        "model": {"component_key": "toy_model", "variant_key": "linear", "config": {"width": 8}},
    }
    assert not any(path[:2] == ("settings", "lr") for path in document.source_map.values)
    assert ("model", "config", "activation") not in document.source_map.keys


def test_delete_of_a_whole_component_and_replace_of_a_block(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    exp = write(tmp_path, "exp.yaml", "extends: base.yaml\nmodel: !delete\nsettings: !replace\n  steps: 1\n")
    document = compose_files(exp)
    assert document.values == {"settings": {"steps": 1}}
    assert where(document.source_map.values[("settings", "steps")]) == ("exp.yaml", 4, 10)


@pytest.mark.parametrize(
    ("overlay", "message", "line", "col", "hint"),
    [
        ("model:\n  config:\n    activaton: !delete\n",
         "nothing to delete: 'model.config.activaton' is not in the files this one is merged onto", 4, 5,
         "did you mean 'activation'?"),
        ("extra:\n  a: !delete\n", "nothing to delete: 'extra.a' is not in the files this one is merged onto", 3, 3,
         "remove the line"),
        ("settings:\n  lr: !delete 0.2\n", "!delete takes no value: it removes the key it is written under", 3, 7,
         "write `key: !delete` to remove an inherited key, or the new value without the tag"),
        ("settings:\n  sizes:\n    - 1\n    - !delete\n",
         "!delete removes a key of a mapping; a list is replaced whole", 5, 7,
         "write the whole list as it should be"),
    ],
    ids=["misspelled", "new-subtree", "with-a-value", "in-a-list"],
)
def test_a_delete_that_cannot_apply_is_an_error_where_it_is_written(tmp_path, overlay, message, line, col, hint):
    write(tmp_path, "base.yaml", BASE)
    exp = write(tmp_path, "exp.yaml", "extends: base.yaml\n" + overlay)
    (diagnostic,) = compose_error(exp)
    assert diagnostic.message == message
    assert where(diagnostic.span) == ("exp.yaml", line, col)
    assert diagnostic.hint == hint


def test_nested_extends_relative_to_each_file(tmp_path):
    write(tmp_path, "a.yaml", "x: {p: 1, q: 1, r: 1}\n")
    write(tmp_path, "sub/b.yaml", "extends: ../a.yaml\nx: {q: 2}\n")
    c = write(tmp_path, "c.yaml", "extends: sub/b.yaml\nx: {r: 3}\n")
    document = compose_files(c)
    assert document.values == {"x": {"p": 1, "q": 2, "r": 3}}
    spans = document.source_map.values
    assert [where(spans[("x", k)]) for k in "pqr"] == [("a.yaml", 1, 8), ("b.yaml", 2, 8), ("c.yaml", 2, 8)]
    assert Path(spans[("x", "q")].file) == (tmp_path / "sub" / "b.yaml").resolve()


def test_a_list_of_extends_merges_left_to_right(tmp_path):
    write(tmp_path, "a.yaml", "x: {p: 1, q: 1}\n")
    write(tmp_path, "e.yaml", "x: {p: 5, s: 5}\n")
    d = write(tmp_path, "d.yaml", "extends: [a.yaml, e.yaml]\nx: {s: 6}\n")
    assert compose_files(d).values == {"x": {"p": 5, "q": 1, "s": 6}}


def test_a_base_two_files_extend_is_merged_once(tmp_path):
    write(tmp_path, "base.yaml", "x: {lr: 1, batch: 1}\n")
    write(tmp_path, "left.yaml", "extends: base.yaml\nx: {lr: 2}\n")
    write(tmp_path, "right.yaml", "extends: base.yaml\nx: {batch: 4}\n")
    top = write(tmp_path, "top.yaml", "extends: [left.yaml, right.yaml]\n")
    document = compose_files(top)
    # merged again under right.yaml, the base would set lr back to 1
    assert document.values == {"x": {"lr": 2, "batch": 4}}
    assert [Path(s.name).name for s in document.files] == ["base.yaml", "left.yaml", "right.yaml", "top.yaml"]


def test_interpolation_resolves_after_the_merge_and_set_applies_after_all_files(tmp_path, toy_registry):
    write(tmp_path, "base.yaml", """\
        settings:
          width: 8
        model:
          component_key: toy_model
          variant_key: linear
          config:
            width: ${settings.width}
        """)
    exp = write(tmp_path, "exp.yaml", "extends: base.yaml\nsettings:\n  width: 16\n")
    compiled = compile_file(exp, toy_registry)
    assert compiled.ok and compiled.document.values["model"]["config"]["width"] == 16
    assert compiled.document.provenance[("model", "config", "width")] == [("settings.width", ("settings", "width"))]
    assert where(compiled.document.source_map.value(("settings", "width"))) == ("exp.yaml", 3, 10)
    with_set = compile_file(exp, toy_registry, overrides=["settings.width=32"])
    assert with_set.document.values["model"]["config"]["width"] == 32


def test_the_config_folder_is_the_folder_of_the_file_that_writes_it(tmp_path):
    write(tmp_path, "base/base.yaml", "settings:\n  data: ${modalities_env:config_folder_path}/corpus.pbin\n"
          "  file: ${modalities_env:config_file_path}\n")
    exp = write(tmp_path, "exps/exp.yaml", "extends: ../base/base.yaml\n"
                "settings:\n  mine: ${modalities_env:config_folder_path}/other.pbin\n")
    compiled = compile_file(exp, experiment_id="x", root=None)
    settings = compiled.document.values["settings"]
    assert settings["data"] == f"{(tmp_path / 'base').resolve()}/corpus.pbin"
    assert settings["mine"] == f"{(tmp_path / 'exps').resolve()}/other.pbin"
    assert settings["file"] == str(exp.resolve())  # the config given
    via_set = compile_file(exp, experiment_id="x", root=None,
                           overrides=["settings.data=${modalities_env:config_folder_path}/set.pbin"])
    assert via_set.document.values["settings"]["data"] == f"{(tmp_path / 'exps').resolve()}/set.pbin"


# --- errors in the right file -----------------------------------------------------------------------------------

TOY_BASE = """\
model:
  component_key: toy_model
  variant_key: linear
  config:
    width: 0
optimizer:
  component_key: toy_optimizer
  variant_key: sgd
  config: {model: {instance_key: model, pass_type: BY_REFERENCE}, lr: 0.1}
"""


def test_each_error_is_positioned_in_the_file_that_holds_the_mistake(tmp_path, toy_registry):
    write(tmp_path, "base.yaml", TOY_BASE)
    exp = write(tmp_path, "exp.yaml", "extends: base.yaml\noptimizer:\n  config:\n    lr: fast\n")
    compiled = compile_file(exp, toy_registry)
    errors = sorted((where(d.span), d.path) for d in compiled.diagnostics if d.severity == "error")
    assert errors == [
        (("base.yaml", 5, 12), ("model", "config", "width")),
        (("exp.yaml", 4, 9), ("optimizer", "config", "lr")),
    ]


def test_a_yaml_error_in_a_base_is_positioned_in_the_base(tmp_path):
    write(tmp_path, "base.yaml", "a: 1\nb: [\n")
    exp = write(tmp_path, "exp.yaml", "extends: base.yaml\nc: 1\n")
    (diagnostic,) = compose_error(exp)
    assert diagnostic.code == "yaml-syntax" and where(diagnostic.span)[0] == "base.yaml"
    assert diagnostic.span.line == 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "config file not found: {name}"),
        (lambda d: (d / "base.yaml").mkdir(), "{name} is a directory, not a config file"),
        (lambda d: os.symlink("base.yaml", d / "base.yaml"), "cannot read config file {name}: a symlink loop"),
        (lambda d: os.mkfifo(d / "base.yaml"), "{name} is not a regular file"),
    ],
    ids=["missing", "directory", "symlink-loop", "fifo"],
)
def test_a_base_that_cannot_be_read_is_an_error_at_the_entry_naming_it(tmp_path, monkeypatch, make, message):
    monkeypatch.chdir(tmp_path)
    make(tmp_path)
    write(tmp_path, "exp.yaml", "settings: {a: 1}\nextends: [other.yaml, base.yaml]\n")
    write(tmp_path, "other.yaml", "settings: {b: 1}\n")
    (diagnostic,) = compose_error("exp.yaml")
    assert diagnostic.message == message.format(name="base.yaml")
    assert where(diagnostic.span) == ("exp.yaml", 2, 23)


def test_a_base_that_is_not_utf8_is_an_error_at_its_byte_as_a_given_file_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # 0xff is the third byte of line 2: line 2, column 3 (1-based), whether the file is given or extended
    (tmp_path / "base.yaml").write_bytes(b"a: 1\nb:\xff\xfe\n")
    write(tmp_path, "exp.yaml", "settings: {a: 1}\nextends: [base.yaml]\n")
    (given,) = compose_error("base.yaml")
    (extended,) = compose_error("exp.yaml")
    for diagnostic in (given, extended):
        assert diagnostic.message == "the file is not UTF-8 text: byte 0xff cannot be decoded (invalid start byte)"
        assert where(diagnostic.span) == ("base.yaml", 2, 3) and diagnostic.code == "config-file"
    assert "extended at" not in given.hint and extended.hint.endswith("(extended at exp.yaml:2:11)")


def test_a_binary_file_that_decodes_is_a_positioned_yaml_error_in_it(tmp_path):
    (tmp_path / "base.yaml").write_bytes(b"a: 1\nb: \x00\x01\x02\n")
    exp = write(tmp_path, "exp.yaml", "extends: base.yaml\n")
    (diagnostic,) = compose_error(exp)
    assert diagnostic.code == "yaml-syntax" and where(diagnostic.span)[:2] == ("base.yaml", 2)


@pytest.mark.parametrize(
    ("extends", "message", "col"),
    [
        ("{a: 1}", "{'a': 1} is not a file name", 10),
        ("''", "'' is not a file name", 10),
        ("[base.yaml, 3]", "3 is not a file name", 22),
        ("!delete", "!delete and !replace do not apply here: extends itself is not merged", 10),
    ],
)
def test_an_extends_that_names_no_file_is_an_error_at_it(tmp_path, extends, message, col):
    write(tmp_path, "base.yaml", "a: 1\n")
    exp = write(tmp_path, "exp.yaml", f"extends: {extends}\n")
    (diagnostic,) = compose_error(exp)
    assert diagnostic.path == ("extends",)
    assert (diagnostic.message, where(diagnostic.span)) == (message, ("exp.yaml", 1, col))


def test_a_cycle_is_refused_naming_the_chain_of_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "a.yaml", "extends: b.yaml\nx: 1\n")
    write(tmp_path, "b.yaml", "x: 2\nextends: sub/c.yaml\n")
    write(tmp_path, "sub/c.yaml", "extends: ../a.yaml\n")
    (diagnostic,) = compose_error("a.yaml")
    assert diagnostic.message == "extends cycle: a.yaml -> b.yaml -> sub/c.yaml -> a.yaml"
    assert where(diagnostic.span) == ("c.yaml", 1, 10)


def test_a_file_extending_itself_or_a_symlink_to_itself_is_a_cycle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "a.yaml", "x: 1\nextends: a.yaml\n")
    (diagnostic,) = compose_error("a.yaml")
    assert (diagnostic.message, where(diagnostic.span)) == ("extends cycle: a.yaml -> a.yaml", ("a.yaml", 2, 10))
    os.symlink("b.yaml", tmp_path / "link.yaml")
    write(tmp_path, "b.yaml", "extends: link.yaml\n")
    (diagnostic,) = compose_error("b.yaml")
    assert (diagnostic.message, where(diagnostic.span)) == ("extends cycle: b.yaml -> b.yaml", ("b.yaml", 1, 10))


def test_every_file_of_a_composition_reports_its_errors(tmp_path):
    write(tmp_path, "a.yaml", "x: [\n")
    write(tmp_path, "b.yaml", "y: 1\ny: 2\n")
    exp = write(tmp_path, "exp.yaml", "extends: [a.yaml, b.yaml, c.yaml]\n")
    diagnostics = compose_error(exp)
    assert sorted((Path(d.span.file).name, d.code) for d in diagnostics) == [
        ("a.yaml", "yaml-syntax"), ("b.yaml", "duplicate-key"), ("exp.yaml", "extends")]


# --- limits across the files ------------------------------------------------------------------------------------


def test_a_chain_longer_than_the_file_limit_stops_at_the_entry_that_goes_over(tmp_path, monkeypatch):
    monkeypatch.setattr("modalities.config.compose.MAX_CONFIG_FILES", 5)
    for i in range(9):
        write(tmp_path, f"f{i}.yaml", f"extends: f{i + 1}.yaml\nv{i}: 1\n")
    write(tmp_path, "f9.yaml", "v9: 1\n")
    (diagnostic,) = compose_error(tmp_path / "f0.yaml")
    assert diagnostic.message == "a config may be composed of at most 5 files; this would be one more"
    assert where(diagnostic.span) == ("f4.yaml", 1, 10)


def test_the_value_limit_counts_the_values_of_every_file(tmp_path, monkeypatch):
    monkeypatch.setattr("modalities.config.load.MAX_VALUES", 40)
    # base.yaml: the mapping, 10 keys and 10 values: 21; exp.yaml: the mapping, extends and its value, 5 + 5: 13
    write(tmp_path, "base.yaml", "".join(f"b{i}: {i}\n" for i in range(10)))
    exp = write(tmp_path, "exp.yaml", "extends: base.yaml\n" + "".join(f"e{i}: {i}\n" for i in range(5)))
    assert set(compose_files(exp).values) == {f"b{i}" for i in range(10)} | {f"e{i}" for i in range(5)}
    write(tmp_path, "exp.yaml", "extends: base.yaml\n" + "".join(f"e{i}: {i}\n" for i in range(10)))
    (diagnostic,) = compose_error(exp)
    assert diagnostic.message == "more than 40 values in all the files composed; a config may hold at most that many"
    # exp.yaml (read first) holds 23; in base.yaml the mapping is the 24th, b8 (line 9) the 41st
    assert where(diagnostic.span) == ("base.yaml", 9, 1)


def test_the_size_limit_counts_the_bytes_of_every_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("modalities.config.compose.MAX_CONFIG_BYTES", 100)
    write(tmp_path, "base.yaml", "b: '" + "x" * 54 + "'\n")  # 60 bytes
    write(tmp_path, "exp.yaml", "extends: base.yaml\ne: '" + "y" * 35 + "'\n")  # 60 bytes
    assert len((tmp_path / "base.yaml").read_bytes()) == len((tmp_path / "exp.yaml").read_bytes()) == 60
    (diagnostic,) = compose_error("exp.yaml")
    assert diagnostic.message == (
        "base.yaml is 60 bytes and the files composed before it 60; a config may be at most 100 bytes in all")
    assert where(diagnostic.span) == ("exp.yaml", 1, 10)


# --- names, editors, the API ------------------------------------------------------------------------------------


def test_positions_name_paths_one_can_open(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "a.yaml", "x: 1\n")
    write(tmp_path, "sub/b.yaml", "extends: ../a.yaml\ny: 1\n")
    relative = compose_files("sub/b.yaml").source_map.values
    assert (relative[("x",)].file, relative[("y",)].file) == ("a.yaml", "sub/b.yaml")
    absolute = compose_files(tmp_path / "sub" / "b.yaml").source_map.values
    assert absolute[("x",)].file == str((tmp_path / "a.yaml").resolve())


def test_sources_stand_in_for_files_with_unsaved_changes(tmp_path):
    base = write(tmp_path, "base.yaml", BASE)
    exp = tmp_path / "exp.yaml"  # not on disk: only in the editor
    document = compose_files([exp], sources={exp: EXP, str(base): BASE.replace("lr: 0.1", "lr: 0.5")})
    assert document.values["settings"] == {"steps": 20, "lr": 0.5, "sizes": [4]}
    assert document.files[-1].text == EXP


def test_the_library_api_takes_several_files(tmp_path):
    from modalities import Main, load_app_config_dict

    exp = write(tmp_path, "exp.yaml", "settings:\n  training_target:\n    num_target_steps: 20\n")
    config = load_app_config_dict([QUICKSTART, exp], experiment_id="api")
    assert config["lr_scheduler"]["config"]["total_steps"] == 20
    assert config.document.source_map.value(("settings", "training_target", "num_target_steps")).file == str(exp)
    assert Main(config_path=[QUICKSTART, exp], experiment_id="api").validate("training") == []


def test_reference_configs_compose_exactly_as_they_load():
    from tests.compat.helpers import REFERENCE_CONFIGS

    configs = sorted(REFERENCE_CONFIGS.rglob("*.yaml"))
    assert len(configs) > 20
    for path in configs:
        loaded, composed = load_document(path), compose_files(path)
        assert composed.values == loaded.values, path
        assert composed.source_map.values == loaded.source_map.values, path
        assert composed.source_map.keys == loaded.source_map.keys, path
        assert composed.config_path == loaded.config_path


# --- the commands -----------------------------------------------------------------------------------------------


def test_validate_several_files_and_print_where_each_value_came_from(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "base.yaml", """\
        lr_scheduler:
          component_key: scheduler
          variant_key: constant_lr
          config:
            factor: 0.5
            total_iters: 4
            optimizer: {instance_key: optimizer, pass_type: BY_REFERENCE}
        settings: {n: 4}
        """)
    write(tmp_path, "exp.yaml", "lr_scheduler:\n  config:\n    total_iters: ${settings.n}\nsettings: {n: 6}\n")
    assert main(["validate", "base.yaml", "exp.yaml", "--as", "components", "--print-resolved", "--provenance"]) == 1
    captured = capsys.readouterr()
    assert "base.yaml + exp.yaml: 1 error" in captured.err  # the optimizer it names does not exist
    comments = provenance_comments(captured.out)
    assert comments["lr_scheduler.component_key"] == "base.yaml:2"
    assert comments["lr_scheduler.config.factor"] == "base.yaml:5"
    assert comments["lr_scheduler.config.total_iters"] == "${settings.n} <- exp.yaml:4"
    assert comments["settings.n"] == "exp.yaml:4"


def test_diff_of_a_base_and_its_experiment_lists_only_what_the_experiment_changes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "base.yaml", BASE + "other: {width: '${settings.steps}'}\n")
    write(tmp_path, "exp.yaml", EXP.replace("model:\n  config:\n    width: 16\n", "model:\n  config:\n"
                                            "    activation: !delete\n"))
    assert main(["diff", "base.yaml", "exp.yaml"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "settings.steps: 10 (base.yaml:2) -> 20 (exp.yaml:3)",
        "settings.sizes: [1, 2, 3] (base.yaml:4) -> [4] (exp.yaml:4)",
        '- model.config.activation: "gelu" (base.yaml:10)',
        "other.width: 10 (${settings.steps} <- base.yaml:2) -> 20 (${settings.steps} <- exp.yaml:3)",
    ]
    # The same experiment given as a second file on the side it composes with
    write(tmp_path, "plain.yaml", EXP.replace("extends: base.yaml\n", ""))
    assert main(["diff", "base.yaml+exp.yaml", "base.yaml+plain.yaml", "--all"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "model.config.width: 8 (base.yaml:9) -> 16 (plain.yaml:6)",
        '+ model.config.activation: "gelu" (base.yaml:10)',
    ]


def test_graph_of_a_composed_config_draws_every_component(tmp_path, capsys, toy_registry, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "base.yaml", TOY_BASE.replace("width: 0", "width: 4"))
    write(tmp_path, "exp.yaml", "extends: base.yaml\nmodel:\n  variant_key: composed\n  config:\n"
          "    backbone: {component_key: toy_model, variant_key: linear, config: {width: 2}}\n    head: {size: 3}\n")
    compiled = compile_file("exp.yaml", toy_registry)
    assert compiled.ok, [d.message for d in compiled.diagnostics]
    nodes = compiled.graph.nodes
    assert sorted(".".join(p) for p in nodes) == ["model", "model.config.backbone", "optimizer"]
    assert where(nodes[("model", "config", "backbone")].span) == ("exp.yaml", 5, 15)
    assert where(nodes[("optimizer",)].span) == ("base.yaml", 7, 3)


def test_train_on_a_composed_config_keeps_the_files_it_was_composed_from(tmp_path, capsys):
    from tests.training.conftest import TINY, train_in_process

    configs = tmp_path / "configs"
    write(configs, "base.yaml", TINY.read_text())
    exp = write(configs, "exp.yaml", "extends: base.yaml\nsettings:\n  training_target:\n    num_target_steps: 3\n")
    more = write(configs, "more.yaml", "lr_scheduler:\n  config:\n    gamma: 0.25\n")
    experiments = tmp_path / "experiments"
    assert train_in_process(experiments, "run", "--set", "optimizer.config.lr=0.02", config=[exp, more]) == 0
    folder = experiments / "run"
    resolved = yaml.safe_load((folder / "config.yaml").read_text())
    assert resolved["settings"]["training_target"]["num_target_steps"] == 3
    assert resolved["lr_scheduler"]["config"]["gamma"] == 0.25 and resolved["optimizer"]["config"]["lr"] == 0.02
    sources = folder / "config_sources"
    assert sorted(p.name for p in sources.iterdir()) == ["base.yaml", "exp.yaml", "more.yaml"]
    for name in ("base.yaml", "exp.yaml", "more.yaml"):
        assert (sources / name).read_text() == (configs / name).read_text()
    manifest = (folder / "config_sources.yaml").read_text()
    assert manifest.splitlines()[-4:] == [
        "#   --set optimizer.config.lr=0.02",
        "extends:",
        '  - "config_sources/exp.yaml"',
        '  - "config_sources/more.yaml"',
    ]
    # The saved files compose again to the config the run was given; its flag is the one difference
    capsys.readouterr()
    assert main(["diff", str(folder / "config_sources.yaml"), f"{exp}+{more}"]) == 0
    saved_base = (folder / "config_sources" / "base.yaml").resolve()
    flag = ["--set", "optimizer.config.lr=0.02"]
    assert main(["diff", str(folder / "config_sources.yaml"), f"{exp}+{more}", *flag]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"optimizer.config.lr: 0.01 ({saved_base}:47) -> 0.02 (<--set>)"


def test_the_saved_config_of_an_experiment_file_names_the_whole_config_schema(tmp_path):
    from modalities.config.dump import schema_modeline

    modeline = "# yaml-language-server: $schema=../schemas/modalities.partial.schema.json\n"
    exp = write(tmp_path, "configs/exp.yaml", modeline + "extends: base.yaml\n")
    expected = (tmp_path / "schemas" / "modalities.schema.json").resolve()
    assert schema_modeline(exp) == f"# yaml-language-server: $schema={expected}"


def test_a_new_key_next_to_an_inherited_one_of_a_very_similar_name_is_a_warning(tmp_path):
    write(tmp_path, "base.yaml", BASE + "optimizer: {component_key: toy_optimizer, variant_key: sgd}\n")
    exp = write(tmp_path, "exp.yaml", """\
        extends: base.yaml
        optimiser:
          config: {lr: 0.5}
        settings:
          step: 3
          test_sizes: [1]
        model_copy: {component_key: toy_model, variant_key: linear}
        """)
    document = compose_files(exp)
    assert [(d.severity, d.path, where(d.span)) for d in document.warnings] == [
        ("warning", ("optimiser",), ("exp.yaml", 2, 1)), ("warning", ("settings", "step"), ("exp.yaml", 5, 3))]
    assert document.warnings[0].message.endswith("did you mean 'optimizer'?")
    assert document.values["optimiser"] == {"config": {"lr": 0.5}}  # added all the same


def test_graph_of_several_files_draws_each_node_with_the_file_that_wrote_it(tmp_path, capsys):
    exp = write(tmp_path, "exp.yaml", "evaluation_subscriber: {variant_key: dummy, config: {}}\n")
    assert main(["graph", str(QUICKSTART), str(exp), "-o", "-"]) == 0
    dot = capsys.readouterr().out
    assert f'label="{QUICKSTART} + {exp}\\n' in dot
    assert (f'[label=<<b>evaluation_subscriber</b><br/><font point-size="9">results_subscriber/dummy</font>>, '
            f'tooltip="{exp}:1\\nevaluation_subscriber\\nresults_subscriber/dummy"') in dot
    line = QUICKSTART.read_text().splitlines().index("optimizer:") + 1  # where the node's name is written
    assert f'tooltip="{QUICKSTART}:{line}\\noptimizer\\noptimizer/adam_w"' in dot


def test_convert_to_hf_composes_several_config_files(tmp_path, capsys):
    exp = write(tmp_path, "exp.yaml", "model_raw:\n  config:\n    n_layer: [\n")
    assert main(["convert", "to-hf", str(QUICKSTART), str(exp), str(tmp_path / "out")]) == 1
    assert f"{exp}:4:1: error: invalid YAML" in capsys.readouterr().err  # the second file is read, positioned
    write(tmp_path, "exp.yaml", "model_raw:\n  config:\n    n_layer: 3\n")
    assert main(["convert", "to-hf", str(QUICKSTART), str(exp), str(tmp_path / "out")]) == 1
    # composed and read: the quick start loads no checkpoint, so there is nothing to export (said of both files)
    assert f"{QUICKSTART} + {exp}: no model in this config loads a checkpoint" in capsys.readouterr().err


def test_a_name_the_system_cannot_open_is_an_error_at_the_entry(tmp_path):
    exp = write(tmp_path, "exp.yaml", 'extends: ["a\\0b.yaml", "' + "x" * 300 + '.yaml"]\n')
    first, second = compose_error(exp)
    assert first.message == f"cannot read config file '{tmp_path.resolve() / 'a'}\\x00b.yaml': embedded null byte"
    assert where(first.span) == ("exp.yaml", 1, 11)
    assert second.message.endswith(": File name too long") and where(second.span) == ("exp.yaml", 1, 24)


def test_a_reference_to_a_deleted_component_says_where_it_was_deleted(tmp_path, toy_registry, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "base.yaml", TOY_BASE.replace("width: 0", "width: 4"))
    write(tmp_path, "exp.yaml", "extends: base.yaml\nmodel: !delete\n")
    compiled = compile_file("exp.yaml", toy_registry)
    (error,) = [d for d in compiled.diagnostics if d.severity == "error"]
    assert (error.code, where(error.span)) == ("unknown-reference", ("base.yaml", 9, 34))
    assert error.hint == ("'model' is deleted at exp.yaml:2:1 (`!delete`): change or delete this reference too (in that "
                          "file or one merged after it)")
