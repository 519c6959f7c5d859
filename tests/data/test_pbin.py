"""The .pbin format: byte compatibility both ways, the restricted unpickler, corrupted files, merging."""

import pickle
import struct

import numpy as np
import pytest

from modalities.data.errors import DataError
from modalities.data.pbin import PackedFile, PackedFileWriter, merge_packed_files, token_width_for_vocab


def reference_pbin(path, docs: list[list[int]], width: int) -> None:
    """A .pbin written byte by byte from the documented layout, as Modalities writes it."""
    data = b"".join(t.to_bytes(width, "little") for doc in docs for t in doc)
    index, offset = [], 0
    for doc in docs:
        index.append((offset, len(doc) * width))
        offset += len(doc) * width
    path.write_bytes(len(data).to_bytes(8, "little") + width.to_bytes(4, "little") + data + pickle.dumps(index))


def independent_read(path) -> tuple[int, list[list[int]]]:
    """A minimal reader written from the layout alone."""
    raw = path.read_bytes()
    data_len = int.from_bytes(raw[0:8], "little")
    width = int.from_bytes(raw[8:12], "little")
    data = raw[12 : 12 + data_len]
    index = pickle.loads(raw[12 + data_len :])
    docs = [[int.from_bytes(data[o + i : o + i + width], "little") for i in range(0, n, width)] for o, n in index]
    return width, docs


@pytest.mark.parametrize("width", [1, 2, 4])
def test_reads_reference_file(tmp_path, width):
    top = (1 << (8 * width)) - 1
    docs = [[1, 2, 3, top], [7], [top, 0, 5, 9, 11]]
    reference_pbin(tmp_path / "ref.pbin", docs, width)
    packed = PackedFile(tmp_path / "ref.pbin")
    assert packed.token_width == width
    assert packed.num_documents == 3
    assert packed.num_tokens == 10
    assert [packed.document(i).tolist() for i in range(3)] == docs
    assert packed.tokens.tolist() == [t for d in docs for t in d]


def test_written_file_reads_in_independent_reader(tmp_path):
    docs = [[5, 6, 0], [70000, 0], [1, 2, 3, 4, 0]]
    writer = PackedFileWriter(tmp_path / "ours.pbin", token_width=4)
    writer.write_tokens(np.array(docs[0] + docs[1]), [3, 2])
    writer.write_tokens(np.array(docs[2]), [5])
    assert writer.close() == (3, 10)
    assert independent_read(tmp_path / "ours.pbin") == (4, docs)
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file must be renamed away"


def test_token_width_is_smallest_that_holds_vocab():
    assert token_width_for_vocab(256) == 1
    assert token_width_for_vocab(257) == 2
    assert token_width_for_vocab(65536) == 2
    assert token_width_for_vocab(65537) == 4
    with pytest.raises(DataError, match="a vocabulary of 8589934592 tokens does not fit the 4-byte tokens"):
        token_width_for_vocab(1 << 33)


class _CreatesFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_index_pickle_is_rejected_without_running(tmp_path):
    marker = tmp_path / "pwned"
    data = (3).to_bytes(2, "little") * 2
    payload = pickle.dumps([(0, 4), _CreatesFile(str(marker))])
    (tmp_path / "evil.pbin").write_bytes(struct.pack("<QI", len(data), 2) + data + payload)
    with pytest.raises(DataError, match="evil.pbin.*refusing"):
        PackedFile(tmp_path / "evil.pbin")
    assert not marker.exists(), "the pickle's callable must never run"


@pytest.mark.parametrize(
    "index, message",
    [
        ({"a": 1}, "list of"),
        ([(0, 2.5)], "pair of integers"),
        ([(0, "x")], "pair of integers"),
        ([(0, 2, 3)], "pair of integers"),
        ([(0, 2), (4, 4)], "beyond"),
        ([(1, 2)], "aligned"),
        ([(-2, 2)], "negative"),
    ],
)
def test_bad_index_entries_name_the_file(tmp_path, index, message):
    data = b"\x01\x00\x02\x00"
    path = tmp_path / "bad.pbin"
    path.write_bytes(struct.pack("<QI", len(data), 2) + data + pickle.dumps(index))
    with pytest.raises(DataError, match=f"bad.pbin.*{message}"):
        PackedFile(path)


