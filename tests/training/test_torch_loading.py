"""checkpoint_loading/torch: a .pt state dict into a plain or an FSDP2-sharded model, in the precision asked for,
and files that are not a state dict of tensors refused."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from modalities.checkpointing.layout import CheckpointError
from modalities.checkpointing.torch_loading import TorchCheckpointLoading


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))


@pytest.fixture
def saved(tmp_path):
    model = _model(1)
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    return path, {k: v.clone() for k, v in model.state_dict().items()}


def test_a_plain_model_takes_the_files_weights_and_dtype(saved):
    path, weights = saved
    loaded = TorchCheckpointLoading().load_model_checkpoint(_model(2), path)
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, weights[name]), name


def test_a_precision_converts_and_says_so_when_it_differs(saved):
    path, weights = saved
    with pytest.warns(UserWarning, match=r"holds torch.float32 weights; they are loaded as torch.bfloat16"):
        loaded = TorchCheckpointLoading(precision="BF16").load_model_checkpoint(_model(2), path)
    assert {t.dtype for t in loaded.state_dict().values()} == {torch.bfloat16}
    assert torch.equal(loaded[0].weight, weights["0.weight"].to(torch.bfloat16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checkpoint's own dtype: nothing to say
        TorchCheckpointLoading(precision="FP32").load_model_checkpoint(_model(2), path)


def test_a_sharded_model_takes_the_files_weights(saved, tmp_path):
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    path, weights = saved
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        model = fully_shard(_model(2))
        loaded = TorchCheckpointLoading().load_model_checkpoint(model, path)
        for name, tensor in loaded.state_dict().items():
            assert torch.equal(tensor.full_tensor(), weights[name]), name
    finally:
        if created:
            dist.destroy_process_group()


@pytest.mark.parametrize(
    ("content", "held"),
    [([torch.zeros(2)], "list"), ({"w": torch.zeros(2), "step": 3}, "dict")],
)
def test_a_file_that_is_not_a_state_dict_of_tensors_is_refused(tmp_path, content, held):
    path = tmp_path / "bad.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=rf"bad\.pt holds a {held}, not a model state dict of tensors"):
        TorchCheckpointLoading().load_model_checkpoint(_model(2), path)


@pytest.mark.parametrize("precision", [None, "FP_32"])
def test_a_file_missing_a_weight_or_holding_an_extra_one_does_not_fit(tmp_path, saved, precision):
    """Every weight of the model must come from the file and every tensor of the file must go somewhere: a
    partial load would train from a mix of the checkpoint and the fresh init without a word."""
    _, weights = saved
    missing, extra = tmp_path / "missing.pt", tmp_path / "extra.pt"
    torch.save({k: v for k, v in weights.items() if k != "2.bias"}, missing)
    torch.save({**weights, "3.weight": torch.zeros(2, 2)}, extra)
    loading = TorchCheckpointLoading(precision=precision)
    with pytest.raises(CheckpointError, match=r"(?s)missing\.pt does not fit the model Sequential: .*Missing key.*2\.bias"):
        loading.load_model_checkpoint(_model(2), missing)
    with pytest.raises(CheckpointError, match=r"(?s)extra\.pt does not fit the model Sequential: .*Unexpected key.*3\.weight"):
        loading.load_model_checkpoint(_model(2), extra)


class _Payload:
    """Unpickled without weights_only, it would create ``marker``: code a checkpoint must never run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return Path.touch, (self.marker,)


def test_a_file_whose_unpickling_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "payload": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt cannot be read as a state dict of tensors"):
        TorchCheckpointLoading().load_model_checkpoint(_model(2), path)
    assert not marker.exists()


def test_a_path_given_as_text_is_read(saved):
    path, weights = saved
    loaded = TorchCheckpointLoading().load_model_checkpoint(_model(2), str(path))
    assert all(torch.equal(loaded.state_dict()[name], tensor) for name, tensor in weights.items())
