import pytest

from modalities.config.build import BuildError, build_components
from modalities.config.diagnostics import ERROR, WARNING


def errors(compiled):
    return [d for d in compiled.diagnostics if d.severity == ERROR]


VALID = """
model:
  component_key: toy_model
  variant_key: linear
  config: {width: 8}
optimizer:
  component_key: toy_optimizer
  variant_key: sgd
  config:
    model: {instance_key: model, pass_type: BY_REFERENCE}
    lr: 0.1
composed:
  component_key: toy_model
  variant_key: composed
  config:
    backbone: {instance_key: model, pass_type: BY_REFERENCE}
    head: {size: 3}
loader:
  component_key: toy_loader
  variant_key: multi
  config:
    datasets:
      - component_key: toy_dataset
        variant_key: range
        config: {size: 2}
      - {instance_key: loader.config.datasets.0, pass_type: BY_REFERENCE}
"""


def test_valid_config_builds_in_dependency_order_with_shared_references(compile_yaml):
    compiled = compile_yaml(VALID)
    assert not errors(compiled), compiled.diagnostics
    order = compiled.graph.build_order()
    assert order.index(("model",)) < order.index(("optimizer",))
    assert order.index(("loader", "config", "datasets", 0)) < order.index(("loader",))
    built = build_components(compiled.validated)
    assert built["optimizer"].model is built["model"]
    assert built["composed"][1] is built["model"]
    assert built["composed"][2].size == 3  # a nested plain model arrives as a model instance
    first, second = built["loader"]
    assert first is second  # reference to a nested component by dotted path


def test_graph_has_nesting_and_reference_edges(compile_yaml):
    g = compile_yaml(VALID).graph.nx
    assert g.edges[("optimizer",), ("model",)]["relation"] == "references"
    assert g.edges[("optimizer",), ("model",)]["field"] == "model"
    assert g.edges[("loader",), ("loader", "config", "datasets", 0)]["relation"] == "nests"
    assert g.in_degree(("model",)) == 2


def test_typo_in_nested_field_is_reported_at_its_line_and_column(compile_yaml):
    compiled = compile_yaml(VALID.replace("head: {size: 3}", "head:\n      sise: 3"))
    (err,) = [e for e in errors(compiled) if e.code == "unknown-field"]
    assert (err.span.line, err.span.col) == (18, 7)
    assert err.path == ("composed", "config", "head", "sise")
    assert "size" in err.hint


def test_wrong_kind_reference_is_an_error_at_the_reference(compile_yaml):
    text = VALID + """
data:
  component_key: toy_dataset
  variant_key: range
  config: {size: 1}
opt2:
  component_key: toy_optimizer
  variant_key: sgd
  config:
    model: {instance_key: data, pass_type: BY_REFERENCE}
    lr: 0.1
"""
    compiled = compile_yaml(text)
    (err,) = errors(compiled)
    assert err.code == "component_kind"
    assert err.path == ("opt2", "config", "model")
    assert (err.span.line, err.span.col) == (36, 12)
    assert "'toy_model'" in err.message and "toy_dataset" in err.message


def test_inline_component_of_wrong_kind_and_plain_value_where_component_expected(compile_yaml):
    compiled = compile_yaml(
        """
opt:
  component_key: toy_optimizer
  variant_key: sgd
  config:
    model: {component_key: toy_dataset, variant_key: range, config: {size: 1}}
    lr: 0.1
opt2:
  component_key: toy_optimizer
  variant_key: sgd
  config: {model: 3, lr: 0.1}
"""
    )
    codes = sorted(e.code for e in errors(compiled))
    assert codes == ["component_expected", "component_kind"]


def test_reference_cycle_prints_every_link_with_position(compile_yaml):
    compiled = compile_yaml(
        """
a:
  component_key: toy_model
  variant_key: composed
  config:
    backbone: {instance_key: b, pass_type: BY_REFERENCE}
    head: {size: 1}
b:
  component_key: toy_model
  variant_key: composed
  config:
    backbone: {instance_key: c, pass_type: BY_REFERENCE}
    head: {size: 1}
c:
  component_key: toy_model
  variant_key: composed
  config:
    backbone: {instance_key: a, pass_type: BY_REFERENCE}
    head: {size: 1}
"""
    )
    (cycle,) = [e for e in errors(compiled) if e.code == "reference-cycle"]
    assert "'a' references 'b' via backbone (" in cycle.message and ":6:15)" in cycle.message
    assert "'b' references 'c'" in cycle.message and ":12:15)" in cycle.message
    assert "'c' references 'a'" in cycle.message and ":18:15)" in cycle.message


