"""The 12-byte header of a .pbin file and what follows from it, without numpy or torch (validate reads it).

See docs/data-format.md for the layout; PackedFile (data/pbin.py) adds the tokens and the document index.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from modalities.data.errors import DataError

DATA_SECTION_LENGTH_BYTES = 8
TOKEN_WIDTH_BYTES = 4
HEADER_SIZE = DATA_SECTION_LENGTH_BYTES + TOKEN_WIDTH_BYTES
TOKEN_WIDTHS = (1, 2, 4)


@dataclass(frozen=True)
class PbinHeader:
    data_len: int  # bytes of the token section
    token_width: int  # bytes per token: 1, 2 or 4
    file_size: int

    @property
    def num_tokens(self) -> int:
        """data_len // token_width (the header is checked to make it a whole number)."""
        return self.data_len // self.token_width

    @property
    def min_vocab_size(self) -> int:
        """The packer picks the narrowest width that holds every id, so a w-byte file comes from a tokenizer of
        more than 256**(w-1) ids."""
        return {1: 1, 2: 2**8 + 1, 4: 2**16 + 1}[self.token_width]


def read_pbin_header(path: str | os.PathLike) -> PbinHeader:
    """The header, checked against the file's size; DataError naming the file and what is wrong: a missing
    file, fewer than 12 bytes, a width other than 1, 2 or 4, a token section running past the end of the file
    (one ending exactly at the end is fine: the index is checked where it is read), or a section length that is
    not a whole number of tokens."""
    path = Path(path)
    try:
        if not path.is_file():
            raise DataError(f"{path}: packed data file not found; create it with `modalities data pack_encoded_data`")
        file_size = path.stat().st_size
        with path.open("rb") as f:
            header = f.read(HEADER_SIZE)
    except OSError as e:  # unreadable, or a name the system refuses (too long)
        raise DataError(f"{path}: cannot read the packed data file: {e.strerror or e}") from None
    if len(header) < HEADER_SIZE:
        raise DataError(f"{path}: truncated .pbin file: {file_size} bytes, shorter than the {HEADER_SIZE}-byte header")
    data_len, token_width = struct.unpack("<QI", header)
    if token_width not in TOKEN_WIDTHS:
        raise DataError(
            f"{path}: token width {token_width} in the header is not 1, 2 or 4 bytes; "
            "the file is corrupted or not a .pbin file"
        )
    if HEADER_SIZE + data_len > file_size:
        raise DataError(
            f"{path}: truncated .pbin file: the header announces {data_len} bytes of tokens but the file has only "
            f"{file_size - HEADER_SIZE} after the header"
        )
    if data_len % token_width:
        raise DataError(
            f"{path}: the token section ({data_len} bytes) is not a multiple of the token width ({token_width}); "
            "the file is corrupted"
        )
    return PbinHeader(data_len, token_width, file_size)


def continuous_block_size(sequence_length: int, reuse_last_target: bool) -> int:
    """Tokens per sample: sequence_length + 1 when neighbours share a token (the collator's shift then leaves
    sequence_length inputs), exactly sequence_length when they do not (the reference's rule)."""
    return sequence_length + 1 if reuse_last_target else sequence_length


def num_continuous_samples(num_tokens: int, sequence_length: int, reuse_last_target: bool) -> int:
    """Samples a stream of num_tokens tokens gives (see :func:`continuous_block_size`): with
    ``reuse_last_target`` blocks of s + 1 tokens starting every s tokens, so 0 below s + 1 tokens and
    (num_tokens - 1) // s from there; without, num_tokens // s disjoint blocks of s."""
    block = continuous_block_size(sequence_length, reuse_last_target)
    if num_tokens < block:
        return 0
    if reuse_last_target:
        return (num_tokens - block) // (block - 1) + 1
    return num_tokens // block


def megatron_sample_starts(documents, block_size: int) -> list[int]:
    """Token offsets of the samples of ``block_size`` tokens that the reference's Megatron-style packing cuts:
    documents are accumulated until a block is full; a document that overflows the block starts the next
    sample at its own beginning, unless it is longer than a block, in which case the next sample starts one
    block further.
    ``documents`` holds (token offset, token length) rows (a sequence or an array). No documents give no
    starts; documents that never fill a block give none either. The starts are not checked against the end
    of the stream: a caller leaves out a sample that would run past it."""
    starts: list[int] = []
    current_start, current_len = 0, 0
    for document_start, length in ((int(o), int(n)) for o, n in documents):
        if current_len + length < block_size:
            current_len += length
        elif current_len + length == block_size:
            starts.append(current_start)
            current_len = 0
            current_start += block_size
        else:
            starts.append(current_start)
            if length > block_size:
                current_start += block_size
                current_len = 0
            else:
                current_start, current_len = document_start, length
    return starts
