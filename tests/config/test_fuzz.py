"""Mutated valid configs end in either success or clean diagnostics with positions, never a traceback."""

import copy
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from modalities.config.build import BuildError, build_components
from modalities.config.compiler import compile_document, resolve
from modalities.config.diagnostics import ConfigError, has_errors
from modalities.config.load import load_text

from .toy_components import register_toys

BASE = {
    "settings": {"n": 8, "lr": 0.1, "steps": {"component_key": "number_conversion",
                                             "variant_key": "num_samples_from_num_tokens",
                                             "config": {"num_tokens": 100, "sequence_length": 10}}},
    "model": {"component_key": "toy_model", "variant_key": "linear", "config": {"width": "${settings.n}"}},
    "optimizer": {
        "component_key": "toy_optimizer",
        "variant_key": "sgd",
        "config": {"model": {"instance_key": "model", "pass_type": "BY_REFERENCE"}, "lr": "${settings.lr}",
                   "steps": "${settings.steps}"},
    },
    "loader": {
        "component_key": "toy_loader",
        "variant_key": "multi",
        "config": {"datasets": [{"component_key": "toy_dataset", "variant_key": "range", "config": {"size": 3}},
                                {"instance_key": "loader.config.datasets.0", "pass_type": "BY_REFERENCE"}]},
    },
}

REGISTRY = None


def registry():
    global REGISTRY
    if REGISTRY is None:
        from modalities.registry import default_registry

        REGISTRY = register_toys(default_registry().copy())
    return REGISTRY


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, prefix + (i,))


ALL_PATHS = [p for p in paths(BASE) if p]
NEW_VALUES = st.one_of(
    st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8), st.none(),
    st.booleans(), st.just("${settings.n}"), st.just("${nope.x}"), st.just("${settings.steps}"),
    st.just({"instance_key": "optimizer", "pass_type": "BY_REFERENCE"}),
    st.just({"instance_key": "missing", "pass_type": "BY_REFERENCE"}),
    st.just({"component_key": "toy_model", "variant_key": "linear"}), st.just([1, 2]), st.just({}),
)


def mutate(config, data):
    path = data.draw(st.sampled_from(ALL_PATHS))
    parent = config
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return config
    key = path[-1]
    action = data.draw(st.sampled_from(["delete", "rename", "retype", "break_ref"]))
    try:
        if action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[str(key) + data.draw(st.sampled_from(["x", "_", "s"]))] = parent.pop(key)
        elif action == "retype":
            parent[key] = data.draw(NEW_VALUES)
        elif action == "break_ref" and isinstance(parent, dict) and key == "instance_key":
            parent[key] = data.draw(st.sampled_from(["optimizer", "settings.steps", "loader", "model.config"]))
    except (KeyError, IndexError, TypeError):
        pass
    return config


def dump(config) -> str:
    stream = io.StringIO()
    YAML(typ="safe", pure=True).dump(config, stream)
    return stream.getvalue()


def check(text: str) -> None:
    try:
        document, diagnostics = resolve(load_text(text, "fuzz.yaml"), experiment_id="x")
        compiled = compile_document(document, registry(), diagnostics=diagnostics)
    except ConfigError as e:
        assert e.diagnostics and all(d.span is not None for d in e.diagnostics)
        return
    for d in compiled.diagnostics:
        assert d.span is not None and d.span.file == "fuzz.yaml", d
        assert d.message
    if not has_errors(compiled.diagnostics):
        try:
            build_components(compiled.validated)
        except BuildError as e:
            assert e.diagnostic.span is not None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_configs_fail_cleanly(data):
    config = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 3))):
        config = mutate(config, data)
    check(dump(config))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(range(len(dump(BASE).splitlines()))))
def test_duplicated_lines_fail_cleanly(line_number):
    lines = dump(BASE).splitlines()
    lines.insert(line_number, lines[line_number])
    check("\n".join(lines) + "\n")


def test_base_config_is_valid():
    check(dump(BASE))
    document, diagnostics = resolve(load_text(dump(BASE), "fuzz.yaml"), experiment_id="x")
    assert not has_errors(compile_document(document, registry(), diagnostics=diagnostics).diagnostics)


# --- mutations of our shipped configs (the families of tests/config/mutations.py; tools/fuzz_validate.py runs
# thousands of them, each in a child process) -------------------------------------------------------------------

from tests.config.mutations import BASE_CONFIGS, FAMILIES, check_case, make_case  # noqa: E402


@pytest.mark.slow  # 300 configs, some megabytes long
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FAMILIES), st.integers(0, 10**9), st.sampled_from(BASE_CONFIGS))
def test_mutated_shipped_configs_end_in_ok_or_positioned_errors(family, seed, base):
    check_case(make_case(family, seed, base))


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_changes_the_config(family):
    # A family that left the config as it was would test nothing.
    changed = 0
    for seed in range(20):
        case = make_case(family, seed, BASE_CONFIGS[0])
        changed += (case.text != BASE_CONFIGS[0].read_text() or bool(case.overrides) or case.on_disk
                    or bool(case.overlay))
    assert changed >= 15
