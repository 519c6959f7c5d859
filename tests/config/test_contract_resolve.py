"""Contracts of modalities/config/resolve.py (stage 2): what ``${...}`` gives, as OmegaConf (the reference's
resolver) would give it, written out by hand; what cannot be resolved and how it is reported; each limit at and
one past it (lowered for the test); the built-in resolvers with and without what they read. On drawn documents
of interpolations, the values and the cycles are compared with an evaluator written in this test and with
networkx's cycle finding."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modalities.config import resolve as resolve_module
from modalities.config.diagnostics import ConfigError
from modalities.config.load import Document, load_text
from modalities.config.resolve import (
    REFERENCE_PASS_TYPE,
    ResolverContext,
    ResolverError,
    absolute_parts,
    is_component_node,
    is_reference_node,
    reference_to,
    register_resolver,
    resolve_document,
    resolver_names,
)
from modalities.config.spans import get_at

NO_CONTEXT = ResolverContext(config_path=None, experiments_root=None, experiment_id=None)


def resolved(text: str, context: ResolverContext = NO_CONTEXT):
    return resolve_document(load_text(text, "f.yaml"), context)


def value_of(text: str, key: str = "x"):
    document, diagnostics = resolved(text)
    assert diagnostics == [], [d.message for d in diagnostics]
    return document.values[key]


def errors_of(text: str, context: ResolverContext = NO_CONTEXT) -> list[tuple[tuple, str, str]]:
    _, diagnostics = resolved(text, context)
    return [(d.path, d.message, str(d.span)) for d in diagnostics]


BASE = "n: 4\nf: 0.5\nt: true\nz: null\ns: text\nlst: [10, 20, 30]\nm: {a: 1, b: [1, 2]}\ne: ''\n"

# what x is, as OmegaConf gives it
VALUE_TABLE = [
    ("x: ${n}", 4),  # the whole string: the value with its type
    ("x: ${f}", 0.5),
    ("x: ${t}", True),
    ("x: ${z}", None),
    ("x: ${e}", ""),
    ("x: ${m}", {"a": 1, "b": [1, 2]}),
    ("x: ${lst}", [10, 20, 30]),
    ("x: ${m.b.1}", 2),
    ("x: ${ n }", 4),  # spaces around the expression
    ("x: ${lst.0}", 10),  # the first item
    ("x: ${lst.2}", 30),  # the last
    ("x: ${lst.-1}", 30),  # from the end
    ("x: ${lst.-3}", 10),
    ("x: a${n}", "a4"),  # in a longer string: text
    ("x: ${n}a", "4a"),
    ("x: ${n}${n}", "44"),
    ("x: ${n}-${f}-${t}-${z}", "4-0.5-True-None"),  # OmegaConf's text of a float, a boolean, a null
    ("x: '[${e}]'", "[]"),
    ("x: '\\${n}'", "${n}"),  # escaped: the text as written, without the backslash
    ("x: '\\${n} ${n}'", "${n} 4"),
    ("x: '${n'", "${n"),  # not closed: text
    ("x: $n", "$n"),
    ("x: plain", "plain"),
    ("x: {y: '${n}'}", {"y": 4}),
    ("x: ['${n}', a]", [4, "a"]),
    ("x: ${y}\ny: ${n}", 4),  # a chain
    ("x: ${y.k}\ny: ${m2}\nm2: {k: 7}", 7),  # a path through an interpolated mapping
    ("x: ${oc.select:n,9}", 4),
    ("x: ${oc.select:nope,9}", 9),
    ("x: ${oc.select:nope,'a,b'}", "a,b"),
    ("x: ${oc.select:nope,[1, 2]}", [1, 2]),
    ("x: ${oc.select:lst.3,0}", 0),  # one past the last item
    ("x: ${oc.select:lst.-1,0}", 30),
    ("x: ${oc.select:lst.-4,0}", 0),
    ("x: ${oc.select:m.a.c,0}", 0),  # through a scalar
    ("x: ${oc.select:y.a,0}\ny: ${m}", 1),  # through an interpolation: looked up in its value
    ("x: ${oc.select:y.k,0}\ny: ${m}", 0),
    ("x: ${oc.select:y.1,0}\ny: ${lst}", 20),
    ("x: ${oc.select:y.3,0}\ny: ${lst}", 0),
    ("x: ${oc.decode:'[1, 2]'}", [1, 2]),
    ("x: ${oc.decode:3}", 3),
    ("x: '${oc.decode:\"a: 1\"}'", {"a": 1}),
    ("x: ${oc.decode:${n}}", 4),
    ("x: ${oc.decode:${s}}", "text"),
    ("x: ${oc.decode:'${n}${n}'}", 44),
    ("x: ${oc.decode:${oc.decode:${n}}}", 4),
]


@pytest.mark.parametrize("text, value", VALUE_TABLE)
def test_what_an_interpolation_gives(text, value):
    got = value_of(BASE + text)
    assert got == value
    assert type(got) is type(value)


@pytest.mark.parametrize("text, at, value", [
    ("a: {x: 3, same: '${.x}'}", ("a", "same"), 3),  # a sibling
    ("a: {x: 3, in: {up: '${..x}'}}", ("a", "in", "up"), 3),  # one level further up
    ("a: {in: {top: '${...n}'}}", ("a", "in", "top"), 4),
    ("a: {top: '${.....n}'}", ("a", "top"), 4),  # more dots than levels: from the top
    ("a: {x: 3, same: '${oc.select:.x,0}'}", ("a", "same"), 3),
    ("a: {same: '${oc.select:.nope,0}'}", ("a", "same"), 0),
    ("l: [5, '${.0}']", ("l", 1), 5),
])
def test_relative_paths(text, at, value):
    document, diagnostics = resolved(BASE + text)
    assert diagnostics == []
    assert get_at(document.values, at) == value


ABSOLUTE_TABLE = [
    ("a.b", ("x", "y"), ["a", "b"]),
    ("a", (), ["a"]),
    (".b", ("x", "y"), ["x", "b"]),
    ("..b", ("x", "y"), ["b"]),
    ("...b", ("x", "y"), ["b"]),
    (".b.c", ("x", "y", "z"), ["x", "y", "b", "c"]),
    (".", ("x", "y"), ["x"]),
    ("..", ("x", "y"), []),
    (".b", (), ["b"]),
    (".0", ("l", 1), ["l", "0"]),
    ("", (), [""]),
]


@pytest.mark.parametrize("expression, at, parts", ABSOLUTE_TABLE)
def test_absolute_parts(expression, at, parts):
    assert absolute_parts(expression, at) == parts


def test_a_copied_value_is_a_copy_and_components_in_it_become_references():
    document, diagnostics = resolved(
        "m: {a: [1]}\nc: {component_key: k, variant_key: v}\nbox: {inner: {component_key: k, variant_key: v}, n: 1}\n"
        "l: [{component_key: k, variant_key: v}]\nx: ${m}\ny: ${c}\nw: ${box}\nv: ${l.0}\nu: ${l}\n")
    assert diagnostics == []
    v = document.values
    assert v["x"] == {"a": [1]} and v["x"] is not v["m"] and v["x"]["a"] is not v["m"]["a"]
    assert v["y"] == {"instance_key": "c", "pass_type": REFERENCE_PASS_TYPE}
    assert v["w"] == {"inner": {"instance_key": "box.inner", "pass_type": REFERENCE_PASS_TYPE}, "n": 1}
    assert v["v"] == {"instance_key": "l.0", "pass_type": REFERENCE_PASS_TYPE}
    assert v["u"] == [{"instance_key": "l.0", "pass_type": REFERENCE_PASS_TYPE}]
    assert v["c"] == {"component_key": "k", "variant_key": "v"}  # the component itself stays where it is


def test_a_copy_keeps_the_positions_of_what_it_copies():
    document, _ = resolved("m: {a: 1, b: [1, 2]}\nx: ${m}\n")
    sm = document.source_map
    assert str(sm.value(("x", "a"))) == "f.yaml:1:8"
    assert str(sm.value(("x", "b", 1))) == "f.yaml:1:18"
    assert str(sm.value(("x",))) == "f.yaml:2:4"


@pytest.mark.parametrize("text, errors", [
    ("x: ${nope}", [(("x",), "${nope}: 'nope' does not exist in the top level", "f.yaml:9:4")]),
    ("x: ${m.c}", [(("x",), "${m.c}: 'c' does not exist in m", "f.yaml:9:4")]),
    ("x: ${m.a.c}", [(("x",), "${m.a.c}: 'c' does not exist in m.a", "f.yaml:9:4")]),  # through a scalar
    ("x: ${lst.3}", [(("x",), "${lst.3}: '3' does not exist in lst", "f.yaml:9:4")]),  # equal to the length
    ("x: ${lst.-4}", [(("x",), "${lst.-4}: '-4' does not exist in lst", "f.yaml:9:4")]),
    ("x: ${}", [(("x",), "${}: '' does not exist in the top level", "f.yaml:9:4")]),
    ("x: a${m}", [(("x",), "'${m}' is a mapping or list and cannot be part of a longer string", "f.yaml:9:4")]),
    ("x: a${lst}", [(("x",), "'${lst}' is a mapping or list and cannot be part of a longer string", "f.yaml:9:4")]),
    ("c: {component_key: k}\nx: a${c}", [(("x",), "'${c}' is a component and cannot be part of a longer string",
                                          "f.yaml:10:4")]),
    ("x: ${oc.decode:${m}}", [(("x",), "'${m}' is not a scalar and cannot be a resolver argument", "f.yaml:9:4")]),
    ("x: ${oc.select:nope}", [(("x",), "${oc.select:nope}: 'nope' does not exist and no default is given",
                               "f.yaml:9:4")]),
    ("x: ${oc.decode:!!int x}", [(("x",), "${oc.decode:!!int x}: 'x' is not a valid !!int (ValueError)",
                                  "f.yaml:9:4")]),
    ("x: ${nope:1}", [(("x",), "unknown resolver 'nope' in ${nope:1}", "f.yaml:9:4")]),
    ("x: ${oc.select:nope,!!int q}", [(("x",), "${oc.select:nope,!!int q}: the default 'q' is not a valid !!int "
                                       "(ValueError)", "f.yaml:9:4")]),
    # a value that cannot be resolved is reported once, not again where it is read
    ("x: ${y}\ny: ${nope}", [(("y",), "${nope}: 'nope' does not exist in the top level", "f.yaml:10:4")]),
    ("x: ${y.k}\ny: ${nope}", [(("y",), "${nope}: 'nope' does not exist in the top level", "f.yaml:10:4")]),
    ("x: a${y}\ny: ${nope}", [(("y",), "${nope}: 'nope' does not exist in the top level", "f.yaml:10:4")]),
    ("x: ${oc.decode:${y}}\ny: ${nope}", [(("y",), "${nope}: 'nope' does not exist in the top level",
                                           "f.yaml:10:4")]),
    ("x: ${oc.select:y.a,0}\ny: ${nope}", [(("y",), "${nope}: 'nope' does not exist in the top level",
                                          "f.yaml:10:4")]),
    ("x: ${oc.select:x.a,0}", [(("x",), "interpolation cycle: x (f.yaml:9:4) -> x (f.yaml:9:4)", "f.yaml:9:4")]),
    # every other mistake is still reported
    ("x: ${nope}\ny: ${nada}", [(("x",), "${nope}: 'nope' does not exist in the top level", "f.yaml:9:4"),
                                (("y",), "${nada}: 'nada' does not exist in the top level", "f.yaml:10:4")]),
    ("x: ${a}\na: ${x}", [(("x",), "interpolation cycle: x (f.yaml:9:4) -> a (f.yaml:10:4) -> x (f.yaml:9:4)",
                           "f.yaml:9:4")]),
    ("x: ${x}", [(("x",), "interpolation cycle: x (f.yaml:9:4) -> x (f.yaml:9:4)", "f.yaml:9:4")]),
    ("x: {b: '${x}'}", [(("x",), "interpolation cycle: x (f.yaml:9:4) -> x.b (f.yaml:9:8) -> x (f.yaml:9:4)",
                         "f.yaml:9:4")]),
])
def test_what_cannot_be_resolved_is_reported_at_its_value_and_left_as_written(text, errors):
    document, diagnostics = resolved(BASE + text)
    assert [(d.path, d.message, str(d.span)) for d in diagnostics] == errors
    assert all(d.code in ("interpolation", "interpolation-cycle") for d in diagnostics)
    x = load_text(BASE + text, "f.yaml").values["x"]
    assert document.values["x"] == x  # as written
    assert ("x",) in document.unresolved_paths


def test_the_hints_of_what_does_not_exist():
    (d,) = resolved("settings: {sequence_length: 3}\nx: ${settings.sequence_lenght}\n")[1]
    assert d.hint == "did you mean 'sequence_length'?"
    (d,) = resolved("x: ${cuda_envv:RANK}\n")[1]
    assert d.hint == "did you mean 'cuda_env'?"
    (d,) = resolved("x: ${zzzzzz:1}\n")[1]
    assert d.hint == "known resolvers: " + ", ".join(resolver_names())
    (d,) = resolved("m: [1]\nx: ${m.zzz}\n")[1]
    assert d.hint is None  # a list has no names to suggest


def test_provenance_names_the_path_each_expression_reads_whatever_the_order():
    # x reads y, which reads n: x's expression read y (resolved inside x's), not n
    for text in ("x: ${y}\ny: ${n}\nn: 1\n", "n: 1\ny: ${n}\nx: ${y}\n"):
        document, _ = resolved(text)
        assert document.provenance[("x",)] == [("y", ("y",))]
        assert document.provenance[("y",)] == [("n", ("n",))]


def test_provenance_names_what_each_value_came_from():
    document, _ = resolved(BASE + "x: ${n}\ny: a${m.a}b${lst.-1}\nw: ${cuda_env:RANK}\nv: ${oc.select:nope,1}\n"
                           "u: ${nope}\n")
    assert document.provenance[("x",)] == [("n", ("n",))]
    assert document.provenance[("y",)] == [("m.a", ("m", "a")), ("lst.-1", ("lst", 2))]
    assert document.provenance[("w",)] == [("cuda_env:RANK", None)]
    assert ("u",) not in document.provenance  # not resolved: nothing came
    assert ("n",) not in document.provenance  # written, not interpolated


def test_is_component_node_and_is_reference_node():
    assert is_component_node({"component_key": "k"}) and not is_component_node({"instance_key": "k"})
    assert not is_component_node(["component_key"]) and not is_component_node("component_key")
    assert is_reference_node({"instance_key": "a"}) and is_reference_node({"instance_key": "a", "pass_type": "x"})
    assert not is_reference_node({"instance_key": "a", "component_key": "k"})  # a component first
    assert not is_reference_node({}) and not is_reference_node(["instance_key"])
    assert reference_to(("a", 0, "b")) == {"instance_key": "a.0.b", "pass_type": "BY_REFERENCE"}
    assert reference_to(()) == {"instance_key": "", "pass_type": "BY_REFERENCE"}


# --- resolvers -------------------------------------------------------------------------------------------------------


def test_a_resolver_name_is_registered_once_unless_replaced():
    register_resolver("twice", lambda arg, ctx: 2 * int(arg))
    assert value_of("x: ${twice:21}") == 42
    with pytest.raises(ValueError, match="resolver 'twice' is already registered; pass replace=True"):
        register_resolver("twice", lambda arg, ctx: 0)
    assert value_of("x: ${twice:21}") == 42
    register_resolver("twice", lambda arg, ctx: 3 * int(arg), replace=True)
    assert value_of("x: ${twice:21}") == 63
    assert "twice" in resolver_names()


def test_resolver_names_are_sorted_and_include_the_document_resolvers():
    assert resolver_names() == ["cuda_env", "env", "modalities_env", "node_env", "oc.decode", "oc.env", "oc.select",
                                "warmstart_env"]


def test_a_resolver_gets_its_stripped_argument_and_the_path_being_resolved():
    seen = []
    register_resolver("spy", lambda arg, ctx: seen.append((arg, ctx.at)) or len(seen))
    document, _ = resolved("a: {b: '${spy: x,y }'}\nc: '-${spy:}-'\n")
    assert seen == [("x,y", ("a", "b")), ("", ("c",))]
    assert document.values == {"a": {"b": 1}, "c": "-2-"}


@pytest.mark.parametrize("returned, message", [
    ("\udcff", "its value is not UTF-8 text (character 1 stands for the byte 0xff that cannot be decoded); config "
     "values are UTF-8: link to such a file under a UTF-8 name"),
    ("ab\udc80", "its value is not UTF-8 text (character 3 stands for the byte 0x80 that cannot be decoded); config "
     "values are UTF-8: link to such a file under a UTF-8 name"),
    ("\ud800", "its value holds a lone surrogate, which is not text"),
    ("\udc7f", "its value holds a lone surrogate, which is not text"),
    ("\udd00", "its value holds a lone surrogate, which is not text"),
    ({"k": ["\udcff"]}, "its value is not UTF-8 text (character 1 stands for the byte 0xff"),
    ({"\udcff": 1}, "its value is not UTF-8 text (character 1 stands for the byte 0xff"),
    (("a", "\udcff"), "its value is not UTF-8 text (character 1 stands for the byte 0xff"),
])
def test_a_resolver_value_that_is_not_utf8_is_refused(returned, message):
    register_resolver("bytes", lambda arg, ctx: returned)
    ((_, got, _),) = errors_of("x: ${bytes:1}")
    assert got.startswith("${bytes:1}: " + message)


@pytest.mark.parametrize("returned", ["é", {"k": ["\u2028"]}, ("a",), 3, None])
def test_a_resolver_value_that_is_text_is_taken(returned):
    register_resolver("fine", lambda arg, ctx: returned)
    assert value_of("x: ${fine:1}") == returned


def test_a_resolver_that_raises():
    def refuses(arg, ctx):
        raise ResolverError(f"no {arg}")

    def crashes(arg, ctx):
        raise KeyError(arg)

    register_resolver("refuses", refuses)
    register_resolver("crashes", crashes)
    assert errors_of("x: ${refuses:a}\ny: ${crashes:b}") == [
        (("x",), "${refuses:a}: no a", "f.yaml:1:4"),
        (("y",), "${crashes:b}: resolver 'crashes' raised KeyError: 'b'", "f.yaml:2:4"),
    ]


@pytest.mark.parametrize("variable, env, value", [
    ("LOCAL_RANK", {}, 0), ("RANK", {}, 0), ("WORLD_SIZE", {}, 1),  # defaults of one process
    ("LOCAL_RANK", {"LOCAL_RANK": "3"}, 3), ("RANK", {"RANK": "5"}, 5), ("WORLD_SIZE", {"WORLD_SIZE": "8"}, 8),
])
def test_cuda_env(monkeypatch, variable, env, value):
    for name in ("LOCAL_RANK", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, text in env.items():
        monkeypatch.setenv(name, text)
    assert value_of(f"x: ${{cuda_env:{variable}}}") == value


def test_cuda_env_and_node_env_know_their_names(monkeypatch):
    import os

    assert value_of("x: ${node_env:num_cpus}") == os.cpu_count()
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert value_of("x: ${node_env:num_cpus}") == 1
    assert [m for _, m, _ in errors_of("x: ${cuda_env:MASTER_PORT}\ny: ${node_env:gpus}")] == [
        "${cuda_env:MASTER_PORT}: cuda_env knows LOCAL_RANK, RANK, WORLD_SIZE, not 'MASTER_PORT'",
        "${node_env:gpus}: node_env knows num_cpus, not 'gpus'",
    ]


def test_modalities_env_with_and_without_what_it_reads(tmp_path):
    config = tmp_path / "dir" / "c.yaml"
    full = ResolverContext(config_path=config, experiments_root=tmp_path / "exp", experiment_id="run1")
    text = ("a: ${modalities_env:config_file_path}\nb: ${modalities_env:config_folder_path}\n"
            "c: ${modalities_env:experiments_root_path}\nd: ${modalities_env:experiment_id}\n")
    document, diagnostics = resolved(text, full)
    assert diagnostics == []
    assert document.values == {"a": str(config), "b": str(tmp_path / "dir"), "c": str(tmp_path / "exp"), "d": "run1"}
    document, diagnostics = resolved(text, NO_CONTEXT)
    assert diagnostics == [] and document.values == {"a": None, "b": None, "c": None, "d": None}
    assert errors_of("x: ${modalities_env:nope}", full) == [
        (("x",), "${modalities_env:nope}: modalities_env knows config_file_path, config_folder_path, "
         "experiments_root_path, experiment_id, not 'nope'", "f.yaml:1:4")]


@pytest.mark.parametrize("folder, expected", [("base", "base"), (None, "dir")])
def test_the_config_folder_is_the_folder_of_the_file_that_wrote_the_value(tmp_path, folder, expected):
    asked = []

    def folder_of(path):
        asked.append(path)
        return tmp_path / folder if folder else None

    context = ResolverContext(config_path=tmp_path / "dir" / "c.yaml", experiments_root=None, experiment_id=None,
                              folder_of=folder_of)
    document, _ = resolved("a: {b: '${modalities_env:config_folder_path}/x'}\n", context)
    assert document.values["a"]["b"] == f"{tmp_path / expected}/x"
    assert asked == [("a", "b")]


@pytest.mark.parametrize("resolver", ["env", "oc.env"])
@pytest.mark.parametrize("argument, value", [
    ("MODALITIES_TEST_SET", "0.25"),  # the variable's text
    ("MODALITIES_TEST_SET,7", "0.25"),  # a default does not matter when it is set
    (" MODALITIES_TEST_SET ", "0.25"),
    ("MODALITIES_TEST_UNSET,7", 7),  # the default is read as YAML
    ("MODALITIES_TEST_UNSET, 7", 7),
    ("MODALITIES_TEST_UNSET,null", None),
    ("MODALITIES_TEST_UNSET,'a,b'", "a,b"),  # quoted: as it is
    ("MODALITIES_TEST_UNSET,a,b", "a,b"),  # the default is all after the first comma
    ("MODALITIES_TEST_UNSET,", ""),
    ("MODALITIES_TEST_UNSET,[1, 2]", [1, 2]),
    ("MODALITIES_TEST_EMPTY,7", ""),  # set to nothing is set
])
def test_env_and_oc_env(monkeypatch, resolver, argument, value):
    monkeypatch.setenv("MODALITIES_TEST_SET", "0.25")
    monkeypatch.setenv("MODALITIES_TEST_EMPTY", "")
    monkeypatch.delenv("MODALITIES_TEST_UNSET", raising=False)
    assert value_of(f'x: "${{{resolver}:{argument}}}"') == value


@pytest.mark.parametrize("resolver", ["env", "oc.env"])
def test_env_without_the_variable_or_a_default(monkeypatch, resolver):
    monkeypatch.delenv("MODALITIES_TEST_UNSET", raising=False)
    ((_, message, _), (_, bad_default, _)) = errors_of(f"x: ${{{resolver}:MODALITIES_TEST_UNSET}}\n"
                                                       f"y: ${{{resolver}:MODALITIES_TEST_UNSET,!!int q}}")
    assert message == (f"${{{resolver}:MODALITIES_TEST_UNSET}}: environment variable 'MODALITIES_TEST_UNSET' is not "
                       f"set and no default is given (${{{resolver}:MODALITIES_TEST_UNSET,DEFAULT}})")
    assert bad_default == f"${{{resolver}:MODALITIES_TEST_UNSET,!!int q}}: the default 'q' is not a valid !!int " \
        "(ValueError)"


def test_a_default_list_is_a_new_list_each_time(monkeypatch):
    monkeypatch.delenv("MODALITIES_TEST_UNSET", raising=False)
    document, _ = resolved("a: ${env:MODALITIES_TEST_UNSET,[1]}\nb: ${env:MODALITIES_TEST_UNSET,[1]}\n")
    assert document.values["a"] == document.values["b"] == [1]
    assert document.values["a"] is not document.values["b"]


@pytest.mark.parametrize("content, error", [
    ('{"checkpoint_folder_path": "/c", "model": "/m"}', None),
    ("{}", None),
    ("[1]", "must be a JSON object of checkpoint paths"),
    ('{"a": 1}', "must be a JSON object of checkpoint paths"),
    ("not json", "cannot read the last checkpoint info"),
    (None, "cannot read the last checkpoint info"),  # no such file
])
def test_warmstart_env(tmp_path, content, error):
    info = tmp_path / "last_checkpoint_info.json"
    if content is not None:
        info.write_text(content)
    context = ResolverContext(config_path=None, experiments_root=None, experiment_id=None, last_checkpoint_info=info)
    document, diagnostics = resolved("x: ${warmstart_env:checkpoint_paths}\n", context)
    if error is None:
        assert diagnostics == [] and document.values["x"] == __import__("json").loads(content)
    else:
        ((_, message, _),) = [(d.path, d.message, d.span) for d in diagnostics]
        assert message.startswith("${warmstart_env:checkpoint_paths}: ") and error in message


def test_warmstart_env_without_the_info_file_or_with_another_name(tmp_path):
    assert errors_of("x: ${warmstart_env:checkpoint_paths}")[0][1].startswith(
        "${warmstart_env:checkpoint_paths}: this config continues from a checkpoint: give its "
        "last_checkpoint_info.json with --last-checkpoint-info FILE")
    assert errors_of("x: ${warmstart_env:paths}")[0][1] == \
        "${warmstart_env:paths}: warmstart_env knows checkpoint_paths, not 'paths'"


# --- limits: at the limit it resolves, one past it is refused --------------------------------------------------------


@pytest.mark.parametrize("links, limit, error_at", [(3, 3, None), (3, 2, ("c",)), (1, 1, None), (2, 1, ("b",))])
def test_a_chain_of_interpolations(monkeypatch, links, limit, error_at):
    # a: ${b}, b: ${c}, ... each resolved inside the one before (first link first)
    monkeypatch.setattr(resolve_module, "MAX_INTERPOLATION_CHAIN", limit)
    names = "abcdefgh"[: links + 1]
    text = "".join(f"{names[i]}: ${{{names[i + 1]}}}\n" for i in range(links)) + f"{names[links]}: 1\n"
    document, diagnostics = resolved(text)
    if error_at is None:
        assert diagnostics == [] and document.values["a"] == 1
    else:
        assert [(d.path, d.message) for d in diagnostics] == [
            (error_at, f"${{...}} chained through more than {limit} interpolations, each reading the next")]
        assert ("a",) in document.unresolved_paths


@pytest.mark.parametrize("text, fits", [
    ("x: ${a}${a}", True),  # 10 characters
    ("x: ${a}${a}y", False),  # 11
    ("x: y${a}${a}", False),
    ("x: '${a} ${a}'", False),
    ("x: ${b}", True),  # a whole value: copied, not made
])
def test_the_length_of_an_interpolated_string(monkeypatch, text, fits):
    monkeypatch.setattr(resolve_module, "MAX_STRING_CHARS", 10)
    document, diagnostics = resolved("a: '12345'\nb: '123456789012'\n" + text)
    if fits:
        assert diagnostics == []
    else:
        assert [(d.path, d.message) for d in diagnostics] == [
            (("x",), "this interpolation makes a string of more than 10 characters")]
        assert ("x",) in document.unresolved_paths


@pytest.mark.parametrize("text, fits", [
    ("x: ${oc.decode:'${a}${a}'}", True),  # the text made for the outer one: 13 + 10 + 2 characters
    ("x: ${oc.decode:'${a}${a}1'}", False),
    ("x: ${oc.decode:'1${a}${a}'}", False),
    ("x: ${oc.decode:'${a}${a}${a}'}", False),  # over the limit before the last piece
])
def test_the_length_of_a_text_made_for_an_outer_interpolation(monkeypatch, text, fits):
    monkeypatch.setattr(resolve_module, "MAX_STRING_CHARS", 25)
    document, diagnostics = resolved("a: '12345'\n" + text)
    if fits:
        assert diagnostics == [] and document.values["x"] == 1234512345
    else:
        assert [(d.path, d.message) for d in diagnostics] == [
            (("x",), "this interpolation makes a string of more than 25 characters")]


@pytest.mark.parametrize("strings, fits", [(16, True), (17, False)])
def test_the_characters_interpolations_make_in_all(monkeypatch, strings, fits):
    monkeypatch.setattr(resolve_module, "MAX_STRING_CHARS", 10)  # 160 in all
    text = "a: '12345'\n" + "".join(f"x{i}: ${{a}}${{a}}\n" for i in range(strings))
    if fits:
        assert resolved(text)[1] == []
    else:
        with pytest.raises(ConfigError, match="interpolations make more than 160 characters in all"):
            resolved(text)


@pytest.mark.parametrize("copies, fits", [(2, True), (3, False)])
def test_the_values_interpolations_copy_in_all(monkeypatch, copies, fits):
    monkeypatch.setattr(resolve_module, "MAX_VALUES", 6)  # m is 3 values
    text = "m: {a: 1, b: 2}\n" + "".join(f"c{i}: ${{m}}\n" for i in range(copies))
    if fits:
        assert resolved(text)[1] == []
    else:
        with pytest.raises(ConfigError) as e:
            resolved(text)
        ((path, message, code),) = [(d.path, d.message, d.code) for d in e.value.diagnostics]
        assert (path, message, code) == (("c2",), "${...} interpolations copy more than 6 values in all", "limit")


@pytest.mark.parametrize("text, fits", [
    ("m: {a: {b: 1}}", True),  # 3 levels with the top
    ("m: {a: {b: 1}}\nn: ${m}", True),
    ("m: {a: {b: 1}}\nn: {k: '${m}'}", False),  # 4
    ("m: {a: 1}\nn: {k: '${m}'}", True),
    ("m: [[1]]\nn: ['${m}']", False),
])
def test_the_depth_interpolations_make(monkeypatch, text, fits):
    monkeypatch.setattr(resolve_module, "MAX_DEPTH", 3)
    if fits:
        assert resolved(text)[1] == []
    else:
        with pytest.raises(ConfigError, match="through \\${...} interpolation the config is nested more than 3 levels"):
            resolved(text)


@pytest.mark.parametrize("limit, fits", [(2, True), (1, False)])
def test_interpolations_nested_in_one_another(monkeypatch, limit, fits):
    monkeypatch.setattr(resolve_module, "MAX_DEPTH", limit)
    document, diagnostics = resolved("n: 4\nx: ${oc.decode:${oc.decode:${n}}}\n")  # two inside another
    if fits:
        assert diagnostics == [] and document.values["x"] == 4
    else:
        assert [(d.path, d.message) for d in diagnostics] == [
            (("x",), f"${{...}} nested more than {limit} levels deep")]


# --- drawn documents: values and cycles against an evaluator written here and networkx ------------------------------

links = st.one_of(
    st.tuples(st.just("literal"), st.one_of(st.integers(-5, 5), st.none(), st.booleans(), st.sampled_from([0.5, "s"]))),
    st.tuples(st.just("whole"), st.integers(0, 9)),  # k: ${kj}
    st.tuples(st.just("text"), st.integers(0, 9)),  # k: <${kj}>
)


@given(st.lists(links, min_size=1, max_size=10))
def test_drawn_interpolations_resolve_as_an_evaluator_written_here(drawn):
    n = len(drawn)
    kinds = [(kind, arg % n if kind != "literal" else arg) for kind, arg in drawn]
    values = {}
    for i, (kind, arg) in enumerate(kinds):
        values[f"k{i}"] = arg if kind == "literal" else f"${{k{arg}}}" if kind == "whole" else f"<${{k{arg}}}>"
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from((i, arg) for i, (kind, arg) in enumerate(kinds) if kind != "literal")
    on_cycles = {node for cycle in nx.simple_cycles(graph) for node in cycle}
    unresolvable = {i for i in range(n) if any(nx.has_path(graph, i, c) for c in on_cycles)}

    def expected(i):
        kind, arg = kinds[i]
        if kind == "literal":
            return arg
        target = expected(arg)
        return target if kind == "whole" else f"<{target}>"  # OmegaConf: str() of the value in text

    document, diagnostics = resolve_document(Document(values=dict(values)), NO_CONTEXT)
    assert document.unresolved_paths == frozenset((f"k{i}",) for i in unresolvable)
    for i in range(n):
        if i in unresolvable:
            assert document.values[f"k{i}"] == values[f"k{i}"]  # left as written
        else:
            assert document.values[f"k{i}"] == expected(i)
            assert type(document.values[f"k{i}"]) is type(expected(i))
            if kinds[i][0] != "literal":
                assert document.provenance[(f"k{i}",)] == [(f"k{kinds[i][1]}", (f"k{kinds[i][1]}",))]
    # one error per cycle, naming the values on it
    cycles = list(nx.simple_cycles(graph))
    assert len(diagnostics) == len(cycles)
    assert all(d.code == "interpolation-cycle" for d in diagnostics)
    for d in diagnostics:
        named = {int(part.split(" ")[0][1:]) for part in d.message.removeprefix("interpolation cycle: ").split(" -> ")}
        assert any(named == set(cycle) for cycle in cycles)
