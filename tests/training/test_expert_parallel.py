"""Mixture of experts in a run (tests/training/moe.yaml): expert parallelism (model/ep_wrapped over the mesh's ep
ranks, with and without model/qwen_tp) trains as one process, resumes across expert-parallel layouts, and the
routing shows on the progress line, in results.jsonl, TensorBoard and `modalities plot`; `validate` knows the
family.

One process with k micro-batches accumulated reads, micro-batch by micro-batch, the samples k expert-parallel
ranks read at once (micro-batch 1): routing, capacity and auxiliary losses are per forward, so the two runs are
the same computation, dropped slots included."""

from __future__ import annotations

import re

import pytest
import torch
import yaml

from tests.training.conftest import REPO
from tests.training.layouts import train_layout, train_one_process

pytestmark = pytest.mark.slow  # multi-process runs: scheduled first (tests/conftest.py)

MOE_CONFIG = REPO / "tests" / "training" / "moe.yaml"


def _accumulating(steps: int) -> tuple[str, str]:
    return "--set", f"settings.step_profile.gradient_accumulation_steps={steps}"


def _expert_parallel(degree: int) -> tuple[str, str]:
    return "--set", f"device_mesh.config.expert_parallel_degree={degree}"


# session scope: under xdist's worksteal a worker may run a module's tests in several stretches, between
# which a module-scoped run would be thrown away and trained again
@pytest.fixture(scope="session")
def one_of_two(tmp_path_factory):
    """One process, 2 micro-batches of 1 sample a step: what 2 expert-parallel ranks read."""
    return train_one_process(tmp_path_factory, MOE_CONFIG, *_accumulating(2))


@pytest.fixture(scope="session")
def one_of_four(tmp_path_factory):
    return train_one_process(tmp_path_factory, MOE_CONFIG, *_accumulating(4))


def assert_same_moe_run(run, baseline, samples_per_step: int):
    (train, _), (expected, _) = run, baseline
    assert sorted(train) == sorted(expected) == [1, 2, 3, 4]
    for step in train:
        got, want = train[step], expected[step]
        # ("train loss last" is one process's last micro-batch, the ranks' mean of theirs: not the same quantity)
        assert got["losses"]["train loss avg"] == pytest.approx(want["losses"]["train loss avg"], rel=1e-6, abs=1e-6)
        # the norm of float32 gradients summed in another order (sharded vs whole): ~1e-5 relative
        assert got["metrics"]["grad norm last"] == pytest.approx(want["metrics"]["grad norm last"], rel=1e-4)
        assert got["metrics"]["moe aux loss"] == pytest.approx(want["metrics"]["moe aux loss"], rel=1e-5)
        # the routers chose the same experts for every token: counts and drops equal exactly
        assert got["metrics"]["moe tokens per expert"] == want["metrics"]["moe tokens per expert"]
        assert got["metrics"]["moe over capacity"] == want["metrics"]["moe over capacity"]
        # by hand: samples of 32 tokens
        assert got["metrics"]["consumed tokens"] == want["metrics"]["consumed tokens"] == 32 * samples_per_step * step


def older_spelling(config: dict) -> None:
    """moe.yaml as the reference's first MoE config spells expert parallelism: over the mesh's tp dimension
    (ep_wrapped's ep_mesh_dim_name, no tensor parallelism), each rank reading its share of the world's samples."""
    config["ep_model"]["config"]["ep_mesh_dim_name"] = "tp"
    config["fsdp_model"]["config"]["model"] = {"instance_key": "ep_model", "pass_type": "BY_REFERENCE"}
    del config["tp_model"]
    config["device_mesh"]["config"]["tensor_parallel_degree"] = 2
    sampler = config["train_dataloader"]["config"]["batch_sampler"]["config"]["sampler"]
    sampler["variant_key"] = "resumable_distributed_sampler"
    for name in ("device_mesh", "data_parallel_key"):
        del sampler["config"][name]
    sampler["config"].update(rank="${settings.cuda_env.global_rank}", num_replicas="${settings.cuda_env.world_size}")