def test_self_reference_is_a_cycle(compile_yaml):
    compiled = compile_yaml(
        "a:\n  component_key: toy_model\n  variant_key: composed\n  config:\n"
        "    backbone: {instance_key: a, pass_type: BY_REFERENCE}\n    head: {size: 1}\n"
    )
    assert [e.code for e in errors(compiled)] == ["reference-cycle"]


def test_unknown_reference_has_did_you_mean(compile_yaml):
    compiled = compile_yaml(VALID.replace("model: {instance_key: model", "model: {instance_key: modle"))
    (err,) = errors(compiled)
    assert err.code == "unknown-reference" and "'model'" in err.hint
    assert err.span.line == 10


def test_unknown_reference_with_no_close_name_lists_the_top_level_components(compile_yaml):
    compiled = compile_yaml(VALID.replace("model: {instance_key: model", "model: {instance_key: zzzz"))
    (err,) = errors(compiled)
    assert err.code == "unknown-reference"
    assert err.hint == "components defined at the top level: model, optimizer, composed, loader"


def test_unknown_component_key_and_variant_have_did_you_mean(compile_yaml):
    compiled = compile_yaml(
        "a: {component_key: toy_modl, variant_key: linear}\nb: {component_key: toy_model, variant_key: linaer}\n"
    )
    a, b = errors(compiled)
    assert a.code == "unknown-component" and "toy_model" in a.hint and (a.span.line, a.span.col) == (1, 20)
    assert b.code == "unknown-variant" and "'linear'" in b.hint and "composed" in b.hint


def test_five_mistakes_are_all_reported_in_one_run(compile_yaml):
    compiled = compile_yaml(
        """
model:
  component_key: toy_model
  variant_key: linear
  config: {width: "8", activation: tanh}
optimizer:
  component_key: toy_optimizer
  variant_key: sgd
  config:
    model: {instance_key: modell, pass_type: BY_REFERENCE}
    lr: 0.1
    stepz: 3
data:
  component_key: toy_datset
  variant_key: range
"""
    )
    found = errors(compiled)
    assert len(found) == 5, [d.message for d in found]
    assert sorted(d.span.line for d in found) == [5, 5, 10, 12, 14]
    assert {d.code for d in found} == {"int_type", "literal_error", "unknown-reference", "unknown-field", "unknown-component"}


def test_strict_integers(compile_yaml):
    compiled = compile_yaml(
        "n:\n  component_key: number_conversion\n  variant_key: num_samples_from_num_tokens\n"
        "  config: {num_tokens: 10.0, sequence_length: '2'}\n"
    )
    assert sorted(e.path[-1] for e in errors(compiled)) == ["num_tokens", "sequence_length"]


def test_unknown_field_is_rejected_even_for_user_classes_that_allow_extras(compile_yaml):
    compiled = compile_yaml("p:\n  component_key: toy_plain\n  variant_key: x\n  config: {name: a, nmae: b}\n")
    (err,) = errors(compiled)
    assert err.code == "unknown-field" and "'name'" in err.hint


def test_number_conversion_in_settings_feeds_an_int_field(compile_yaml):
    compiled = compile_yaml(
        """
settings:
  steps:
    component_key: number_conversion
    variant_key: num_samples_from_num_tokens
    config: {num_tokens: 100, sequence_length: 10}
model:
  component_key: toy_model
  variant_key: linear
  config: {width: 8}
optimizer:
  component_key: toy_optimizer
  variant_key: sgd
  config:
    model: {instance_key: model, pass_type: BY_REFERENCE}
    lr: 0.1
    steps: ${settings.steps}
"""
    )
    assert not errors(compiled)
    built = build_components(compiled.validated)
    assert built["optimizer"].steps == 10
    assert built["settings"]["steps"] == 10


def test_value_computed_at_build_is_still_checked(compile_yaml):
    compiled = compile_yaml(
        """
settings:
  steps: {component_key: number_conversion, variant_key: num_samples_from_num_tokens, config: {num_tokens: 1, sequence_length: 10}}
model: {component_key: toy_model, variant_key: linear, config: {width: "${settings.steps}"}}
"""
    )
    assert not errors(compiled)
    with pytest.raises(BuildError, match="greater than 0"):
        build_components(compiled.validated)


