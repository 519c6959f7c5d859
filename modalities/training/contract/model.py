"""The run contract's checks of the model against its data: the context against the samples' length, the
vocabulary against the data files' token width, the tokenizer that packed them and the config's tokenizers."""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from modalities.registry.types import Finding, NodeInfo
from modalities.training.contract.parts import WARNING, RunParts, finding, known_int


def sequence_lengths(parts: RunParts) -> Iterator[Finding]:
    """Data windows against the model's context, the step profile's and the MFU calculator's lengths."""
    model = parts.model()
    length_field = "max_seq_len" if parts.field(model, "max_seq_len") is not None else "sequence_length"
    model_length = parts.field(model, length_field)
    train_lengths = []
    for role, loader in parts.loaders():
        for dataset in parts.datasets(loader):
            length = parts.field(dataset, "sequence_length")
            if not isinstance(length, int):
                continue
            if role == "train":
                train_lengths.append((dataset, length))
            if isinstance(model_length, int) and length > model_length:
                yield finding(
                    parts.at(dataset, "sequence_length"),
                    f"samples of {length} input tokens are longer than the model's context of {model_length} "
                    f"({parts.where(parts.at(model, length_field))}); the model would fail on the first batch",
                    hint="use the same sequence_length for the data and the model",
                )
    if not train_lengths:
        return
    dataset, length = train_lengths[0]
    profile_length = known_int(parts.run.settings.step_profile.sequence_length)
    if profile_length is not None and profile_length != length:
        yield finding(
            ("settings", "step_profile", "sequence_length"),
            f"the step profile says {profile_length} tokens per sample, but the train data gives {length} "
            f"({parts.where(parts.at(dataset, 'sequence_length'))}); token counts and targets computed from the "
            "step profile are then wrong",
            WARNING,
        )
    mfu = parts.node(parts.run.mfu_calculator)
    mfu_length = parts.field(mfu, "sequence_length")
    if isinstance(mfu_length, int) and mfu_length != length:
        yield finding(
            parts.at(mfu, "sequence_length"),
            f"MFU is computed for {mfu_length} tokens per sample, but the train data gives {length} "
            f"({parts.where(parts.at(dataset, 'sequence_length'))}); the logged MFU would be wrong",
            WARNING,
        )


def vocabulary(parts: RunParts) -> Iterator[Finding]:
    """The model's embedding against the ids the data files' token width implies, then against the tokenizer
    that packed them (their info files), then against the config's Hugging Face tokenizers; the first that
    disagrees is reported."""
    model = parts.model()
    vocab_size = parts.field(model, "vocab_size")
    if not isinstance(vocab_size, int):
        return
    for _, loader in parts.loaders():
        for dataset in parts.datasets(loader):
            header = parts.header(dataset)
            if header is not None and vocab_size < header.min_vocab_size:
                yield finding(
                    parts.at(model, "vocab_size"),
                    f"vocab_size {vocab_size} cannot embed the data of {parts.where(parts.at(dataset, 'raw_data_path'))}: "
                    f"it holds {header.token_width}-byte tokens, written only for tokenizers of more than "
                    f"{header.min_vocab_size - 1} ids",
                    hint="set vocab_size to the tokenizer's size (special and added tokens included)",
                )
                return
    if (yield from _against_the_packer(parts, model, vocab_size)):
        return
    for info in parts.nodes():
        if info.component_key != "tokenizer":
            continue
        size = _hf_tokenizer_size(parts.field(info, "pretrained_model_name_or_path"))
        if size is not None and vocab_size < size:
            where = parts.where(parts.at(info, "pretrained_model_name_or_path"))
            yield _smaller_than(parts, model, vocab_size, size, f"the tokenizer at {where}")
            return


def _smaller_than(parts: RunParts, model: NodeInfo, vocab_size: int, size: int, tokenizer: str) -> Finding:
    return finding(parts.at(model, "vocab_size"), f"vocab_size {vocab_size} is smaller than the {size} ids of "
                   f"{tokenizer}", hint=f"set vocab_size to at least {size}")


