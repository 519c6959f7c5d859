"""The generated JSON Schema accepts what a config may hold at each place, and nothing else."""

from __future__ import annotations

import json

import jsonschema
import pytest
import referencing

from modalities.registry import default_registry
from modalities.schema.json_schema import (
    DOCUMENT_SCHEMA_NAME,
    PARTIAL_SCHEMA_NAME,
    check_schemas,
    component_schema_filename,
    generate_document_schema,
    generate_partial_schema,
    write_schemas,
)
from tests.schema.conftest import REPO_ROOT


def _errors(schema: dict, document: dict) -> list[str]:
    """Every error, including those inside the anyOf branches, as 'path: message'."""
    validator = jsonschema.Draft7Validator(schema)
    found = []

    def walk(errors) -> None:
        for e in errors:
            found.append(f"{'/'.join(map(str, e.absolute_path))}: {e.message}")
            walk(e.context or [])

    walk(validator.iter_errors(document))
    return found


def ref(name: str) -> dict:
    return {"instance_key": name, "pass_type": "BY_REFERENCE"}


def node(component_key: str, variant_key: str, **config) -> dict:
    return {"component_key": component_key, "variant_key": variant_key, "config": config}


MODEL = node("model", "toy_model", width=8)
SGD = node("optimizer", "toy_sgd", wrapped_model=ref("model"), lr=0.1)


def test_schema_is_valid_draft7_and_has_a_branch_per_variant(toy_registry, toy_document_schema):
    jsonschema.Draft7Validator.check_schema(toy_document_schema)
    defs = toy_document_schema["$defs"]
    for spec in toy_registry:
        branch = defs[f"component.{spec.component_key}.{spec.variant_key}"]
        assert branch["properties"]["component_key"] == {"const": spec.component_key, **_desc(branch, "component_key")}
        assert branch["properties"]["variant_key"]["const"] == spec.variant_key
        assert branch["additionalProperties"] is False
        group = defs[f"component_key.{spec.component_key}"]["anyOf"]
        assert {"$ref": f"#/$defs/component.{spec.component_key}.{spec.variant_key}"} in group


def _desc(branch: dict, key: str) -> dict:
    return {"description": branch["properties"][key]["description"]}


def test_every_config_field_has_a_description(toy_document_schema):
    missing = []
    for name, schema in toy_document_schema["$defs"].items():
        for field, field_schema in schema.get("properties", {}).items():
            if not field_schema.get("description"):
                missing.append(f"{name}.{field}")
    assert missing == []


def test_a_valid_document_passes(toy_document_schema):
    document = {
        "settings": {"experiment_id": "x", "step_profile": {"sequence_length": 16}, "my_own_key": [1, 2]},
        "model": MODEL,
        "optimizer": SGD,
        "trainer": node(
            "toy_trainer",
            "default",
            optimizer=ref("optimizer"),
            num_steps=node("number_conversion", "num_samples_from_num_tokens", num_tokens=64, sequence_length=16),
            callbacks=[ref("model"), SGD],
        ),
        "eval_things": [ref("model"), MODEL],
        "alias": ref("model"),
    }
    assert _errors(toy_document_schema, document) == []


@pytest.mark.parametrize(
    "config_change, expected",
    [
        ({"lrr": 0.1}, "Additional properties are not allowed ('lrr' was unexpected)"),
        ({"lr": "fast"}, "'fast' is not valid"),
        ({"wrapped_model": MODEL["config"]}, "is not valid"),
    ],
    ids=["misspelled-field", "wrong-type", "plain-mapping-where-a-component-belongs"],
)
def test_broken_optimizer_config_is_rejected(toy_document_schema, config_change, expected):
    broken = {**SGD, "config": {**SGD["config"], **config_change}}
    errors = _errors(toy_document_schema, {"optimizer": broken})
    assert errors and any(expected in e for e in errors), errors


def test_unknown_variant_and_extra_node_key_are_rejected(toy_document_schema):
    assert _errors(toy_document_schema, {"o": {**SGD, "variant_key": "toy_sgdd"}})
    assert _errors(toy_document_schema, {"o": {**SGD, "comment": "x"}})
    assert _errors(toy_document_schema, {"o": {"component_key": "optimizer", "variant_key": "toy_sgd"}})


