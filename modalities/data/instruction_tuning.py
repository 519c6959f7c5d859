"""``modalities data prepare_instruction_tuning_data``: conversations -> chat text -> split, indexed and packed.

Follows the reference step by step, so its configs give the same files: each JSONL conversation's roles are
renamed (``instruction_data_transformation.role_mapping``), the conversation is rendered with the config's
Jinja2 chat template (in a sandbox) into a ``chat`` field, and each entry is assigned to a partition drawn with
Python's ``random.choices`` seeded by ``split_config.seed``. The partitions land in
``<dst folder>/<src stem>_<hash>/<dst stem>_<partition>.<hash>.jsonl`` (hash: the first 7 hex digits of the
config file's SHA-256), each then indexed and packed with the pack config named by
``pbin_creation_config_file_path``.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, FilePath, model_validator

from modalities.data.errors import DataError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Splitting(_Strict):
    train: int = Field(ge=0)
    val: int = Field(ge=0)
    test: int = Field(ge=0)


class SplitConfig(_Strict):
    splitting: Splitting
    seed: int

    @model_validator(mode="after")
    def _percentages_add_up(self) -> "SplitConfig":
        total = self.splitting.train + self.splitting.val + self.splitting.test
        if total != 100:
            raise ValueError(f"splitting percentages must add up to 100, they add up to {total}")
        return self


class InstructionTuningSettings(_Strict):
    src_path: FilePath
    dst_path: Path
    messages_key: str
    split_config: SplitConfig | None = None
    pbin_creation_config_file_path: FilePath | None = None


class InstructionDataTransformation(_Strict):
    role_mapping: dict[str, str]


class InstructionTuningDataConfig(_Strict):
    settings: InstructionTuningSettings
    instruction_data_transformation: InstructionDataTransformation
    jinja2_chat_template: str
    chat_template_data: dict[str, Any]


def config_hash(config_file_path: Path) -> str:
    """The first 7 hex digits of the SHA-256 of the config file's bytes."""
    return hashlib.sha256(Path(config_file_path).read_bytes()).hexdigest()[:7]


def compile_chat_template(template_text: str):
    """The chat template in Jinja2's sandbox (a template cannot reach Python objects), with the newlines that
    YAML's ``|`` adds between tags removed, as the reference does."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    try:
        return environment.from_string(template_text.replace("}\n{", "}{"))
    except TemplateError as e:
        raise DataError(f"jinja2_chat_template: {e}") from None


def _rename_roles(conversation: list[dict], role_mapping: dict[str, str], where: str) -> list[dict]:
    for turn in conversation:
        for key in ("role", "from"):
            if key in turn:
                if turn[key] not in role_mapping:
                    raise DataError(
                        f"{where}: role '{turn[key]}' is not in instruction_data_transformation.role_mapping "
                        f"({', '.join(role_mapping)})"
                    )
                turn[key] = role_mapping[turn[key]]
    return conversation


def _entries(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open("r", encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            try:
                yield line_number, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{line_number}: not a JSON line: {e}") from None


def split_and_apply_chat_template(config_file_path: Path, config: InstructionTuningDataConfig) -> dict[str, Path]:
    """Write the rendered partitions; returns partition -> JSONL path for the partitions that got entries.

    Each entry's partition is ``random.choices(["train", "val", "test"], weights)`` with ``random`` seeded once
    by the split's seed (no split_config: everything to train), drawn before the entry is read further, so a
    partition of weight 0 gets nothing and no file. DataError naming ``file:line`` for a line that is not
    JSON, an entry without ``messages_key`` or a role outside the role mapping."""
    settings = config.settings
    template = compile_chat_template(config.jinja2_chat_template)
    digest = config_hash(config_file_path)
    dst_path = settings.dst_path.parent / f"{settings.src_path.stem}_{digest}" / settings.dst_path.name
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_file_path, dst_path.parent / f"instruction_chat_template_config.{digest}.yaml")
    suffix = f".{digest}" + "".join(dst_path.suffixes)
    split = settings.split_config or SplitConfig(splitting=Splitting(train=100, val=0, test=0), seed=0)
    weights = split.splitting.model_dump()
    partitions = [name for name, weight in weights.items() if weight]
    paths = {name: dst_path.with_name(f"{dst_path.stem}_{name}").with_suffix(suffix) for name in partitions}
    files = {name: path.open("w", encoding="utf-8") for name, path in paths.items()}
    used: set[str] = set()
    # The reference draws one partition per entry from the global random generator, seeded once.
    names, chances = list(weights), list(weights.values())
    random.seed(split.seed)
    try:
        for line_number, entry in _entries(settings.src_path):
            partition = random.choices(names, weights=chances)[0]
            where = f"{settings.src_path}:{line_number}"
            if settings.messages_key not in entry:
                raise DataError(f"{where}: no '{settings.messages_key}' (settings.messages_key) in the entry")
            messages = _rename_roles(entry[settings.messages_key], config.instruction_data_transformation.role_mapping, where)
            entry["chat"] = template.render(messages=messages, chat_template_data=config.chat_template_data)
            json.dump(entry, files[partition], ensure_ascii=False)
            files[partition].write("\n")
            used.add(partition)
    finally:
        for f in files.values():
            f.close()
    return {name: path for name, path in paths.items() if name in used}


def index_and_pack_partitions(
    partitions: dict[str, Path], pack: Callable[[str, Path, Path], Path] | None
) -> dict[str, dict[str, Path]]:
    """Index every partition's JSONL and, with ``pack`` (the pack config given), pack it:
    ``pack(partition, jsonl_path, index_path)`` returns the .pbin written. Returns partition -> {jsonl, idx,
    pbin} paths."""
    from modalities.data.raw_index import create_raw_index

    outputs: dict[str, dict[str, Path]] = {}
    for partition, jsonl_path in partitions.items():
        index_path = jsonl_path.with_suffix(".idx")
        create_raw_index(jsonl_path, index_path, overwrite=True)
        outputs[partition] = {"jsonl": jsonl_path, "idx": index_path}
        if pack is not None:
            outputs[partition]["pbin"] = pack(partition, jsonl_path, index_path)
    return outputs


def pack_config_path(partition: str, jsonl_path: Path) -> Path:
    """Where a partition's pack config is written: beside its JSONL, ``pbin_config_<partition>.<hash>.yaml``."""
    digest_suffix = jsonl_path.suffixes[0]
    return jsonl_path.with_name(f"pbin_config_{partition}").with_suffix(f"{digest_suffix}.yaml")


def pack_config_of(template: dict, jsonl_path: Path, index_path: Path) -> dict:
    """The partition's pack config: the (resolved) template with settings.src_path, index_path and dst_path
    filled in."""
    config = dict(template)
    config["settings"] = {
        **config["settings"],
        "src_path": str(jsonl_path),
        "index_path": str(index_path),
        "dst_path": str(index_path.with_suffix(".pbin")),
    }
    return config
