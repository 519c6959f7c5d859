"""Helpers of the compatibility tests: where the test data is, and building components from YAML as users do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
EXPECTED = HERE / "expected"
REFERENCE_CONFIGS = HERE / "reference_configs"
REFERENCE_TRAINING_CONFIGS = REFERENCE_CONFIGS / "config_files" / "training"
SAMPLE_CORPUS = HERE.parents[1] / "data" / "sample" / "corpus.pbin"


def expected(name: str) -> dict:
    return json.loads((EXPECTED / name).read_text())


def checkpointed_model_yaml(checkpoint_path: str | Path, model_key: str = "model",
                            key: str = "checkpointed_model") -> str:
    """A top-level ``key``: model/checkpointed loading a .pt state dict (checkpoint_loading/torch on the CPU) into
    the component at ``model_key``, as a config that converts or warm-starts from a checkpoint has it."""
    return f"""
{key}:
  component_key: model
  variant_key: checkpointed
  config:
    model: {{instance_key: {model_key}, pass_type: BY_REFERENCE}}
    checkpoint_loading: {{component_key: checkpoint_loading, variant_key: torch, config: {{device: cpu}}}}
    checkpoint_path: {checkpoint_path}
"""


def build(config_path: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Every top-level component of a config, built through the public API (YAML, --set style overrides)."""
    from modalities import Main

    return Main(config_path=config_path, overrides=list(overrides)).build_components()


def fingerprint(state_dict: dict) -> dict:
    """Per tensor: shape, float64 sum and sum of squares, first three values (as the expected files hold)."""
    result = {}
    for key, value in state_dict.items():
        tensor = value.detach().double()
        result[key] = {
            "shape": list(value.shape),
            "sum": tensor.sum().item(),
            "sumsq": (tensor * tensor).sum().item(),
            "first": value.detach().flatten()[:3].tolist(),
        }
    return result


# How the reference's training configs are run here (tests/compat/test_reference_training.py, and on a GPU
# tools/gpu_check/steps.py): the sample corpus, a small test set, short runs that checkpoint every 2 steps.


def write_small_eval_set(path: Path, num_documents: int = 20) -> Path:
    """The first documents of the sample corpus as a .pbin of their own: a test set that evaluates in a moment."""
    import numpy as np

    from modalities.data.pbin import PackedFile, PackedFileWriter

    source = PackedFile(SAMPLE_CORPUS)
    documents = [np.asarray(source.document(i)) for i in range(num_documents)]
    writer = PackedFileWriter(path, source.token_width)
    writer.write_tokens(np.concatenate(documents), [len(d) for d in documents])
    writer.close()
    return path


def reference_training_overrides(tmp_path: Path, small_eval_set: Path, *, fsdp2: bool) -> list[str]:
    """`--set` flags that point a reference training config at the sample data and make its run 6 steps long."""
    values = {
        "settings.paths.train_dataset_path": SAMPLE_CORPUS,
        "settings.paths.test_dataset_path": small_eval_set,
        "settings.paths.checkpoint_saving_path": tmp_path / "checkpoints",
        "settings.training_target.num_target_steps": 6,
        "settings.intervals.checkpointing_interval_in_steps": 2,
        "settings.intervals.evaluation_interval_in_steps": 6,
        "settings.intervals.training_log_interval_in_steps": 1,
        "settings.step_profile.gradient_accumulation_steps": 1,  # the warm-start configs say 2: same run, same value
        "model_raw.config.vocab_size": 2048,  # the sample corpus's vocabulary: a lighter head than 50304
    }
    if fsdp2:
        values.update({"device_mesh.config.device_type": "cpu", "device_mesh.config.data_parallel_shard_degree": 1})
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def train_losses(results: Path) -> dict[int, float]:
    """step -> "train loss avg" of the train records of a results.jsonl."""
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    return {r["num_train_steps_done"]: r["losses"]["train loss avg"] for r in lines if r.get("dataloader_tag") == "train"}