def test_reference_field_takes_exactly_the_variants_of_its_kind(toy_document_schema):
    def trainer(optimizer) -> dict:
        return {"t": node("toy_trainer", "default", optimizer=optimizer, num_steps=3)}

    assert _errors(toy_document_schema, trainer(SGD)) == []
    assert _errors(toy_document_schema, trainer(ref("anything"))) == []
    assert _errors(toy_document_schema, trainer("${optimizer}")) == []
    assert _errors(toy_document_schema, trainer(MODEL)), "a model where an optimizer belongs"
    assert _errors(toy_document_schema, trainer({"instance_key": "o", "pass_type": "BY_VALUE"}))
    assert _errors(toy_document_schema, trainer("optimizer")), "a plain string is not a component"


def test_integer_fields_take_int_components_references_and_interpolations(toy_document_schema):
    def trainer(num_steps) -> dict:
        return {"t": node("toy_trainer", "default", optimizer=SGD, num_steps=num_steps)}

    conversion = node(
        "number_conversion",
        "num_steps_from_num_tokens",
        dp_degree=1,
        local_micro_batch_size=2,
        global_num_tokens=100,
        sequence_length=5,
        gradient_accumulation_steps=1,
    )
    callable_conversion = node(
        "number_conversion",
        "num_tokens_from_num_steps_callable",
        dp_degree=1,
        local_micro_batch_size=2,
        sequence_length=5,
        gradient_accumulation_steps=1,
    )
    for ok in (3, conversion, ref("steps"), "${settings.training_target.num_target_steps}"):
        assert _errors(toy_document_schema, trainer(ok)) == [], ok
    for bad in (0, 2.5, "3", callable_conversion, MODEL):
        assert _errors(toy_document_schema, trainer(bad)), bad


def test_alias_choices_accept_either_name(toy_document_schema):
    base = {"local_micro_batch_size": 2, "global_num_samples": 10}
    for ranks in ({"num_ranks": 2}, {"dp_degree": 2}):
        document = {"n": node("number_conversion", "local_num_batches_from_num_samples", **base, **ranks)}
        assert _errors(toy_document_schema, document) == []
    document = {"n": node("number_conversion", "local_num_batches_from_num_samples", **base)}
    assert _errors(toy_document_schema, document)


def test_settings_known_fields_are_typed_and_others_open(toy_document_schema):
    ok = {"settings": {"cuda_env": {"global_rank": "${cuda_env:RANK}"}, "paths": {"my_path": "a/b"}, "extra": 1}}
    assert _errors(toy_document_schema, ok) == []
    assert _errors(toy_document_schema, {"settings": {"step_profile": {"sequence_length": "long"}}})
    dp_from_component = {"settings": {"step_profile": {"dp_degree": ref("dp_degree")}}}
    assert _errors(toy_document_schema, dp_from_component) == []


def test_schema_description_names_what_it_cannot_check(toy_document_schema):
    description = toy_document_schema["description"]
    assert "instance_key" in description and "cross-field" in description and "modalities validate" in description


def test_cross_field_rules_are_named_in_the_variant_description(toy_document_schema):
    """A model validator is beyond JSON Schema: the schema accepts betas of 1.5, and says who checks them."""
    adam = toy_document_schema["$defs"]["component.optimizer.toy_adam"]
    assert "not by this schema: both betas lie in [0, 1) (`ToyAdamConfig._betas_below_one`)" in adam["description"]
    bad_betas = node("optimizer", "toy_adam", wrapped_model=ref("model"), lr=0.1, betas=[1.5, 0.9])
    assert _errors(toy_document_schema, {"o": bad_betas}) == []
    assert "not by this schema" not in toy_document_schema["$defs"]["component.optimizer.toy_sgd"]["description"]


def test_component_schema_files_resolve_into_the_document_schema(toy_registry, toy_schema_dir):
    spec = toy_registry.get("optimizer", "toy_sgd")
    path = toy_schema_dir / component_schema_filename(spec)
    schema = json.loads(path.read_text())

    def retrieve(uri: str) -> referencing.Resource:
        return referencing.Resource.from_contents(json.loads(open(uri.removeprefix("file://")).read()))

    store = referencing.Registry(retrieve=retrieve)
    validator = jsonschema.Draft7Validator({**schema, "$id": path.as_uri()}, registry=store)
    assert list(validator.iter_errors(SGD)) == []
    assert list(validator.iter_errors({**SGD, "variant_key": "toy_adam"}))
    assert list(validator.iter_errors(MODEL))


def test_custom_components_change_the_schema_only_of_their_registry(toy_document_schema):
    builtin = generate_document_schema(default_registry())
    assert "component.toy_trainer.default" in toy_document_schema["$defs"]
    assert "component.toy_trainer.default" not in builtin["$defs"]


