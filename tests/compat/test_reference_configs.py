"""Every published config of the reference (its config_files/, tutorials/, copied unchanged under
reference_configs/) validates here with overrides of the device and data paths only; the few that cannot are
named with the reason, and the error they give here is checked.

Validation includes the run contract (data amount, tokens per step), so the data paths point at a corpus large
enough for the configs' targets (40 copies of the shipped sample), and configs written for several GPUs are
validated with that world size (the reference's own consistency check fails on another)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from modalities.cli.main import main
from tests.compat.helpers import REFERENCE_CONFIGS

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"

# config -> (the error it must give here, why it is not expected to validate)
NOT_VALIDATING = {
    "tutorials/einsum_transformer/einsum_transformer_config.yaml": (
        "unknown variant_key 'einsum_transformer'", "needs the tutorial's own model, registered by its train.py"),
    "tutorials/library_usage/config_lorem_ipsum.yaml": (
        "unknown variant_key 'custom_gpt_2_llm_collator'", "needs the example's own collate_fn, registered by its main.py"),
    "tutorials/profiling/configs/single_process_rms_norm_profiling.yaml": (
        "unknown variant_key 'steppable_norm'", "needs the tutorial's own steppable component"),
    "tutorials/getting_started/configs/example_conversion_config_template.yaml": (
        "unknown instance_key 'model'", "a template the reference cannot load either: it references an undefined model"),
    "tests/conversion/test_configs/gpt2_config_test.yaml": (
        "checkpoint_path: Input should be a valid string (got None)",
        "its checkpoint_path is null until the reference's conversion test fills it in (test_convert_to_hf.py does)"),
    "tutorials/modalities_in_15_mins/configs/pretraining_config.yaml": (
        "a training run needs the top-level key 'app_state'",
        "it has no app_state, which the reference's own training model requires too (the tutorial predates it)"),
}

# Sweep templates whose token target (an 8B model's) is beyond any test data: their expansions validate but
# for this one error.
TARGET_BEYOND_THE_SAMPLE = {
    "tutorials/scaling_up/configs/sweep_8B_fsdp2.yaml": "fewer than the target of 3744129024",
}

# Configs whose step profile and token target agree only on this many data-parallel ranks (their
# enforce_tokens_per_step_consistency is true, so the reference refuses them on another number too).
WORLD_SIZE = {
    # pipeline_parallel_degree 4; pipeline 2 x tensor 2: the mesh must fill the world (checked when it is known)
    "config_files/training/config_lorem_ipsum_long_fsdp2_pp.yaml": 4,
    "config_files/training/config_lorem_ipsum_long_fsdp2_pp_tp.yaml": 4,
    "config_files/training/config_lorem_ipsum_long_fsdp2_warmstart.yaml": 4,  # data_parallel_shard_degree: 4
    "config_files/training/config_lorem_ipsum_long_fsdp2_cp.yaml": 2,  # context_parallel_degree 2
    "config_files/training/config_lorem_ipsum_long_fsdp2_pp_cp.yaml": 4,  # pipeline_parallel_degree 4
    "config_files/training/config_lorem_ipsum_long_fsdp2_pp_tp_cp.yaml": 8,  # pp 2 x tp 2 x cp 2
    "tutorials/instruction_tuning/configs/small_train_instruct_model_fsdp2_config.yaml": 2,
    "tutorials/warmstart/configs/pre_training_config.yaml": 2,
    # the MoE configs: tensor_parallel_degree 4 (the experts' older spelling); tp 2 with ep 2 carved out of
    # dp_shard 2; pp 2 x tp 2 x dp_shard 2 (ep 2)
    "config_files/training/config_lorem_ipsum_long_moe_ep_fsdp2.yaml": 4,
    "config_files/training/config_lorem_ipsum_long_moe_ep_fsdp2_tp.yaml": 4,
    "config_files/training/config_lorem_ipsum_long_moe_ep_fsdp2_tp_pp.yaml": 8,
}


def _reference_configs() -> list[str]:
    return sorted(str(p.relative_to(REFERENCE_CONFIGS)) for p in REFERENCE_CONFIGS.rglob("*.yaml"))


def _overrides(config: dict) -> list[str]:
    """The device and the data paths, pointed at this machine and the shipped sample data."""
    overrides = []
    if isinstance(config.get("device_mesh"), dict):
        overrides.append("device_mesh.config.device_type=cpu")
    paths = (config.get("settings") or {}).get("paths") or {}
    for key in ("train_dataset_path", "test_dataset_path", "val_dataset_path"):
        if key in paths:
            overrides.append(f"settings.paths.{key}={BIG_CORPUS}")
    overrides += [f"{where}={BIG_CORPUS}" for where in _literal_pbin_paths(config)]
    return overrides


def _literal_pbin_paths(value, path: tuple = ()) -> list[str]:
    """Dotted paths of .pbin files written into the config itself (not through settings.paths)."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "raw_data_path" and isinstance(item, str) and item.endswith(".pbin") and "${" not in item:
                found.append(".".join(map(str, path + (key,))))
            else:
                found += _literal_pbin_paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _literal_pbin_paths(item, path + (index,))
    return found


BIG_CORPUS = Path(__file__).resolve().parents[2] / ".pytest_data" / "corpus_x40.pbin"


@pytest.fixture(scope="module", autouse=True)
def big_corpus(tmp_path_factory):
    """The sample corpus 40 times over (3.1M tokens), enough for the targets of the reference's configs."""
    from modalities.data.pbin import merge_packed_files

    global BIG_CORPUS
    BIG_CORPUS = tmp_path_factory.mktemp("data") / "corpus_x40.pbin"
    merge_packed_files([SAMPLE / "corpus.pbin"] * 40, BIG_CORPUS)
    return BIG_CORPUS


def _validate(path: Path, extra: list[str], capsys) -> tuple[int, str]:
    config = yaml.safe_load(path.read_text())
    args = ["validate", str(path)]
    for override in _overrides(config) + extra:
        args += ["--set", override]
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(scope="module")
def last_checkpoint_info(tmp_path_factory) -> dict[str, Path]:
    """last_checkpoint_info.json files as the two checkpoint formats write them (names carry the counts)."""
    root = tmp_path_factory.mktemp("checkpoints")
    name = "eid_x-seen_steps_8-seen_tokens_4096-target_steps_16-target_tokens_8192"
    folder = root / name
    folder.mkdir()
    dcp_info = root / "dcp_info.json"
    dcp_info.write_text(json.dumps({"checkpoint_folder_path": str(folder)}))
    fsdp1_info = root / "fsdp1_info.json"
    fsdp1_info.write_text(json.dumps({
        "model_checkpoint_path": str(root / name.replace("eid_x-", "eid_x-model-")) + ".bin",
        "optimizer_checkpoint_path": str(root / name.replace("eid_x-", "eid_x-optimizer-")) + ".bin",
    }))
    return {"dcp": dcp_info, "fsdp1": fsdp1_info}


@pytest.mark.parametrize("name", _reference_configs())
def test_reference_config_validates(name, capsys, last_checkpoint_info, tmp_path, monkeypatch):
    path = REFERENCE_CONFIGS / name
    monkeypatch.setenv("WORLD_SIZE", str(WORLD_SIZE.get(name, 1)))
    text = path.read_text()
    if "warmstart_env" in text:
        kind = "fsdp1" if "model_checkpoint_path" in text else "dcp"
        code, output = _validate(path, [], capsys)
        assert code == 1 and "give its last_checkpoint_info.json with --last-checkpoint-info FILE" in output
        args = ["validate", str(path), "--last-checkpoint-info", str(last_checkpoint_info[kind])]
        for override in _overrides(yaml.safe_load(text)):
            args += ["--set", override]
        code = main(args)
        output = capsys.readouterr()
        assert code == 0, output.err
        return
    if yaml.safe_load(text).get("sweep") is not None:  # a sweep template: its expansions validate
        assert main(["benchmark", "prepare_sweep_configs", "--sweep_config_path", str(path), "--output_dir",
                     str(tmp_path), "--world_sizes", "1,2"]) == 0
        expanded = sorted(tmp_path.rglob(path.name))
        assert expanded
        for config in expanded:  # .../<world size>/<hash>_<time>/<name>
            monkeypatch.setenv("WORLD_SIZE", config.parent.parent.name)
            code, output = _validate(config, [], capsys)
            if name in TARGET_BEYOND_THE_SAMPLE:
                # The one error: the substituted data is smaller than the target (the reference says so too).
                assert code == 1 and output.count("error:") == 1, output
                assert TARGET_BEYOND_THE_SAMPLE[name] in output
            else:
                assert code == 0, output
        return
    code, output = _validate(path, [], capsys)
    if name in NOT_VALIDATING:
        message, _why = NOT_VALIDATING[name]
        assert code == 1 and message in output
    else:
        assert code == 0, output


FSDP1_CONFIG = "config_files/training/config_lorem_ipsum_long_fsdp1.yaml"


def test_validate_says_how_fsdp1_is_carried_out(capsys):
    path = REFERENCE_CONFIGS / FSDP1_CONFIG
    code, output = _validate(path, ["wrapped_model.config.sharding_strategy=HYBRID_SHARD"], capsys)
    assert code == 0
    # At the wrapped model's line, as a note (not a warning: nothing to change), with what was done.
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("wrapped_model:"))
    assert f"{FSDP1_CONFIG}:{line}:1: note: wrapped_model.config: model/fsdp1_wrapped: FSDP1 is carried out with " \
           "FSDP2 (fully_shard): HYBRID_SHARD -> sharded within a node, replicated across nodes; parameters in bf16, " \
           "gradients reduced in bf16" in output
    assert "warning" not in output

    args = ["validate", str(path), "--format", "json"]
    for override in _overrides(yaml.safe_load(path.read_text())):
        args += ["--set", override]
    main(args)
    notes = [d for d in json.loads(capsys.readouterr().out) if d["severity"] == "note"]
    assert len(notes) == 1 and "BF_16" not in notes[0]["message"] and "FULL_SHARD" in notes[0]["message"]

