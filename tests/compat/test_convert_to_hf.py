"""`modalities convert to-hf CONFIG` (and the reference's `convert_pytorch_to_hf_checkpoint`) exports the weights
the config's checkpointed model loads, never freshly initialized ones; a config that loads none is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modalities.cli.main import main
from tests.compat.helpers import REFERENCE_CONFIGS, build, checkpointed_model_yaml
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
    path.write_text("model:" + TINY_GPT2 + checkpointed_model_yaml(checkpoint))
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


REFERENCE_CONVERSION_CONFIG = REFERENCE_CONFIGS / "tests" / "conversion" / "test_configs" / "gpt2_config_test.yaml"


def _reference_shape_checkpoint(tmp_path: Path, overrides: list[str]) -> tuple[list[str], torch.nn.Module]:
    """Overrides that point the reference's conversion test config at a checkpoint of moved-off-init weights,
    and our model holding them. The export takes the checkpoint's float32 weights as they are (the config's
    checkpoint_loading precision BF16 applies to training, not to what is exported)."""
    model_only = tmp_path / "model_only.yaml"  # the config's `model` alone (its checkpoint_path is still null)
    model_only.write_text(REFERENCE_CONVERSION_CONFIG.read_text().split("checkpointed_model:")[0])
    model = build(model_only, overrides)["model"]
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    torch.save(model.state_dict(), tmp_path / "trained.pt")
    return overrides + [f"checkpointed_model.config.checkpoint_path={tmp_path / 'trained.pt'}"], model.eval()


# The shape of the reference's lorem-ipsum configs (biases on every linear) on the conversion config's model.
LOREM_IPSUM_SHAPE = ["model.config.bias=true"]


@pytest.mark.parametrize("shape", ["conversion_test", "lorem_ipsum"])
def test_the_reference_conversion_configs_model_exports_with_its_logits(tmp_path, capsys, shape):
    """The reference's conversion test config (LayerNorm with shift, RoPE, SwiGLU) is StableLM exactly; with the
    lorem-ipsum configs' biases no architecture holds it, and --remote-code writes it with its own code."""
    from transformers import AutoModelForCausalLM

    overrides, ours = _reference_shape_checkpoint(tmp_path, LOREM_IPSUM_SHAPE if shape == "lorem_ipsum" else [])
    args = ["convert", "to-hf", str(REFERENCE_CONVERSION_CONFIG), str(tmp_path / "hf")]
    for override in overrides:
        args += ["--set", override]
    if shape == "lorem_ipsum":
        assert main(args) == 1
        assert "pass --remote-code" in capsys.readouterr().err and not (tmp_path / "hf").exists()
        args.append("--remote-code")
    assert main(args) == 0
    out = capsys.readouterr().out
    remote = shape == "lorem_ipsum"
    assert ("its own modelling code: load with trust_remote_code=True" in out) == remote
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True, trust_remote_code=remote)
    assert type(hf).__name__ == ("ModalitiesGPT2ForCausalLM" if remote else "StableLmForCausalLM")
    ids = torch.randint(0, 50304, (2, 128), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ours({"input_ids": ids})["logits"]
        torch.testing.assert_close(hf.eval()(ids).logits, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def test_the_references_spelling_writes_its_own_code_where_no_architecture_holds(tmp_path, capsys):
    _reference_shape_checkpoint(tmp_path, LOREM_IPSUM_SHAPE)
    config = tmp_path / "convert.yaml"
    text = REFERENCE_CONVERSION_CONFIG.read_text().replace("bias: false #", "bias: true #")
    config.write_text(text.replace("checkpoint_path: null", f"checkpoint_path: {tmp_path / 'trained.pt'}"))
    assert main(["convert_pytorch_to_hf_checkpoint", "--config_file_path", str(config),
                 "--output_hf_checkpoint_dir", str(tmp_path / "hf")]) == 0
    captured = capsys.readouterr()
    assert "modalities convert to-hf CONFIG OUT_DIR --remote-code" in captured.err
    assert "load with trust_remote_code=True" in captured.out
    assert (tmp_path / "hf" / "modeling_modalities_gpt2.py").is_file()
