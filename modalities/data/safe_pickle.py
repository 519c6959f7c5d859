"""Loading the pickled indices of .idx and .pbin files without running pickle on untrusted data.

Both indices are a pickled list of ``(byte_offset, byte_length)`` tuples (the Modalities format). A plain
``pickle.load`` would execute whatever callable a crafted file names; this unpickler refuses every global, so
only the built-in opcodes for lists, tuples and ints (and other plain literals, which the shape check then
rejects) can run.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from modalities.data.errors import DataError

# Pinned so that files written on any Python version are byte-identical.
PICKLE_PROTOCOL = 4


class _NoGlobalsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}': an index holds only lists, tuples and ints")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing a persistent id: an index holds only lists, tuples and ints")


def load_offsets_index(data: bytes, where: str) -> np.ndarray:
    """Unpickle an index of (offset, length) pairs into an ``(n, 2)`` int64 array (``(0, 2)`` for an empty
    list); ``where`` names the file. DataError for anything else: bytes that are not a pickle, a pickle that
    names any global, a value that is not a list of 2-tuples (or 2-lists) of ints (bools are not ints here),
    ints beyond int64 or negative ones."""
    try:
        obj = _NoGlobalsUnpickler(io.BytesIO(data)).load()
    except Exception as e:  # noqa: BLE001 - UnpicklingError, EOFError, ValueError, ...: all mean "not an index"
        raise DataError(f"{where}: the document index is not a valid pickled list of (offset, length): {e}") from None
    if not isinstance(obj, list) or any(type(entry) not in (tuple, list) for entry in obj):
        raise DataError(
            f"{where}: the document index must be a list of (offset, length) tuples, got {type(obj).__name__}"
        )
    if not obj:
        return np.zeros((0, 2), dtype=np.int64)
    if any(len(entry) != 2 or type(entry[0]) is not int or type(entry[1]) is not int for entry in obj):
        raise DataError(f"{where}: every entry of the document index must be a pair of integers (offset, length)")
    try:
        index = np.array(obj, dtype=np.int64)
    except OverflowError:
        raise DataError(f"{where}: the document index holds integers too large for a file offset") from None
    if (index < 0).any():
        raise DataError(f"{where}: the document index holds negative offsets or lengths")
    return index


def dump_offsets_index(offsets: np.ndarray, lengths: np.ndarray) -> bytes:
    """Pickle (offset, length) pairs as Modalities does: a list of tuples of Python ints, pickle protocol 4
    (the same bytes on every Python version)."""
    return pickle.dumps(list(zip(offsets.tolist(), lengths.tolist())), protocol=PICKLE_PROTOCOL)
