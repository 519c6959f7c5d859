"""Checkpoints written by the reference load here, from YAML as a user would: its full state dict (.bin, with its
RoPE buffers and head name) and its DCP folder (model, optimizer, scheduler), with the reference's precision and
device spellings."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from tests.compat.helpers import CONFIGS, build
from tests.tolerances import approx_float32, approx_float32_sum

DATA = Path(__file__).parent / "data" / "reference_checkpoints"
NAME = "seen_steps_2-seen_tokens_60-target_steps_4-target_tokens_120"
BIN = DATA / f"eid_ref-model-{NAME}.bin"
DCP = DATA / f"eid_ref-{NAME}"
IDS = (torch.arange(20) * 5 % 64).view(2, 10)


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((DATA / "expected.json").read_text())


def _config(tmp_path: Path, extra: str) -> Path:
    model = (CONFIGS / "gpt2_tiny_reference_format.yaml").read_text()
    path = tmp_path / "c.yaml"
    path.write_text(model + "\n" + textwrap.dedent(extra))
    return path


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()({"input_ids": IDS})["logits"]


def test_full_state_dict_bin_loads_in_the_checkpoint_dtype(tmp_path, expected):
    built = build(_config(tmp_path, f"""
        checkpointed_model:
          component_key: model
          variant_key: checkpointed
          config:
            model: {{instance_key: model_raw, pass_type: BY_REFERENCE}}
            checkpoint_loading: {{component_key: checkpoint_loading, variant_key: torch, config: {{device: cpu}}}}
            checkpoint_path: {BIN}
        """))
    logits = _logits(built["checkpointed_model"])
    assert logits.dtype == torch.float32
    assert logits.flatten()[:6].tolist() == approx_float32(expected["logits_first"], of=logits)
    assert logits.double().sum().item() == approx_float32_sum(expected["logits_sum"], logits)


def test_fsdp1_checkpointed_spelling_with_bf16_precision(tmp_path, expected):
    built = build(_config(tmp_path, f"""
        checkpointed_model:
          component_key: model
          variant_key: fsdp1_checkpointed
          config:
            checkpoint_loading: {{component_key: checkpoint_loading, variant_key: torch, config: {{device: cpu, precision: BF16}}}}
            model: {{instance_key: model_raw, pass_type: BY_REFERENCE}}
            checkpoint_path: {BIN}
        """))
    model = built["checkpointed_model"]
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    logits = _logits(model).float()
    assert logits.flatten()[:6].tolist() == pytest.approx(expected["logits_first"], abs=0.05)


def test_dcp_folder_loads_model_optimizer_and_scheduler(tmp_path, expected):
    built = build(_config(tmp_path, f"""
        optimizer:
          component_key: optimizer
          variant_key: adam_w
          config: {{lr: 0.01, betas: [0.9, 0.999], eps: 1.0e-8, weight_decay: 0.01, weight_decay_groups_excluded: [],
                    wrapped_model: {{instance_key: model_raw, pass_type: BY_REFERENCE}}}}
        lr_scheduler:
          component_key: scheduler
          variant_key: step_lr
          config: {{optimizer: {{instance_key: optimizer, pass_type: BY_REFERENCE}}, step_size: 1, gamma: 0.5}}
        app_state_raw:
          component_key: app_state
          variant_key: raw
          config:
            model: {{instance_key: model_raw, pass_type: BY_REFERENCE}}
            optimizer: {{instance_key: optimizer, pass_type: BY_REFERENCE}}
            lr_scheduler: {{instance_key: lr_scheduler, pass_type: BY_REFERENCE}}
        app_state:
          component_key: app_state
          variant_key: dcp
          config:
            raw_app_state: {{instance_key: app_state_raw, pass_type: BY_REFERENCE}}
            checkpoint_dir_path: {DCP}
        """))
    app_state = built["app_state"]
    logits = _logits(app_state.model)
    assert logits.flatten()[:6].tolist() == approx_float32(expected["logits_first"], of=logits)
    assert app_state.lr_scheduler.get_last_lr() == pytest.approx(expected["lr"])  # 0.01 halved twice
    state = app_state.optimizer.state_dict()["state"]
    assert state and all(int(s["step"]) == 2 for s in state.values())  # two AdamW steps were taken


def test_checkpoint_loading_dcp_reads_the_reference_folder(tmp_path, expected):
    built = build(_config(tmp_path, f"""
        checkpointed_model:
          component_key: model
          variant_key: checkpointed
          config:
            model: {{instance_key: model_raw, pass_type: BY_REFERENCE}}
            checkpoint_loading: {{component_key: checkpoint_loading, variant_key: dcp, config: {{global_rank: 0}}}}
            checkpoint_path: {DCP}
        """))
    logits = _logits(built["checkpointed_model"])
    assert logits.flatten()[:6].tolist() == approx_float32(expected["logits_first"], of=logits)
