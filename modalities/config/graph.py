"""Stage 3: the resolved Document -> a networkx DiGraph of every component instance.

Nodes are component instances wherever they stand (top level, nested inline, in lists, in ``settings``), keyed
by their path. An edge ``a -> b`` means "a needs b" (b is nested in a's config, or a's config references b) and
carries the field that creates it, so a cycle can be printed link by link.

The edges are recorded in plain tables as the graph is built, and the networkx DiGraph (``ComponentGraph.nx``)
is made from them when something asks for it (rendering, printing a cycle): importing networkx costs about
0.1 s, two thirds of what `validate` needs for a config without a cycle, which gets its acyclicity check and
its build order from the same tables.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx

from modalities.config.diagnostics import WARNING, Diagnostic, did_you_mean
from modalities.config.resolve import REFERENCE_PASS_TYPE, ResolvedDocument, is_component_node, is_reference_node
from modalities.config.spans import Path, Span, dotted, get_at, path_part

COMPONENT_NODE_KEYS = ("component_key", "variant_key", "config")
REFERENCE_NODE_KEYS = ("instance_key", "pass_type")
NESTS = "nests"
REFERENCES = "references"


@dataclass
class ComponentNode:
    path: Path
    component_key: Any
    variant_key: Any
    config: Any
    span: Span | None

    @property
    def name(self) -> str:
        return dotted(self.path)


@dataclass
class Reference:
    """A ``{instance_key, pass_type}`` node at ``path``, made by component ``owner`` (None outside components)."""

    path: Path
    owner: Path | None
    instance_key: Any
    target: Path | None = None


@dataclass
class ComponentGraph:
    document: ResolvedDocument
    nodes: dict[Path, ComponentNode] = field(default_factory=dict)
    references: dict[Path, Reference] = field(default_factory=dict)
    # needer -> {needed: the edge's data (field, relation, span)}, in the order the edges were added
    needs: dict[Path, dict[Path, dict]] = field(default_factory=dict)
    node_data: dict[Path, dict] = field(default_factory=dict)  # the networkx node attributes
    _nx: Any = field(default=None, repr=False, compare=False)

    def add_node(self, path: Path, **data: Any) -> None:
        self.node_data[path] = data
        self.needs.setdefault(path, {})
        self._nx = None

    def add_edge(self, needer: Path, needed: Path, **data: Any) -> None:
        self.needs.setdefault(needer, {})[needed] = data
        self._nx = None

    def has_edge(self, needer: Path, needed: Path) -> bool:
        return needed in self.needs.get(needer, ())

    @property
    def nx(self) -> nx.DiGraph:
        """The graph as a networkx DiGraph (made on first use): nodes in file order with their attributes
        (component_key, variant_key, name, span), edges "needer -> needed" with field, relation and span."""
        if self._nx is None:
            import networkx

            graph = networkx.DiGraph()
            graph.add_nodes_from(self.node_data.items())
            graph.add_edges_from((u, v, data) for u, targets in self.needs.items() for v, data in targets.items())
            self._nx = graph
        return self._nx

    def needed_by(self) -> dict[Path, int]:
        """How many components need each one (its in-degree)."""
        counts = dict.fromkeys(self.node_data, 0)
        for targets in self.needs.values():
            for needed in targets:
                counts[needed] = counts.get(needed, 0) + 1
        return counts

    def is_acyclic(self) -> bool:
        """Whether no component needs itself, directly or through others (an empty graph is acyclic)."""
        return len(self._dependencies_first()) == len(self.node_data)

    def build_order(self) -> list[Path]:
        """Every component once, dependencies first; ties broken by position in the file, so the order is stable
        (networkx's lexicographical_topological_sort of the reversed graph, keyed by file position, gives the
        same); [] for no components. ValueError for a graph with a cycle."""
        order = self._dependencies_first()
        if len(order) != len(self.node_data):
            raise ValueError("the component graph has a cycle; it has no build order")
        return order

    def _dependencies_first(self) -> list[Path]:
        """Each component once all it needs is listed, the one first in the file among those ready; the
        components of a cycle are never ready, so a shorter list means a cycle."""
        position = {path: i for i, path in enumerate(self.node_data)}
        waiting = {path: len(self.needs.get(path, ())) for path in self.node_data}
        needers: dict[Path, list[Path]] = {}
        for needer, targets in self.needs.items():
            for needed in targets:
                needers.setdefault(needed, []).append(needer)
        ready = [(position[p], p) for p, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order: list[Path] = []
        while ready:
            _, path = heapq.heappop(ready)
            order.append(path)
            for needer in needers.get(path, ()):
                waiting[needer] -= 1
                if waiting[needer] == 0:
                    heapq.heappush(ready, (position[needer], needer))
        return order

    def top_level_components(self) -> list[ComponentNode]:
        return [n for p, n in self.nodes.items() if len(p) == 1]

    def container_members(self, path: Path, _seen: frozenset = frozenset()) -> list[Path]:
        """The components a list or mapping at ``path`` holds, at any depth, in document order, directly or
        through references (a reference to another container brings its members; a loop of containers ends);
        ``[path]`` for a component itself."""
        members: list[Path] = []

        def visit(value: Any, at: Path) -> None:
            if at in self.nodes:
                members.append(at)
            elif at in self.references:
                target = self.references[at].target
                if target in self.nodes:
                    members.append(target)
                elif target is not None and target not in _seen:
                    members.extend(self.container_members(target, _seen | {path}))
            elif isinstance(value, dict):
                for key, item in value.items():
                    visit(item, at + (key,))
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    visit(item, at + (index,))

        visit(get_at(self.document.values, path), path)
        return members

    def owner_of(self, path: Path) -> Path | None:
        """The nearest component whose ``config`` contains ``path`` (a nested component is in its parent's);
        None for a path in no component's config (a top-level component, a path beside a config)."""
        for i in range(len(path) - 1, 0, -1):
            if path[:i] in self.nodes and path[i] == "config":
                return path[:i]
        return None


def build_component_graph(
    document: ResolvedDocument, entry_points: Iterable[str] = ()
) -> tuple[ComponentGraph, list[Diagnostic]]:
    """The graph of every component node of the document (in file order), with an edge from a component to each
    one its config nests or references (a reference to a list or mapping: to each component it holds), and the
    diagnostics: keys a component or reference node does not take, a missing or non-string variant_key, a
    pass_type other than BY_REFERENCE, an instance_key that names no component, list or mapping of them (a
    "did you mean", else the first 12 top-level components), each cycle (one per strongly connected part,
    link by link), and a warning for each top-level component that no component and no top-level reference
    uses and that is not one of ``entry_points``."""
    builder = _GraphBuilder(document)
    builder.walk(document.values, (), None)
    builder.link_references()
    builder.link_container_references()
    builder.check_cycles()
    builder.warn_unused(set(entry_points))
    return builder.graph, builder.diagnostics


class _GraphBuilder:
    def __init__(self, document: ResolvedDocument):
        self.document = document
        self.graph = ComponentGraph(document=document)
        self.diagnostics: list[Diagnostic] = []

    def span(self, path: Path) -> Span | None:
        return self.document.source_map.value(path)

    def error(self, path: Path, message: str, hint: str | None = None, code: str = "", key: bool = False) -> None:
        span = self.document.source_map.key(path) if key else self.span(path)
        self.diagnostics.append(Diagnostic(message, span=span, path=path, hint=hint, code=code))

    def walk(self, value: Any, path: Path, owner: Path | None) -> None:
        if is_component_node(value):
            self.add_component(value, path, owner)
        elif is_reference_node(value):
            self.add_reference(value, path, owner)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.walk(item, path + (key,), owner)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.walk(item, path + (index,), owner)

    def add_component(self, value: dict, path: Path, owner: Path | None) -> None:
        for key in value:
            if key not in COMPONENT_NODE_KEYS:
                self.error(
                    path + (key,),
                    f"unexpected key '{key}' in a component node (it takes component_key, variant_key, config)",
                    hint=did_you_mean(key, COMPONENT_NODE_KEYS) or "put component settings under 'config:'",
                    code="unknown-field",
                    key=True,
                )
        if "variant_key" not in value:
            self.error(path, f"component '{dotted(path)}' has no variant_key", code="missing-variant", key=True)
        elif not isinstance(value["variant_key"], str):
            self.error(
                path + ("variant_key",),
                f"variant_key must be a string naming a variant, got {value['variant_key']!r}",
                code="unknown-variant",
            )
        config = value.get("config")
        node = ComponentNode(path, value.get("component_key"), value.get("variant_key"), config, self.span(path))
        self.graph.nodes[path] = node
        self.graph.add_node(
            path,
            component_key=node.component_key,
            variant_key=node.variant_key,
            name=node.name,
            span=self.document.source_map.key(path) or node.span,
        )
        if owner is not None:
            self.graph.add_edge(owner, path, field=dotted(path[len(owner) + 1 :]), relation=NESTS, span=node.span)
        if config is not None:
            self.walk(config, path + ("config",), path)

    def add_reference(self, value: dict, path: Path, owner: Path | None) -> None:
        for key in value:
            if key not in REFERENCE_NODE_KEYS:
                self.error(
                    path + (key,),
                    f"unexpected key '{key}' in a reference (it takes instance_key and pass_type)",
                    hint=did_you_mean(key, REFERENCE_NODE_KEYS),
                    code="unknown-field",
                    key=True,
                )
        pass_type = value.get("pass_type", REFERENCE_PASS_TYPE)
        if pass_type != REFERENCE_PASS_TYPE:
            self.error(
                path + ("pass_type",),
                f"pass_type must be {REFERENCE_PASS_TYPE}, not {pass_type!r}",
                hint="a reference always shares the one built object",
                code="pass-type",
            )
        self.graph.references[path] = Reference(path, owner, value.get("instance_key"))

    def link_references(self) -> None:
        top_level = [p[0] for p in self.graph.nodes if len(p) == 1]
        nested = [dotted(p) for p in self.graph.nodes if len(p) > 1]
        for ref in self.graph.references.values():
            target = self._find_target(ref.instance_key)
            if target is None:
                key = ref.instance_key
                hint = did_you_mean(key, top_level + nested) if isinstance(key, str) else None
                if hint is None and top_level:
                    hint = "components defined at the top level: " + ", ".join(map(str, top_level[:12]))
                self.error(
                    ref.path + ("instance_key",),
                    f"unknown instance_key {key!r}: no component of that name",
                    hint=hint,
                    code="unknown-reference",
                )
                continue
            ref.target = target
            if target not in self.graph.nodes:
                continue  # a container: linked to its members once every reference has a target
            if ref.owner is not None and not self.graph.has_edge(ref.owner, target):
                field_path = dotted(ref.path[len(ref.owner) + 1 :])
                self.graph.add_edge(ref.owner, target, field=field_path, relation=REFERENCES, span=self.span(ref.path))

    def _find_target(self, instance_key: Any) -> Path | None:
        """A component node, or (as Modalities allows) a list or mapping of components such as a top-level
        ``eval_dataloaders: [...]``."""
        if not isinstance(instance_key, str) or not instance_key:
            return None
        if (instance_key,) in self.graph.nodes:
            return (instance_key,)
        parts = tuple(path_part(p) for p in instance_key.split("."))
        if parts in self.graph.nodes:
            return parts
        try:
            value = get_at(self.document.values, parts)
        except (KeyError, IndexError, TypeError):
            return None
        if isinstance(value, (list, dict)) and not is_reference_node(value) and parts[:1] != ("settings",):
            return parts
        return None

    def link_container_references(self) -> None:
        """A component that references a container needs every component the container holds."""
        for ref in self.graph.references.values():
            if ref.owner is None or ref.target is None or ref.target in self.graph.nodes:
                continue
            for member in self.graph.container_members(ref.target):
                if not self.graph.has_edge(ref.owner, member):
                    field_path = dotted(ref.path[len(ref.owner) + 1 :])
                    self.graph.add_edge(
                        ref.owner, member, field=field_path, relation=REFERENCES, span=self.span(ref.path)
                    )

    def check_cycles(self) -> None:
        if self.graph.is_acyclic():
            return
        import networkx as nx  # only for a config with a cycle: to find and print it link by link

        g = self.graph.nx
        for component in nx.strongly_connected_components(g):
            members = sorted(component, key=list(self.graph.nodes).index)
            if len(members) == 1 and not g.has_edge(members[0], members[0]):
                continue
            cycle = nx.find_cycle(g.subgraph(members), source=members[0])
            links = []
            for u, v in cycle:
                data = g.edges[u, v]
                verb = "references" if data["relation"] == REFERENCES else "contains"
                links.append(f"'{dotted(u)}' {verb} '{dotted(v)}' via {data['field']} ({data['span']})")
            first_edge = g.edges[cycle[0]]
            self.diagnostics.append(
                Diagnostic(
                    "reference cycle: " + "; ".join(links),
                    span=first_edge["span"],
                    path=cycle[0][0],
                    hint="components are built dependencies first, so a cycle can never be built: remove one link",
                    code="reference-cycle",
                )
            )

    def warn_unused(self, entry_points: set[str]) -> None:
        used_outside: set[Path] = set()
        for ref in self.graph.references.values():
            if ref.target is None:
                continue
            if ref.target in self.graph.nodes:
                if ref.owner is None:
                    used_outside.add(ref.target)
            else:
                used_outside.update(self.graph.container_members(ref.target))
        needed_by = self.graph.needed_by()
        for node in self.graph.top_level_components():
            name = node.path[0]
            if needed_by[node.path] or node.path in used_outside or name in entry_points:
                continue
            self.diagnostics.append(
                Diagnostic(
                    f"component '{name}' is not used by any other component nor by the run",
                    span=self.document.source_map.key(node.path),
                    path=node.path,
                    severity=WARNING,
                    hint="it is still built; remove it if it is left over",
                    code="unused-component",
                )
            )
