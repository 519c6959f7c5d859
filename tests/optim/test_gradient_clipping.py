import copy
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modalities.optim import config as cfg
from modalities.optim.gradient_clipping import (
    DummyGradientClipper,
    FSDPGradientClipper,
    FSDPLoggingOnlyGradientClipper,
    get_fsdp2_gradient_clipper,
    get_fsdp2_logging_only_gradient_clipper,
)

TORCH_NORM = {"P1_NORM": 1.0, "P2_NORM": 2.0, "MAX_NORM": float("inf")}
REPO_ROOT = Path(__file__).resolve().parents[2]


def _copy_with_grads(model):
    duplicate = copy.deepcopy(model)
    for p, q in zip(model.parameters(), duplicate.parameters()):
        q.grad = p.grad.clone()
    return duplicate


def _grads(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("norm_type", sorted(TORCH_NORM))
@pytest.mark.parametrize("variant", ["fsdp", "fsdp2"])
def test_clipping_matches_torch_clip_grad_norm(tiny_model_with_grads, norm_type, variant):
    reference = _copy_with_grads(tiny_model_with_grads)
    expected_norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), max_norm=0.05,
                                                   norm_type=TORCH_NORM[norm_type])
    assert expected_norm > 0.05  # so clipping really scales the gradients
    if variant == "fsdp":
        config = cfg.FSDPGradientClipperConfig(wrapped_model=tiny_model_with_grads, max_norm=0.05, norm_type=norm_type)
        clipper = FSDPGradientClipper(**dict(config))
    else:
        config = cfg.FSDP2GradientClipperConfig(wrapped_model=tiny_model_with_grads, max_norm=0.05, norm_type=norm_type)
        clipper = get_fsdp2_gradient_clipper(**dict(config))
    norm = clipper.clip_gradients()
    assert isinstance(norm, torch.Tensor)
    torch.testing.assert_close(norm, expected_norm)
    for ours, theirs in zip(_grads(tiny_model_with_grads), _grads(reference)):
        torch.testing.assert_close(ours, theirs)


def test_no_clipping_below_max_norm(tiny_model_with_grads):
    before = _grads(tiny_model_with_grads)
    norm = FSDPGradientClipper(tiny_model_with_grads, max_norm=1e6, norm_type="P2_NORM").clip_gradients()
    assert norm > 0
    for ours, theirs in zip(_grads(tiny_model_with_grads), before):
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("norm_type", sorted(TORCH_NORM))
def test_logging_only_returns_norm_and_keeps_grads(tiny_model_with_grads, norm_type):
    before = _grads(tiny_model_with_grads)
    expected = torch.nn.utils.get_total_norm(before, norm_type=TORCH_NORM[norm_type])
    for clipper in (
        FSDPLoggingOnlyGradientClipper(**dict(cfg.FSDPLoggingOnlyGradientClipperConfig(
            wrapped_model=tiny_model_with_grads, norm_type=norm_type))),
        get_fsdp2_logging_only_gradient_clipper(**dict(cfg.FSDP2LoggingOnlyGradientClipperConfig(
            wrapped_model=tiny_model_with_grads, norm_type=norm_type))),
    ):
        torch.testing.assert_close(clipper.clip_gradients(), expected)
    for ours, theirs in zip(_grads(tiny_model_with_grads), before):
        assert torch.equal(ours, theirs)


def test_dummy_returns_minus_one_and_keeps_grads(tiny_model_with_grads):
    before = _grads(tiny_model_with_grads)
    assert DummyGradientClipper(**dict(cfg.DummyGradientClipperConfig())).clip_gradients().item() == -1.0
    for ours, theirs in zip(_grads(tiny_model_with_grads), before):
        assert torch.equal(ours, theirs)


def test_model_parts_are_clipped_together(tiny_model_with_grads):
    reference = _copy_with_grads(tiny_model_with_grads)
    expected = torch.nn.utils.clip_grad_norm_(reference.parameters(), max_norm=0.05)
    parts = [tiny_model_with_grads.wte, tiny_model_with_grads.blocks, tiny_model_with_grads.final_norm,
             tiny_model_with_grads.lm_head]
    config = cfg.FSDP2GradientClipperConfig(wrapped_model_or_parts=parts, max_norm=0.05, norm_type="P2_NORM")
    torch.testing.assert_close(get_fsdp2_gradient_clipper(**dict(config)).clip_gradients(), expected)
    for ours, theirs in zip(_grads(tiny_model_with_grads), _grads(reference)):
        torch.testing.assert_close(ours, theirs)


def test_config_accepts_modalities_spellings_and_rejects_bad_values(tiny_model):
    config = cfg.FSDPGradientClipperConfig(wrapped_model=tiny_model, max_norm=1, norm_type="p2_norm")
    assert config.norm_type == "P2_NORM"
    with pytest.raises(Exception, match="norm_type"):
        cfg.FSDPGradientClipperConfig(wrapped_model=tiny_model, max_norm=1.0, norm_type="L2")
    with pytest.raises(Exception, match="max_norm"):
        cfg.FSDPGradientClipperConfig(wrapped_model=tiny_model, max_norm=0.0, norm_type="P2_NORM")
    with pytest.raises(Exception, match="max_norm"):
        cfg.FSDPLoggingOnlyGradientClipperConfig(wrapped_model=tiny_model, norm_type="P2_NORM", max_norm=1.0)


def test_pipeline_parts_without_the_mesh_are_refused(tiny_model):
    """A clipper that sees only this rank's stages would clip by a part of the norm: it needs the mesh's pp group
    (the whole-norm reduction over stages is shown by tests/training/test_pipeline_parallel.py)."""
    from modalities.models.model_parts import STAGE_MODULES_ATTRIBUTE

    setattr(tiny_model, STAGE_MODULES_ATTRIBUTE, ["transformer.h.0"])
    with pytest.raises(ValueError, match="split into pipeline stages; give the clipper the device_mesh"):
        get_fsdp2_gradient_clipper([tiny_model], max_norm=1.0, norm_type="P2_NORM")


def test_fsdp2_over_a_tensor_parallel_shard_counts_as_disjoint_parts():
    """FSDP2 shards a tensor-parallel weight with a strided shard (its placement in every tp run, see tp.yaml):
    its ranks hold disjoint parts, so the one-collective norm applies; copies and pending sums do not."""
    from torch.distributed.tensor import Partial, Replicate, Shard
    from torch.distributed.tensor.placement_types import _StridedShard

    from modalities.optim.gradient_clipping import _is_shard

    assert _is_shard(_StridedShard(0, split_factor=2))
    assert _is_shard(Shard(1))
    assert not _is_shard(Replicate())
    assert not _is_shard(Partial())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_fsdp2_two_ranks_norm_and_clipping_match_single_process(tmp_path):
    """torchrun, 2 CPU ranks (gloo), fully_shard: the sharded norm and clipped grads equal the unsharded ones."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(Path(__file__).with_name("fsdp2_clipping_worker.py")), str(tmp_path),
    ]
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for rank in range(2):
        assert (tmp_path / f"rank{rank}.ok").read_text() == "ok"