@pytest.mark.slow
@pytest.mark.parametrize("spelling", ["expert_parallel_degree", "ep_mesh_dim_name"])
def test_ep_2_trains_as_one_process(tmp_path, run_torchrun, one_of_two, spelling):
    baseline, _ = one_of_two
    if spelling == "expert_parallel_degree":
        run = train_layout(run_torchrun, MOE_CONFIG, tmp_path, 2, "ep2", *_expert_parallel(2))
    else:
        run = train_layout(run_torchrun, _variant(tmp_path, older_spelling), tmp_path, 2, "ep2_over_tp")
    assert_same_moe_run(run, baseline, 2)


@pytest.mark.slow
def test_tp_2_x_ep_2_trains_as_one_process(tmp_path, run_torchrun, one_of_two):
    """4 ranks: the experts split over 2 data-parallel ranks, the attention of each over 2 tp ranks."""
    baseline, _ = one_of_two
    run = train_layout(run_torchrun, MOE_CONFIG, tmp_path, 4, "tp2ep2", *_expert_parallel(2),
                       "--set", "device_mesh.config.tensor_parallel_degree=2")
    assert_same_moe_run(run, baseline, 2)


@pytest.mark.slow
def test_ep_4_trains_as_one_process_and_resumes_on_ep_2(tmp_path, run_torchrun, one_of_four):
    baseline, _ = one_of_four
    assert_same_moe_run(train_layout(run_torchrun, MOE_CONFIG, tmp_path, 4, "ep4", *_expert_parallel(4)), baseline, 4)
    # saved with the experts over 4 ranks (2 each), resumed with them over 2 ranks (4 each) accumulating 2
    resumed, _ = train_layout(run_torchrun, MOE_CONFIG, tmp_path, 2, "resumed_ep2", *_expert_parallel(2),
                              *_accumulating(2), "--resume", str(tmp_path / "ep4" / "checkpoints" / "step_2"))
    assert sorted(resumed) == [3, 4]
    for step in (3, 4):
        assert resumed[step]["losses"]["train loss avg"] == pytest.approx(
            baseline[0][step]["losses"]["train loss avg"], rel=1e-6, abs=1e-6)
        assert resumed[step]["metrics"]["moe tokens per expert"] == baseline[0][step]["metrics"]["moe tokens per expert"]


# -- what the run shows ----------------------------------------------------------------------------------------------

def test_the_routing_shows_in_results_tensorboard_and_plot(one_of_two):
    from modalities.logging.curves import read_results
    from modalities.logging.plot import draw_runs
    from tests.training.test_observability import _scalars

    (train, _), root = one_of_two
    folder = root / "one"
    record = train[4]
    per_expert = record["metrics"]["moe tokens per expert"]
    # 2 blocks x 8 experts; a step routes 2 micro-batches x 32 tokens x top-2 slots in each block
    assert [len(row) for row in per_expert] == [8, 8] and [sum(row) for row in per_expert] == [128, 128]
    load = record["metrics"]["moe load max/mean"]
    assert load == pytest.approx(max(max(row) / (sum(row) / 8) for row in per_expert))
    assert 0 < record["metrics"]["moe over capacity"] < 1  # capacity 5 of 8 experts for 64 slots: some drop
    scalars, _ = _scalars(folder / "tensorboard")
    assert [step for step, _ in scalars["train/moe aux loss"]] == [1, 2, 3, 4]
    assert scalars["train/moe over capacity"][-1][1] == pytest.approx(record["metrics"]["moe over capacity"], rel=1e-6)
    fig = draw_runs([read_results(folder)])
    assert {"MoE auxiliary loss", "expert load"} <= {ax.get_title() for ax in fig.axes}
    aux_ax = next(ax for ax in fig.axes if ax.get_title() == "MoE auxiliary loss")
    assert list(aux_ax.lines[0].get_ydata()) == pytest.approx([train[s]["metrics"]["moe aux loss"] for s in (1, 2, 3, 4)])


def test_the_banner_counts_active_parameters():
    from modalities.models.moe.model import inactive_parameters_per_token
    from modalities.training.report import format_banner
    from tests.models.test_moe import tiny_model
    from tests.training.test_observability import _info

    # two blocks of 4 experts (3 x 16 x 32 each); a token runs 2 of 4: half of the 2 x 6,144 expert weights
    assert inactive_parameters_per_token(tiny_model()) == 2 * 3 * 4 * 16 * 32 // 2
    info = _info(num_parameters=386_432, num_active_parameters=386_432 - 2 * 36_864)
    assert "386.4K parameters (386,432), 312.7K active per token (312,704); " in format_banner(info)
    assert "active" not in format_banner(_info())  # a dense model


