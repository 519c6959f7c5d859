"""The run contract's checks of the data: the files a run reads, and the keys a batch travels under."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from modalities.registry.types import Finding, NodeInfo
from modalities.training.contract.parts import RunParts, finding


def data_files(parts: RunParts) -> Iterator[Finding]:
    """Every .pbin a component names is there, readable, with a header that fits its size."""
    from modalities.data.errors import DataError
    from modalities.data.pbin_header import read_pbin_header

    for info in parts.nodes():
        for name in ("raw_data_path", "dataset_path"):
            path = parts.field(info, name)
            if path is None or Path(path).suffix != ".pbin":
                continue
            try:
                read_pbin_header(path)
            except DataError as e:
                yield finding(parts.at(info, name), str(e))


def batch_keys(parts: RunParts) -> Iterator[Finding]:
    """dataset -> collator -> model -> loss: each reads the key the one before writes."""
    model, loss = parts.model(), parts.node(parts.run.loss_fn)
    for role, loader in parts.loaders():
        collator = parts.collator(loader)
        for dataset in parts.datasets(loader):
            yield from _same(
                parts, dataset, "sample_key", collator, "sample_key",
                "the collator reads samples under '{b}', but the dataset ({a_at}) writes them under '{a}'",
            )
        if role == "train":
            yield from _same(
                parts, collator, "sample_key", model, "sample_key",
                "the model reads its input under '{b}', but the collator ({a_at}) puts it under '{a}'",
            )
            yield from _same(
                parts, collator, "target_key", loss, "target_key",
                "the loss reads targets under '{b}', but the collator ({a_at}) puts them under '{a}'",
            )
    yield from _same(
        parts, model, "prediction_key", loss, "prediction_key",
        "the loss reads the model's output under '{b}', but the model ({a_at}) returns it under '{a}'",
    )


def _same(
    parts: RunParts, a: NodeInfo | None, a_name: str, b: NodeInfo | None, b_name: str, message: str
) -> Iterator[Finding]:
    """At b's field when b's value differs from a's."""
    a_value, b_value = parts.field(a, a_name), parts.field(b, b_name)
    if not isinstance(a_value, str) or not isinstance(b_value, str) or a_value == b_value:
        return
    yield finding(
        parts.at(b, b_name),
        message.format(a=a_value, b=b_value, a_at=parts.where(parts.at(a, a_name))),
        hint=f"use the same key in both (usually ${{settings.referencing_keys.{b_name}}})",
    )
