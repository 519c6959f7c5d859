"""`modalities convert to-hf CONFIG` (and the reference's `convert_pytorch_to_hf_checkpoint`) exports the weights
the config's checkpointed model loads, never freshly initialized ones; a config that loads none is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modalities.cli.main import main
from tests.compat.helpers import build
from tests.compat.test_reference_variants import TINY_GPT2
from tests.tolerances import assert_close_float32

IDS = torch.tensor([[1, 5, 9, 13, 2, 60, 7, 3]])


def _checkpoint(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A state dict of the tiny model with every weight moved away from its seeded init."""
    config = tmp_path / "fresh.yaml"
    config.write_text("model:" + TINY_GPT2)
    fresh = build(config)["model"].state_dict()
    generator = torch.Generator().manual_seed(7)
    trained = {k: v + 0.1 * torch.randn(v.shape, generator=generator) for k, v in fresh.items()}
    path = tmp_path / "trained.pt"
    torch.save(trained, path)
    return path, trained


def _config(tmp_path: Path, checkpoint: Path) -> Path:
    path = tmp_path / "convert.yaml"
    path.write_text("model:" + TINY_GPT2 + f"""
checkpointed_model:
  component_key: model
  variant_key: checkpointed
  config:
    model: {{instance_key: model, pass_type: BY_REFERENCE}}
    checkpoint_loading: {{component_key: checkpoint_loading, variant_key: torch, config: {{device: cpu}}}}
    checkpoint_path: {checkpoint}
""")
    return path


@pytest.mark.parametrize("spelling", ["ours", "reference"])
def test_exports_the_checkpoints_weights(tmp_path, spelling):
    from transformers import GPT2LMHeadModel

    checkpoint, trained = _checkpoint(tmp_path)
    config, out = _config(tmp_path, checkpoint), tmp_path / "hf"
    if spelling == "ours":
        assert main(["convert", "to-hf", str(config), str(out)]) == 0
    else:
        assert main(["convert_pytorch_to_hf_checkpoint", "--config_file_path", str(config),
                     "--output_hf_checkpoint_dir", str(out)]) == 0
    hf = GPT2LMHeadModel.from_pretrained(out, local_files_only=True).eval()
    # HF keeps the token embedding under the same name and the projections transposed (Conv1D).
    assert torch.equal(hf.transformer.wte.weight, trained["transformer.wte.weight"])
    assert torch.equal(hf.transformer.h[0].mlp.c_fc.weight, trained["transformer.h.0.mlp.c_fc.weight"].T)
    assert torch.equal(hf.lm_head.weight, trained["transformer.lm_head.weight"])
    with torch.no_grad():
        ours = build(config)["checkpointed_model"].eval()({"input_ids": IDS})["logits"]
        theirs = hf(IDS).logits
    assert_close_float32(theirs, ours)


def test_a_config_that_loads_no_checkpoint_is_refused(tmp_path, capsys):
    config = tmp_path / "fresh.yaml"
    config.write_text("model:" + TINY_GPT2)
    out = tmp_path / "hf"
    assert main(["convert", "to-hf", str(config), str(out)]) == 1
    err = capsys.readouterr().err
    assert "no model in this config loads a checkpoint (model (model/gpt2))" in err
    assert "freshly initialized" in err
    assert not out.exists()
