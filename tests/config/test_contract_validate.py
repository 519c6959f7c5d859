"""Contracts of modalities/config/validate.py (stage 4): which nodes validate, what is reported about each and
where, which errors wait for the build, the root (what a whole config is) and its contract across components.
The registry is made here of small pydantic classes, so every branch is reached with a few lines of YAML;
positions are counted in the test's own text."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from modalities.config.diagnostics import ERROR, NOTE, WARNING
from modalities.config.graph import build_component_graph
from modalities.config.load import load_text
from modalities.config.resolve import ResolverContext, resolve_document
from modalities.config.validate import (
    RunView,
    ValidatedNode,
    lenient_construct,
    model_at,
    placeholder_for,
    validate_graph,
    validate_root,
)
from modalities.registry import Registry
from modalities.registry.registry import ComponentSpec, RootSpec
from modalities.registry.types import (
    ComponentConfig,
    ComponentPlaceholder,
    ComponentRef,
    Finding,
    note_config,
    warn_config,
)


class ModelConfig(ComponentConfig):
    width: int = Field(strict=True, gt=0, description="the width")
    activation: Literal["relu", "gelu"] = "relu"
    depth: int = 1


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int
    name: str = "n"


class HolderConfig(ComponentConfig):
    model: ComponentRef["model"]
    head: Inner
    heads: list[Inner] = []
    steps: int = 0
    models: list[ComponentRef["model"]] = []
    optional_model: ComponentRef["model"] | None = None


class LooseConfig(BaseModel):  # a user's class: extra keys ignored by pydantic, refused by validate
    name: str
    alias_field: int = Field(0, alias="aliasField")
    choice: int = Field(0, validation_alias=AliasChoices("choice", "pick"))


class OpenConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    width: int


class EmptyConfig(ComponentConfig):
    pass


class ChooserConfig(ComponentConfig):
    kind: str = "model"


class NumberConfig(ComponentConfig):
    n: int


class WarningConfig(ComponentConfig):
    level: int = 0

    @model_validator(mode="after")
    def _tell(self):
        if self.level >= 1:
            warn_config("level is high", field="level")
        if self.level >= 2:
            note_config("carried out slowly")
        return self


class CrashingConfig(ComponentConfig):
    x: int = 0

    @model_validator(mode="after")
    def _crash(self):
        raise TypeError("validator bug")


class Thing:
    pass


class TypedByClassConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    thing: Thing

    @model_validator(mode="after")
    def _needs_built(self):
        if not isinstance(self.thing, Thing):
            raise TypeError("needs the built thing")
        return self


def registry() -> Registry:
    r = Registry()
    r.register(component_key="model", variant_key="plain", custom_component=lambda **kw: kw, custom_config=ModelConfig)
    r.register(component_key="model", variant_key="other", custom_component=lambda **kw: kw, custom_config=ModelConfig)
    r.register(component_key="holder", variant_key="h", custom_component=lambda **kw: kw, custom_config=HolderConfig)
    r.register(component_key="loose", variant_key="x", custom_component=lambda **kw: kw, custom_config=LooseConfig)
    r.register(component_key="open", variant_key="x", custom_component=lambda **kw: kw, custom_config=OpenConfig)
    r.register(component_key="empty", variant_key="x", custom_component=lambda: 1, custom_config=EmptyConfig)
    r.register(component_key="number", variant_key="x", custom_component=lambda n: n, custom_config=NumberConfig,
               produces="int")
    r.register(component_key="warns", variant_key="x", custom_component=lambda **kw: kw, custom_config=WarningConfig)
    r.register(component_key="crash", variant_key="x", custom_component=lambda **kw: kw, custom_config=CrashingConfig)
    r.register(component_key="typed", variant_key="x", custom_component=lambda **kw: kw,
               custom_config=TypedByClassConfig)
    r.add(ComponentSpec("needs", "pkg", config=EmptyConfig, builder=lambda: 1,
                        requires=(("modalities_no_such_package", "extra"),)))
    r.add(ComponentSpec("broken", "x", config="modalities_no_such_module:Config", builder=lambda: 1))
    r.add(ComponentSpec("chooser", "x", config=ChooserConfig, builder=lambda: 1, produces="model",
                        produces_by=("kind", {"opt": "optimizer"})))
    return r


def validated(text: str, reg: Registry | None = None):
    loaded = load_text(text, "f.yaml")
    document, _ = resolve_document(loaded, ResolverContext(None, None, None))
    graph, _ = build_component_graph(document)
    result, diagnostics = validate_graph(graph, reg or registry())
    return result, diagnostics


def reported(text: str) -> list[tuple]:
    _, diagnostics = validated(text)
    return [(d.severity, d.code, d.path, d.message, str(d.span) if d.span else None, d.hint) for d in diagnostics]


def where(text: str, line: int, needle: str) -> str:
    return f"f.yaml:{line}:{text.splitlines()[line - 1].index(needle) + 1}"


# --- what validates -------------------------------------------------------------------------------------------------


def test_a_valid_node_is_validated_with_placeholders_where_components_stand():
    text = ("m: {component_key: model, variant_key: plain, config: {width: 2}}\n"
            "h: {component_key: holder, variant_key: h, config: {model: {instance_key: m}, head: {size: 1}, "
            "heads: [{size: 2}]}}\n")
    result, diagnostics = validated(text)
    assert diagnostics == []
    assert list(result.nodes) == [("m",), ("h",)]
    holder = result.nodes[("h",)]
    assert isinstance(holder, ValidatedNode) and holder.partial is None
    assert holder.spec.name == "holder/h"
    assert holder.config.head == Inner(size=1) and holder.config.heads == [Inner(size=2)]
    placeholder = holder.raw_config["model"]
    assert isinstance(placeholder, ComponentPlaceholder) and placeholder.node_id == ("m",)
    assert placeholder.kind == "model" and placeholder.label == "'m' (model/plain, f.yaml:1:4)"
    assert result.nodes[("m",)].config == ModelConfig(width=2)


@pytest.mark.parametrize("text", [
    "e: {component_key: empty, variant_key: x}",  # no config: {}
    "e: {component_key: empty, variant_key: x, config: null}",
    "e: {component_key: empty, variant_key: x, config: {}}",
])
def test_a_node_without_config_validates_as_an_empty_config(text):
    result, diagnostics = validated(text)
    assert diagnostics == [] and result.nodes[("e",)].config == EmptyConfig()


def test_a_value_computed_when_built_waits_for_the_build():
    text = ("n: {component_key: number, variant_key: x, config: {n: 3}}\n"
            "h: {component_key: holder, variant_key: h, config: {model: {component_key: model, variant_key: plain, "
            "config: {width: 1}}, head: {size: 1}, steps: {instance_key: n}}}\n")
    result, diagnostics = validated(text)
    assert diagnostics == []
    holder = result.nodes[("h",)]
    assert holder.config is None  # waits
    assert holder.partial.head == Inner(size=1) and holder.partial.steps.kind == "int"  # the rest is read


# --- what is reported, and where -------------------------------------------------------------------------------------

NODE_TABLE = [
    ("a: {component_key: 3, variant_key: v}",
     [(ERROR, "", ("a", "component_key"), "component_key must be a string, got 3", "3,", None)]),
    ("a: {component_key: modl, variant_key: plain}",
     [(ERROR, "unknown-component", ("a", "component_key"), "unknown component_key 'modl'", "modl",
       "did you mean 'model'?")]),
    ("a: {component_key: zzzzzz, variant_key: plain}",
     [(ERROR, "unknown-component", ("a", "component_key"), "unknown component_key 'zzzzzz'", "zzzzzz",
       "run `modalities components` to list them, or register yours (--plugin)")]),
    ("a: {component_key: model, variant_key: plian}",
     [(ERROR, "unknown-variant", ("a", "variant_key"), "unknown variant_key 'plian' for component_key 'model'", "plian",
       "did you mean 'plain'? (variants of model: other, plain)")]),
    ("a: {component_key: model, variant_key: zzzzzz}",
     [(ERROR, "unknown-variant", ("a", "variant_key"), "unknown variant_key 'zzzzzz' for component_key 'model'",
       "zzzzzz", "variants of model: other, plain")]),
    ("a: {component_key: model, variant_key: 3}", []),  # the graph reports it
    ("a: {component_key: model, variant_key: plain, config: [1]}",
     [(ERROR, "", ("a", "config"), "config of model/plain must be a mapping of fields, got list", "[1]", None)]),
    ("a: {component_key: model, variant_key: plain, config: {width: 2, widht: 3}}",
     [(ERROR, "unknown-field", ("a", "config", "widht"), "unknown field 'widht' for ModelConfig", "widht",
       "did you mean 'width'?")]),
    ("a: {component_key: model, variant_key: plain, config: {width: 2, zzzzzz: 3}}",
     [(ERROR, "unknown-field", ("a", "config", "zzzzzz"), "unknown field 'zzzzzz' for ModelConfig", "zzzzzz",
       "fields: activation, depth, width")]),
    ("a: {component_key: empty, variant_key: x, config: {zzzzzz: 3}}",
     [(ERROR, "unknown-field", ("a", "config", "zzzzzz"), "unknown field 'zzzzzz' for EmptyConfig", "zzzzzz",
       "it takes no fields")]),
    # a user's class that ignores unknown keys itself: refused all the same
    ("a: {component_key: loose, variant_key: x, config: {name: n, nmae: m}}",
     [(ERROR, "unknown-field", ("a", "config", "nmae"), "unknown field 'nmae' for LooseConfig", "nmae",
       "did you mean 'name'?")]),
    # aliases and alias choices are field names
    ("a: {component_key: loose, variant_key: x, config: {name: n, aliasField: 1, pick: 2}}", []),
    # a class that allows unknown keys keeps them
    ("a: {component_key: open, variant_key: x, config: {width: 1, anything: 2}}", []),
    ("a: {component_key: model, variant_key: plain, config: {}}",
     [(ERROR, "missing-field", ("a", "config"), "missing required field 'width'", "config",
       "add 'width' under this config: the width")]),
    ("a: {component_key: holder, variant_key: h, config: {model: {component_key: model, variant_key: plain, config: "
     "{width: 1}}, head: {}}}",
     [(ERROR, "missing-field", ("a", "config", "head"), "missing required field 'size'", "head",
       "add 'size' under this config")]),
    # a misspelt required field: reported once, as the unknown key with its "did you mean"
    ("a: {component_key: model, variant_key: plain, config: {widht: 2}}",
     [(ERROR, "unknown-field", ("a", "config", "widht"), "unknown field 'widht' for ModelConfig", "widht",
       "did you mean 'width'?")]),
    # where unknown keys are allowed, the missing field says which key looks like it
    ("a: {component_key: open, variant_key: x, config: {widht: 2}}",
     [(ERROR, "missing-field", ("a", "config"), "missing required field 'width'", "config",
       "add 'width' under this config (the key 'widht' here looks like a misspelt 'width')")]),
    ("a: {component_key: model, variant_key: plain, config: {width: '2'}}",
     [(ERROR, "int_type", ("a", "config", "width"), "Input should be a valid integer (got '2')", "'2'", None)]),
    ("a: {component_key: model, variant_key: plain, config: {width: 0}}",
     [(ERROR, "greater_than", ("a", "config", "width"), "Input should be greater than 0 (got 0)", "0}", None)]),
    ("a: {component_key: model, variant_key: plain, config: {width: [1]}}",
     [(ERROR, "int_type", ("a", "config", "width"), "Input should be a valid integer", "[1]", None)]),
    ("a: {component_key: model, variant_key: plain, config: {width: 1, activation: tanh}}",
     [(ERROR, "literal_error", ("a", "config", "activation"), "Input should be 'relu' or 'gelu' (got 'tanh')", "tanh",
       None)]),
    # a component where a number goes: says what the component produces
    ("a: {component_key: model, variant_key: plain, config: {width: {component_key: empty, variant_key: x}}}",
     [(ERROR, "int_type", ("a", "config", "width"), "Input should be a valid integer, but got component "
       "'a.config.width' (empty/x, {POS}) which produces 'empty'", "{component_key: empty", None)]),
    # a component of the wrong kind and a plain value where a component goes
    ("h: {component_key: holder, variant_key: h, config: {model: {component_key: empty, variant_key: x}, head: "
     "{size: 1}}}",
     [(ERROR, "component_kind", ("h", "config", "model"), "expected a 'model' component, but 'h.config.model' "
       "(empty/x, {POS}) produces 'empty'", "{component_key: empty", None)]),
    ("h: {component_key: holder, variant_key: h, config: {model: 3, head: {size: 1}}}",
     [(ERROR, "component_expected", ("h", "config", "model"), "expected a 'model' component: a component node "
       "(component_key, variant_key, config) or a reference (instance_key, pass_type: BY_REFERENCE)", "3,", None)]),
    # in a nested class: the nested class's fields
    ("h: {component_key: holder, variant_key: h, config: {model: {component_key: model, variant_key: plain, config: "
     "{width: 1}}, head: {size: 1, nmae: x}}}",
     [(ERROR, "unknown-field", ("h", "config", "head", "nmae"), "unknown field 'nmae' for Inner", "nmae",
       "did you mean 'name'?")]),
    ("h: {component_key: holder, variant_key: h, config: {model: {component_key: model, variant_key: plain, config: "
     "{width: 1}}, head: {size: 1}, heads: [{size: 1}, {size: x}]}}",
     [(ERROR, "int_parsing", ("h", "config", "heads", 1, "size"), "Input should be a valid integer, unable to parse "
       "string as an integer (got 'x')", "x}", None)]),
    # one error for a union's alternatives at one place: the reference's
    ("h: {component_key: holder, variant_key: h, config: {model: {component_key: model, variant_key: plain, config: "
     "{width: 1}}, head: {size: 1}, optional_model: {component_key: empty, variant_key: x}}}",
     [(ERROR, "component_kind", ("h", "config", "optional_model"), "expected a 'model' component, but "
       "'h.config.optional_model' (empty/x, {POS}) produces 'empty'", "{component_key: empty", None)]),
    # a component whose kind is chosen by a field
    ("h: {component_key: holder, variant_key: h, config: {model: {component_key: chooser, variant_key: x, config: "
     "{kind: opt}}, head: {size: 1}}}",
     [(ERROR, "component_kind", ("h", "config", "model"), "expected a 'model' component, but 'h.config.model' "
       "(chooser/x, {POS}) produces 'optimizer'", "{component_key: chooser", None)]),
    ("a: {component_key: needs, variant_key: pkg}",
     [(ERROR, "missing-package", ("a", "variant_key"), "needs/pkg needs the Python package "
       "'modalities_no_such_package', which is not installed here", "pkg",
       "pip install 'modalities[extra]' (or choose another variant)")]),
    ("a: {component_key: crash, variant_key: x}",
     [(ERROR, "", ("a", "config"), "crash/x: TypeError: validator bug", "{component_key: crash", None)]),
    ("a: {component_key: warns, variant_key: x, config: {level: 1}}",
     [(WARNING, "", ("a", "config", "level"), "warns/x: level is high", "1}", None)]),
    ("a: {component_key: warns, variant_key: x, config: {level: 2}}",
     [(WARNING, "", ("a", "config", "level"), "warns/x: level is high", "2}", None),
      (NOTE, "", ("a", "config"), "warns/x: carried out slowly", "a: {", None)]),  # at the component's key
]


@pytest.mark.parametrize("text, expected", NODE_TABLE)
def test_what_is_reported_about_a_node(text, expected):
    rows = reported(text)
    positions = [f"f.yaml:1:{text.index(row[4]) + 1}" for row in expected]
    expected = [row[:3] + (row[3].replace("{POS}", position),) + row[4:] for row, position in zip(expected, positions)]
    assert [row[:4] for row in rows] == [row[:4] for row in expected]
    assert [row[5] for row in rows] == [row[5] for row in expected]
    assert [row[4] for row in rows] == positions


def test_a_node_with_errors_is_not_validated_and_one_without_is():
    text = ("good: {component_key: model, variant_key: plain, config: {width: 1}}\n"
            "bad: {component_key: model, variant_key: plain, config: {width: 0}}\n"
            "unknown: {component_key: model, variant_key: plain, config: {width: 1, x: 1}}\n"
            "broken: {component_key: broken, variant_key: x}\n")
    result, diagnostics = validated(text)
    assert list(result.nodes) == [("good",)]
    (broken,) = [d for d in diagnostics if d.path == ("broken",)]
    assert broken.message.startswith("cannot load the config class of broken/x: ")


def test_errors_of_values_that_could_not_be_resolved_are_not_reported_again():
    _, diagnostics = validated("a: {component_key: model, variant_key: plain, config: {width: '${nope}'}}\n"
                               "b: {component_key: holder, variant_key: h, config: {model: {instance_key: nope}, "
                               "head: {size: 1}}}\n")
    assert diagnostics == []  # the interpolation and the graph have said it


def test_a_validator_needing_built_objects_waits_for_the_build():
    result, diagnostics = validated("t: {component_key: typed, variant_key: x, config: {thing: {component_key: empty, "
                                    "variant_key: x}}}\n")
    assert diagnostics == []
    assert result.nodes[("t",)].config is None


# --- placeholders, nested classes, lenient construction -------------------------------------------------------------


def test_placeholder_for_a_node_and_for_what_is_no_known_node():
    text = "m: {component_key: model, variant_key: plain}\nu: {component_key: zzz, variant_key: v}\n"
    loaded = load_text(text, "f.yaml")
    document, _ = resolve_document(loaded, ResolverContext(None, None, None))
    graph, _ = build_component_graph(document)
    m = placeholder_for(graph, registry(), ("m",))
    assert (m.node_id, m.kind, m.label) == (("m",), "model", "'m' (model/plain, f.yaml:1:4)")
    u = placeholder_for(graph, registry(), ("u",))
    assert (u.kind, u.label) == ("<unknown>", "'u' (zzz/v, f.yaml:2:4)")
    nothing = placeholder_for(graph, registry(), ("nothing",))
    assert (nothing.kind, nothing.label) == ("<unknown>", "'nothing'")


class Deep(BaseModel):
    inner: Inner
    maybe: Inner | None = None
    many: list[Inner] = []
    nested_list: list[list[Inner]] = []
    optional_list: list[Inner] | None = None
    plain: int = 0


@pytest.mark.parametrize("loc, cls", [
    ((), Deep),
    (("inner",), Inner),
    (("maybe",), Inner),  # through Optional
    (("many", 0), Inner),  # list indices skipped
    (("many",), Inner),
    (("plain",), None),  # no model there
    (("nope",), None),
    (("inner", "size"), None),
    (("optional_list",), Inner),  # a list inside an Optional
])
def test_model_at(loc, cls):
    assert model_at(Deep, loc) is cls


def test_lenient_construct_validates_what_it_can_and_keeps_what_waits():
    waiting = ComponentPlaceholder(("n",), "int", "'n'")
    built = lenient_construct(HolderConfig, {"model": waiting, "head": {"size": 1}, "steps": waiting})
    assert built.head == Inner(size=1) and built.steps is waiting and built.model is waiting
    partly = lenient_construct(HolderConfig, {"head": {"size": waiting, "name": "x"}})
    assert partly.head.size is waiting and partly.head.name == "x"
    assert lenient_construct(HolderConfig, [1]) is None
    assert lenient_construct(LooseConfig, {"aliasField": 3}).alias_field == 3


# --- the root: what a whole config is ------------------------------------------------------------------------------


class RunConfig(BaseModel):
    model: ComponentRef["model"]
    steps: int = Field(description="how many steps")


def root_result(text: str, contract=None, run_contract: bool = True, resume_from=None):
    loaded = load_text(text, "f.yaml")
    document, _ = resolve_document(loaded, ResolverContext(None, None, None))
    graph, _ = build_component_graph(document)
    reg = registry()
    result, _ = validate_graph(graph, reg)
    spec = RootSpec(name="toy", config=RunConfig, contract=contract)
    return validate_root(graph, result, reg, spec, run_contract=run_contract, resume_from=resume_from)


RUN = "model: {component_key: model, variant_key: plain, config: {width: 2}}\nsteps: 3\n"


def test_a_valid_root_runs_the_contract_with_a_view_of_the_run():
    seen = {}

    def contract(view: RunView):
        seen["run"] = view.run
        seen["node"] = view.node(view.run.model)
        seen["by_path"] = view.node(("model",))
        seen["nodes"] = [info.path for info in view.nodes()]
        seen["where"] = view.where(("steps",))
        seen["where_unknown"] = view.where(("nope",))
        seen["value"] = view.value(("model", "config", "width"))
        seen["resume"] = view.resume_from
        return []

    root, diagnostics = root_result(RUN, contract, resume_from="auto")
    assert diagnostics == []
    assert root.config.steps == 3 and root.spec.name == "toy"
    assert seen["node"].path == ("model",) and seen["node"].config == ModelConfig(width=2)
    assert seen["by_path"] == seen["node"] and seen["nodes"] == [("model",)]
    assert seen["where"] == "steps at f.yaml:2:8" and seen["where_unknown"] == "nope at f.yaml:1:1"
    assert seen["value"] == 2 and seen["resume"] == "auto"


def test_a_missing_top_level_key_is_said_at_the_top_of_the_file():
    root, diagnostics = root_result("model: {component_key: model, variant_key: plain, config: {width: 2}}\n")
    assert root.config is None
    ((message, hint, span, code),) = [(d.message, d.hint, str(d.span), d.code) for d in diagnostics]
    assert (message, hint, span, code) == ("a toy run needs the top-level key 'steps'",
                                           "add 'steps' at the top level: how many steps", "f.yaml:1:1",
                                           "missing-field")


def test_a_wrong_top_level_value_is_said_at_it_and_the_contract_is_not_run():
    called = []
    root, diagnostics = root_result(RUN.replace("steps: 3", "steps: x"), lambda view: called.append(1) or [])
    assert [(d.path, str(d.span)) for d in diagnostics] == [(("steps",), "f.yaml:2:8")]
    assert root.config is None and called == []


@pytest.mark.parametrize("run_contract", [True, False])
def test_findings_become_diagnostics_once_each(run_contract):
    def contract(view):
        return [Finding(("steps",), "too few", hint="more"), Finding(("steps",), "too few", hint="more"),
                Finding(("model",), "just saying", severity="warning"), Finding(("nope",), "unplaced")]

    root, diagnostics = root_result(RUN, contract, run_contract=run_contract)
    if not run_contract:
        assert diagnostics == [] and root.config is not None
        return
    assert [(d.severity, d.path, d.message, d.hint, str(d.span), d.code) for d in diagnostics] == [
        (ERROR, ("steps",), "too few", "more", "f.yaml:2:8", "run-contract"),
        (WARNING, ("model",), "just saying", None, "f.yaml:1:8", "run-contract"),
        (ERROR, ("nope",), "unplaced", None, "f.yaml:1:1", "run-contract"),
    ]
    assert root.config is None  # an error among the findings


def test_only_warnings_among_the_findings_keep_the_run():
    root, diagnostics = root_result(RUN, lambda view: [Finding(("steps",), "hm", severity="warning")])
    assert [d.severity for d in diagnostics] == [WARNING] and root.config is not None


def test_a_contract_that_crashes_is_a_warning():
    def contract(view):
        raise RuntimeError("bug")

    root, diagnostics = root_result(RUN, contract)
    ((severity, code, message, span),) = [(d.severity, d.code, d.message, str(d.span)) for d in diagnostics]
    assert (severity, code, span) == (WARNING, "contract-failed", "f.yaml:1:1")
    assert message == ("the toy run's checks failed (RuntimeError: bug); the components were checked one by one, but "
                       "not against each other")
    assert root.config is not None


def test_a_reference_to_a_list_is_checked_item_by_item():
    text = ("m: {component_key: model, variant_key: plain, config: {width: 1}}\n"
            "e: {component_key: empty, variant_key: x}\n"
            "good: [{instance_key: m}, {component_key: model, variant_key: other, config: {width: 2}}]\n"
            "bad: [{instance_key: m}, {instance_key: e}]\n"
            "h1: {component_key: holder, variant_key: h, config: {model: {instance_key: m}, head: {size: 1}, "
            "models: {instance_key: good}}}\n"
            "h2: {component_key: holder, variant_key: h, config: {model: {instance_key: m}, head: {size: 1}, "
            "models: {instance_key: bad}}}\n")
    result, diagnostics = validated(text)
    assert [p.node_id for p in result.nodes[("h1",)].raw_config["models"]] == [("m",), ("good", 1)]
    assert [(d.code, d.path) for d in diagnostics] == [("component_kind", ("h2", "config", "models", 1))]


def test_placeholder_label_without_a_position():
    from modalities.config.resolve import ResolvedDocument

    graph, _ = build_component_graph(ResolvedDocument(values={"m": {"component_key": "model", "variant_key": "plain"}}))
    assert placeholder_for(graph, registry(), ("m",)).label == "'m' (model/plain)"


def test_a_root_class_that_cannot_be_loaded():
    loaded = load_text(RUN, "f.yaml")
    document, _ = resolve_document(loaded, ResolverContext(None, None, None))
    graph, _ = build_component_graph(document)
    result, _ = validate_graph(graph, registry())
    root, diagnostics = validate_root(graph, result, registry(), RootSpec(name="toy", config="modalities_nope:Run"))
    assert root.config is None
    assert [d.message.startswith("cannot load the toy root class: ") for d in diagnostics] == [True]


def test_a_root_value_computed_when_built_still_runs_the_contract_on_the_rest():
    seen = []
    text = ("model: {component_key: model, variant_key: plain, config: {width: 2}}\n"
            "n: {component_key: number, variant_key: x, config: {n: 3}}\nsteps: {instance_key: n}\n")
    _, diagnostics = root_result(text, lambda view: seen.append(view.run) or [])
    assert diagnostics == []
    assert seen[0].steps.kind == "int" and seen[0].model.node_id == ("model",)


def test_a_run_view_knows_no_node_where_there_is_none():
    seen = {}

    def contract(view):
        seen.update(text=view.node("model"), missing=view.node(("nope",)), number=view.node(3))
        return []

    root_result(RUN, contract)
    assert seen == {"text": None, "missing": None, "number": None}


@pytest.mark.parametrize("config_path, first", [(None, None), ("/c.yaml", "/c.yaml:1:1")])
def test_the_first_line_of_a_config_without_positions(config_path, first):
    from pathlib import Path

    from modalities.config.resolve import ResolvedDocument

    document = ResolvedDocument(values={"model": {"component_key": "model", "variant_key": "plain",
                                                  "config": {"width": 1}}},
                                config_path=Path(config_path) if config_path else None)
    graph, _ = build_component_graph(document)
    result, _ = validate_graph(graph, registry())
    _, diagnostics = validate_root(graph, result, registry(), RootSpec(name="toy", config=RunConfig))
    assert [str(d.span) if d.span else None for d in diagnostics] == [first]