def test_builder_failure_names_component_and_position_and_chains(compile_yaml):
    compiled = compile_yaml("\n\nbroken:\n  component_key: toy_failing\n  variant_key: x\n")
    with pytest.raises(BuildError) as e:
        build_components(compiled.validated)
    assert "broken" in str(e.value) and "toy_failing/x" in str(e.value) and ":3:1" in str(e.value)
    assert isinstance(e.value.__cause__, RuntimeError)


def test_unused_top_level_component_is_a_warning(compile_yaml):
    compiled = compile_yaml("lonely: {component_key: toy_model, variant_key: linear, config: {width: 1}}\n")
    (w,) = compiled.diagnostics
    assert w.severity == WARNING and w.code == "unused-component"


def test_interpolation_error_does_not_cascade_into_validation_errors(compile_yaml):
    compiled = compile_yaml("m: {component_key: toy_model, variant_key: linear, config: {width: '${nope}'}}\n")
    assert [e.code for e in errors(compiled)] == ["interpolation"]


def test_overrides_apply_before_validation(compile_yaml):
    compiled = compile_yaml(VALID, overrides=["optimizer.config.lr=3e-4", "model.config.width=16"])
    assert not errors(compiled)
    built = build_components(compiled.validated)
    assert built["optimizer"].lr == 3e-4 and built["model"].width == 16
    compiled = compile_yaml(VALID, overrides=["model.config.width=wide"])
    (err,) = errors(compiled)
    assert err.span.file == "<--set>" and "model.config.width=wide" in err.span.text
    compiled = compile_yaml(VALID, overrides=["no_equals_sign"])
    assert errors(compiled)[0].code == "override"


def test_reference_to_a_top_level_list_of_components(compile_yaml):
    """As in Modalities configs: `eval_dataloaders: [refs]` and a component referencing that list."""
    compiled = compile_yaml(
        """
d1: {component_key: toy_dataset, variant_key: range, config: {size: 1}}
d2: {component_key: toy_dataset, variant_key: range, config: {size: 2}}
all_datasets:
  - {instance_key: d1, pass_type: BY_REFERENCE}
  - {instance_key: d2, pass_type: BY_REFERENCE}
loader:
  component_key: toy_loader
  variant_key: multi
  config:
    datasets: {instance_key: all_datasets, pass_type: BY_REFERENCE}
"""
    )
    assert [d.path for d in compiled.diagnostics] == [("loader",)]  # only: nothing uses the loader
    assert compiled.graph.nx.has_edge(("loader",), ("d1",)) and compiled.graph.nx.has_edge(("loader",), ("d2",))
    built = build_components(compiled.validated)
    assert built["loader"][0] is built["d1"] and built["loader"][1] is built["d2"]
    assert built["all_datasets"][1] is built["d2"]


def test_reference_to_a_list_is_kind_checked_element_by_element(compile_yaml):
    compiled = compile_yaml(
        """
m: {component_key: toy_model, variant_key: linear, config: {width: 1}}
things:
  - {instance_key: m, pass_type: BY_REFERENCE}
loader:
  component_key: toy_loader
  variant_key: multi
  config:
    datasets: {instance_key: things, pass_type: BY_REFERENCE}
"""
    )
    (err,) = errors(compiled)
    assert err.code == "component_kind" and "toy_model" in err.message


UNUSED = """\
alone:
  component_key: toy_model
  variant_key: linear
  config: {width: 4}
listed:
  component_key: toy_model
  variant_key: linear
  config: {width: 2}
nested_in_settings:
  component_key: toy_model
  variant_key: linear
  config: {width: 3}
referenced:
  component_key: toy_model
  variant_key: linear
  config: {width: 5}
optimizer:
  component_key: toy_optimizer
  variant_key: sgd
  config:
    model: {instance_key: referenced, pass_type: BY_REFERENCE}
    lr: 0.1
model:
  component_key: toy_model
  variant_key: linear
  config: {width: 6}
models: [{instance_key: listed, pass_type: BY_REFERENCE}]
settings:
  groups: {a: [{instance_key: nested_in_settings, pass_type: BY_REFERENCE}]}
"""


def test_only_a_component_nothing_uses_is_warned_about(compile_yaml):
    compiled = compile_yaml(UNUSED)
    unused = [(str(d.span), d.message) for d in compiled.diagnostics if "is not used" in d.message]
    # referenced by a component, by a top-level list, from inside settings: used; `model` and `optimizer` are
    # names a run asks for (entry points), used by the run itself. Only `alone` is left.
    assert [message for _, message in unused] == ["component 'alone' is not used by any other component nor by the run"]
    assert unused[0][0].endswith(":1:1")
    assert all(d.severity == WARNING for d in compiled.diagnostics if "is not used" in d.message)
