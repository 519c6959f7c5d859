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
    to_hf.add_argument("--model-key", default="model_raw", help="top-level key of the unwrapped model in the config")


def run(args: argparse.Namespace) -> int:
    from modalities.checkpointing.layout import CheckpointError

    try:
        if args.target == "to-torch":
            return _to_torch(Path(args.checkpoint), Path(args.output))
        return _to_hf(Path(args.source), Path(args.output), args.model_key)
    except (CheckpointError, FileExistsError, KeyError, ValueError) as e:
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


def _to_hf(source: Path, output: Path, model_key: str) -> int:
    from modalities.api import Main, load_app_config_dict
    from modalities.checkpointing.layout import CONFIG_FILE, resolve_checkpoint

    checkpoint = None
    if source.is_dir():
        checkpoint = resolve_checkpoint(source)
        config_path = checkpoint / CONFIG_FILE
    else:
        config_path = source
    config = load_app_config_dict(config_path)
    if model_key not in config:
        raise KeyError(f"{config_path} has no top-level '{model_key}' (pass --model-key with the unwrapped model's key)")
    model_node = dict(config[model_key])
    model_node["config"] = {**model_node.get("config", {}), "use_meta_device": False}
    model = Main({"model": model_node}).build_components()["model"]
    if checkpoint is not None:
        from modalities.checkpointing.dcp import read_model_state_dict

        model.load_state_dict(read_model_state_dict(checkpoint), strict=True)
    from modalities.interop.hf_gpt2 import export_to_hf

    export_to_hf(model, output)
    print(f"wrote a transformers model to {output}")
    return 0
