"""The packed token file (.pbin), byte-compatible with Modalities.

Layout (all little-endian)::

    bytes 0..8    uint64  length of the token section in bytes (N)
    bytes 8..12   uint32  token width in bytes: 1, 2 or 4
    bytes 12..12+N        the tokens, each `width` bytes
    bytes 12+N..          pickled list of (byte_offset, byte_length) per document; offsets count from the
                          start of the token section

See docs/data-format.md.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from modalities.data.errors import DataError
from modalities.data.pbin_header import HEADER_SIZE, read_pbin_header
from modalities.data.pbin_info import common_tokenizer, write_derived_info
from modalities.data.safe_pickle import dump_offsets_index, load_offsets_index

TOKEN_DTYPES = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4")}


def token_width_for_vocab(vocab_size: int) -> int:
    """The smallest supported width (1, 2 or 4 bytes) that holds every id below ``vocab_size``: 1 up to 256 ids
    (ids 0..255), 2 from 257 up to 65,536, 4 from 65,537 up to 2**32; DataError above that."""
    for width in (1, 2, 4):
        if vocab_size <= 1 << (8 * width):
            return width
    raise DataError(f"a vocabulary of {vocab_size} tokens does not fit the 4-byte tokens of the .pbin format")


def encode_header(data_len: int, token_width: int) -> bytes:
    """The 12-byte header: ``data_len`` (bytes of tokens) as a little-endian uint64, then the width as uint32."""
    return struct.pack("<QI", data_len, token_width)


class PackedFile:
    """A read-only view of a .pbin file: header checked, tokens memory-mapped, index loaded on demand.

    ``data_len`` bytes of tokens, ``num_tokens = data_len // token_width`` of them in ``tokens`` (a memory map;
    an empty array for a file without tokens). ``index`` is checked when it is read: a document that ends past
    the token section, an offset or length not a multiple of the width, or a width narrowed in the header is a
    DataError naming the file and the document; a document may be empty (length 0) and an index may hold no
    documents. ``document(i)`` follows Python's indexing (-1 is the last document; IndexError past either end).
    """

    def __init__(self, path: str | os.PathLike, load_index: bool = True):
        self.path = Path(path)
        header = read_pbin_header(self.path)
        self.data_len, self.token_width = header.data_len, header.token_width
        self._index: np.ndarray | None = None
        if load_index:
            self._index = self.index
        self.dtype = TOKEN_DTYPES[self.token_width]
        self.num_tokens = self.data_len // self.token_width
        self._map_tokens()

    def _map_tokens(self) -> None:
        # np.memmap cannot map zero bytes; an empty file simply has no tokens.
        if self.num_tokens:
            self.tokens = np.memmap(self.path, dtype=self.dtype, mode="r", offset=HEADER_SIZE, shape=(self.num_tokens,))
        else:
            self.tokens = np.zeros(0, dtype=self.dtype)

    def __getstate__(self) -> dict:
        # A pickled memmap would carry a copy of all tokens (e.g. to spawned loader workers); map the file again.
        return {k: v for k, v in self.__dict__.items() if k != "tokens"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._map_tokens()

    def _check_index(self, index: np.ndarray) -> np.ndarray:
        if len(index) == 0:
            return index
        ends = index[:, 0] + index[:, 1]
        bad = np.flatnonzero(ends > self.data_len)
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"{self.path}: document {i} of the index (offset {index[i, 0]}, length {index[i, 1]}) lies beyond "
                f"the {self.data_len}-byte token section; the file is corrupted"
            )
        misaligned = np.flatnonzero((index[:, 0] % self.token_width) | (index[:, 1] % self.token_width))
        if len(misaligned):
            i = int(misaligned[0])
            raise DataError(
                f"{self.path}: document {i} of the index (offset {index[i, 0]}, length {index[i, 1]}) is not aligned "
                f"to the {self.token_width}-byte token width; the file is corrupted"
            )
        self._check_width_not_narrowed(index)
        return index

    def _check_width_not_narrowed(self, index: np.ndarray) -> None:
        """A header whose token width was made smaller (2 -> 1) still passes every check above: the byte
        lengths stay aligned. But then every document is a whole number of the real, wider tokens, which many
        documents of different lengths almost never are by chance (1 in 2^n for n documents)."""
        lengths = index[:, 1]
        if len(np.unique(lengths)) < 16:  # padded or few documents: lengths tell nothing
            return
        for wider in (4, 2):
            if wider > self.token_width and not ((index[:, 0] % wider) | (lengths % wider)).any() \
                    and self.data_len % wider == 0:
                raise DataError(
                    f"{self.path}: the header says {self.token_width}-byte tokens, but each of the {len(index)} "
                    f"documents is a whole number of {wider}-byte tokens: the token width in the header (bytes 8-11) "
                    f"was most likely changed from {wider}; restore it, or pack the data again"
                )

    @property
    def index(self) -> np.ndarray:
        """``(num_documents, 2)`` array of (byte offset, byte length) within the token section."""
        if self._index is None:
            with self.path.open("rb") as f:
                f.seek(HEADER_SIZE + self.data_len)
                self._index = self._check_index(load_offsets_index(f.read(), str(self.path)))
        return self._index

    @property
    def num_documents(self) -> int:
        """Rows of the index (reads it if it was not loaded)."""
        return len(self.index)

    def document(self, i: int) -> np.ndarray:
        """The tokens of document ``i`` (its EOD included, as packed), a copy-free view read from the map."""
        offset, length = self.index[i]
        start = offset // self.token_width
        return np.asarray(self.tokens[start : start + length // self.token_width])


class PackedFileWriter:
    """Writes a .pbin to a temporary file in the destination folder and renames it into place on ``close``.

    A width other than 1, 2 or 4 is a ValueError; an existing destination a DataError unless ``overwrite``.
    Until ``close`` the destination is untouched; ``abort`` leaves it as it was. A writer closed without a
    document writes a valid file of 0 tokens and 0 documents."""

    def __init__(self, dst_path: str | os.PathLike, token_width: int, overwrite: bool = False):
        if token_width not in TOKEN_DTYPES:
            raise ValueError(f"token width must be 1, 2 or 4, got {token_width}")
        self.dst_path = Path(dst_path)
        if self.dst_path.exists() and not overwrite:
            raise DataError(f"{self.dst_path}: output file already exists; remove it or ask to overwrite it")
        self.dst_path.parent.mkdir(parents=True, exist_ok=True)
        self.token_width = token_width
        self.dtype = TOKEN_DTYPES[token_width]
        self.tmp_path = self.dst_path.with_name(f".{self.dst_path.name}.{os.getpid()}.tmp")
        self._file = self.tmp_path.open("wb")
        self._file.write(encode_header(0, token_width))
        self._data_len = 0
        self._index_parts: list[np.ndarray] = []

    def write_tokens(self, tokens: np.ndarray, doc_token_lengths: np.ndarray) -> None:
        """Append the tokens of consecutive documents (EOD already included) and their token counts, which must
        add up to the tokens given (ValueError otherwise). The ids must fit the width; the packer checks them."""
        byte_lengths = np.asarray(doc_token_lengths, dtype=np.int64) * self.token_width
        if int(byte_lengths.sum()) != len(tokens) * self.token_width:
            raise ValueError(
                f"{self.dst_path}: document lengths add up to {int(byte_lengths.sum()) // self.token_width} tokens, "
                f"but {len(tokens)} tokens were given"
            )
        offsets = self._data_len + np.cumsum(byte_lengths) - byte_lengths
        self._write(np.ascontiguousarray(tokens, dtype=self.dtype), np.stack([offsets, byte_lengths], axis=1))

    def write_packed(self, source: PackedFile) -> None:
        """Append another .pbin's tokens and documents (its offsets shifted past what is written)."""
        if source.token_width != self.token_width:
            raise DataError(f"{source.path}: token width {source.token_width} differs from {self.token_width}")
        index = source.index + np.array([self._data_len, 0], dtype=np.int64)
        chunk = 1 << 24
        for start in range(0, source.num_tokens, chunk):
            self._write(np.asarray(source.tokens[start : start + chunk]), None)
        self._index_parts.append(index)

    def _write(self, tokens: np.ndarray, index: np.ndarray | None) -> None:
        self._file.write(tokens.tobytes())
        self._data_len += tokens.nbytes
        if index is not None:
            self._index_parts.append(index)

    def close(self) -> tuple[int, int]:
        """Write the index and header, rename into place; returns (documents, tokens)."""
        index = np.concatenate(self._index_parts) if self._index_parts else np.zeros((0, 2), dtype=np.int64)
        self._file.write(dump_offsets_index(index[:, 0], index[:, 1]))
        self._file.seek(0)
        self._file.write(encode_header(self._data_len, self.token_width))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.tmp_path, self.dst_path)
        return len(index), self._data_len // self.token_width

    def abort(self) -> None:
        """Drop the temporary file; the destination is left as it was."""
        if not self._file.closed:
            self._file.close()
        self.tmp_path.unlink(missing_ok=True)