# -- validate ------------------------------------------------------------------------------------------------------

def _validate(capsys, *args) -> tuple[int, str]:
    from modalities.cli.main import main

    status = main(["validate", *map(str, args)])
    out = capsys.readouterr()
    return status, out.out + out.err


def _line_of(path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(text))


def test_validate_checks_the_expert_parallel_degree(capsys):
    status, out = _validate(capsys, MOE_CONFIG, "--set", "device_mesh.config.world_size=6",
                            "--set", "device_mesh.config.expert_parallel_degree=3")
    assert status == 1
    model = _line_of(MOE_CONFIG, "model_raw:")
    assert re.search(r"<--set>:1:\d+: error: device_mesh.config.expert_parallel_degree: 8 experts \(moe_num_experts "
                     rf"of model_raw at {re.escape(str(MOE_CONFIG))}:{model + 1}:3\) do not split evenly over "
                     r"expert-parallel degree 3", out), out
    status, out = _validate(capsys, MOE_CONFIG, "--set", "device_mesh.config.world_size=6",
                            "--set", "device_mesh.config.expert_parallel_degree=4")
    assert status == 1
    assert "expert_parallel_degree 4 must divide the data-parallel shard degree 6" in out
    status, out = _validate(capsys, MOE_CONFIG, "--set", "device_mesh.config.world_size=4",
                            "--set", "device_mesh.config.expert_parallel_degree=4")
    assert status == 0, out


def test_validate_takes_context_parallelism_without_expert_parallelism(capsys):
    cp = ("--set", "device_mesh.config.context_parallel_degree=2")
    status, out = _validate(capsys, MOE_CONFIG, "--set", "device_mesh.config.world_size=2", *cp)
    assert status == 0 and "context" not in out, out
    status, out = _validate(capsys, MOE_CONFIG, "--set", "device_mesh.config.world_size=4", *cp,
                            "--set", "device_mesh.config.expert_parallel_degree=2")
    assert status == 1
    assert ("<--set>:1:44: error: device_mesh.config.context_parallel_degree: context parallelism does not combine "
            "with expert parallelism yet") in out, out


def test_validate_warns_of_a_capacity_that_drops_slots_when_balanced(capsys):
    status, out = _validate(capsys, MOE_CONFIG)
    line = _line_of(MOE_CONFIG, "    moe_capacity_factor:")
    assert status == 0
    # by hand: 32 tokens x 2 slots; capacity max(ceil(1.25 x 32 / 8), 4) = 5, 8 x 5 = 40 of 64 fit: 37.5% dropped
    assert (f"{MOE_CONFIG}:{line}:26: warning: model_raw.config.moe_capacity_factor: a forward of 32 tokens routes 64 "
            "slots (2 per token), but 8 experts take 5 each: at least 37.5% of the slots are dropped") in out
    status, out = _validate(capsys, MOE_CONFIG, "--set", "model_raw.config.moe_capacity_factor=2.0")
    assert status == 0 and "moe_capacity_factor" not in out


