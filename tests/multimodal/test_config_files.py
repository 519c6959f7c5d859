from pathlib import Path

import torch

from modalities import Main, load_app_config_dict
from modalities.batch import InferenceResultBatch
from modalities.models.coca.model import CoCa
from modalities.models.lora.lora import lora_layers

CONFIG = Path(__file__).parent / "configs" / "coca_lora.yaml"


def test_coca_and_lora_build_from_a_modalities_style_config():
    components = Main(config_dict=load_app_config_dict(CONFIG)).build_components()
    model = components["lora_model"]
    assert model is components["model_raw"] and isinstance(model, CoCa)
    # Every attention projection (self, cross, pooling) is adapted; nothing else trains.
    assert len(lora_layers(model)) == 4 * (1 + 2 + 1 + 1)
    assert model.lora_trainable_parameters == sum(p.numel() for p in model.parameters() if p.requires_grad)

    samples = [{"images": torch.randn(3, 16, 16), "input_ids": torch.randint(0, 64, (10,))} for _ in range(4)]
    batch = components["collate_fn"](samples)
    loss = components["loss_fn"](InferenceResultBatch(targets=batch.targets, predictions=model(batch.samples)))
    loss.backward()
    assert torch.isfinite(loss)