def merge_packed_files(
    sources: list[str | os.PathLike], dst_path: str | os.PathLike, overwrite: bool = False
) -> tuple[int, int]:
    """Concatenate .pbin files (same token width) into one, their documents in the order given; returns
    (documents, tokens) of the result. DataError for no input, inputs of different widths, or an output that is
    one of the inputs; the output is then not written."""
    if not sources:
        raise DataError("merge needs at least one input .pbin file")
    files = [PackedFile(p) for p in sources]
    widths = {f.token_width for f in files}
    if len(widths) > 1:
        detail = ", ".join(f"{f.path} ({f.token_width} bytes)" for f in files)
        raise DataError(f"cannot merge files with different token widths (different tokenizers?): {detail}")
    dst = Path(dst_path)
    if any(dst.resolve() == f.path.resolve() for f in files):
        raise DataError(f"{dst}: the output must not be one of the inputs")
    tokenizer = common_tokenizer(sources)
    writer = PackedFileWriter(dst, files[0].token_width, overwrite=overwrite)
    try:
        for f in files:
            writer.write_packed(f)
        documents, tokens = writer.close()
    except BaseException:
        writer.abort()
        raise
    write_derived_info(dst, tokenizer, files[0].token_width, documents, tokens,
                       {"merged": [str(Path(p).resolve()) for p in sources]})
    return documents, tokens
