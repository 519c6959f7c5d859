"""``modalities convert``: ``to-torch CHECKPOINT OUT.pt``, ``to-hf CHECKPOINT_OR_CONFIG OUT_DIR [--tokenizer DIR]
[--remote-code] [--dropless]`` (a model/gpt2 as GPT-2, Llama, Qwen3 or StableLM, whichever holds its shape; with
--remote-code, a shape none holds is written with its own modelling code; a model/moe as Qwen3-MoE, with
--dropless also one whose capacity drops slots under balanced routing; see interop/hf_export.py) and
``from-hf HF_DIR OUT.pt`` (any of those as our model/gpt2 or model/moe: the weights and the config to build it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    to_torch = sub.add_parser("to-torch", help="write the full model state dict of a checkpoint to a .pt file")
    to_torch.add_argument("checkpoint", help="a checkpoint folder (or an experiment's checkpoints/latest)")
    to_torch.add_argument("output", help="the .pt file to write")
    to_hf = sub.add_parser(
        "to-hf", help="write a transformers folder (GPT-2, Llama, Qwen3, StableLM; Qwen3-MoE for a model/moe) from a "
        "checkpoint or a config"
    )
    to_hf.add_argument(
        "source",
        nargs="+",
        help="a checkpoint folder (its saved config builds the model), or a config file (several: merged left to "
        "right, as `extends:` would)",
    )
    to_hf.add_argument("output", help="the folder to write (must not exist or be empty)")
    to_hf.add_argument(
        "--tokenizer",
        default=None,
        metavar="DIR",
        help="the Hugging Face tokenizer (folder, tokenizer.json or cached hub id) to save with the model "
        "(default: the config's tokenizer component, if it has a pretrained_hf_tokenizer)",
    )
    to_hf.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                       help="override a value of the config (repeatable)")
    to_hf.add_argument(
        "--model-key",
        default=None,
        help="a config: the top-level key of the checkpointed model to export (default: the config's only "
        "model/checkpointed); a checkpoint folder: the key of the unwrapped model in its saved config "
        "(default: the model under app_state)",
    )
    to_hf.add_argument(
        "--remote-code",
        action="store_true",
        help="where no transformers architecture holds the model exactly, write it with its own modelling code "
        "(the folder then loads with trust_remote_code=True, as the reference's exports do)",
    )
    to_hf.add_argument(
        "--dropless",
        action="store_true",
        help="a model/moe whose capacity drops routed slots even under balanced routing (moe_capacity_factor below "
        "moe_top_k): export it anyway, as the dropless model transformers' Qwen3-MoE computes (every slot kept); "
        "refused without this flag",
    )
    from_hf = sub.add_parser(
        "from-hf", help="a transformers GPT-2, Llama, Qwen3 or StableLM as our model/gpt2, a Qwen3-MoE as our "
        "model/moe (.pt + config)"
    )
    from_hf.add_argument("source", help="a transformers model folder (or a hub id in the local Hugging Face cache)")
    from_hf.add_argument("output", help="the .pt state dict to write (for checkpoint_loading/torch)")
    from_hf.add_argument(
        "--config", default=None, metavar="YAML",
        help="where to write the model component that builds this model (default: OUTPUT with .yaml)",
    )


def run(args: argparse.Namespace) -> int:
    from modalities.checkpointing.layout import CheckpointError
    from modalities.config.diagnostics import ConfigError
    from modalities.conversion.model_source import ModelSourceError

    try:
        if args.target == "to-torch":
            return _to_torch(Path(args.checkpoint), Path(args.output))
        if args.target == "from-hf":
            return _from_hf(args.source, Path(args.output), Path(args.config) if args.config else None)
        sources = [args.source] if isinstance(args.source, str) else list(args.source)
        return _to_hf([Path(s) for s in sources], Path(args.output), args.model_key, args.tokenizer, args.overrides,
                      getattr(args, "remote_code", False), getattr(args, "dropless", False))
    except ConfigError as e:
        print(f"modalities convert: error: the config has errors:\n{e}", file=sys.stderr)
        return 1
    except (CheckpointError, ModelSourceError, FileExistsError, FileNotFoundError, KeyError, ValueError) as e:
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


def _to_hf(
    sources: list[Path], output: Path, model_key: str | None, tokenizer: str | None, overrides: list[str],
    remote_code: bool, dropless: bool = False,
) -> int:
    from modalities.api import load_app_config_dict
    from modalities.checkpointing.dcp import read_model_state_dict
    from modalities.checkpointing.layout import CONFIG_FILE, resolve_checkpoint
    from modalities.conversion.model_source import base_model_of, find_checkpointed_model
    from modalities.interop.hf_export import export_state_dict_to_hf, load_tokenizer

    source = sources[0] if len(sources) == 1 else Path(" + ".join(map(str, sources)))
    if len(sources) == 1 and source.is_dir():  # one of our checkpoint folders: the config saved with it
        checkpoint = resolve_checkpoint(source)
        config = load_app_config_dict(checkpoint / CONFIG_FILE, overrides=overrides)
        name, node = _model_node_of_saved_config(config, model_key, checkpoint / CONFIG_FILE)
        name, node = base_model_of(config, name, node)
        origin = str(checkpoint)

        def read_weights():
            return read_model_state_dict(checkpoint)
    else:
        config = load_app_config_dict(sources, overrides=overrides)
        checkpointed = find_checkpointed_model(config, model_key, source)
        name, node = checkpointed.base_key, checkpointed.base_node
        origin = f"{checkpointed.checkpoint_path} (loaded by '{checkpointed.name}')"

        def read_weights():
            if checkpointed.loading_variant in ("torch", "fsdp1"):
                from modalities.checkpointing.torch_loading import read_state_dict_file

                return read_state_dict_file(checkpointed.checkpoint_path, _cpu())
            return read_model_state_dict(checkpointed.checkpoint_path)
    if node.get("variant_key") == "moe":  # a model/moe the export would change: refused before its weights are read
        _exportable_model_config(name, node, dropless)
    state_dict = read_weights()  # (read first otherwise: a checkpoint that is not plain data is named as such)
    model_config = _exportable_model_config(name, node, dropless)
    tokenizer_location = tokenizer or _config_tokenizer(config)
    loaded = load_tokenizer(tokenizer_location) if tokenizer_location else None
    written, architecture = export_state_dict_to_hf(model_config, state_dict, output, loaded, remote_code, dropless)
    with_tokenizer = (f" and the tokenizer of {tokenizer_location}" if loaded is not None
                      else " (no tokenizer: give --tokenizer)")
    print(f"wrote a transformers {architecture} model to {written} with the weights of {origin}{with_tokenizer}")
    if node["variant_key"] == "moe":
        from modalities.interop.hf_qwen3_moe import export_notes

        notes = export_notes(model_config)
        if notes:
            print("what transformers' Qwen3-MoE does not have:\n  - " + "\n  - ".join(notes))
    return 0


def _exportable_model_config(name: str, node: dict, dropless: bool):
    """The validated config of the model to export (GPT2LLMConfig, MoEModelConfig); a model/moe whose export would
    compute another function is refused here unless ``dropless``."""
    from modalities.interop.hf_gpt2 import HFConversionError
    from modalities.interop.hf_qwen3_moe import HFMoEConversionError, check_exportable
    from modalities.models.gpt2.config import GPT2LLMConfig
    from modalities.models.moe.config import MoEModelConfig

    config_classes = {"gpt2": GPT2LLMConfig, "moe": MoEModelConfig}
    if node.get("component_key") != "model" or node.get("variant_key") not in config_classes:
        raise ValueError(
            f"'{name}' is {node.get('component_key')}/{node.get('variant_key')}; only model/gpt2 and model/moe can be "
            "exported to Hugging Face"
        )
    model_config = config_classes[node["variant_key"]].model_validate(node.get("config") or {})
    if isinstance(model_config, MoEModelConfig):
        try:
            check_exportable(model_config, dropless)
        except HFMoEConversionError as e:
            raise HFConversionError(f"'{name}' (model/moe): {e}") from None
    return model_config


def _config_tokenizer(config: dict) -> str | None:
    """The location of the config's Hugging Face tokenizer component, if it has exactly one."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            if value.get("component_key") == "tokenizer" and value.get("variant_key") == "pretrained_hf_tokenizer":
                location = (value.get("config") or {}).get("pretrained_model_name_or_path")
                if isinstance(location, str) and location not in found:
                    found.append(location)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(dict(config))
    return found[0] if len(found) == 1 else None


