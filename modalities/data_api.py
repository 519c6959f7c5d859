"""The data tools' work that needs the compiler (a config file loaded, resolved and checked, a component built),
for ``modalities data ...`` and library callers: the floor of the library API (api.py). The data floor
(modalities/data/) receives plain values and validated settings from here and never imports the compiler."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def prepare_instruction_tuning_data(config_file_path: str | Path, pack: Callable[[Path], None]):
    """Render, split, index and pack as the chat-template config says; ``pack(pack_config_path)`` packs one
    partition (the CLI's packer). Returns partition -> {jsonl, idx, pbin} paths."""
    from modalities.api import load_app_config_dict
    from modalities.config.dump import dump_yaml
    from modalities.data.instruction_tuning import (
        InstructionTuningDataConfig,
        index_and_pack_partitions,
        pack_config_of,
        pack_config_path,
        split_and_apply_chat_template,
    )

    config = InstructionTuningDataConfig.model_validate(dict(load_app_config_dict(config_file_path)))
    template = config.settings.pbin_creation_config_file_path

    def pack_partition(partition: str, jsonl_path: Path, index_path: Path) -> Path:
        # the template resolved (its ${...} refer to the template's place), then written beside the partition
        pack_config = pack_config_of(dict(load_app_config_dict(template)), jsonl_path, index_path)
        destination = pack_config_path(partition, jsonl_path)
        tmp = destination.with_name(f".{destination.name}.tmp")
        tmp.write_text(dump_yaml(pack_config), encoding="utf-8")
        tmp.replace(destination)
        pack(destination)
        return index_path.with_suffix(".pbin")

    partitions = split_and_apply_chat_template(Path(config_file_path), config)
    return index_and_pack_partitions(partitions, pack_partition if template is not None else None)


# The built-in Hugging Face tokenizer: packing takes it through the packing cache (data/prepared_tokenizer.py)
HF_TOKENIZER_BUILDER = "modalities.data.tokenizers:PreTrainedHFTokenizer"


def load_pack_config(config_path: str | Path):
    """A pack config's ``settings`` (data/config.py PackEncodedDataSettings), validated, and its ``tokenizer``,
    built. ConfigError with positions in the file for what is wrong in it (a misspelled setting with "did you
    mean"); DataError when it is no pack config at all."""
    from pydantic import ValidationError

    from modalities.api import Main, load_app_config_dict
    from modalities.config.diagnostics import ConfigError, Diagnostic
    from modalities.data.config import PackEncodedDataSettings
    from modalities.data.errors import DataError

    config = load_app_config_dict(config_path)
    source_map = config.document.source_map if config.document is not None else None
    if not isinstance(config.get("settings"), dict) or "tokenizer" not in config:
        raise DataError(f"{config_path}: a pack config needs a `settings` block and a `tokenizer` component")
    misspelled = _misspelled_settings(config["settings"], PackEncodedDataSettings, source_map)
    try:
        settings = PackEncodedDataSettings.model_validate(config["settings"])
    except ValidationError as e:
        raise ConfigError(misspelled + [
            Diagnostic(
                error["msg"],
                span=source_map.value(("settings", *error["loc"])) if source_map else None,
                path=("settings", *error["loc"]),
            )
            for error in e.errors()
        ]) from None
    if misspelled:
        raise ConfigError(misspelled)
    return settings, _packing_tokenizer(Main(config))


def pack_destination_exists(config_path: str | Path, shard: tuple[int, int] | None = None) -> bool:
    """Whether the .pbin a pack config writes (shard I of N of it) is there already."""
    from modalities.api import load_app_config_dict
    from modalities.data.packing import shard_path

    settings = load_app_config_dict(config_path).get("settings") or {}
    source = settings.get("src_path")
    destination = settings.get("dst_path") or (str(Path(source).with_suffix(".pbin")) if source else None)
    if not destination:
        return False
    return (shard_path(Path(destination), shard) if shard else Path(destination)).exists()


def _packing_tokenizer(main):
    """The config's tokenizer, validated; the built-in Hugging Face one through the packing cache (no
    transformers import once it has been prepared on this machine), any other built as a component."""
    from modalities.data.prepared_tokenizer import hf_tokenizer_for_packing

    node = main.config_dict.get("tokenizer")
    spec = main.registry.get("tokenizer", "pretrained_hf_tokenizer")
    plain = spec is not None and _plain_component(node, "tokenizer", "pretrained_hf_tokenizer")
    if plain and spec.builder_location == HF_TOKENIZER_BUILDER:
        # A component of plain values needs no graph: its config class alone validates it, and packing starts
        # without importing the later compiler stages. Whatever it rejects, the full compile reports with positions.
        from pydantic import ValidationError

        try:
            config = spec.config_class().model_validate(node.get("config") or {})
        except ValidationError:
            config = None
        if config is not None:
            return hf_tokenizer_for_packing(**config.model_dump())
    compiled = main.compile()
    compiled.raise_for_errors()
    node = compiled.validated.nodes.get(("tokenizer",))
    if node is not None and node.config is not None and node.spec.builder_location == HF_TOKENIZER_BUILDER:
        return hf_tokenizer_for_packing(**node.config.model_dump())
    return main.build_components()["tokenizer"]


def _plain_component(node, component_key: str, variant_key: str) -> bool:
    """``node`` is that component, with a config of plain values (no component, no reference inside)."""
    if not isinstance(node, dict) or set(node) - {"component_key", "variant_key", "config"}:
        return False
    if node.get("component_key") != component_key or node.get("variant_key") != variant_key:
        return False

    def plain(value) -> bool:
        if isinstance(value, dict):
            return "component_key" not in value and "instance_key" not in value and all(map(plain, value.values()))
        if isinstance(value, list):
            return all(map(plain, value))
        return True

    return isinstance(node.get("config", {}), dict) and plain(node.get("config", {}))


def _misspelled_settings(settings: dict, model, source_map) -> list:
    """Unknown settings are variables for interpolation, unless they look like a misspelled field."""
    import difflib

    from modalities.config.diagnostics import Diagnostic, did_you_mean

    diagnostics = []
    for key in settings:
        if key in model.model_fields:
            continue
        hint = did_you_mean(str(key), [f for f in model.model_fields if f.startswith(str(key)[:3])]) or did_you_mean(
            str(key), list(model.model_fields)
        )
        if hint and difflib.get_close_matches(str(key), list(model.model_fields), n=1, cutoff=0.8):
            diagnostics.append(
                Diagnostic(
                    f"unknown setting '{key}'",
                    span=source_map.key(("settings", key)) if source_map else None,
                    path=("settings", key),
                    hint=hint,
                )
            )
    return diagnostics
