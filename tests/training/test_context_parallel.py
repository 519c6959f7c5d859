"""Context parallelism (the mesh's cp dimension, ring attention, the positions of a rank's share of a sequence)
on CPU ranks with gloo: the model on split sequences computes what it does on whole ones, and training with cp 2
or dp 2 x cp 2 gives one process's losses, gradient norms and token counts, also resumed across a change of
layout; validate refuses what the run would get wrong."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.training.conftest import REPO, run_in_process, subprocess_env
from tests.training.layouts import (
    assert_same_run,
    assert_trains_as_one_process,
    train_layout,
    train_once,
    train_one_process,
)
from tests.tolerances import approx_float32

pytestmark = pytest.mark.slow  # multi-process runs: scheduled first (tests/conftest.py)

CP_CONFIG = REPO / "tests" / "training" / "cp.yaml"


def _train(run, tmp_path, nproc: int, experiment_id: str, *extra: str):
    return train_layout(run, CP_CONFIG, tmp_path, nproc, experiment_id, *extra)


def test_split_sequences_give_the_whole_sequences_logits_loss_and_gradients():
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(REPO / "tests" / "training" / "cp_model_check.py")],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    records = {r["case"]: r for r in (json.loads(line.split(" ", 1)[1]) for line in done.stdout.splitlines()
                                      if line.startswith("CPCHECK "))}
    assert set(records) == {"gelu_absolute_tied", "rope_gqa_swiglu", "rope_gqa_swiglu_contiguous", "moe"}
    for name, record in records.items():
        assert record["held_tokens"] == 8
        if name.endswith("contiguous"):  # context_parallel_load_balancer: null
            assert record["positions"] == [list(range(8)), list(range(8, 16))]
        else:
            # 16 tokens in 4 chunks of 4: rank 0 holds the first and last (head and tail, so that causal attention
            # costs both ranks alike), rank 1 the two middle ones
            assert record["positions"] == [[0, 1, 2, 3, 12, 13, 14, 15], [4, 5, 6, 7, 8, 9, 10, 11]]
        assert record["batch_untouched"] is True  # the batch (two views of one block) is not split in place
        assert record["logits_max_diff_over_largest_logit"] < 1e-5, record
        assert record["loss_relative_diff"] < 1e-5, record
        assert record["grad_max_diff_over_largest_grad"] < 1e-5, record


# session scope: under xdist's worksteal a worker may run a module's tests in several stretches, between
# which a module-scoped run would be thrown away and trained again
@pytest.fixture(scope="session")
def one_process(tmp_path_factory):
    """The baseline every layout is compared with: one process, context_parallel_degree 1."""
    return train_one_process(tmp_path_factory, CP_CONFIG, "--set", "device_mesh.config.context_parallel_degree=1")


@pytest.fixture(scope="session")
def cp_2(tmp_path_factory):
    """cp 2 from the start: compared with one process, and the checkpoint a one-process run resumes from."""
    return train_once(tmp_path_factory, CP_CONFIG, 2, "cp2")


def test_cp_2_trains_as_one_process(one_process, cp_2):
    assert_trains_as_one_process(cp_2, one_process, "cp2")


def test_dp_2_x_cp_2_trains_as_one_process(tmp_path, run_torchrun, one_process):
    (baseline, _) = one_process
    # 4 samples per data-parallel rank, each split over 2 cp ranks: the same global batch of 8 as one process
    assert_same_run(_train(run_torchrun, tmp_path, 4, "dp2cp2", "--set", "settings.step_profile.local_train_micro_batch_size=4"),
              baseline)


def test_hsdp_with_cp_2_trains_as_one_process(tmp_path, run_torchrun, one_process):
    """2 replicas (dp_replicate), each of one shard rank whose sequences are split over 2 cp ranks: FSDP2 over
    dp_replicate x (dp_shard x cp)."""
    (baseline, _) = one_process
    assert_same_run(_train(run_torchrun, tmp_path, 4, "hsdp_cp2", "--set", "device_mesh.config.data_parallel_replicate_degree=2",
                     "--set", "settings.step_profile.local_train_micro_batch_size=4",
                     "--set", "train_dataloader.config.batch_sampler.config.sampler.config.data_parallel_key=dp",
                     "--set", "test_dataloader.config.batch_sampler.config.sampler.config.data_parallel_key=dp"),
              baseline)


def test_a_run_resumes_across_a_change_of_layout(tmp_path, run_torchrun, one_process, cp_2):
    (baseline, baseline_root), (_, cp_2_root) = one_process, cp_2
    # saved with cp 2, resumed on one process
    resumed = _train(run_in_process, tmp_path, 1, "resumed_one", "--set", "device_mesh.config.context_parallel_degree=1",
                     "--resume", str(cp_2_root / "cp2" / "checkpoints" / "step_2"))
    assert sorted(resumed[0]) == [3, 4]
    for step in (3, 4):
        assert resumed[0][step]["losses"]["train loss avg"] == approx_float32(baseline[0][step]["losses"]["train loss avg"])
    resumed = _train(run_torchrun, tmp_path, 2, "resumed_cp2",
                     "--resume", str(baseline_root / "one" / "checkpoints" / "step_2"))
    assert sorted(resumed[0]) == [3, 4]
    for step in (3, 4):
        assert resumed[0][step]["losses"]["train loss avg"] == approx_float32(baseline[0][step]["losses"]["train loss avg"])
        assert resumed[0][step]["metrics"]["consumed tokens"] == 1024 * step


def _validate(tmp_path, capsys, monkeypatch, edit, world_size: str) -> tuple[int, str]:
    from modalities.cli.main import main

    config = yaml.safe_load(CP_CONFIG.read_text())
    config["settings"]["paths"]["train_dataset_path"] = str(REPO / "data" / "sample" / "corpus.pbin")
    edit(config)
    path = tmp_path / "cp_edited.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.setenv("WORLD_SIZE", world_size)
    code = main(["validate", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def _set(path: str, value):
    def edit(config):
        node = config
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return edit


@pytest.mark.parametrize(("edit", "where", "message"), [
    (_set("settings.step_profile.sequence_length", 127), "device_mesh.config.context_parallel_degree",
     "context_parallel_degree 2 does not divide the sequence length 127"),
    (_set("model_raw.config.attention_implementation", "manual"), "model_raw.config.attention_implementation",
     "attention_implementation manual bypasses it"),
    (_set("app_state.config.model.instance_key", "model_raw"), "model_raw",
     "with context parallelism the model must be wrapped by model/fsdp2_wrapped"),
])
def test_validate_refuses_what_context_parallelism_cannot_run(tmp_path, capsys, monkeypatch, edit, where, message):
    code, out = _validate(tmp_path, capsys, monkeypatch, edit, world_size="4")
    assert code == 1, out
    line = next(line for line in out.splitlines() if message in line)
    assert f"error: {where}:" in line, line


def test_validate_refuses_replicas_that_would_read_the_same_samples(tmp_path, capsys, monkeypatch):
    code, out = _validate(tmp_path, capsys, monkeypatch, _set("device_mesh.config.data_parallel_replicate_degree", 2),
                          world_size="4")
    assert code == 1
    assert ("error: train_dataloader.config.batch_sampler.config.sampler.config.data_parallel_key: the train sampler "
            "reads the dp_shard rank only, so the 2 replicas of") in out
    assert "hint: use data_parallel_key: dp (dp_replicate x dp_shard)" in out


def test_the_dp_key_numbers_replicas_and_shards_together():
    """data_parallel_key dp: rank = replica x shards + shard (torchtitan's flattened dp), so replicas read
    different samples; dp_shard alone gives every replica the same rank."""
    from modalities.data.samplers import resumable_distributed_multi_dim_sampler

    class Mesh:  # the coordinates of one rank of a dp_replicate 2 x dp_shard 3 x cp 2 mesh
        mesh_dim_names = ("dp_replicate", "dp_shard", "cp")
        sizes, coordinate = (2, 3, 2), {"dp_replicate": 1, "dp_shard": 2, "cp": 1}

        def size(self, index):
            return self.sizes[index]

        def get_local_rank(self, name):
            return self.coordinate[name]

    together = resumable_distributed_multi_dim_sampler(range(60), Mesh(), data_parallel_key="dp")
    assert (together.rank, together.num_replicas) == (1 * 3 + 2, 6)
    shard_only = resumable_distributed_multi_dim_sampler(range(60), Mesh(), data_parallel_key="dp_shard")
    assert (shard_only.rank, shard_only.num_replicas) == (2, 3)
    assert list(together)[:2] == [5, 11]  # by hand: every 6th index from 5 (no shuffle)


def test_validate_counts_the_cp_ranks_in_the_world(tmp_path, capsys, monkeypatch):
    code, out = _validate(tmp_path, capsys, monkeypatch, lambda config: None, world_size="3")
    assert code == 1
    assert "error: device_mesh.config.world_size: the world size 3 is not divisible by context_parallel_degree 2" in out
    code, out = _validate(tmp_path, capsys, monkeypatch, lambda config: None, world_size="4")
    assert code == 0, out


def test_the_loop_splits_sequences_exactly_when_the_mesh_has_a_cp_dimension():
    """cp ranks that each ran the whole sequence would also train as one process (identical gradients averaged),
    so the training tests above cannot tell; the loop's switch is checked here."""
    from modalities.training.context_parallel import context_parallel_mesh

    class Mesh:
        def __init__(self, *names):
            self.mesh_dim_names = names

        def __getitem__(self, name):
            return f"submesh {name}"

    assert context_parallel_mesh(Mesh("dp_shard", "cp")) == "submesh cp"
    assert context_parallel_mesh(Mesh("dp_replicate", "dp_shard", "tp")) is None
    assert context_parallel_mesh(Mesh()) is None
    assert context_parallel_mesh(None) is None


def test_a_batch_the_ranks_cannot_split_is_refused_with_what_to_change():
    """Caught before torch splits anything: a target not shaped like the samples, a length the degree does
    not divide (validate refuses the configured length; this is the loader's actual batch)."""
    import torch

    from modalities.training.context_parallel import ContextParallel
    from modalities.training.distributed import TrainingSetupError

    class Mesh:
        device_type = "cpu"

        def size(self):
            return 2

    splitter = ContextParallel(Mesh())
    ids = torch.zeros(3, 8, dtype=torch.long)
    with pytest.raises(TrainingSetupError, match=r"'mask' has shape \(3,\) where samples have 8 tokens"), \
            splitter.shard({"input_ids": ids}, {"mask": torch.zeros(3)}):
        pass
    with pytest.raises(TrainingSetupError, match="samples of 7 tokens cannot be split over context_parallel_degree 2; "
                                                  "use a sequence length divisible by it"), \
            splitter.shard({"input_ids": ids[:, :7]}, {"target_ids": ids[:, :7]}):
        pass


class _Mesh:
    """What model/gpt2_cp reads of a mesh: its dimension names."""

    def __init__(self, *names: str):
        self.mesh_dim_names = names


def test_gpt2_cp_records_the_load_balancer_and_refuses_what_ring_attention_bypasses():
    from torch import nn

    from modalities.models.gpt2.context_parallel import ContextParallelError, context_parallelize_gpt2
    from modalities.training.context_parallel import load_balancer_of
    from tests.models.helpers import build_gpt2

    model = build_gpt2(attention_implementation="pytorch_flash")
    assert load_balancer_of(model) == "headtail"  # nothing recorded: torch's default
    parts = context_parallelize_gpt2([model], _Mesh("dp_shard", "cp"), context_parallel_load_balancer=None)
    assert parts == [model] and load_balancer_of([nn.Sequential(model)]) is None  # found inside a wrapper
    untouched = build_gpt2(attention_implementation="manual")
    assert context_parallelize_gpt2(untouched, _Mesh("dp_shard")) is untouched  # no cp dimension: nothing to do
    with pytest.raises(ContextParallelError, match="attention_implementation manual attends within a rank's share"):
        context_parallelize_gpt2(untouched, _Mesh("dp_shard", "cp"))
    with pytest.raises(ContextParallelError, match="splits the sequences of a model/gpt2, not of a Linear"):
        context_parallelize_gpt2(nn.Linear(2, 2), _Mesh("cp"))


def test_a_stage_given_a_tensor_takes_the_held_positions():
    """A pipeline stage is fed a tensor; the positions of the tokens a context-parallel rank holds reach it
    through held_token_positions, one row for the whole micro-batch."""
    import torch

    from modalities.models.gpt2.model import held_token_positions
    from tests.models.helpers import build_gpt2

    for overrides in ({}, {"poe_type": "NOPE", "attention_config": {"qkv_transforms": [{
            "type_hint": "RotaryTransform", "config": {"n_embd": 32, "n_head": 4, "seq_length_dim": -2}}]}}):
        model = build_gpt2(n_embd=32, sequence_length=16, vocab_size=64, **overrides).eval()
        ids = torch.randint(0, 64, (3, 4), generator=torch.Generator().manual_seed(0))
        positions = torch.tensor([[0, 1, 14, 15]])  # a head-and-tail share of 16 tokens
        with torch.no_grad(), held_token_positions(positions):
            held = model(ids)
        expected = model({"input_ids": ids, "position_ids": positions.expand(3, 4)})["logits"]
        torch.testing.assert_close(held, expected)
        assert not torch.allclose(model(ids), expected)  # positions 0..3 give other logits
