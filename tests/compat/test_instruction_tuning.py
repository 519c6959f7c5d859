"""Instruction tuning end to end, as the reference does it: prepare (chat template, split, index, pack) gives the
reference's bytes; the loss masking collator trains only on assistant turns; the shipped config trains on CPU."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import torch

from tests.compat.helpers import expected

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "instruction_tuning"


def _modalities(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modalities", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def _absolute_configs(tmp_path: Path) -> Path:
    """The shipped configs with their folder-relative paths made absolute (what the reference was given)."""
    pack = (CONFIGS / "pack_chat.yaml").read_text().replace("${modalities_env:config_folder_path}/../..", str(ROOT))
    (tmp_path / "pack.yaml").write_text(pack)
    apply = (CONFIGS / "apply_chat_template.yaml").read_text()
    apply = apply.replace("${modalities_env:config_folder_path}/pack_chat.yaml", str(tmp_path / "pack.yaml"))
    apply = apply.replace("${modalities_env:config_folder_path}/../../data/sample/chat/prepared/chat.jsonl",
                          "prepared_data/chat.jsonl")  # written where the test runs, as the reference writes
    apply = apply.replace("${modalities_env:config_folder_path}/../..", str(ROOT))
    (tmp_path / "apply.yaml").write_text(apply)
    return tmp_path / "apply.yaml"


def test_prepared_data_is_the_reference_byte_for_byte(tmp_path):
    run = _modalities("data", "prepare_instruction_tuning_data", "--config_file_path", str(_absolute_configs(tmp_path)), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    written = {
        re.sub(r"\.[0-9a-f]{7}\.", ".", path.name): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in (tmp_path / "prepared_data").glob("*/chat_*")
        if not path.name.endswith(".info.json")  # ours only (which tokenizer packed it): the reference has none
    }
    assert written == expected("instruction_tuning.json")["files"]
    for packed in (tmp_path / "prepared_data").glob("*/chat_*.pbin"):
        info = json.loads(packed.with_name(packed.name + ".info.json").read_text())
        assert info["documents"] == len(packed.with_suffix(".jsonl").read_text().splitlines())


def _masked_by_hand(target: list[int], begin: int, end: int) -> list[int]:
    """Keep a target only strictly between a begin marker and the next end marker."""
    out, inside = [], False
    for token in target:
        if token == end:
            inside = False
        out.append(token if inside and token != begin else -100)
        if token == begin:
            inside = True
    return out


def test_loss_masking_keeps_only_assistant_turns():
    from modalities.data.collate import GPT2LLMCollateFn, LossMaskingCollateFnWrapper

    class Tokens:
        ids = {"<b>": 0, "<e>": 1}

        def get_token_id(self, token):
            return self.ids[token]

    collate = LossMaskingCollateFnWrapper(
        GPT2LLMCollateFn(sample_key="sample", target_key="target"), ["target"], -100,
        {"b_include_to_loss_token": "<b>", "e_include_to_loss_token": "<e>"}, Tokens(),
    )
    # the reference's own example and its expected target
    batch = collate([{"sample": torch.tensor([5, 5, 0, 5, 5, 1, 5, 0, 5, 1, 0, 1, 5, 0, 1])}])
    assert batch.targets["target"].tolist() == [[-100, -100, 5, 5, -100, -100, -100, 5, -100, -100, -100, -100, -100, -100]]
    sample = [7, 0, 3, 4, 1, 9, 9, 0, 6, 1, 8, 0, 2]  # ends inside an assistant turn: allowed
    batch = collate([{"sample": torch.tensor(sample)}])
    assert batch.targets["target"].tolist() == [_masked_by_hand(sample[1:], 0, 1)]
    assert batch.samples["sample"].tolist() == [sample[:-1]]


def test_loss_masking_refuses_markers_out_of_order():
    import pytest

    from modalities.data.collate import mask_outside_markers

    with pytest.raises(ValueError, match="an end marker comes before its begin marker"):
        mask_outside_markers(torch.tensor([[5, 1, 5, 0, 5, 1]]), 0, 1, -100)
    with pytest.warns(UserWarning, match="no end marker"):
        assert mask_outside_markers(torch.tensor([[5, 0, 5]]), 0, 1, -100).tolist() == [[-100, -100, -100]]


def test_the_shipped_prepared_data_is_what_step_1_writes(tmp_path):
    run = _modalities("data", "prepare_instruction_tuning_data", "--config_file_path", str(_absolute_configs(tmp_path)), cwd=tmp_path)
    assert run.returncode == 0, run.stderr

    def by_partition(files):
        return {re.sub(r"\.[0-9a-f]{7}\.", ".", path.name): path.read_bytes() for path in files}

    shipped = by_partition((ROOT / "data" / "sample" / "chat" / "prepared").glob("*/chat_*"))
    # the info files name this machine's paths and the time: not shipped
    fresh = by_partition(p for p in (tmp_path / "prepared_data").glob("*/chat_*") if not p.name.endswith(".info.json"))
    assert sorted(shipped) == sorted(fresh) and len(shipped) == 9  # train/val/test x jsonl/idx/pbin
    assert all(shipped[name] == fresh[name] for name in shipped)


def test_shipped_instruction_tuning_config_trains_on_cpu(tmp_path):
    trained = _modalities(
        "train", str(CONFIGS / "train.yaml"), "--set", "settings.training_target.num_target_steps=4",
        "--set", "settings.intervals.evaluation_interval_in_steps=4", "--set", "settings.intervals.training_log_interval_in_steps=2",
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "eval test after step 4" in trained.stdout
