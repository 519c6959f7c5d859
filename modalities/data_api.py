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
