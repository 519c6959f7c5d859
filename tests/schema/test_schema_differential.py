"""The JSON Schema and the compiler's validation agree on which configs are valid.

Every config in configs/ (and the configs of this test folder) and a corpus of broken variants of each (a
misspelled field, a wrong-typed value, an unknown variant, a component of the wrong kind) are checked by
python-jsonschema against the generated schema and by the compiler; both must say valid, or both invalid.
The one rule the schema cannot express (an `instance_key` naming a top-level entry of the wrong kind) is
checked to be caught by the compiler and named in the schema's description.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest

from modalities.config.compiler import compile_document, resolve
from modalities.config.load import Document, load_document
from modalities.registry import Registry, default_registry
from modalities.registry.types import component_kinds_of
from modalities.schema.json_schema import generate_document_schema
from tests.schema.conftest import REPO_ROOT

DATA = Path(__file__).parent / "data"
# A valid component of kind `int`: wrong wherever a field takes an object component.
INT_COMPONENT = {
    "component_key": "number_conversion",
    "variant_key": "num_samples_from_num_tokens",
    "config": {"num_tokens": 8, "sequence_length": 2},
}


# python-jsonschema is slow on big anyOf trees, so each config gets at most this many cases of each category,
# spread evenly over its nodes and fields.
CASES_PER_CATEGORY = 40


@dataclass
class Case:
    category: str
    label: str
    values: dict
    entry: str  # the one top-level entry the case changes

    def changed_part(self) -> dict:
        """The whole changed document: a training run's top-level keys are required together (a schema
        condition on the whole document), so an entry can no longer be checked alone."""
        return self.values


def spread(cases: list[Case], per_category: int = CASES_PER_CATEGORY) -> list[Case]:
    by_category: dict[str, list[Case]] = {}
    for case in cases:
        by_category.setdefault(case.category, []).append(case)
    chosen = []
    for group in by_category.values():
        step = max(1, len(group) / per_category)
        chosen += [group[int(i * step)] for i in range(min(per_category, len(group)))]
    return chosen


def component_configs(folder: Path) -> list[Path]:
    """The whole configs made of components (tool configs such as a chat-template config hold none; no schema
    covers them; a file with `extends` is a part of a config, checked against the partial schema elsewhere)."""
    return [p for p in sorted(folder.rglob("*.yaml")) if "component_key:" in p.read_text()
            and "\nextends:" not in p.read_text()]


def configs() -> list[tuple[Path, str]]:
    """(config, registry name): the toy config needs the test plugin's components."""
    found = [(p, "default") for p in component_configs(REPO_ROOT / "configs")]
    return found + [(DATA / "number_conversion_only.yaml", "default"), (DATA / "toy_training.yaml", "toy")]


@pytest.fixture(scope="module")
def registries(toy_registry) -> dict[str, Registry]:
    return {"default": default_registry(), "toy": toy_registry}


@pytest.fixture(scope="module")
def validators(registries) -> dict[str, jsonschema.Draft7Validator]:
    return {name: jsonschema.Draft7Validator(generate_document_schema(r)) for name, r in registries.items()}


