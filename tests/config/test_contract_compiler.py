"""Contracts of the compiler's pipeline (modalities/config/compiler.py) and of where each value came from
(modalities/config/provenance.py): what each entry point returns and raises, which stages run with which
options, and the origin comment of every kind of value, written out by hand."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import BaseModel, Field

from modalities.config import compiler
from modalities.config.compiler import (
    AUTO_ROOT,
    CompiledConfig,
    compile_document,
    compile_file,
    default_experiment_id,
    document_from_dict,
    load_and_resolve,
    resolve,
)
from modalities.config.diagnostics import ERROR, WARNING, ConfigError, Diagnostic
from modalities.config.load import load_text
from modalities.config.provenance import annotated_yaml, origin_of
from modalities.config.resolve import ResolvedDocument
from modalities.config.spans import OVERRIDE_FILE, SourceMap, Span
from modalities.registry import Registry
from modalities.registry.registry import RootSpec
from modalities.registry.types import ComponentConfig, ComponentRef, Finding


class ModelConfig(ComponentConfig):
    width: int
    activation: str = "relu"
    depth: int = Field(1, alias="num_layers")
    sizes: list[int] = [1, 2]


class RunConfig(BaseModel):
    model: ComponentRef["model"]
    steps: int


def registry(contract=None) -> Registry:
    r = Registry()
    r.register(component_key="model", variant_key="plain", custom_component=lambda **kw: kw, custom_config=ModelConfig)
    r.add_root(RootSpec(name="toy", config=RunConfig, contract=contract, markers=("steps",)))
    return r


RUN = "model: {component_key: model, variant_key: plain, config: {width: 2}}\nsteps: 3\n"


# --- the pipeline ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("severities, ok", [([], True), ([WARNING], True), ([ERROR], False), ([WARNING, ERROR], False)])
def test_a_compiled_config_is_ok_without_errors(severities, ok):
    compiled = CompiledConfig(document=ResolvedDocument(values={}), registry=Registry(),
                              diagnostics=[Diagnostic("m", severity=s) for s in severities])
    assert compiled.ok is ok
    if ok:
        compiled.raise_for_errors()
    else:
        with pytest.raises(ConfigError) as e:
            compiled.raise_for_errors()
        assert e.value.diagnostics == compiled.diagnostics


def test_compile_file_runs_every_stage(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(RUN)
    compiled = compile_file(path, registry(), overrides=["steps=5"], experiment_id="e")
    assert compiled.ok and compiled.diagnostics == []
    assert compiled.document.values["steps"] == 5
    assert list(compiled.graph.nodes) == [("model",)] and list(compiled.validated.nodes) == [("model",)]
    assert compiled.root.spec.name == "toy" and compiled.root.config.steps == 5


@pytest.mark.parametrize("root, expected", [(AUTO_ROOT, "toy"), ("toy", "toy"), (None, None)])
def test_the_root_is_found_by_its_markers_named_or_left_out(root, expected):
    compiled = compile_document(resolve(load_text(RUN, "f.yaml"), experiment_id="e")[0], registry(), root=root)
    assert (compiled.root.spec.name if compiled.root else None) == expected


def test_a_config_without_the_markers_of_a_root_has_none():
    text = "model: {component_key: model, variant_key: plain, config: {width: 2}}\n"
    compiled = compile_document(resolve(load_text(text, "f.yaml"), experiment_id="e")[0], registry())
    assert compiled.root is None and compiled.ok


def test_an_unknown_root_is_a_value_error():
    with pytest.raises(ValueError, match="unknown root 'nope'; known: toy"):
        compile_document(ResolvedDocument(values={}), registry(), root="nope")
    with pytest.raises(ValueError, match="unknown root 'nope'; known: none"):
        compile_document(ResolvedDocument(values={}), Registry(), root="nope")


@pytest.mark.parametrize("has_errors", [False, True])
def test_the_run_contract_runs_only_on_a_config_without_errors(has_errors):
    calls = []

    def contract(view):
        calls.append(view.resume_from)
        return [Finding(("steps",), "looked", severity="warning")]

    text = RUN.replace("width: 2", "width: x") if has_errors else RUN
    compiled = compile_document(resolve(load_text(text, "f.yaml"), experiment_id="e")[0], registry(contract),
                                resume_from="auto")
    assert calls == ([] if has_errors else ["auto"])
    assert [d.code for d in compiled.diagnostics] == (["int_parsing"] if has_errors else ["run-contract"])


@pytest.mark.parametrize("entry_points, warned", [((), ["model"]), (("model",), [])])
def test_entry_points_are_used_by_the_run(entry_points, warned):
    compiled = compile_document(resolve(load_text(RUN, "f.yaml"), experiment_id="e")[0], registry(),
                                entry_points=entry_points, root=None)
    assert [d.path[0] for d in compiled.diagnostics if d.code == "unused-component"] == warned


def test_diagnostics_given_come_first():
    given = Diagnostic("earlier", severity=WARNING)
    compiled = compile_document(ResolvedDocument(values={}), registry(), diagnostics=[given])
    assert compiled.diagnostics == [given]


@pytest.mark.parametrize("sweep, template", [
    ({"lr": [1, 2]}, True),
    ({"group": {"lr": [1, 2]}}, True),
    ({"lr": 1}, False),  # an expanded config: single values
    ({"group": {"lr": 1}}, False),
    ({}, False),
    ([1, 2], False),
    (None, False),
])
def test_a_sweep_template_is_a_warning(sweep, template):
    values = {"sweep": sweep} if sweep is not None else {}
    compiled = compile_document(ResolvedDocument(values=values), registry(), root=None)
    assert [d.code for d in compiled.diagnostics] == (["sweep-template"] if template else [])
    if template:
        assert compiled.diagnostics[0].severity == WARNING and compiled.diagnostics[0].path == ("sweep",)


def test_resolve_applies_the_overrides_before_the_interpolations_and_says_where_the_run_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    document = load_text("a: 1\nb: ${a}\nr: ${modalities_env:experiments_root_path}\n"
                         "i: ${modalities_env:experiment_id}\n", "f.yaml")
    resolved, diagnostics = resolve(document, overrides=["a=2", "nope"], experiment_id="run1")
    assert resolved.values == {"a": 2, "b": 2, "r": str(tmp_path / "experiments"), "i": "run1"}
    assert [d.code for d in diagnostics] == ["override"]
    resolved, _ = resolve(load_text("r: ${modalities_env:experiments_root_path}\n", "f.yaml"),
                          experiments_root=tmp_path / "elsewhere", experiment_id="x")
    assert resolved.values["r"] == str(tmp_path / "elsewhere")


def test_resolve_gives_the_last_checkpoint_info_to_warmstart_env(tmp_path):
    info = tmp_path / "info.json"
    info.write_text('{"model": "/m"}')
    text = "p: ${warmstart_env:checkpoint_paths}\n"
    resolved, diagnostics = resolve(load_text(text, "f.yaml"), last_checkpoint_info=info, experiment_id="x")
    assert diagnostics == [] and resolved.values["p"] == {"model": "/m"}
    _, diagnostics = resolve(load_text(text, "f.yaml"), experiment_id="x")
    assert len(diagnostics) == 1 and "--last-checkpoint-info" in diagnostics[0].message


def test_load_and_resolve_merges_several_files_and_keeps_the_warnings_first(tmp_path):
    (tmp_path / "base.yaml").write_text("learning_rate: 1\nfolder: ${modalities_env:config_folder_path}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "exp.yaml").write_text("extends: ../base.yaml\nlearning_rte: 2\nmine: "
                                               "${modalities_env:config_folder_path}\n")
    resolved, diagnostics = load_and_resolve(tmp_path / "sub" / "exp.yaml", overrides=["x=1"], experiment_id="e")
    assert resolved.values["folder"] == str(tmp_path.resolve())  # the folder of the file that wrote it
    assert resolved.values["mine"] == str((tmp_path / "sub").resolve())
    assert resolved.values["x"] == 1 and [d.code for d in diagnostics] == ["extends-new-key"]
    assert resolved.config_path == (tmp_path / "sub" / "exp.yaml").resolve()
    assert [Path(f.name).name for f in resolved.files] == ["base.yaml", "exp.yaml"]


def test_a_set_value_reads_no_folder_of_its_own(tmp_path):
    (tmp_path / "c.yaml").write_text("a: 1\n")
    resolved, _ = load_and_resolve(tmp_path / "c.yaml", overrides=["f=${modalities_env:config_folder_path}"],
                                   experiment_id="e")
    assert resolved.values["f"] == str(tmp_path.resolve())  # the config's folder, as for a document read from text


def test_load_and_resolve_raises_only_for_what_cannot_be_read(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_and_resolve(tmp_path / "nope.yaml", experiment_id="e")
    (tmp_path / "c.yaml").write_text("a: ${nope}\n")
    _, diagnostics = load_and_resolve(tmp_path / "c.yaml", experiment_id="e")
    assert [d.code for d in diagnostics] == ["interpolation"]


def test_a_reference_to_a_deleted_component_says_where_it_was_deleted(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {component_key: model, variant_key: plain, config: {width: 2}}\n"
                                        "user: {instance_key: model}\nsteps: 1\n")
    (tmp_path / "exp.yaml").write_text("extends: base.yaml\nmodel: !delete\n")
    compiled = compile_file(tmp_path / "exp.yaml", registry(), experiment_id="e", root=None)
    (unknown,) = [d for d in compiled.diagnostics if d.code == "unknown-reference"]
    assert unknown.hint.startswith(f"'model' is deleted at {tmp_path / 'exp.yaml'}:2:1 (`!delete`)")


@pytest.mark.parametrize("env, expected", [({"MODALITIES_EXPERIMENT_ID": "given"}, "given")])
def test_the_experiment_id_is_given_or_one_timestamp_per_process(monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert default_experiment_id() == expected
    monkeypatch.delenv("MODALITIES_EXPERIMENT_ID")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(compiler, "_agreed_default_id", None)
    first = default_experiment_id()
    assert len(first) == len("2026-12-04__10-11-12") and first[4] == first[7] == "-" and first[10:12] == "__"
    assert default_experiment_id() == first  # agreed once


def test_document_from_dict_keeps_the_positions_a_loaded_dict_carries():
    plain = document_from_dict({"a": 1})
    assert plain.values == {"a": 1} and plain.source_map.values == {} and plain.config_path is None

    class Carrying(dict):
        pass

    source = ResolvedDocument(values={"a": 1}, source_map=SourceMap(values={("a",): Span("f", 1, 4, 1, 5)}),
                              config_path=Path("/c.yaml"), unresolved_paths=frozenset({("b",)}),
                              provenance={("a",): []})
    carrying = Carrying(a=2)
    carrying.document = source
    document = document_from_dict(carrying)
    assert document.values == {"a": 2} and type(document.values) is dict
    assert document.source_map is source.source_map and document.config_path == Path("/c.yaml")
    assert document.unresolved_paths == frozenset({("b",)}) and document.provenance == {("a",): []}


# --- provenance ------------------------------------------------------------------------------------------------------


def compiled_of(text: str, **kw):
    resolved, diagnostics = resolve(load_text(text, "f.yaml"), experiment_id="e", **kw)
    return compile_document(resolved, registry(), diagnostics=diagnostics, root=None)


ORIGIN_TEXT = "n: 4\nm: {a: 1}\nx: ${n}\ny: a${n}b${m.a}\nw: ${cuda_env:WORLD_SIZE}\nv: 7\nl: [1, 2]\n"


@pytest.mark.parametrize("path, origin", [
    (("n",), "f.yaml:1"),
    (("m", "a"), "f.yaml:2"),
    (("m",), "f.yaml:2"),
    (("x",), "${n} <- f.yaml:1"),
    (("y",), "${n} <- f.yaml:1, ${m.a} <- f.yaml:2"),
    (("w",), "${cuda_env:WORLD_SIZE}"),
    (("v",), OVERRIDE_FILE),  # set on the command line
    (("l", 1), "f.yaml:7"),
    (("l", 5), "f.yaml:7"),  # no position of its own: the nearest one's
])
def test_origin_of_each_kind_of_value(path, origin):
    compiled = compiled_of(ORIGIN_TEXT, overrides=["v=8"])
    assert origin_of(compiled, path) == origin


def test_a_value_without_any_position_has_an_unknown_origin():
    compiled = SimpleNamespace(document=ResolvedDocument(values={"a": 1}))
    assert origin_of(compiled, ("a",)) == "?"


def test_the_annotated_yaml_comments_every_value_and_lists_the_defaults():
    text = ("model: {component_key: model, variant_key: plain, config: {width: 2, num_layers: 3}}\n"
            "n: 4\nx: ${n}\nm: {a: 1}\ncopy: ${m}\nempty: []\nl: [1, '${n}']\n")
    printed = annotated_yaml(compiled_of(text))
    lines = [(line.partition("#")[0].rstrip(), line.partition("#")[2].strip()) for line in printed.splitlines()]
    assert lines == [
        ("model:", ""),
        ("  component_key: model", "f.yaml:1"),
        ("  variant_key: plain", "f.yaml:1"),
        ("  config:", ""),
        ("    width: 2", "f.yaml:1"),
        ("    num_layers: 3", "f.yaml:1"),  # an alias written is not a default
        ("    activation: relu", "default"),
        ("    sizes:", "default"),
        ("    - 1", ""),
        ("    - 2", ""),
        ("n: 4", "f.yaml:2"),
        ("x: 4", "${n} <- f.yaml:2"),
        ("m:", ""),  # a mapping as written: its values say where they are
        ("  a: 1", "f.yaml:4"),
        ("copy:", "${m} <- f.yaml:4"),  # an interpolated mapping says where it came from
        ("  a: 1", "f.yaml:4"),
        ("empty: []", "f.yaml:6"),  # an empty container has no values to say it
        ("l:", ""),
        ("- 1", "f.yaml:7"),
        ("- 4", "${n} <- f.yaml:2"),
    ]


def test_a_component_with_errors_lists_no_defaults():
    printed = annotated_yaml(compiled_of("model: {component_key: model, variant_key: plain, config: {width: x}}\n"))
    assert "default" not in printed
    assert annotated_yaml(SimpleNamespace(document=ResolvedDocument(values={"a": 1}), validated=None)) == "a: 1  # ?\n"


class Mode(__import__("enum").Enum):
    FAST = "fast"


class Part(BaseModel):
    size: int = 1


class RichDefaultsConfig(ComponentConfig):
    part: Part = Part()
    mode: Mode = Mode.FAST
    table: dict = {"k": (1, 2)}
    where: Path = Path("/x")
    nothing: int | None = None


def test_defaults_are_printed_as_plain_data():
    r = registry()
    r.register(component_key="rich", variant_key="x", custom_component=lambda **kw: kw,
               custom_config=RichDefaultsConfig)
    resolved, _ = resolve(load_text("r: {component_key: rich, variant_key: x}\n", "f.yaml"), experiment_id="e")
    printed = annotated_yaml(compile_document(resolved, r, root=None))
    lines = [(line.partition("#")[0].rstrip(), line.partition("#")[2].strip()) for line in printed.splitlines()]
    assert lines == [("r:", ""), ("  component_key: rich", "f.yaml:1"), ("  variant_key: x", "f.yaml:1"),
                     ("  config:", ""), ("    part:", "default"), ("      size: 1", ""),
                     ("    mode: fast", "default"), ("    table:", "default"), ("      k:", ""), ("      - 1", ""),
                     ("      - 2", ""), ("    where: /x", "default"), ("    nothing:", "default")]


def test_a_component_waiting_for_a_computed_value_lists_its_defaults():
    r = registry()
    r.register(component_key="number", variant_key="x", custom_component=lambda n: n,
               custom_config=type("NumberConfig", (ComponentConfig,), {"__annotations__": {"n": int}}), produces="int")
    text = ("n: {component_key: number, variant_key: x, config: {n: 1}}\n"
            "model: {component_key: model, variant_key: plain, config: {width: '${n}'}}\n")
    resolved, _ = resolve(load_text(text, "f.yaml"), experiment_id="e")
    compiled = compile_document(resolved, r, root=None)
    assert compiled.validated.nodes[("model",)].config is None
    comments = {line.partition("#")[0].strip(): line.partition("#")[2].strip()
                for line in annotated_yaml(compiled).splitlines()}
    assert comments["activation: relu"] == "default" and comments["width:"] == "${n} <- f.yaml:1"


def _timestamp(monkeypatch, text: str) -> None:
    monkeypatch.setattr(compiler.time, "strftime", lambda fmt: text)
    monkeypatch.setattr(compiler, "_agreed_default_id", None)


@pytest.mark.parametrize("world_size, agent_store", [(None, None), ("1", None), ("1", "True"), ("2", None),
                                                     ("2", "False")])
def test_one_process_or_a_launcher_without_torchruns_store_keeps_its_own_timestamp(monkeypatch, world_size,
                                                                                    agent_store):
    for name, value in (("WORLD_SIZE", world_size), ("TORCHELASTIC_USE_AGENT_STORE", agent_store)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("MODALITIES_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MASTER_ADDR", raising=False)  # a store would be looked for there: KeyError
    _timestamp(monkeypatch, "mine")
    assert default_experiment_id() == "mine"


def test_under_torchrun_every_rank_takes_rank_0s_timestamp(monkeypatch):
    from torch.distributed import TCPStore

    agent = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)  # what torchrun's agent runs
    for name, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(agent.port)), ("WORLD_SIZE", "2"),
                        ("TORCHELASTIC_USE_AGENT_STORE", "True"), ("TORCHELASTIC_RESTART_COUNT", "3")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MODALITIES_EXPERIMENT_ID", raising=False)
    monkeypatch.setenv("RANK", "0")
    _timestamp(monkeypatch, "rank 0's clock")
    assert default_experiment_id() == "rank 0's clock"
    monkeypatch.setenv("RANK", "1")
    _timestamp(monkeypatch, "rank 1's clock, a second later")
    assert default_experiment_id() == "rank 0's clock"
    assert agent.get("modalities/experiment_id/3") == b"rank 0's clock"  # one key per restart of the job