def test_write_then_check_finds_changed_missing_and_extra_files(toy_registry, tmp_path):
    write_schemas(toy_registry, tmp_path)
    assert check_schemas(toy_registry, tmp_path) == []
    spec = toy_registry.get("optimizer", "toy_adam")
    (tmp_path / component_schema_filename(spec)).write_text("{}")
    (tmp_path / DOCUMENT_SCHEMA_NAME).unlink()
    (tmp_path / "components" / "gone").mkdir()
    (tmp_path / "components" / "gone" / "old.schema.json").write_text("{}")
    assert check_schemas(toy_registry, tmp_path) == sorted(
        [component_schema_filename(spec), DOCUMENT_SCHEMA_NAME, "components/gone/old.schema.json"]
    )
    write_schemas(toy_registry, tmp_path)
    assert check_schemas(toy_registry, tmp_path) == []
    assert not (tmp_path / "components" / "gone").exists()


def test_committed_schemas_are_fresh():
    stale = check_schemas(default_registry(), REPO_ROOT / "schemas")
    assert stale == [], f"schemas/ is stale ({stale}); regenerate with: python -m modalities schema -o schemas"


def test_every_config_carries_the_schema_modeline():
    """A whole config names the document schema; a file with `extends` (a part of one) the partial schema."""
    configs = [p for p in sorted((REPO_ROOT / "configs").rglob("*.yaml")) if "component_key:" in p.read_text()
               or "\nextends:" in p.read_text()]
    assert any("\nextends:" in p.read_text() for p in configs)
    for config in configs:
        first_lines = config.read_text().splitlines()[:3]
        modeline = next((line for line in first_lines if "yaml-language-server: $schema=" in line), None)
        assert modeline, f"{config}: add '# yaml-language-server: $schema=<relative path>/modalities.schema.json'"
        target = (config.parent / modeline.split("$schema=", 1)[1].strip()).resolve()
        schema = PARTIAL_SCHEMA_NAME if "\nextends:" in config.read_text() else DOCUMENT_SCHEMA_NAME
        assert target == (REPO_ROOT / "schemas" / schema).resolve(), f"{config}: {modeline}"


def test_a_list_of_components_may_be_a_reference_to_a_top_level_list(toy_document_schema):
    def trainer(callbacks) -> dict:
        return {"t": node("toy_trainer", "default", optimizer=SGD, num_steps=3, callbacks=callbacks)}

    assert _errors(toy_document_schema, trainer(ref("all_callbacks"))) == []
    assert _errors(toy_document_schema, trainer([ref("model"), MODEL])) == []
    assert _errors(toy_document_schema, trainer(MODEL)), "one component where a list belongs"


def _subschemas(schema):
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _subschemas(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _subschemas(value)


def test_the_partial_schema_requires_nothing_and_takes_extends_and_delete(toy_document_schema):
    partial = generate_partial_schema(toy_document_schema)
    assert not any(isinstance(s.get("required"), list) for s in _subschemas(partial))
    assert any(isinstance(s.get("required"), list) for s in _subschemas(toy_document_schema))  # left as it was
    optimizer = {"component_key": "optimizer", "variant_key": "toy_sgd", "config": {"lr": 0.1}}
    assert _errors(partial, {"extends": "base.yaml", "optimizer": {"config": {"lr": 0.5}}}) == []
    assert _errors(partial, {"extends": ["a.yaml", "b.yaml"], "optimizer": optimizer}) == []
    # `key: !delete` reaches yaml-language-server as an empty string: accepted for a field and a component
    assert _errors(partial, {"optimizer": {"config": {"lr": ""}}, "model": ""}) == []
    assert _errors(partial, {"extends": 3}), "extends names files"
    assert _errors(partial, {"optimizer": {**optimizer, "config": {"lr": "fast"}}}), "a wrong type"
    assert _errors(partial, {"optimizer": {**optimizer, "config": {"lrr": 0.1}}}), "a misspelled field"
    assert _errors(toy_document_schema, {"extends": "base.yaml", "optimizer": optimizer}), "the whole-config schema"


def test_schema_writes_the_partial_schema_beside_the_document_schema(toy_registry, tmp_path):
    write_schemas(toy_registry, tmp_path)
    written = json.loads((tmp_path / PARTIAL_SCHEMA_NAME).read_text())
    assert written == generate_partial_schema(generate_document_schema(toy_registry))
    string = {"type": "string"}
    assert written["properties"]["extends"]["anyOf"] == [string, {"type": "array", "items": string}]
