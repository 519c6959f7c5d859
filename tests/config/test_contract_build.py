"""Contracts of modalities/config/build.py (stage 5): every top-level entry built once, dependencies first, a
reference receiving the one shared object; what a failing build says and where. The builders here record what
they are called with, so the expected objects and calls are written out by hand."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from modalities.config.build import BuildError, build_components
from modalities.config.graph import build_component_graph
from modalities.config.load import load_text
from modalities.config.resolve import ResolverContext, resolve_document
from modalities.config.validate import validate_graph
from modalities.registry import Registry
from modalities.registry.registry import ComponentSpec
from modalities.registry.types import BUILD_PHASE, ComponentConfig, ComponentRef


class Built:
    def __init__(self, name, **fields):
        self.name, self.fields = name, fields


CALLS: list[str] = []


def builder(name):
    def build(**fields):
        CALLS.append(name)
        return Built(name, **fields)

    return build


class LeafConfig(ComponentConfig):
    size: int = 1


class UserConfig(ComponentConfig):
    leaf: ComponentRef["leaf"]
    others: list[ComponentRef["leaf"]] = []
    count: int = 0


class NumberConfig(ComponentConfig):
    n: int


class CheckedConfig(ComponentConfig):
    count: int = Field(gt=0)


class PickyConfig(ComponentConfig):
    count: int = 0

    @field_validator("count")
    @classmethod
    def _no_seven(cls, value):
        if value == 6:
            raise ValueError("six is not allowed")
        return value


class ReadsOnBuildConfig(BaseModel):  # a validator that raises, when built, what pydantic does not wrap
    value: int = 0

    @field_validator("value")
    @classmethod
    def _crash_when_built(cls, value, info: ValidationInfo):
        if (info.context or {}).get("phase") == BUILD_PHASE and value > 100:
            raise RuntimeError("way too big")
        return value


def registry() -> Registry:
    r = Registry()
    r.register(component_key="leaf", variant_key="x", custom_component=builder("leaf"), custom_config=LeafConfig)
    r.register(component_key="user", variant_key="x", custom_component=builder("user"), custom_config=UserConfig)
    r.register(component_key="number", variant_key="double", custom_component=lambda n: 2 * n,
               custom_config=NumberConfig, produces="int")
    r.register(component_key="checked", variant_key="x", custom_component=builder("checked"),
               custom_config=CheckedConfig)
    r.register(component_key="picky", variant_key="x", custom_component=builder("picky"), custom_config=PickyConfig)
    r.register(component_key="reads", variant_key="x", custom_component=builder("reads"),
               custom_config=ReadsOnBuildConfig)
    r.register(component_key="failing", variant_key="x", custom_component=_fail, custom_config=LeafConfig)
    r.add(ComponentSpec("lost", "x", config=LeafConfig, builder="modalities_no_such_module:build"))
    return r


def _fail(size):
    raise RuntimeError(f"disk on fire ({size})")


def build(text: str):
    CALLS.clear()
    loaded = load_text(text, "f.yaml")
    document, diagnostics = resolve_document(loaded, ResolverContext(None, None, None))
    graph, graph_diagnostics = build_component_graph(document)
    validated, validation_diagnostics = validate_graph(graph, registry())
    assert not [d for d in diagnostics + graph_diagnostics + validation_diagnostics if d.severity == "error"]
    return build_components(validated)


def test_every_top_level_entry_dependencies_first_and_each_component_once():
    built = build("""\
user: {component_key: user, variant_key: x, config: {leaf: {instance_key: leaf}, others: [{instance_key: leaf},
       {component_key: leaf, variant_key: x, config: {size: 2}}], count: 3}}
leaf: {component_key: leaf, variant_key: x, config: {size: 5}}
plain: {a: [1, 2], b: text}
empty: {}
n: 4
""")
    assert list(built) == ["user", "leaf", "plain", "empty", "n"]
    assert CALLS == ["leaf", "leaf", "user"]  # dependencies first; the shared leaf once
    user, leaf = built["user"], built["leaf"]
    assert isinstance(user, Built) and user.fields["leaf"] is leaf and user.fields["count"] == 3
    assert user.fields["others"][0] is leaf and user.fields["others"][1].fields == {"size": 2}
    assert leaf.fields == {"size": 5}
    assert built["plain"] == {"a": [1, 2], "b": "text"} and built["empty"] == {} and built["n"] == 4


def test_containers_and_references_at_the_top_level_hold_the_built_objects():
    built = build("""\