def test_corrupted_headers_name_the_file(tmp_path):
    path = tmp_path / "broken.pbin"
    path.write_bytes(b"\x00\x01")
    with pytest.raises(DataError, match="broken.pbin: truncated"):
        PackedFile(path)
    path.write_bytes(struct.pack("<QI", 1000, 2) + b"\x00" * 10 + pickle.dumps([]))
    with pytest.raises(DataError, match="broken.pbin: truncated .pbin file: the header announces 1000 bytes"):
        PackedFile(path)
    path.write_bytes(struct.pack("<QI", 6, 3) + b"\x00" * 6 + pickle.dumps([(0, 6)]))
    with pytest.raises(DataError, match="broken.pbin: token width 3"):
        PackedFile(path)
    path.write_bytes(struct.pack("<QI", 4, 2) + b"\x00" * 4)  # index missing entirely
    with pytest.raises(DataError, match="broken.pbin: the document index"):
        PackedFile(path)
    with pytest.raises(DataError, match="nothere.pbin: packed data file not found"):
        PackedFile(tmp_path / "nothere.pbin")


def test_existing_output_is_an_error(tmp_path):
    (tmp_path / "out.pbin").write_bytes(b"keep")
    with pytest.raises(DataError, match="already exists"):
        PackedFileWriter(tmp_path / "out.pbin", 2)
    writer = PackedFileWriter(tmp_path / "out.pbin", 2, overwrite=True)
    writer.write_tokens(np.array([1, 0]), [2])
    writer.abort()
    assert (tmp_path / "out.pbin").read_bytes() == b"keep", "an aborted write leaves the old file untouched"


def test_merge_concatenates_documents(tmp_path):
    reference_pbin(tmp_path / "a.pbin", [[1, 2, 0], [3, 0]], 2)
    reference_pbin(tmp_path / "b.pbin", [[9, 9, 9, 0]], 2)
    assert merge_packed_files([tmp_path / "a.pbin", tmp_path / "b.pbin"], tmp_path / "m.pbin") == (3, 9)
    assert independent_read(tmp_path / "m.pbin") == (2, [[1, 2, 0], [3, 0], [9, 9, 9, 0]])
    reference_pbin(tmp_path / "c.pbin", [[1, 0]], 4)
    with pytest.raises(DataError, match="different token widths"):
        merge_packed_files([tmp_path / "a.pbin", tmp_path / "c.pbin"], tmp_path / "m2.pbin")
    assert not (tmp_path / "m2.pbin").exists()


def test_pickling_maps_the_file_again(tmp_path):
    docs = [[1, 2, 3], [4, 5]]
    reference_pbin(tmp_path / "p.pbin", docs, 2)
    packed = PackedFile(tmp_path / "p.pbin")
    payload = pickle.dumps(packed)
    assert len(payload) < 1000 and b"\x01\x00\x02\x00\x03\x00" not in payload, "no token copy in the pickle"
    restored = pickle.loads(payload)
    assert isinstance(restored.tokens, np.memmap)
    assert [restored.document(i).tolist() for i in range(2)] == docs


def test_a_token_width_narrowed_in_the_header_is_named(tmp_path):
    import shutil
    import struct

    from modalities.data.errors import DataError
    from modalities.data.pbin import PackedFile
    from tests.data.conftest import REPO

    path = tmp_path / "narrowed.pbin"
    shutil.copy(REPO / "data" / "sample" / "corpus.pbin", path)
    data = bytearray(path.read_bytes())
    assert struct.unpack("<I", data[8:12]) == (2,)
    data[8:12] = struct.pack("<I", 1)  # 2-byte tokens now claimed to be bytes: every other check still passes
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"the header says 1-byte tokens, but each of the 600 documents is a whole "
                                        r"number of 2-byte tokens"):
        PackedFile(path)