def _against_the_packer(parts: RunParts, model: NodeInfo, vocab_size: int) -> Generator[Finding, None, bool]:
    """Against the info file the packer writes beside a .pbin (data/pbin_info.py): the model must embed every id
    of the tokenizer that packed the data, and a tokenizer this config names must be that one. Returns True
    when it found one of these (an unreadable info file is only a warning)."""
    from modalities.data.errors import DataError
    from modalities.data.pbin_info import describe_tokenizer, read_info, same_tokenizer

    tokenizers = None  # the config's tokenizers' identities, hashed only once a data file names its packer
    for _, loader in parts.loaders():
        for dataset in parts.datasets(loader):
            path = parts.field(dataset, "raw_data_path")
            if path is None or Path(path).suffix != ".pbin":
                continue
            try:
                packed = read_info(path)
            except DataError as e:
                yield finding(parts.at(dataset, "raw_data_path"), str(e), WARNING)
                continue
            packer = (packed or {}).get("tokenizer")
            if not packer:
                continue
            data_at = parts.where(parts.at(dataset, "raw_data_path"))
            size = known_int(packer.get("vocab_size"))
            if size is not None and vocab_size < size:
                packed_by = f"the {describe_tokenizer(packer)} that packed {data_at} (its .info.json)"
                yield _smaller_than(parts, model, vocab_size, size, packed_by)
                return True
            if tokenizers is None:
                tokenizers = [(info, _config_tokenizer_identity(info, parts.field)) for info in parts.nodes()
                              if info.component_key == "tokenizer"]
            for info, identity in tokenizers:
                if same_tokenizer(identity, packer) is False:
                    where = parts.at(info, "pretrained_model_name_or_path" if info.variant_key ==
                                     "pretrained_hf_tokenizer" else "tokenizer_model_file")
                    yield finding(
                        where,
                        f"this tokenizer is not the one that packed {data_at}: that was the "
                        f"{describe_tokenizer(packer)} (their files differ)",
                        hint="use the tokenizer the data was packed with, or pack the data again with this one",
                    )
                    return True
    return False


def _config_tokenizer_identity(info: NodeInfo, field) -> dict | None:
    """The fingerprint (data/pbin_info.py) a built-in tokenizer component of this config would write, from its
    files; None for others or when its files are not here."""
    from modalities.data.pbin_info import files_digest

    try:
        if info.variant_key == "pretrained_hf_tokenizer":
            location = field(info, "pretrained_model_name_or_path")
            path = _local_tokenizer_path(location)
            if path is None:
                return None
            return {"kind": "huggingface", "fingerprint": files_digest(path)}
        if info.variant_key == "pretrained_sp_tokenizer":
            import hashlib

            location = field(info, "tokenizer_model_file")
            if not isinstance(location, (str, Path)) or not Path(location).is_file():
                return None
            return {"kind": "sentencepiece", "fingerprint": hashlib.sha256(Path(location).read_bytes()).hexdigest()}
    except (OSError, ValueError):  # unreadable, or a name the system refuses (too long, a NUL in it)
        return None
    return None


def _local_tokenizer_path(location: Any) -> Path | None:
    if not isinstance(location, (str, Path)):
        return None
    path = Path(location)
    if os.path.exists(path):  # False, not an error, for a name the system refuses (too long, a NUL in it)
        return path
    from modalities.interop.hub import HubResolutionError, looks_like_repo_id, resolve_pretrained

    if not looks_like_repo_id(str(location)):
        return None
    try:
        return resolve_pretrained(location)
    except HubResolutionError:
        return None


def _hf_tokenizer_size(location: Any) -> int | None:
    """The number of ids of a Hugging Face tokenizer folder or tokenizer.json, read from the JSON alone."""
    if not isinstance(location, (str, Path)):
        return None
    path = Path(location)
    if not os.path.exists(path):  # as above
        from modalities.interop.hub import HubResolutionError, looks_like_repo_id, resolve_pretrained

        if not looks_like_repo_id(str(location)):
            return None
        try:
            path = resolve_pretrained(location)  # a hub id in the local cache
        except HubResolutionError:
            return None
    path = path / "tokenizer.json" if path.is_dir() else path
    if path.suffix != ".json" or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        vocab = data["model"]["vocab"]
        ids = set(vocab.values()) if isinstance(vocab, dict) else set(range(len(vocab)))
        ids.update(token["id"] for token in data.get("added_tokens") or [])
        return max(ids) + 1 if ids else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
