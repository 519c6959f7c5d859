"""``modalities convert to-torch CHECKPOINT OUT.pt`` and ``modalities convert to-hf CHECKPOINT_OR_CONFIG OUT_DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    to_torch = sub.add_parser("to-torch", help="write the full model state dict of a checkpoint to a .pt file")
    to_torch.add_argument("checkpoint", help="a checkpoint folder (or an experiment's checkpoints/latest)")
    to_torch.add_argument("output", help="the .pt file to write")
    to_hf = sub.add_parser("to-hf", help="write a transformers GPT-2 folder from a checkpoint or a config")
    to_hf.add_argument("source", help="a checkpoint folder (its saved config builds the model) or a config file")
    to_hf.add_argument("output", help="the folder to write (must not exist or be empty)")
    to_hf.add_argument(
        "--model-key",
        default=None,
        help="a config: the top-level key of the checkpointed model to export (default: the config's only "
        "model/checkpointed); a checkpoint folder: the key of the unwrapped model in its saved config "
        "(default: the model under app_state)",
    )


def run(args: argparse.Namespace) -> int:
    from modalities.checkpointing.layout import CheckpointError
    from modalities.config.diagnostics import ConfigError
    from modalities.conversion.model_source import ModelSourceError

    try:
        if args.target == "to-torch":
            return _to_torch(Path(args.checkpoint), Path(args.output))
        return _to_hf(Path(args.source), Path(args.output), args.model_key)
    except ConfigError as e:
        print(f"modalities convert: error: the config has errors:\n{e}", file=sys.stderr)
        return 1
    except (CheckpointError, ModelSourceError, FileExistsError, KeyError, ValueError) as e:
        print(f"modalities convert: error: {e}", file=sys.stderr)
        return 1


def _to_torch(checkpoint: Path, output: Path) -> int:
    import os

    import torch

    from modalities.checkpointing.dcp import read_model_state_dict

    state = read_model_state_dict(checkpoint)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".tmp-{output.name}")
    torch.save(state, tmp)
    os.replace(tmp, output)
    print(f"wrote {len(state)} tensors to {output}")
    return 0


def _to_hf(source: Path, output: Path, model_key: str | None) -> int:
    from modalities.api import load_app_config_dict
    from modalities.checkpointing.dcp import read_model_state_dict
    from modalities.checkpointing.layout import CONFIG_FILE, resolve_checkpoint
    from modalities.conversion.model_source import base_model_of, find_checkpointed_model
    from modalities.interop.hf_gpt2 import export_state_dict_to_hf
    from modalities.models.gpt2.config import GPT2LLMConfig

    if source.is_dir():  # one of our checkpoint folders: the model is described by the config saved with it
        checkpoint = resolve_checkpoint(source)
        config = load_app_config_dict(checkpoint / CONFIG_FILE)
        name, node = _model_node_of_saved_config(config, model_key, checkpoint / CONFIG_FILE)
        name, node = base_model_of(config, name, node)
        state_dict = read_model_state_dict(checkpoint)
        origin = str(checkpoint)
    else:
        config = load_app_config_dict(source)
        checkpointed = find_checkpointed_model(config, model_key, source)
        name, node = checkpointed.base_key, checkpointed.base_node
        if checkpointed.loading_variant in ("torch", "fsdp1"):
            from modalities.checkpointing.torch_loading import read_state_dict_file

            state_dict = read_state_dict_file(checkpointed.checkpoint_path, _cpu())
        else:
            state_dict = read_model_state_dict(checkpointed.checkpoint_path)
        origin = f"{checkpointed.checkpoint_path} (loaded by '{checkpointed.name}')"
    if (node.get("component_key"), node.get("variant_key")) != ("model", "gpt2"):
        raise ValueError(
            f"'{name}' is model/{node.get('variant_key')}; only model/gpt2 can be exported to Hugging Face"
        )
    model_config = GPT2LLMConfig.model_validate(node.get("config") or {})
    export_state_dict_to_hf(model_config, state_dict, output)
    print(f"wrote a transformers model to {output} with the weights of {origin}")
    return 0


def _cpu():
    import torch

    return torch.device("cpu")


def _model_node_of_saved_config(config: dict, model_key: str | None, where: Path) -> tuple[str, dict]:
    if model_key is not None:
        if model_key not in config:
            raise KeyError(f"{where} has no top-level '{model_key}'")
        return model_key, config[model_key]
    app_state = config.get("app_state")
    model = (app_state.get("config") or {}).get("model") if isinstance(app_state, dict) else None
    if isinstance(model, dict) and "instance_key" in model:
        key = model["instance_key"]
        if key in config:
            return key, config[key]
    if "model_raw" in config:
        return "model_raw", config["model_raw"]
    raise KeyError(f"{where}: cannot tell which model was trained; pass --model-key with its top-level key")
