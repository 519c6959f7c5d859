"""What a cold `modalities validate` leaves out: networkx for a graph without a cycle, the config classes the file
does not name (each is defined in a module of its own, see registry/lazy.py) and their pydantic validators. And the
plain build order it uses instead of networkx agrees with networkx's own."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from modalities.config.graph import ComponentGraph
from modalities.config.resolve import ResolvedDocument
from tests.config.conftest import REPO, run_cli

QUICKSTART = REPO / "configs" / "quickstart.yaml"


def _in_fresh_process(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_validating_the_quick_start_imports_no_networkx_and_builds_only_the_validators_it_uses():
    out = _in_fresh_process(
        f"""
        import sys
        from modalities.cli.main import main
        rc = main(["validate", {str(QUICKSTART)!r}])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy"))
        print("CONFIG_MODULES", sorted(m.rpartition(".")[2] for m in sys.modules if ".configs." in m))
        from modalities.optim.config import AdamWOptimizerConfig, StepLRSchedulerConfig
        print("RC", rc, "NETWORKX", "networkx" in sys.modules, "RICH", "rich" in sys.modules, "HEAVY", heavy)
        print("ADAMW", AdamWOptimizerConfig.__pydantic_complete__, "STEP_LR", StepLRSchedulerConfig.__pydantic_complete__)
        """
    )
    assert "RC 0 NETWORKX False RICH False HEAVY []" in out, out
    assert "ADAMW True STEP_LR False" in out, out  # the quick start has adam_w and onecycle_lr
    # The modules of the config classes the quick start names (components/variants read off the file by hand), and
    # no other: e.g. neither step_lr's nor muon's nor a tokenizer's
    defined = ast.literal_eval(out.split("CONFIG_MODULES ")[1].splitlines()[0])
    assert defined == sorted([
        "adam",  # optimizer/adam_w
        "batch_sampler",
        "checkpoint_saving", "save_k_most_recent", "dcp_saving",
        "device_mesh",  # device_mesh/default
        "fsdp2_wrapped", "mixed_precision",  # model/fsdp2_wrapped and its mixed_precision_settings
        "parallel_degree",  # number_conversion/parallel_degree
        "raw_app_state",  # app_state/raw
        "distributed_sampler", "resumable_distributed_sampler", "ranked_sampler",  # and the base of both
        "fsdp2_clipper",
        "gpt2_collate_fn",
        "llm_data_loader",
        "loss",  # loss/clm_cross_entropy_loss
        "num_tokens_from_num_steps",
        "onecycle_lr",
        "packed_continuous_dataset",
        "rich_progress", "tensorboard_results",
    ]), defined


def test_a_cycle_is_still_found_and_printed_link_by_link(write_config):
    path = write_config(
        """\
        a: {component_key: number_conversion, variant_key: num_samples_from_num_tokens,
            config: {num_tokens: {instance_key: b, pass_type: BY_REFERENCE}, sequence_length: 2}}
        b: {component_key: number_conversion, variant_key: num_samples_from_num_tokens,
            config: {num_tokens: {instance_key: a, pass_type: BY_REFERENCE}, sequence_length: 2}}
        """
    )
    done = run_cli("validate", str(path))
    assert done.returncode == 1
    assert "reference cycle: 'a' references 'b' via num_tokens" in done.stderr
    assert "'b' references 'a' via num_tokens" in done.stderr


def _graph(n: int, edges: list[tuple[int, int]]) -> ComponentGraph:
    graph = ComponentGraph(document=ResolvedDocument(values={}))
    for i in range(n):
        graph.add_node((f"c{i}",), name=f"c{i}")
    for needer, needed in edges:
        graph.add_edge((f"c{needer}",), (f"c{needed}",), field="x", relation="references", span=None)
    return graph


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=30))))
def test_build_order_and_cycles_agree_with_networkx(drawn):
    import networkx as nx

    n, edges = drawn
    graph = _graph(n, edges)
    reference = nx.DiGraph()
    reference.add_nodes_from((f"c{i}",) for i in range(n))
    reference.add_edges_from(((f"c{a}",), (f"c{b}",)) for a, b in edges)
    acyclic = nx.is_directed_acyclic_graph(reference)
    assert graph.is_acyclic() == acyclic
    if acyclic:
        position = {(f"c{i}",): i for i in range(n)}
        expected = list(nx.lexicographical_topological_sort(reference.reverse(copy=False), key=position.__getitem__))
        assert graph.build_order() == expected
    assert graph.needed_by() == dict(reference.in_degree())
    assert sorted(graph.nx.edges) == sorted(reference.edges)


def test_the_networkx_view_keeps_every_attribute():
    graph = _graph(3, [(0, 1), (2, 1)])
    assert list(graph.nx.nodes(data=True)) == [(("c0",), {"name": "c0"}), (("c1",), {"name": "c1"}),
                                               (("c2",), {"name": "c2"})]
    assert graph.nx.edges[("c0",), ("c1",)] == {"field": "x", "relation": "references", "span": None}
