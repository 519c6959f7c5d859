"""Contracts of modalities/config/graph.py (stage 3): which nodes and edges a document makes, what is reported
about component and reference nodes, the build order and cycles. Tables worked out by hand; on drawn graphs,
the order, the acyclicity check, the in-degrees and the cycles reported are compared with networkx."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modalities.config.diagnostics import ERROR, WARNING
from modalities.config.graph import NESTS, REFERENCES, ComponentGraph, ComponentNode, build_component_graph
from modalities.config.load import load_text
from modalities.config.resolve import ResolvedDocument


def graph_of(text: str, entry_points=()):
    loaded = load_text(text, "f.yaml")
    document = ResolvedDocument(values=loaded.values, source_map=loaded.source_map)
    return build_component_graph(document, entry_points)


def where(text: str, line: int, needle: str, nth: int = 1) -> str:
    """``f.yaml:line:col`` of the nth ``needle`` on that line of ``text`` (columns from 1)."""
    line_text, col = text.splitlines()[line - 1], -1
    for _ in range(nth):
        col = line_text.index(needle, col + 1)
    return f"f.yaml:{line}:{col + 1}"


def C(name: str = "k") -> str:  # a component node's keys, inline
    return f"component_key: {name}, variant_key: v"


# --- nodes and edges -------------------------------------------------------------------------------------------------

NODES_TEXT = f"""\
a: {{{C()}, config: {{b: {{{C()}}}, items: [{{{C()}}}, 3], plain: {{x: 1}}}}}}
l: [{{{C()}}}, {{{C()}, config: {{inner: {{{C()}}}}}}}]
settings: {{n: {{{C()}}}}}
r: {{instance_key: a, pass_type: BY_REFERENCE}}
"""


def test_every_component_node_wherever_it_stands_is_a_node_in_file_order():
    graph, _ = graph_of(NODES_TEXT, entry_points=("a", "l", "settings"))
    assert list(graph.nodes) == [("a",), ("a", "config", "b"), ("a", "config", "items", 0), ("l", 0), ("l", 1),
                                 ("l", 1, "config", "inner"), ("settings", "n")]
    assert list(graph.nx.nodes) == list(graph.nodes)
    node = graph.nodes[("a", "config", "b")]
    assert (node.component_key, node.variant_key, node.config, node.name) == ("k", "v", None, "a.config.b")
    assert str(node.span) == where(NODES_TEXT, 1, "{component_key", 2)
    assert graph.nx.nodes[("a",)] == {"component_key": "k", "variant_key": "v", "name": "a",
                                      "span": graph.document.source_map.key(("a",))}
    assert [n.path for n in graph.top_level_components()] == [("a",)]


def test_nesting_makes_an_edge_from_the_component_whose_config_holds_it():
    graph, _ = graph_of(NODES_TEXT, entry_points=("a", "l", "settings"))
    edges = {(u, v): (d["field"], d["relation"]) for u, v, d in graph.nx.edges(data=True)}
    assert edges == {(("a",), ("a", "config", "b")): ("b", NESTS),
                     (("a",), ("a", "config", "items", 0)): ("items.0", NESTS),
                     (("l", 1), ("l", 1, "config", "inner")): ("inner", NESTS)}
    assert graph.has_edge(("a",), ("a", "config", "b")) and not graph.has_edge(("a", "config", "b"), ("a",))
    assert not graph.has_edge(("nothing",), ("a",))
    assert graph.needed_by() == {("a",): 0, ("a", "config", "b"): 1, ("a", "config", "items", 0): 1, ("l", 0): 0,
                                 ("l", 1): 0, ("l", 1, "config", "inner"): 1, ("settings", "n"): 0}


REFERENCES_TEXT = f"""\
m: {{{C()}}}
holder: {{{C()}, config: {{inner: {{{C()}}}}}}}
items: [{{instance_key: m, pass_type: BY_REFERENCE}}, {{{C()}}}]
both: {{{C()}, config: {{x: {{instance_key: m, pass_type: BY_REFERENCE}}, y: {{instance_key: m}}}}}}
deep: {{{C()}, config: {{z: {{instance_key: holder.config.inner, pass_type: BY_REFERENCE}}}}}}
box: {{{C()}, config: {{all: {{instance_key: items, pass_type: BY_REFERENCE}}}}}}
self_nested: {{{C()}, config: {{n: {{{C()}}}, again: {{instance_key: self_nested.config.n}}}}}}
"""


def test_references_make_one_edge_per_needer_and_needed_with_the_field_that_makes_it():
    graph, diagnostics = graph_of(REFERENCES_TEXT)
    edges = {(u, v): (d["field"], d["relation"], str(d["span"])) for u, v, d in graph.nx.edges(data=True)}
    first_reference = where(REFERENCES_TEXT, 4, "{instance_key")
    assert edges[(("both",), ("m",))] == ("x", REFERENCES, first_reference)  # the first reference, once
    assert edges[(("deep",), ("holder", "config", "inner"))] == ("z", REFERENCES, where(REFERENCES_TEXT, 5, "{inst"))
    # a reference to a list: an edge to each component it holds, directly or through its references
    assert edges[(("box",), ("m",))] == ("all", REFERENCES, where(REFERENCES_TEXT, 6, "{instance_key"))
    assert edges[(("box",), ("items", 1))] == ("all", REFERENCES, where(REFERENCES_TEXT, 6, "{instance_key"))
    # a reference to what the component already nests: the nesting edge stays
    assert edges[(("self_nested",), ("self_nested", "config", "n"))][1] == NESTS
    assert graph.references[("both", "config", "y")].target == ("m",)  # pass_type may be left out
    assert graph.references[("items", 0)].owner is None
    assert graph.references[("deep", "config", "z")].owner == ("deep",)
    assert diagnostics == [d for d in diagnostics if d.severity == WARNING]


@pytest.mark.parametrize("instance_key, target", [
    ("m", ("m",)),
    ("holder.config.inner", ("holder", "config", "inner")),  # a nested component by its dotted path
    ("items", ("items",)),  # a list holding components
    ("items.1", ("items", 1)),  # an item of it
    ("group", ("group",)),  # a mapping
    ("group.first", ("group", "first")),
    ("settings.s", None),  # settings' containers are values, not groups of components
    ("settings", None),
    ("n", None),  # a plain value
    ("items.0", None),  # a reference is no target
    ("items.2", None),  # one past the last item
    ("m.config.x.y", None),  # through a scalar
    ("nope", None),
    ("", None),
    (3, None),
    (None, None),
])
def test_what_an_instance_key_names(instance_key, target):
    key = "null" if instance_key is None else instance_key
    text = (f"m: {{{C()}, config: {{x: 1}}}}\nholder: {{{C()}, config: {{inner: {{{C()}}}}}}}\n"
            f"items: [{{instance_key: m}}, {{{C()}}}]\ngroup: {{first: {{{C()}}}}}\nsettings: {{s: [1], t: 2}}\nn: 5\n"
            f"user: {{{C()}, config: {{ref: {{instance_key: {key}}}}}}}\n")
    if isinstance(instance_key, str) and not instance_key:
        text = text.replace("instance_key: }", "instance_key: ''}")
    graph, diagnostics = graph_of(text)
    assert graph.references[("user", "config", "ref")].target == target
    unknown = [d for d in diagnostics if d.code == "unknown-reference"]
    assert bool(unknown) == (target is None)


@pytest.mark.parametrize("components, key, hint", [
    (["model", "optimizer"], "modle", "did you mean 'model'?"),
    (["model", "optimizer"], "zzzz", "components defined at the top level: model, optimizer, user"),
    ([f"c{i}" for i in range(11)], "zzzz", "components defined at the top level: " + ", ".join(
        [f"c{i}" for i in range(11)] + ["user"])),
    ([f"c{i}" for i in range(12)], "zzzz", "components defined at the top level: " + ", ".join(
        f"c{i}" for i in range(12))),  # 12 at most
    ([], "zzzz", "components defined at the top level: user"),
])
def test_an_unknown_instance_key_is_an_error_at_it_with_a_hint(components, key, hint):
    text = "".join(f"{name}: {{{C()}}}\n" for name in components) + f"user: {{{C()}, config: {{r: {{instance_key: " \
        f"{key}}}}}}}\n"
    graph, diagnostics = graph_of(text)
    (error,) = [d for d in diagnostics if d.severity == ERROR]
    line = len(components) + 1
    assert (error.code, error.path, error.message, str(error.span), error.hint) == (
        "unknown-reference", ("user", "config", "r", "instance_key"), f"unknown instance_key '{key}': no component of "
        "that name", where(text, line, key), hint)
    assert graph.references[("user", "config", "r")].target is None


def test_a_nested_component_is_suggested_by_its_dotted_path():
    _, diagnostics = graph_of(f"a: {{{C()}, config: {{inner: {{{C()}}}}}}}\nb: {{{C()}, config: {{r: "
                                  "{instance_key: a.config.iner}}}\n")
    (error,) = [d for d in diagnostics if d.severity == ERROR]
    assert error.hint == "did you mean 'a.config.inner'?"


def test_a_key_that_is_not_text_gets_the_list_of_components():
    _, diagnostics = graph_of(f"a: {{{C()}}}\nb: {{{C()}, config: {{r: {{instance_key: 3}}}}}}\n")
    (error,) = [d for d in diagnostics if d.severity == ERROR]
    assert error.message == "unknown instance_key 3: no component of that name"
    assert error.hint == "components defined at the top level: a, b"


COMPONENT_NODE_TABLE = [
    ("a: {component_key: k, variant_key: v, confg: {}}",
     [(ERROR, "unknown-field", ("a", "confg"), "unexpected key 'confg' in a component node (it takes component_key, "
       "variant_key, config)", "f.yaml:1:39", "did you mean 'config'?")]),
    ("a: {component_key: k, variant_key: v, width: 3}",
     [(ERROR, "unknown-field", ("a", "width"), "unexpected key 'width' in a component node (it takes component_key, "
       "variant_key, config)", "f.yaml:1:39", "put component settings under 'config:'")]),
    ("a: {component_key: k}",
     [(ERROR, "missing-variant", ("a",), "component 'a' has no variant_key", "f.yaml:1:1", None)]),
    ("a: {component_key: k, variant_key: 3}",
     [(ERROR, "unknown-variant", ("a", "variant_key"), "variant_key must be a string naming a variant, got 3",
       "f.yaml:1:36", None)]),
    ("a: {component_key: k, variant_key: null}",
     [(ERROR, "unknown-variant", ("a", "variant_key"), "variant_key must be a string naming a variant, got None",
       "f.yaml:1:36", None)]),
    ("a: {component_key: k, variant_key: v}\nr: {instance_key: a, pass_type: BY_VALUE}",
     [(ERROR, "pass-type", ("r", "pass_type"), "pass_type must be BY_REFERENCE, not 'BY_VALUE'", "f.yaml:2:33",
       "a reference always shares the one built object")]),
    ("a: {component_key: k, variant_key: v}\nr: {instance_key: a, pass_typ: BY_REFERENCE}",
     [(ERROR, "unknown-field", ("r", "pass_typ"), "unexpected key 'pass_typ' in a reference (it takes instance_key "
       "and pass_type)", "f.yaml:2:22", "did you mean 'pass_type'?")]),
    ("a: {component_key: k, variant_key: v}\nr: {instance_key: a, zzz: 1}",
     [(ERROR, "unknown-field", ("r", "zzz"), "unexpected key 'zzz' in a reference (it takes instance_key and "
       "pass_type)", "f.yaml:2:22", None)]),
    ("a: {component_key: k, variant_key: v}\nr: {instance_key: a}", []),
    ("a: {component_key: k, variant_key: v, config: null}", []),
]


@pytest.mark.parametrize("text, diagnostics", COMPONENT_NODE_TABLE)
def test_what_is_said_about_component_and_reference_nodes(text, diagnostics):
    _, found_diagnostics = graph_of(text, entry_points=("a",))
    assert [(d.severity, d.code, d.path, d.message, str(d.span), d.hint) for d in found_diagnostics] == diagnostics


# --- unused components -----------------------------------------------------------------------------------------------

UNUSED_TEXT = f"""\
alone: {{{C()}}}
entry: {{{C()}}}
referenced: {{{C()}}}
user: {{{C()}, config: {{r: {{instance_key: referenced}}, n: {{{C()}}}}}}}
listed: {{{C()}}}
by_list: [{{instance_key: listed}}]
in_settings: {{{C()}}}
settings: {{s: [{{instance_key: in_settings}}]}}
in_group: {{{C()}}}
group: {{g: {{instance_key: in_group}}}}
grouped_user: {{{C()}, config: {{r: {{instance_key: group}}}}}}
"""


@pytest.mark.parametrize("entry_points, unused", [
    ((), ["alone", "entry", "user", "grouped_user"]),
    (("entry", "user"), ["alone", "grouped_user"]),
    (("alone", "entry", "user", "grouped_user"), []),
    (("nothing_of_that_name",), ["alone", "entry", "user", "grouped_user"]),
])
def test_a_top_level_component_nothing_uses_is_a_warning(entry_points, unused):
    _, diagnostics = graph_of(UNUSED_TEXT, entry_points=entry_points)
    warned = [d for d in diagnostics if d.code == "unused-component"]
    assert [d.path[0] for d in warned] == unused
    for d in warned:
        assert d.severity == WARNING
        assert d.message == f"component '{d.path[0]}' is not used by any other component nor by the run"
        assert d.hint == "it is still built; remove it if it is left over"
    assert [str(d.span) for d in warned if d.path == ("alone",)] == (["f.yaml:1:1"] if "alone" in unused else [])


# --- cycles and order ------------------------------------------------------------------------------------------------


def test_a_cycle_is_reported_link_by_link_once_per_strongly_connected_part():
    text = (f"a: {{{C()}, config: {{x: {{instance_key: b}}}}}}\nb: {{{C()}, config: {{y: {{instance_key: a}}}}}}\n"
            f"c: {{{C()}, config: {{z: {{instance_key: c}}}}}}\nd: {{{C()}, config: {{w: {{instance_key: a}}}}}}\n")
    graph, diagnostics = graph_of(text, entry_points=("d",))
    cycles = [d for d in diagnostics if d.code == "reference-cycle"]
    x, y, z = (where(text, line, "{instance_key") for line in (1, 2, 3))
    assert [(d.path, d.message, str(d.span)) for d in cycles] == [
        (("a",), f"reference cycle: 'a' references 'b' via x ({x}); 'b' references 'a' via y ({y})", x),
        (("c",), f"reference cycle: 'c' references 'c' via z ({z})", z),
    ]
    assert all(d.hint.startswith("components are built dependencies first") for d in cycles)
    assert not graph.is_acyclic()
    with pytest.raises(ValueError, match="the component graph has a cycle; it has no build order"):
        graph.build_order()


def test_a_cycle_through_nesting_says_contains():
    text = f"a: {{{C()}, config: {{n: {{{C()}, config: {{up: {{instance_key: a}}}}}}}}}}\n"
    _, diagnostics = graph_of(text, entry_points=("a",))
    (cycle,) = [d for d in diagnostics if d.code == "reference-cycle"]
    n, up = where(text, 1, "{component_key", 2), where(text, 1, "{instance_key")
    assert cycle.message == f"reference cycle: 'a' contains 'a.config.n' via n ({n}); 'a.config.n' references 'a' " \
        f"via up ({up})"


def test_the_build_order_is_dependencies_first_and_the_file_order_among_the_ready():
    text = (f"opt: {{{C()}, config: {{m: {{instance_key: model}}}}}}\nmodel: {{{C()}, config: {{n: {{{C()}}}}}}}\n"
            f"free: {{{C()}}}\n")
    graph, _ = graph_of(text)
    assert graph.build_order() == [("model", "config", "n"), ("model",), ("opt",), ("free",)]
    assert graph.is_acyclic()


def test_an_empty_graph():
    graph, diagnostics = graph_of("settings: {a: 1}\n")
    assert graph.build_order() == [] and graph.is_acyclic() and diagnostics == []
    assert graph.needed_by() == {} and graph.top_level_components() == [] and len(graph.nx) == 0


OWNER_TABLE = [
    (("a",), None),  # a top-level component is in nobody's config
    (("a", "config"), ("a",)),
    (("a", "config", "x"), ("a",)),
    (("a", "config", "b"), ("a",)),  # a nested component is in its parent's config
    (("a", "config", "b", "config", "y"), ("a", "config", "b")),  # the nearest
    (("a", "config", "b", "other", "y"), ("a",)),
    (("a", "x"), None),  # beside the config, not in it
    (("l", 0, "config", "z"), ("l", 0)),
    (("s", "config", "x"), None),  # s is no component
    ((), None),
]


@pytest.mark.parametrize("path, owner", OWNER_TABLE)
def test_owner_of(path, owner):
    graph = ComponentGraph(document=None)
    for node in [("a",), ("a", "config", "b"), ("l", 0)]:
        graph.nodes[node] = ComponentNode(node, "k", "v", None, None)
    assert graph.owner_of(path) == owner


def test_container_members():
    text = (f"m: {{{C()}}}\nlst: [{{instance_key: m}}, {{{C()}}}, 3, {{instance_key: grp}}]\n"
            f"grp: {{a: {{{C()}}}, b: [{{{C()}}}]}}\nloop1: [{{instance_key: loop2}}]\n"
            "loop2: [{instance_key: loop1}, "
            f"{{instance_key: m}}]\nempty: []\n")
    graph, _ = graph_of(text, entry_points=("m",))
    assert graph.container_members(("lst",)) == [("m",), ("lst", 1), ("grp", "a"), ("grp", "b", 0)]
    assert graph.container_members(("grp",)) == [("grp", "a"), ("grp", "b", 0)]
    assert graph.container_members(("empty",)) == []
    assert graph.container_members(("m",)) == [("m",)]  # a component is its own member
    assert graph.container_members(("loop1",)) == [("m",)]  # a loop of lists ends


# --- drawn graphs against networkx -----------------------------------------------------------------------------------


@st.composite
def reference_graphs(draw):
    n = draw(st.integers(1, 8))
    needs = [draw(st.lists(st.integers(0, n - 1), max_size=3, unique=True)) for _ in range(n)]
    return n, needs


@given(reference_graphs(), st.sets(st.integers(0, 7), max_size=3))
def test_drawn_component_graphs_agree_with_networkx(drawn, entries):
    n, needs = drawn
    values = {f"c{i}": {"component_key": "k", "variant_key": "v",
                        "config": {f"r{j}": {"instance_key": f"c{j}", "pass_type": "BY_REFERENCE"} for j in needs[i]}}
              for i in range(n)}
    graph, diagnostics = build_component_graph(ResolvedDocument(values=values), [f"c{i}" for i in entries])
    expected = nx.DiGraph()
    expected.add_nodes_from((f"c{i}",) for i in range(n))
    expected.add_edges_from(((f"c{i}",), (f"c{j}",)) for i in range(n) for j in needs[i])

    assert set(graph.nx.edges) == set(expected.edges) and list(graph.nx.nodes) == list(expected.nodes)
    assert graph.needed_by() == dict(expected.in_degree)
    assert graph.is_acyclic() == nx.is_directed_acyclic_graph(expected)
    if graph.is_acyclic():
        position = {node: i for i, node in enumerate(expected.nodes)}
        order = list(nx.lexicographical_topological_sort(expected.reverse(), key=position.get))
        assert graph.build_order() == order
    else:
        with pytest.raises(ValueError):
            graph.build_order()
    cyclic_parts = [part for part in nx.strongly_connected_components(expected)
                    if len(part) > 1 or expected.has_edge(*(2 * list(part)))]
    cycles = [d for d in diagnostics if d.code == "reference-cycle"]
    assert len(cycles) == len(cyclic_parts)
    for d in cycles:
        named = {link.split("'")[1] for link in d.message.removeprefix("reference cycle: ").split("; ")}
        assert any(named <= {p[0] for p in part} for part in cyclic_parts)  # a cycle within one part
    unused = {d.path[0] for d in diagnostics if d.code == "unused-component"}
    assert unused == {f"c{i}" for i in range(n) if expected.in_degree((f"c{i}",)) == 0 and i not in entries}


@given(st.integers(1, 9), st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), max_size=20))
def test_order_and_acyclicity_of_drawn_edge_tables_agree_with_networkx(n, pairs):
    graph = ComponentGraph(document=None)
    for i in range(n):
        graph.add_node((f"n{i}",), name=f"n{i}")
    expected = nx.DiGraph()
    expected.add_nodes_from((f"n{i}",) for i in range(n))
    for u, v in pairs:
        if u < n and v < n:
            graph.add_edge((f"n{u}",), (f"n{v}",), field="f")
            expected.add_edge((f"n{u}",), (f"n{v}",))
    assert graph.is_acyclic() == nx.is_directed_acyclic_graph(expected)
    assert graph.needed_by() == dict(expected.in_degree)
    if graph.is_acyclic():
        position = {node: i for i, node in enumerate(expected.nodes)}
        assert graph.build_order() == list(nx.lexicographical_topological_sort(expected.reverse(), key=position.get))
    assert set(graph.nx.edges) == set(expected.edges)
    assert all(graph.has_edge(u, v) for u, v in expected.edges)
