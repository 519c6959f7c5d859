"""`modalities graph`: the pictures show exactly the compiler's graph."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modalities.config.compiler import compile_file
from modalities.config.graph import NESTS, REFERENCES
from modalities.config.graph_render import render_to_file, to_dot, to_mermaid
from tests.schema.conftest import REPO_ROOT

DATA = Path(__file__).parent / "data"
TOY_CONFIG = DATA / "toy_training.yaml"


# Configs written for several ranks: compiled as one of them (their degrees must fill the world size).
WORLD_SIZE = {REPO_ROOT / "configs" / "quickstart_tp.yaml": "2"}


def configs_to_draw() -> list[Path]:
    return sorted((REPO_ROOT / "configs").rglob("*.yaml")) + sorted(DATA.glob("*.yaml"))


def compiled_graph(path: Path, registry):
    compiled = compile_file(path, registry)
    assert compiled.ok, [str(d) for d in compiled.diagnostics]
    return compiled.graph.nx


def graphviz_json(dot_source: str) -> dict:
    """Graphviz's own reading of the DOT text (so the syntax is checked too)."""
    result = subprocess.run(["dot", "-Tjson0"], input=dot_source.encode(), capture_output=True, check=True)
    return json.loads(result.stdout)


def test_dot_of_every_config_has_the_compilers_nodes_edges_and_clusters(toy_registry, monkeypatch):
    for path in configs_to_draw():
        monkeypatch.setenv("WORLD_SIZE", WORLD_SIZE.get(path, "1"))
        graph = compiled_graph(path, toy_registry)
        drawn = graphviz_json(to_dot(graph, str(path)))
        objects = drawn.get("objects", [])
        nodes = {o["_gvid"]: o for o in objects if "nodes" not in o}
        # Graphviz keeps the DOT escape `\\n` in its JSON strings.
        name_of = {gvid: o["tooltip"].split("\\n")[1] for gvid, o in nodes.items()}
        assert sorted(name_of.values()) == sorted(d["name"] for _, d in graph.nodes(data=True)), path

        expected_edges = sorted(
            (graph.nodes[u]["name"], graph.nodes[v]["name"], d["field"], d["relation"])
            for u, v, d in graph.edges(data=True)
        )
        drawn_edges = sorted(
            (
                name_of[e["tail"]],
                name_of[e["head"]],
                e["label"],
                REFERENCES if e.get("style") == "dashed" else NESTS,
            )
            for e in drawn.get("edges", [])
        )
        assert drawn_edges == expected_edges, path

        clusters = {o["label"]: {name_of[n] for n in o["nodes"]} for o in objects if "nodes" in o}
        expected_clusters: dict[str, set] = {}
        for _, d in graph.nodes(data=True):
            expected_clusters.setdefault(d["component_key"], set()).add(d["name"])
        assert clusters == expected_clusters, path

        for gvid, o in nodes.items():
            file_line = o["tooltip"].split("\\n")[0]
            assert re.fullmatch(r".+\.yaml:\d+", file_line), o["tooltip"]


def test_a_shared_instance_is_drawn_once_with_an_edge_from_each_user(toy_registry):
    graph = compiled_graph(TOY_CONFIG, toy_registry)
    dot = to_dot(graph)
    model_nodes = re.findall(r"^\s+(n\d+) \[label=<<b>model</b>", dot, flags=re.M)
    assert len(model_nodes) == 1
    incoming = re.findall(rf"^\s+n\d+ -> {model_nodes[0]} \[", dot, flags=re.M)
    assert len(incoming) == graph.in_degree[("model",)] == 3


def test_labels_show_name_and_component_key_variant_key(toy_registry):
    graph = compiled_graph(TOY_CONFIG, toy_registry)
    dot = to_dot(graph)
    assert "<b>trainer.num_steps</b><br/>" in dot  # the `config` steps are left out of nested names
    assert "number_conversion/num_steps_from_num_samples" in dot
    assert 'tooltip="' + str(TOY_CONFIG) in dot or "toy_training.yaml:" in dot


def test_mermaid_has_a_subgraph_per_component_key_and_every_edge(toy_registry):
    graph = compiled_graph(TOY_CONFIG, toy_registry)
    mermaid = to_mermaid(graph, "toy")
    assert mermaid.splitlines()[:4] == ["---", "title: toy", "---", "flowchart LR"]
    subgraphs = re.findall(r'^  subgraph k\d+\["([^"]+)"\]$', mermaid, flags=re.M)
    assert sorted(subgraphs) == sorted({d["component_key"] for _, d in graph.nodes(data=True)})
    solid = re.findall(r"^  n\d+ -->\|", mermaid, flags=re.M)
    dashed = re.findall(r"^  n\d+ -\.->\|", mermaid, flags=re.M)
    relations = [d["relation"] for *_, d in graph.edges(data=True)]
    assert len(solid) == relations.count(NESTS) and len(dashed) == relations.count(REFERENCES)


def test_svg_has_file_line_tooltips_and_png_renders(toy_registry, tmp_path):
    graph = compiled_graph(TOY_CONFIG, toy_registry)
    svg = render_to_file(graph, tmp_path / "g.svg", "toy").read_text()
    line = next(i for i, text in enumerate(TOY_CONFIG.read_text().splitlines(), 1) if text.startswith("optimizer:"))
    assert f"toy_training.yaml:{line}" in svg and "<svg" in svg
    png = render_to_file(graph, tmp_path / "g.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "modalities", *args], capture_output=True, text=True, cwd=REPO_ROOT, env=env
    )