def _variant(tmp_path, edit):
    config = yaml.safe_load(MOE_CONFIG.read_text().replace("${modalities_env:config_folder_path}", str(MOE_CONFIG.parent)))
    edit(config)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_validate_matches_the_loss_and_the_model(tmp_path, capsys):
    def clm_loss(config):
        config["loss_fn"] = {"component_key": "loss", "variant_key": "clm_cross_entropy_loss",
                             "config": {"target_key": "target_ids", "prediction_key": "logits"}}

    status, out = _validate(capsys, _variant(tmp_path, clm_loss))
    assert status == 0 and "warning: loss_fn: the model/moe at" in out and "nothing keeps the router balanced" in out

    def loss_of_a_dense_model(config):
        dense = yaml.safe_load((REPO / "tests" / "training" / "tp.yaml").read_text())["model_raw"]
        dense["config"].update(sequence_length=32, prediction_key="logits")
        for name in ("attention_norm_config", "ffn_norm_config", "lm_head_norm_config"):
            dense["config"][name]["config"]["normalized_shape"] = 128
        config["dense_model"] = dense
        config["loss_fn"]["config"]["model"] = {"instance_key": "dense_model", "pass_type": "BY_REFERENCE"}

    status, out = _validate(capsys, _variant(tmp_path, loss_of_a_dense_model))
    assert status == 1
    assert ("error: loss_fn.config.model: loss/moe_cross_entropy adds the auxiliary losses of a model/moe's blocks, "
            "but its model (model/gpt2 at") in out

    def ep_without_fsdp(config):
        config["app_state"]["config"]["model"] = {"instance_key": "tp_model", "pass_type": "BY_REFERENCE"}
        config["optimizer"]["config"]["wrapped_model"] = {"instance_key": "tp_model", "pass_type": "BY_REFERENCE"}
        config["device_mesh"]["config"].update(world_size=2, expert_parallel_degree=2)

    status, out = _validate(capsys, _variant(tmp_path, ep_without_fsdp))
    assert status == 1 and "error: ep_model: with expert parallelism the model must be wrapped by model/fsdp2_wrapped" in out

    def older_spelling_with_the_mesh_sampler(config):
        older_spelling(config)
        config["train_dataloader"]["config"]["batch_sampler"]["config"]["sampler"] = yaml.safe_load(
            MOE_CONFIG.read_text())["train_dataloader"]["config"]["batch_sampler"]["config"]["sampler"]

    status, out = _validate(capsys, _variant(tmp_path, older_spelling_with_the_mesh_sampler))
    assert status == 1 and ("the experts borrow the mesh's tp dimension" in out and "they would read the same "
                            "samples" in out), out


def test_mfu_counts_the_experts_a_token_runs():
    from modalities.models.mfu.gpt2_mfu import matmul_parameter_count
    from tests.models.test_moe import tiny_model

    model = tiny_model(num_layers=1)  # d_model 32, 4 experts of 16, top 2, vocab 64
    # per block: attention (32 + 16 + 16 + 32) x 32, norms 2 x 32 + 2 x 8, router 4 x 32, experts 3 x 4 x 16 x 32
    # of which a token runs 2 of 4; plus the final norm and the head (the embedding is looked up)
    experts = 3 * 4 * 16 * 32
    assert matmul_parameter_count(model) == 96 * 32 + 80 + 128 + experts // 2 + 32 + 64 * 32


# -- pipeline cuts of model/moe --------------------------------------------------------------------------------------

def test_qwen_stages_generator_cuts_the_moe_model_where_the_references_configs_say():
    from modalities.training.pipeline_plan import QwenStagesGenerator

    # the reference's tp_pp config: 2 blocks, embedding and head weigh 1 each, 2 per stage -> 2 stages
    assert QwenStagesGenerator(2, 1, 1).get_stages(num_layers_per_stage=2, pp_dims=2) == [
        ["token_emb", "layers.0"], ["layers.1", "final_norm", "lm_head"]]
    # 6 blocks, 3 per stage: ceil(8 / 3) = 3 stages of at most ceil(8 / 3) = 3
    assert QwenStagesGenerator(6, 1, 1).get_stages(num_layers_per_stage=3, pp_dims=3) == [
        ["token_emb", "layers.0", "layers.1"], ["layers.2", "layers.3", "layers.4"],
        ["layers.5", "final_norm", "lm_head"]]


def test_static_pipeline_shapes_come_all_or_none():
    from pydantic import ValidationError

    from modalities.training.pipeline import _static_shapes
    from modalities.training.pipeline_config import StagedPipelineConfig

    with pytest.raises(ValidationError, match="give all static_io fields or none: static_io_hidden_dim, "
                                              "static_io_vocab_size, static_io_dtype missing"):
        StagedPipelineConfig.model_validate(dict(
            whole_model=None, stages_generator=None, device_mesh=None, local_rank=0, pp_schedule_name="gpipe",
            num_layers_per_stage=2, static_io_microbatch_size=1, static_io_sequence_length=64))
    given = dict(static_io_microbatch_size=2, static_io_sequence_length=64, static_io_hidden_dim=128,
                 static_io_vocab_size=512, static_io_dtype="BF_16")
    first, middle, last = (_static_shapes(i, 3, given) for i in range(3))
    assert first["input_args"][0].shape == (2, 64) and first["input_args"][0].dtype == torch.long
    assert first["output_args"][0].shape == middle["input_args"][0].shape == (2, 64, 128)
    assert last["output_args"][0].shape == (2, 64, 512) and last["output_args"][0].dtype == torch.bfloat16
    assert _static_shapes(0, 3, {}) == {}