def component_nodes(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, dict]]:
    if isinstance(value, dict):
        if "component_key" in value:
            yield path, value
        for key, item in value.items():
            yield from component_nodes(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from component_nodes(item, path + (index,))


def at(values: dict, path: tuple) -> Any:
    for part in path:
        values = values[part]
    return values


def wrong_typed(value: Any) -> Any:
    """A value of another JSON type that no lax conversion turns back into the original type."""
    if isinstance(value, str):
        return [["not", "a", "string"]]
    return "not-a-" + type(value).__name__


def broken_variants(values: dict, registry: Registry) -> Iterator[Case]:
    top_level_kinds = {}
    for name, node in values.items():
        spec = registry.get(node.get("component_key"), node.get("variant_key")) if isinstance(node, dict) else None
        if spec:
            top_level_kinds[name] = spec.produces
    for path, node in component_nodes(values):
        where = ".".join(map(str, path))
        spec = registry.get(node["component_key"], node["variant_key"])
        config = node.get("config") or {}

        broken = copy.deepcopy(values)
        at(broken, path)["variant_key"] = node["variant_key"] + "_unknown"
        yield Case("unknown variant", f"{where}: unknown variant", broken, path[0])

        for field, value in config.items():
            broken = copy.deepcopy(values)
            fields = at(broken, path)["config"]
            fields[field + "x"] = fields.pop(field)
            yield Case("misspelled", f"{where}.{field}: misspelled", broken, path[0])

            if not (isinstance(value, (dict, list)) or (isinstance(value, str) and "${" in value)):
                broken = copy.deepcopy(values)
                at(broken, path)["config"][field] = wrong_typed(value)
                yield Case("wrong type", f"{where}.{field}: wrong type", broken, path[0])

            info = spec.config_class().model_fields.get(field)
            kinds = component_kinds_of(info.metadata) if info else None
            if kinds and "any" not in kinds and "int" not in kinds:
                broken = copy.deepcopy(values)
                at(broken, path)["config"][field] = copy.deepcopy(INT_COMPONENT)
                yield Case("wrong kind", f"{where}.{field}: inline component of the wrong kind", broken, path[0])


def wrong_kind_references(values: dict, registry: Registry) -> Iterator[Case]:
    """References to an existing top-level entry of another kind: only the compiler can tell."""
    produces = {}
    for name, node in values.items():
        if isinstance(node, dict) and "component_key" in node:
            spec = registry.get(node["component_key"], node["variant_key"])
            produces[name] = spec.produces
    for path, node in component_nodes(values):
        spec = registry.get(node["component_key"], node["variant_key"])
        for field, value in (node.get("config") or {}).items():
            info = spec.config_class().model_fields.get(field)
            kinds = component_kinds_of(info.metadata) if info else None
            if not kinds or "any" in kinds:
                continue
            wrong = next((name for name, kind in produces.items() if kind not in kinds and kind != "int"), None)
            if wrong is None:
                continue
            broken = copy.deepcopy(values)
            at(broken, path)["config"][field] = {"instance_key": wrong, "pass_type": "BY_REFERENCE"}
            label = f"{'.'.join(map(str, path))}.{field}: reference to '{wrong}' ({produces[wrong]})"
            yield Case("wrong-kind reference", label, broken, path[0])


def compiler_accepts(values: dict, source: Document, registry: Registry) -> tuple[bool, list[str]]:
    document = Document(values=values, source_map=source.source_map, config_path=source.config_path)
    resolved, diagnostics = resolve(document, experiment_id="differential")
    compiled = compile_document(resolved, registry, diagnostics=diagnostics)
    return compiled.ok, [str(d.message) for d in compiled.diagnostics if d.severity == "error"]


def schema_accepts(validator: jsonschema.Draft7Validator, values: dict) -> bool:
    return validator.is_valid(values)


@pytest.mark.slow  # a minute: every broken variant through the schema and the compiler
@pytest.mark.parametrize("config, registry_name", configs(), ids=lambda v: getattr(v, "name", v))
def test_schema_and_compiler_agree_on_the_config_and_its_broken_variants(config, registry_name, registries, validators):
    registry, validator = registries[registry_name], validators[registry_name]
    source = load_document(config)
    accepted, errors = compiler_accepts(source.values, source, registry)
    assert accepted, errors
    assert schema_accepts(validator, source.values), list(validator.iter_errors(source.values))[:3]

    disagreements, rejected = [], 0
    cases = spread(list(broken_variants(source.values, registry)))
    for case in cases:
        by_compiler = compiler_accepts(case.values, source, registry)[0]
        by_schema = schema_accepts(validator, case.changed_part())
        if by_compiler != by_schema:
            disagreements.append(
                f"{case.label}: compiler {'accepts' if by_compiler else 'rejects'}, "
                f"schema {'accepts' if by_schema else 'rejects'}"
            )
        rejected += not by_schema
    assert disagreements == []
    assert cases and rejected >= len(cases) * 0.9, "the corpus should consist of broken configs"


@pytest.mark.parametrize("config, registry_name", configs(), ids=lambda v: getattr(v, "name", v))
def test_wrong_kind_references_are_the_compilers_to_catch(config, registry_name, registries, validators):
    registry, validator = registries[registry_name], validators[registry_name]
    source = load_document(config)
    description = generate_document_schema(registry)["description"]
    assert "instance_key" in description and "kind" in description
    for case in spread(list(wrong_kind_references(source.values, registry))):
        assert schema_accepts(validator, case.changed_part()), case.label
        assert not compiler_accepts(case.values, source, registry)[0], case.label


def test_cross_field_rules_are_the_compilers_to_catch_and_named_in_the_schema(registries, validators):
    source = load_document(DATA / "toy_training.yaml")
    broken = copy.deepcopy(source.values)
    broken["optimizer"]["config"]["betas"] = [0.9, 1.5]
    assert schema_accepts(validators["toy"], broken)
    accepted, errors = compiler_accepts(broken, source, registries["toy"])
    assert not accepted and any("betas must lie in [0, 1)" in e for e in errors), errors
    description = generate_document_schema(registries["toy"])["$defs"]["component.optimizer.toy_adam"]["description"]
    assert "_betas_below_one" in description