leaf: {component_key: leaf, variant_key: x}
group: [{instance_key: leaf}, {component_key: leaf, variant_key: x, config: {size: 2}}, 3]
named: {first: {instance_key: leaf}, deep: {instance_key: group.1}}
alias: {instance_key: leaf}
all: {instance_key: group}
nested_ref: {instance_key: user.config.leaf}
user: {component_key: user, variant_key: x, config: {leaf: {component_key: leaf, variant_key: x, config: {size: 9}}}}
""")
    leaf = built["leaf"]
    assert built["group"][0] is leaf and built["group"][1].fields == {"size": 2} and built["group"][2] == 3
    assert built["named"]["first"] is leaf and built["named"]["deep"] is built["group"][1]
    assert built["alias"] is leaf
    assert built["all"] == built["group"] and built["all"][1] is built["group"][1]
    assert built["nested_ref"] is built["user"].fields["leaf"] and built["nested_ref"].fields == {"size": 9}


def test_a_value_computed_by_a_component_is_validated_when_built():
    built = build("""\
settings: {steps: {component_key: number, variant_key: double, config: {n: 3}}}
user: {component_key: user, variant_key: x, config: {leaf: {component_key: leaf, variant_key: x},
       count: '${settings.steps}'}}
""")
    assert built["settings"] == {"steps": 6}
    assert built["user"].fields["count"] == 6


def test_an_empty_config_builds_nothing():
    assert build("") == {}
    assert build("settings: {a: 1}") == {"settings": {"a": 1}} and CALLS == []


BUILD_ERROR_TABLE = [
    # a computed value that the field refuses: at the config
    ("settings: {n: {component_key: number, variant_key: double, config: {n: 0}}}\n"
     "c: {component_key: checked, variant_key: x, config: {count: '${settings.n}'}}\n",
     "config of 'c' (checked/x) is invalid once built: count: Input should be greater than 0", ("c", "config"),
     (2, "config:"), "ValidationError"),
    ("settings: {n: {component_key: number, variant_key: double, config: {n: 3}}}\n"
     "p: {component_key: picky, variant_key: x, config: {count: '${settings.n}'}}\n",
     "config of 'p' (picky/x) is invalid once built: count: Value error, six is not allowed", ("p", "config"),
     (2, "config:"), "ValidationError"),
    ("r: {component_key: reads, variant_key: x, config: {value: 101}}\n",
     "config of 'r' (reads/x) is invalid once built: way too big", ("r", "config"), (1, "config:"), "RuntimeError"),
    ("f: {component_key: failing, variant_key: x, config: {size: 4}}\n",
     "building 'f' (failing/x) failed: RuntimeError: disk on fire (4)", ("f",), (1, "f:"), "RuntimeError"),
    ("l: {component_key: lost, variant_key: x}\n",
     "cannot import the builder of lost/x (modalities_no_such_module:build): ", ("l",), (1, "l:"), None),
]


@pytest.mark.parametrize("text, message, path, position, cause", BUILD_ERROR_TABLE)
def test_a_failing_build_names_the_component_and_where_it_is(text, message, path, position, cause):
    with pytest.raises(BuildError) as e:
        build(text)
    d = e.value.diagnostic
    assert d.message.startswith(message) and d.path == path and d.code == "build"
    line, needle = position
    where = f"f.yaml:{line}:{text.splitlines()[line - 1].index(needle) + 1}"
    assert str(d.span) == where
    assert str(e.value) == f"{where}: {d.message}"
    if cause:
        assert type(e.value.__cause__).__name__ == cause


def test_a_build_error_without_a_position_is_its_message():
    from modalities.config.diagnostics import Diagnostic

    assert str(BuildError(Diagnostic("boom"))) == "boom"
