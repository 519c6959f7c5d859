"""Tensor parallelism (model/gpt2_tp, the tp dimension of the mesh, the mesh-reading sampler) on CPU ranks with
gloo: the split model computes what the whole one does, and training with tp 2 or dp 2 x tp 2 gives one
process's losses, token counts and, resumed across a change of layout, the same continuation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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

TP_CONFIG = REPO / "tests" / "training" / "tp.yaml"


def _train(run, tmp_path, nproc: int, experiment_id: str, *extra: str):
    return train_layout(run, TP_CONFIG, tmp_path, nproc, experiment_id, *extra)


def test_the_split_model_computes_what_the_whole_model_does():
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(REPO / "tests" / "training" / "tp_model_check.py")],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    records = {r["case"]: r for r in (json.loads(line.split(" ", 1)[1]) for line in done.stdout.splitlines()
                                      if line.startswith("TPCHECK "))}
    refused = records.pop("refused")
    loss_parallel = records.pop("loss_parallel")
    # 64 ids over 2 ranks: each holds 32 logits per position, never the full row
    assert (loss_parallel["logits_placements"], loss_parallel["local_vocab"]) == (["S(2)"], 32)
    assert loss_parallel["loss_relative_diff"] < 1e-5 and loss_parallel["head_grad_diff_over_largest"] < 1e-5
    assert refused["message"] == "tensor_parallel_degree 2 must divide n_head_q 3, n_head_kv 3; choose a degree that divides them"
    assert refused["heads_left"] == 3  # nothing was changed
    assert set(records) == {"gelu_absolute_tied", "gelu_absolute_untied", "rope_gqa_swiglu_sdpa"}
    for record in records.values():
        assert record["logits_max_diff_over_largest_logit"] < 1e-5, record
        assert record["grad_max_diff_over_largest_grad"] < 1e-5, record
        assert record["parameters"][0] == record["parameters"][1], record  # tying kept: no parameter doubled
    # by hand: per block q, k, v (weight and bias), the attention projection's weight, the MLP's two weights and
    # its first bias: 10 x 2 blocks, plus the (tied) embedding/head and the position table
    assert records["gelu_absolute_tied"]["sharded_parameters"] == 22
    assert records["gelu_absolute_untied"]["sharded_parameters"] == 23
    assert records["rope_gqa_swiglu_sdpa"]["sharded_parameters"] == 15  # no biases, W/V/W_2, no position table
    assert records["rope_gqa_swiglu_sdpa"]["local_heads"] == [2, 1]  # 4 query and 2 key/value heads over 2 ranks


# session scope: under xdist's worksteal a worker may run a module's tests in several stretches, between
# which a module-scoped run would be thrown away and trained again
@pytest.fixture(scope="session")
def one_process(tmp_path_factory):
    """The baseline every layout is compared with: one process, tensor_parallel_degree 1."""
    return train_one_process(tmp_path_factory, TP_CONFIG, "--set", "device_mesh.config.tensor_parallel_degree=1")


@pytest.fixture(scope="session")
def tp_2(tmp_path_factory):
    """tp 2 from the start: compared with one process, and the checkpoint a one-process run resumes from."""
    return train_once(tmp_path_factory, TP_CONFIG, 2, "tp2")


def test_tp_2_trains_as_one_process(one_process, tp_2):
    assert_trains_as_one_process(tp_2, one_process, "tp2")


def test_tp_2_with_loss_parallelism_trains_as_one_process(tmp_path, run_torchrun, one_process):
    (baseline, _) = one_process
    assert_same_run(_train(run_torchrun, tmp_path, 2, "tp2lp", "--set", "device_mesh.config.enable_loss_parallel=true"),
              baseline)


def test_dp_2_x_tp_2_trains_as_one_process(tmp_path, run_torchrun, one_process):
    (baseline, _) = one_process
    # 4 samples per rank on 2 data-parallel ranks: the same global batch of 8 as one process
    run = _train(run_torchrun, tmp_path, 4, "dp2tp2", "--set", "settings.step_profile.local_train_micro_batch_size=4")
    assert_same_run(run, baseline)


@pytest.mark.parametrize("loss_parallel", [False, True])
def test_tp_2_x_cp_2_trains_as_one_process(tmp_path, run_torchrun, one_process, loss_parallel):
    """Each sequence split over 2 cp ranks, each share's activations over 2 tp ranks (learned positions, tied
    embeddings), with and without the loss on vocabulary shards: one data-parallel rank reading the whole batch."""
    (baseline, _) = one_process
    assert_same_run(_train(run_torchrun, tmp_path, 4, "tp2cp2", "--set", "device_mesh.config.context_parallel_degree=2",
                     "--set", f"device_mesh.config.enable_loss_parallel={str(loss_parallel).lower()}"), baseline)


def test_a_run_resumes_across_a_change_of_layout(tmp_path, run_torchrun, one_process, tp_2):
    (baseline, baseline_root), (_, tp_2_root) = one_process, tp_2
    # saved with tp 2, resumed on one process
    resumed = _train(run_in_process, tmp_path, 1, "resumed_one", "--set", "device_mesh.config.tensor_parallel_degree=1",
                     "--resume", str(tp_2_root / "tp2" / "checkpoints" / "step_2"))
    assert sorted(resumed[0]) == [3, 4]
    for step in (3, 4):
        assert resumed[0][step]["losses"]["train loss avg"] == approx_float32(baseline[0][step]["losses"]["train loss avg"])
    # saved by one process, resumed with dp 2 x tp 2
    resumed = _train(run_torchrun, tmp_path, 4, "resumed_dp2tp2", "--set", "settings.step_profile.local_train_micro_batch_size=4",
                     "--resume", str(baseline_root / "one" / "checkpoints" / "step_2"))
    assert sorted(resumed[0]) == [3, 4]
    for step in (3, 4):
        assert resumed[0][step]["losses"]["train loss avg"] == approx_float32(baseline[0][step]["losses"]["train loss avg"])
        assert resumed[0][step]["metrics"]["consumed tokens"] == 1024 * step


def test_a_split_the_model_cannot_take_is_named():
    from modalities.models.gpt2.tensor_parallel import TensorParallelError, _check_divisible
    from tests.models.helpers import build_gpt2

    model = build_gpt2(n_head_q=4, n_head_kv=2, vocab_size=64)
    _check_divisible(model, 2)
    with pytest.raises(TensorParallelError, match=r"tensor_parallel_degree 4 must divide n_head_kv 2;"):
        _check_divisible(model, 4)
    with pytest.raises(TensorParallelError, match=r"must divide n_head_q 4, n_head_kv 2, vocab_size 64, the MLP's "
                                                  r"hidden width 128; choose a degree that divides them"):
        _check_divisible(model, 3)


def test_validate_refuses_a_degree_the_model_cannot_be_split_by(capsys):
    from modalities.cli.main import main

    assert main(["validate", str(TP_CONFIG), "--set", "device_mesh.config.tensor_parallel_degree=3"]) == 1
    out = capsys.readouterr()
    line = next(i for i, text in enumerate(TP_CONFIG.read_text().splitlines(), 1) if text == "model_raw:")
    assert (
        "<--set>:1:43: error: device_mesh.config.tensor_parallel_degree: tensor_parallel_degree 3 must divide "
        f"n_head_q 4, n_head_kv 4, vocab_size 2048, the MLP's hidden width 512 of model_raw at {TP_CONFIG}:{line + 1}:3"
    ) in out.out + out.err
    # 4 divides them all (4 heads, 2048 ids, 512 hidden units); a 2-ids-short vocabulary does not
    assert main(["validate", str(TP_CONFIG), "--set", "device_mesh.config.tensor_parallel_degree=4"]) == 0
    capsys.readouterr()
    assert main(["validate", str(TP_CONFIG), "--set", "device_mesh.config.tensor_parallel_degree=4",
                 "--set", "model_raw.config.vocab_size=2046"]) == 1
    out = capsys.readouterr()
    assert "tensor_parallel_degree 4 must divide vocab_size 2046 of model_raw" in out.out + out.err


def test_validate_refuses_loss_parallelism_for_a_loss_that_cannot_take_shards(tmp_path, capsys):
    import yaml

    from modalities.cli.main import main

    config = yaml.safe_load(TP_CONFIG.read_text())
    config["device_mesh"]["config"]["enable_loss_parallel"] = True
    assert main(["validate", str(TP_CONFIG), "--set", "device_mesh.config.enable_loss_parallel=true"]) == 0
    capsys.readouterr()
    config["loss_fn"] = {"component_key": "loss", "variant_key": "nce_loss",
                         "config": {"prediction_key1": "a", "prediction_key2": "b"}}
    config["model_raw"]["config"]["prediction_key"] = "logits"  # it named the replaced loss's key
    path = tmp_path / "nce.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr()
    assert ("error: device_mesh.config.enable_loss_parallel: loss parallelism computes a cross-entropy on vocabulary "
            "shards; the run's loss_fn (loss/nce_loss) would get sharded logits") in out.out + out.err


def test_without_a_process_group_or_mesh_one_rank_reads_the_data():
    import torch.distributed as dist

    from modalities.training.device_mesh import data_parallel_degree

    assert not dist.is_initialized()
    assert data_parallel_degree(None) == 1