def test_cli_prints_dot_and_writes_mermaid(tmp_path):
    plugin = ("--plugin", "tests.schema.plugins.toy_plugin")
    printed = _cli("graph", *plugin, str(TOY_CONFIG), "-o", "-")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("digraph components {") and "toy_trainer/default" in printed.stdout
    written = _cli("graph", *plugin, str(TOY_CONFIG), "-o", str(tmp_path / "g.mmd"))
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "g.mmd").read_text().startswith("---")


def test_cli_without_graphviz_names_the_package_and_the_formats_that_work(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no `dot` here; python is called by its full path
    result = _cli("graph", str(DATA / "number_conversion_only.yaml"), "-o", str(tmp_path / "g.svg"), env=env)
    assert result.returncode == 2
    assert "Graphviz" in result.stderr and "apt-get install graphviz" in result.stderr
    assert ".dot" in result.stderr and ".mmd" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "g.svg").exists()


def test_cli_rejects_an_unknown_extension_before_compiling(tmp_path):
    result = _cli("graph", "does_not_exist.yaml", "-o", str(tmp_path / "g.jpeg"))
    assert result.returncode == 2
    assert "g.jpeg" in result.stderr and ".svg" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("config", [DATA / "number_conversion_only.yaml"])
def test_cli_reports_config_errors_and_still_draws(config, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(config.read_text().replace("num_tokens: 4096", "num_tokenz: 4096"))
    result = _cli("graph", str(broken), "-o", str(tmp_path / "g.dot"))
    assert result.returncode == 1
    assert "num_tokenz" in result.stderr and "broken.yaml:" in result.stderr
    assert (tmp_path / "g.dot").read_text().startswith("digraph")


def test_interpolations_inside_a_nested_config_block_come_from_their_component():
    """`attention_norm_config: {norm_type, config: {normalized_shape: ${model_raw.config.n_embd}}}`: the inner
    `config` is a field of model_raw, not a component; its interpolations are drawn from model_raw (a
    self-link, left out), never from a node made up of the nested path."""
    from modalities.config.graph_render import INTERPOLATES, display_graph
    from modalities.registry import default_registry

    compiled = compile_file(REPO_ROOT / "configs" / "quickstart.yaml", default_registry())
    assert compiled.ok, [str(d) for d in compiled.diagnostics]
    shown = display_graph(compiled)
    assert set(shown.nodes) <= set(compiled.graph.nodes) | {("settings",)}
    interpolated = {(a, b) for a, b, data in shown.edges(data=True) if data.get("relation") == INTERPOLATES}
    assert interpolated and all(a != b for a, b in interpolated)


def _dot_edges(dot_source: str) -> list[tuple[str, str, str]]:
    """(source, target, label) of every edge line of the DOT text."""
    return re.findall(r'^  (n\d+) -> (n\d+) \[label="((?:[^"\\]|\\.)*)"', dot_source, re.MULTILINE)


def _values_in(label: str) -> int:
    """How many interpolated values an --all-edges label lists: one a line, and "(+N more)"."""
    more = re.search(r"\(\+(\d+) more\)", label)
    return label.count("${settings.") + (int(more.group(1)) if more else 0)


def test_the_quick_starts_graph_folds_the_settings_it_reads_and_all_edges_draws_them(capsys):
    """Every `${settings...}` drawn as its own labelled edge into the one settings node made the quick start's
    picture 3,923 pt wide; by default each component counts them instead, so the edges into any node, and
    their labels, stay few and short. --all-edges draws them all, as before."""
    from modalities.cli.main import main

    assert main(["graph", str(REPO_ROOT / "configs" / "quickstart.yaml")]) == 0
    folded = capsys.readouterr().out
    assert main(["graph", str(REPO_ROOT / "configs" / "quickstart.yaml"), "--all-edges"]) == 0
    every = capsys.readouterr().out
    settings_node = re.search(r'^    (n\d+) \[label=<<b>settings</b>', every, re.MULTILINE).group(1)

    into_settings = [e for e in _dot_edges(every) if e[1] == settings_node and "${settings." in e[2]]
    counts = [int(n) for n in re.findall(r"reads (\d+) from \$\{settings\}", folded)]
    # the quick start's components that read settings: the samplers, loaders, datasets, model, loss, ...
    assert len(into_settings) == len(counts) == 15
    assert sum(counts) == sum(map(_values_in, (label for _, _, label in into_settings)))
    assert len(_dot_edges(every)) == 48 and len(_dot_edges(folded)) == 48 - 15
    assert not [e for e in _dot_edges(folded) if e[1] == settings_node and "dotted" in e[2]]
    fan_in = max(sum(1 for e in _dot_edges(folded) if e[1] == node) for node in {e[1] for e in _dot_edges(folded)})
    assert fan_in <= 4 < len(into_settings)  # the most edges into one node: the model's four users
    lines = [line for _, _, label in _dot_edges(folded) for line in label.split("\\n")]
    assert max(map(len, lines)) <= 30  # field names alone; the `= ${...}` is in the tooltip
    assert "(--all-edges draws each)" in folded and "(--all-edges draws each)" not in every
    assert "quickstart.yaml:309\\nconfig.train_dataloader_tag = ${train_dataloader.config.dataloader_tag}\"" in folded


def test_folded_settings_show_in_mermaid_and_a_config_without_settings_reads_is_unchanged():
    from modalities.config.graph_render import display_graph
    from modalities.registry import default_registry

    compiled = compile_file(REPO_ROOT / "configs" / "quickstart.yaml", default_registry())
    mermaid = to_mermaid(display_graph(compiled))
    assert mermaid.count("from ${settings}</small>") == 15
    assert to_mermaid(display_graph(compiled, all_edges=True)).count("from ${settings}") == 0
