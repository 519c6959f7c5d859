"""Pictures of the component graph: DOT and Mermaid text, SVG and PNG through Graphviz's ``dot``.

The input is a networkx graph as :func:`display_graph` makes it from a compiled config: one node per component
instance, keyed by its path, with ``component_key``, ``variant_key``, ``name`` and ``span`` (and a ``settings``
node when settings refer to components or are interpolated); an edge ``a -> b`` means "a needs b" and carries
``field`` and ``relation``: "nests" (b is written inside a's config), "references" (``instance_key``) or
"interpolates" (a value of a comes through ``${...}`` from b; resolved when compiled, so not an order of
building). A shared instance is one node with several incoming edges. Nodes are grouped in a box per
``component_key``.

Most components read a few values from ``settings`` through ``${settings...}``: drawn one edge each, they make
a whole run's picture several screens wide (every component points at the one settings node, each edge
labelled with its fields). By default they are folded: a component's node counts the settings values it reads
(``settings_read``, listed in its tooltip) and the legend says so; ``all_edges`` draws each as an edge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import networkx as nx

from modalities.config.graph import REFERENCES
from modalities.schema.files import write_atomic

INTERPOLATES = "interpolates"
SETTINGS_NODE = ("settings",)
SETTINGS_READ_LEGEND = "blue 'reads N from ${settings}': N values interpolated from settings (--all-edges draws each)"


def display_graph(compiled, all_edges: bool = False) -> nx.MultiDiGraph:
    """The compiler's graph plus what it leaves out because building does not need it: references made from
    ``settings`` (from a ``settings`` node) and ``${...}`` interpolations between components (and settings),
    those of a component from ``settings`` folded into the component's ``settings_read`` unless
    ``all_edges``."""
    graph = compiled.graph
    shown = nx.MultiDiGraph()
    shown.add_nodes_from(graph.nx.nodes(data=True))
    shown.add_edges_from(graph.nx.edges(data=True))
    document = compiled.document
    source_map = document.source_map

    def owner(path: tuple) -> tuple | None:
        if path in graph.nodes:
            return path
        found = graph.owner_of(path)
        if found is not None:
            return found
        return SETTINGS_NODE if path[:1] == SETTINGS_NODE else None

    def ensure_settings() -> None:
        if SETTINGS_NODE not in shown:
            shown.add_node(SETTINGS_NODE, component_key="settings", variant_key="values", name="settings",
                           span=source_map.key(SETTINGS_NODE))

    for ref in graph.references.values():
        if ref.owner is None and ref.path[:1] == SETTINGS_NODE and ref.target in graph.nodes:
            ensure_settings()
            shown.add_edge(SETTINGS_NODE, ref.target, field=".".join(map(str, ref.path[1:])), relation=REFERENCES,
                           span=source_map.value(ref.path))
    links: dict[tuple, list[str]] = {}  # (source, destination) -> "field = ${...}" of each value interpolated
    spans: dict[tuple, Any] = {}
    for at, interpolations in document.provenance.items():
        source = owner(at)
        for expression, target in interpolations:
            destination = owner(target) if target is not None else None
            if source is None or destination is None or source == destination:
                continue
            field = ".".join(map(str, at[len(source):] if source != SETTINGS_NODE else at[1:]))
            links.setdefault((source, destination), []).append(f"{field} = ${{{expression}}}")
            spans.setdefault((source, destination), source_map.value(at))
    for (source, destination), fields in links.items():
        if destination == SETTINGS_NODE and source != SETTINGS_NODE and not all_edges:
            shown.nodes[source]["settings_read"] = fields
            continue
        if SETTINGS_NODE in (source, destination):
            ensure_settings()
        # folded: the fields alone label the edge (the expression's source is where it points), all in the tooltip
        named = fields if all_edges else [_short_name(field.split(" = ", 1)[0]) for field in fields]
        label = "\n".join(named[:3]) + (f"\n(+{len(fields) - 3} more)" if len(fields) > 3 else "")
        shown.add_edge(source, destination, field=label, relation=INTERPOLATES, span=spans[(source, destination)],
                       detail=[] if all_edges else fields)
    return shown

TEXT_FORMATS = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid"}
GRAPHVIZ_FORMATS = {".svg": "svg", ".png": "png"}
GRAPHVIZ_INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "conda: conda install graphviz)"
)

# Fill colours per component_key, assigned in sorted key order so a picture is stable from run to run.
_PALETTE = (
    "#dbeafe", "#dcfce7", "#fef9c3", "#fce7f3", "#ede9fe", "#ffedd5",
    "#cffafe", "#f3f4f6", "#e0e7ff", "#fee2e2", "#ecfccb", "#fae8ff",
)  # fmt: skip
_CLUSTER_BORDER = "#9ca3af"


class GraphRenderError(Exception):
    pass


class GraphvizNotFound(GraphRenderError):
    def __init__(self, fmt: str):
        super().__init__(
            f"rendering .{fmt} needs Graphviz's `dot` program, which is not on PATH: {GRAPHVIZ_INSTALL_HINT}. "
            "Without it, write .dot (Graphviz source) or .mmd (Mermaid), or print DOT with `-o -`."
        )


def _span_text(span: Any) -> str:
    if span is None:
        return ""
    file, line = getattr(span, "file", None), getattr(span, "line", None)
    if file is None and isinstance(span, tuple) and len(span) >= 2:
        file, line = span[0], span[1]
    return f"{file}:{line}" if file is not None else str(span)


def _short_name(name: str) -> str:
    """``train_dataloader.config.batch_sampler.config.sampler`` -> ``train_dataloader.batch_sampler.sampler``:
    the ``config`` steps repeat on every nested node and make labels wide without saying anything."""
    return ".".join(part for part in name.split(".") if part != "config")


def _kind_of(data: dict) -> str:
    key = data.get("component_key")
    return key if isinstance(key, str) else "?"


def _ordered_nodes(graph: nx.DiGraph) -> list:
    """The compiler adds nodes in file order, which is the order a reader expects."""
    return list(graph.nodes)


def _node_ids(graph: nx.DiGraph) -> dict[Any, str]:
    """Short ids: paths hold list indices and dots that would need quoting everywhere."""
    return {node: f"n{i}" for i, node in enumerate(_ordered_nodes(graph))}


def _colors(graph: nx.DiGraph) -> dict[str, str]:
    kinds = sorted({_kind_of(d) for _, d in graph.nodes(data=True)})
    return {kind: _PALETTE[i % len(_PALETTE)] for i, kind in enumerate(kinds)}


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def to_dot(graph: nx.DiGraph, title: str | None = None) -> str:
    """Graphviz source: a box per component_key, a node per instance, solid edges for nesting and dashed
    edges for references, each labelled with the field that makes it."""
    ids = _node_ids(graph)
    colors = _colors(graph)
    lines = [
        "digraph components {",
        "  rankdir=LR;",
        "  newrank=true;",
        "  compound=true;",
        "  nodesep=0.35;",
        "  ranksep=0.7;",
        '  graph [fontname="Helvetica", fontsize=12, labeljust=l];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, color="#4b5563"];',
        '  edge [fontname="Helvetica", fontsize=9, color="#4b5563", fontcolor="#374151"];',
    ]
    legend = (
        "solid arrow: nested in the config · dashed arrow: reference (instance_key) · "
        "dotted blue arrow: value interpolated with ${...}"
    )
    if any(data.get("settings_read") for _, data in graph.nodes(data=True)):
        legend += f"\n{SETTINGS_READ_LEGEND}"
    lines.append(f"  labelloc=t; label={_dot_string(title + chr(10) + legend if title else legend)};")
    by_kind: dict[str, list] = {}
    for node in _ordered_nodes(graph):
        by_kind.setdefault(_kind_of(graph.nodes[node]), []).append(node)
    for kind in sorted(by_kind):
        lines.append(f"  subgraph {_dot_string('cluster_' + kind)} {{")
        lines.append(
            f'    label={_dot_string(kind)}; style="rounded,dashed"; color="{_CLUSTER_BORDER}"; fontcolor="#374151";'
        )
        for node in by_kind[kind]:
            data = graph.nodes[node]
            name = data.get("name") or ".".join(map(str, node))
            variant = f"{data.get('component_key')}/{data.get('variant_key')}"
            where = _span_text(data.get("span"))
            read = data.get("settings_read") or []
            label = (f'<<b>{_html(_short_name(name))}</b><br/><font point-size="9">{_html(variant)}</font>'
                     + (f'<br/><font point-size="8" color="#1d4ed8">{_html(_settings_count(read))}</font>'
                        if read else "") + ">")
            tooltip = "\n".join(filter(None, [where, name, variant, *read]))
            lines.append(
                f'    {ids[node]} [label={label}, tooltip={_dot_string(tooltip)}, fillcolor="{colors[kind]}"];'
            )
        lines.append("  }")
    for source, target, data in graph.edges(data=True):
        attributes = [f"label={_dot_string(str(data.get('field', '')))}"]
        if data.get("relation") == REFERENCES:
            attributes.append("style=dashed")
        elif data.get("relation") == INTERPOLATES:
            attributes += ["style=dotted", 'color="#2563eb"', 'fontcolor="#1d4ed8"']
        tooltip = "\n".join(filter(None, [_span_text(data.get("span")), *data.get("detail", [])]))
        if tooltip:
            attributes.append(f"tooltip={_dot_string(tooltip)}")
        lines.append(f"  {ids[source]} -> {ids[target]} [{', '.join(attributes)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _settings_count(read: list[str]) -> str:
    return f"reads {len(read)} from ${{settings}}"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(graph: nx.DiGraph, title: str | None = None) -> str:
    """A Mermaid flowchart: a subgraph per component_key; references as dotted arrows."""
    ids = _node_ids(graph)
    colors = _colors(graph)
    lines = []
    if title:
        lines += ["---", f"title: {_mermaid_text(title)}", "---"]
    lines.append("flowchart LR")
    by_kind: dict[str, list] = {}
    for node in _ordered_nodes(graph):
        by_kind.setdefault(_kind_of(graph.nodes[node]), []).append(node)
    for i, kind in enumerate(sorted(by_kind)):
        lines.append(f'  subgraph k{i}["{_mermaid_text(kind)}"]')
        for node in by_kind[kind]:
            data = graph.nodes[node]
            name = _short_name(data.get("name") or ".".join(map(str, node)))
            variant = f"{data.get('component_key')}/{data.get('variant_key')}"
            read = data.get("settings_read") or []
            more = f"<br/><small>{_mermaid_text(_settings_count(read))}</small>" if read else ""
            lines.append(
                f'    {ids[node]}["<b>{_mermaid_text(name)}</b><br/><small>{_mermaid_text(variant)}</small>{more}"]'
            )
        lines.append("  end")
        lines.append(f"  style k{i} fill:none,stroke:{_CLUSTER_BORDER},stroke-dasharray:4")
    for source, target, data in graph.edges(data=True):
        arrow = "-.->" if data.get("relation") in (REFERENCES, INTERPOLATES) else "-->"
        field = _mermaid_text(str(data.get("field", "")))
        lines.append(f'  {ids[source]} {arrow}|"{field}"| {ids[target]}')
    for node in _ordered_nodes(graph):
        lines.append(f"  style {ids[node]} fill:{colors[_kind_of(graph.nodes[node])]}")
    return "\n".join(lines) + "\n"


def output_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in TEXT_FORMATS:
        return TEXT_FORMATS[suffix]
    if suffix in GRAPHVIZ_FORMATS:
        return GRAPHVIZ_FORMATS[suffix]
    known = ", ".join(sorted(TEXT_FORMATS) + sorted(GRAPHVIZ_FORMATS))
    raise GraphRenderError(f"cannot tell the format of '{path}' from its extension: use one of {known}")


def run_graphviz(dot_source: str, fmt: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFound(fmt)
    result = subprocess.run([dot, f"-T{fmt}"], input=dot_source.encode(), capture_output=True, timeout=120)
    if result.returncode != 0:
        raise GraphRenderError(f"Graphviz `dot -T{fmt}` failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def render_to_file(graph: nx.DiGraph, out_path: str | os.PathLike, title: str | None = None) -> Path:
    """Write the picture in the format the extension names (through a temporary name)."""
    out = Path(out_path)
    fmt = output_format(out)
    if fmt == "dot":
        data = to_dot(graph, title).encode()
    elif fmt == "mermaid":
        data = to_mermaid(graph, title).encode()
    else:
        data = run_graphviz(to_dot(graph, title), fmt)
    return write_atomic(out, data)