def _from_hf(source: str, output: Path, config_out: Path | None) -> int:
    import os

    import torch

    from modalities.config.dump import dump_yaml
    from modalities.interop.hf_export import import_model_from_hf

    variant, config, state = import_model_from_hf(source)
    config_out = config_out or output.with_suffix(".yaml")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".tmp-{output.name}")
    torch.save(state, tmp)
    os.replace(tmp, output)
    component = {"component_key": "model", "variant_key": variant, "config": config}
    text = (
        f"# model/{variant} of {source}, imported by `modalities convert from-hf`; its weights are {output.name}:\n"
        "#   model: {component_key: model, variant_key: checkpointed, config: {model: {instance_key: model_raw, "
        "pass_type: BY_REFERENCE},\n#     checkpoint_loading: {component_key: checkpoint_loading, variant_key: "
        f"torch, config: {{device: cpu}}}}, checkpoint_path: {output}}}}}\n"
        + dump_yaml({"model_raw": component})
    )
    tmp_config = config_out.with_name(f".tmp-{config_out.name}")
    tmp_config.write_text(text)
    os.replace(tmp_config, config_out)
    second_of_tied = {"gpt2": ("transformer.wte.weight", "use_weight_tying"),
                      "moe": ("lm_head.weight", "tie_embeddings")}
    tied_name, tied_field = second_of_tied[variant]
    count = sum(t.numel() for name, t in state.items() if name != tied_name or not config[tied_field])
    print(f"wrote {output} ({count:,} parameters) and {config_out} (the model/{variant} component that loads it)")
    if variant == "moe":
        print(f"  moe_capacity_factor {config['moe_capacity_factor']:g} (= moe_num_experts): no token is ever over "
              "capacity, as in transformers, so the logits are the same; lower it in the config to train with a "
              "capacity (the reference's configs use 1.25; below moe_top_k, exporting it again takes --dropless)")
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
