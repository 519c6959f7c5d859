"""The .pbin file's contracts: header checks, token widths, sample counts and Megatron starts by hand; the
writer's index arithmetic and the reader's documents compared with numpy on drawn documents; the index pickle."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modalities.data.errors import DataError
from modalities.data.pbin import PackedFile, PackedFileWriter, encode_header, merge_packed_files, token_width_for_vocab
from modalities.data.pbin_header import (
    HEADER_SIZE,
    PbinHeader,
    continuous_block_size,
    megatron_sample_starts,
    num_continuous_samples,
    read_pbin_header,
)
from modalities.data.safe_pickle import dump_offsets_index, load_offsets_index


@pytest.mark.parametrize(
    "vocab_size, width",
    [(1, 1), (255, 1), (256, 1), (257, 2), (65535, 2), (65536, 2), (65537, 4), (2**32 - 1, 4), (2**32, 4)],
)
def test_the_narrowest_width_that_holds_every_id(vocab_size, width):
    assert token_width_for_vocab(vocab_size) == width


def test_a_vocabulary_past_four_bytes_is_refused():
    with pytest.raises(DataError, match="a vocabulary of 4294967297 tokens does not fit the 4-byte tokens"):
        token_width_for_vocab(2**32 + 1)


@pytest.mark.parametrize("data_len, width", [(0, 1), (6, 2), (2**40, 4)])
def test_the_header_is_a_little_endian_uint64_and_uint32(data_len, width):
    header = encode_header(data_len, width)
    assert len(header) == HEADER_SIZE == 12
    assert header == data_len.to_bytes(8, "little") + width.to_bytes(4, "little")


# --- read_pbin_header: (bytes after the header, data_len, width) -> the header, or the message -------------------


def _file(tmp_path, data_len: int, width: int, body: int) -> object:
    path = tmp_path / "f.pbin"
    path.write_bytes(struct.pack("<QI", data_len, width) + b"\x00" * body)
    return path


@pytest.mark.parametrize(
    "data_len, width, body, expected",
    [
        (0, 1, 0, (0, 1, 0)),  # only the header: an empty token section
        (0, 4, 0, (0, 4, 0)),
        (6, 2, 6, (6, 2, 3)),  # the token section ends exactly at the end of the file
        (6, 2, 9, (6, 2, 3)),  # an index follows
        (4, 4, 4, (4, 4, 1)),  # one token
    ],
)
def test_headers_that_fit_their_file(tmp_path, data_len, width, body, expected):
    header = read_pbin_header(_file(tmp_path, data_len, width, body))
    assert (header.data_len, header.token_width, header.num_tokens) == expected
    assert header.file_size == HEADER_SIZE + body


@pytest.mark.parametrize(
    "data_len, width, body, message",
    [
        (7, 2, 6, "the header announces 7 bytes of tokens but the file has only 6 after the header"),  # one past
        (1, 1, 0, "the header announces 1 bytes of tokens but the file has only 0"),
        (5, 2, 6, r"the token section \(5 bytes\) is not a multiple of the token width \(2\)"),
        (6, 4, 6, r"the token section \(6 bytes\) is not a multiple of the token width \(4\)"),
        (6, 3, 6, "token width 3 in the header is not 1, 2 or 4 bytes"),
        (0, 0, 0, "token width 0 in the header is not 1, 2 or 4 bytes"),
        (8, 8, 8, "token width 8 in the header"),
    ],
)
def test_headers_that_do_not_fit_are_named(tmp_path, data_len, width, body, message):
    with pytest.raises(DataError, match=f"f.pbin: .*{message}"):
        read_pbin_header(_file(tmp_path, data_len, width, body))


@pytest.mark.parametrize("size", [0, 1, 11])  # empty, one byte, one short of the header
def test_a_file_shorter_than_the_header_is_truncated(tmp_path, size):
    path = tmp_path / "f.pbin"
    path.write_bytes(b"\x01" * size)
    with pytest.raises(DataError, match=f"f.pbin: truncated .pbin file: {size} bytes, shorter than the 12-byte header"):
        read_pbin_header(path)


def test_a_missing_file_or_a_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="nothere.pbin: packed data file not found"):
        read_pbin_header(tmp_path / "nothere.pbin")
    with pytest.raises(DataError, match="packed data file not found"):
        read_pbin_header(tmp_path)


@pytest.mark.parametrize(("name_length", "message"), [
    (255, "packed data file not found"),  # the longest name a Linux file system takes: merely absent
    (256, "cannot read the packed data file: File name too long"),  # one past it: the system refuses the name
    (5000, "cannot read the packed data file: File name too long"),
])
def test_a_name_the_system_refuses_is_a_data_error_not_an_os_error(tmp_path, name_length, message):
    with pytest.raises(DataError, match=message):
        read_pbin_header(tmp_path / ("x" * (name_length - len(".pbin")) + ".pbin"))


@pytest.mark.parametrize("width, tokens, min_vocab", [(1, 10, 1), (2, 5, 257), (4, 2, 65537)])
def test_what_the_header_tells(width, tokens, min_vocab):
    header = PbinHeader(data_len=10 if width < 4 else 8, token_width=width, file_size=100)
    assert header.num_tokens == tokens
    assert header.min_vocab_size == min_vocab
    # the smallest vocabulary whose file has this width: one less would have been packed narrower
    assert token_width_for_vocab(min_vocab) == width
    assert width == 1 or token_width_for_vocab(min_vocab - 1) < width


# --- samples of a token stream, by hand -----------------------------------------------------------------------------


@pytest.mark.parametrize("sequence_length, reuse, block", [(2, True, 3), (2, False, 2), (8, True, 9), (8, False, 8)])
def test_the_block_of_a_sample(sequence_length, reuse, block):
    assert continuous_block_size(sequence_length, reuse) == block


@pytest.mark.parametrize(
    "num_tokens, sequence_length, reuse, samples",
    [
        # reuse_last_target: blocks of s + 1 every s tokens
        (0, 4, True, 0),
        (4, 4, True, 0),  # one short of a block
        (5, 4, True, 1),  # exactly one block
        (8, 4, True, 1),  # one short of the second
        (9, 4, True, 2),  # exactly two (they share token 4)
        (23, 4, True, 5),
        (3, 2, True, 1),
        # disjoint blocks of s
        (0, 4, False, 0),
        (3, 4, False, 0),
        (4, 4, False, 1),
        (7, 4, False, 1),
        (8, 4, False, 2),
        (20, 2, False, 10),  # the reference's own example
    ],
)
def test_samples_of_a_stream_worked_out_by_hand(num_tokens, sequence_length, reuse, samples):
    assert num_continuous_samples(num_tokens, sequence_length, reuse) == samples


@settings(max_examples=200)
@given(st.integers(0, 500), st.integers(2, 40), st.booleans())
def test_samples_of_a_stream_are_the_blocks_that_fit(num_tokens, sequence_length, reuse):
    """Counted block by block: a block of s + 1 (or s) tokens every s tokens, as long as it fits."""
    block, stride = (sequence_length + 1, sequence_length) if reuse else (sequence_length, sequence_length)
    count = 0
    while count * stride + block <= num_tokens:
        count += 1
    assert num_continuous_samples(num_tokens, sequence_length, reuse) == count


# (token length of each document) -> starts, at a block of 4 tokens, worked out by hand from the rule
MEGATRON_TABLE = [
    ([], []),
    ([3], []),  # never fills a block
    ([4], [0]),  # fills one exactly
    ([2, 2], [0]),  # two that fill one exactly
    ([4, 4], [0, 4]),
    ([3, 2], [0]),  # the second overflows: the block at 0 is cut, the next starts at the document (3)
    ([3, 2, 2], [0, 3]),  # ... and the 2 + 2 from 3 fill it
    ([9], [0]),  # longer than a block: the next sample starts one block further (4), nothing accumulated
    ([9, 4], [0, 4]),  # ... which the next document then fills, from 4
    ([1, 5], [0]),  # overflow by a document longer than a block
    ([0, 4], [0]),  # an empty document adds nothing
    ([3, 0, 1], [0]),
]


@pytest.mark.parametrize("lengths, starts", MEGATRON_TABLE)
def test_megatron_starts_worked_out_by_hand(lengths, starts):
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])[:-1]
    documents = np.stack([offsets, np.asarray(lengths, dtype=np.int64)], axis=1) if lengths else np.zeros((0, 2))
    assert megatron_sample_starts(documents, 4) == starts
    assert megatron_sample_starts([(int(o), n) for o, n in zip(offsets, lengths)], 4) == starts  # plain rows too


# --- the writer's index and the reader's documents, against numpy ------------------------------------------------


@st.composite
def packed_documents(draw):
    width = draw(st.sampled_from([1, 2, 4]))
    top = (1 << (8 * width)) - 1
    documents = draw(st.lists(st.lists(st.integers(0, top), max_size=12), max_size=10))
    # how the documents are handed to the writer: consecutive groups, one write_tokens call each
    cuts = sorted(draw(st.lists(st.integers(0, len(documents)), max_size=4)))
    return width, documents, cuts


def _write(path, width, documents, cuts) -> tuple[int, int]:
    writer = PackedFileWriter(path, width)
    for first, end in zip([0, *cuts], [*cuts, len(documents)]):
        group = documents[first:end]
        tokens = np.array([t for d in group for t in d], dtype=np.int64)
        writer.write_tokens(tokens, [len(d) for d in group])
    return writer.close()


@settings(max_examples=60, deadline=None)
@given(packed_documents())
def test_written_documents_read_back_with_numpys_offsets(tmp_path_factory, drawn):
    width, documents, cuts = drawn
    path = tmp_path_factory.mktemp("w") / "d.pbin"
    lengths = np.array([len(d) for d in documents], dtype=np.int64)
    flat = np.array([t for d in documents for t in d], dtype=np.int64)
    assert _write(path, width, documents, cuts) == (len(documents), len(flat))

    # the bytes, read with numpy alone from the documented layout
    raw = path.read_bytes()
    data_len, read_width = struct.unpack("<QI", raw[:12])
    assert (data_len, read_width) == (len(flat) * width, width)
    dtype = {1: "<u1", 2: "<u2", 4: "<u4"}[width]
    assert np.frombuffer(raw[12 : 12 + data_len], dtype=dtype).tolist() == flat.tolist()
    offsets = (np.cumsum(lengths) - lengths) * width  # where each document starts, in bytes
    assert pickle.loads(raw[12 + data_len :]) == list(zip(offsets.tolist(), (lengths * width).tolist()))

    packed = PackedFile(path)
    assert (packed.num_documents, packed.num_tokens, packed.data_len) == (len(documents), len(flat), data_len)
    assert np.array_equal(packed.index, np.stack([offsets, lengths * width], axis=1).reshape(-1, 2))
    assert [packed.document(i).tolist() for i in range(len(documents))] == documents
    if documents:
        assert packed.document(-1).tolist() == documents[-1] and packed.document(0).tolist() == documents[0]
    assert packed.tokens.tolist() == flat.tolist()


@settings(max_examples=30, deadline=None)
@given(st.lists(packed_documents(), min_size=1, max_size=3))
def test_merging_concatenates_the_documents_in_order(tmp_path_factory, files):
    folder = tmp_path_factory.mktemp("m")
    width = files[0][0]
    paths = []
    for i, (_, documents, cuts) in enumerate(files):
        documents = [[t % (1 << (8 * width)) for t in d] for d in documents]  # all in the first file's width
        paths.append(folder / f"{i}.pbin")
        _write(paths[-1], width, documents, cuts)
    everything = [PackedFile(p).document(i).tolist() for p in paths for i in range(PackedFile(p).num_documents)]
    result = merge_packed_files(paths, folder / "merged.pbin")
    assert result == (len(everything), sum(map(len, everything)))
    merged = PackedFile(folder / "merged.pbin")
    assert [merged.document(i).tolist() for i in range(merged.num_documents)] == everything


def test_a_file_without_documents_or_with_empty_ones(tmp_path):
    assert _write(tmp_path / "none.pbin", 2, [], []) == (0, 0)
    empty = PackedFile(tmp_path / "none.pbin")
    assert (empty.num_documents, empty.num_tokens, empty.tokens.tolist(), empty.index.shape) == (0, 0, [], (0, 2))
    assert (tmp_path / "none.pbin").read_bytes() == encode_header(0, 2) + pickle.dumps([], protocol=4)
    assert _write(tmp_path / "gaps.pbin", 1, [[], [7], []], [1]) == (3, 1)
    gaps = PackedFile(tmp_path / "gaps.pbin")
    assert [gaps.document(i).tolist() for i in range(3)] == [[], [7], []]
    assert gaps.index.tolist() == [[0, 0], [0, 1], [1, 0]]


def test_a_document_past_either_end_is_an_index_error(tmp_path):
    _write(tmp_path / "d.pbin", 1, [[1], [2, 3]], [])
    packed = PackedFile(tmp_path / "d.pbin")
    assert packed.document(-2).tolist() == [1]
    for i in (2, -3):
        with pytest.raises(IndexError):
            packed.document(i)


def test_the_index_is_read_when_first_asked_for(tmp_path):
    _write(tmp_path / "d.pbin", 2, [[1, 2], [3]], [])
    lazy = PackedFile(tmp_path / "d.pbin", load_index=False)
    assert lazy._index is None and lazy.num_tokens == 3
    assert lazy.num_documents == 2 and lazy.index.tolist() == [[0, 4], [4, 2]]


@pytest.mark.parametrize(
    "width, index, message",
    [
        (2, [(0, 4), (4, 2)], None),  # ends exactly at the end of the 6-byte section
        (2, [(0, 4), (4, 4)], r"document 1 of the index \(offset 4, length 4\) lies beyond the 6-byte token section"),
        (2, [(6, 0)], None),  # an empty document at the very end
        (2, [(8, 0)], r"document 0 .* lies beyond"),
        (2, [(0, 2), (3, 2)], r"document 1 .* is not aligned to the 2-byte token width"),  # offset
        (2, [(0, 3)], r"document 0 .* is not aligned"),  # length
        (1, [(0, 3), (3, 3)], None),  # any offset is aligned to one byte
    ],
)
def test_index_entries_against_the_token_section(tmp_path, width, index, message):
    path = tmp_path / "f.pbin"
    path.write_bytes(encode_header(6, width) + b"\x01" * 6 + pickle.dumps(index))
    if message is None:
        assert PackedFile(path).index.tolist() == [list(e) for e in index]
    else:
        with pytest.raises(DataError, match=f"f.pbin: {message}"):
            PackedFile(path)


@pytest.mark.parametrize("distinct", [15, 16])
def test_a_narrowed_width_is_told_by_16_distinct_lengths_all_of_the_wider_width(tmp_path, distinct):
    # documents of 2, 4, ..., 2 * distinct bytes at 1-byte width: all whole 2-byte tokens
    lengths = [2 * (i + 1) for i in range(distinct)]
    offsets = np.cumsum([0] + lengths[:-1]).tolist()
    path = tmp_path / "f.pbin"
    index = pickle.dumps(list(zip(offsets, lengths)))
    path.write_bytes(encode_header(sum(lengths), 1) + b"\x00" * sum(lengths) + index)
    if distinct < 16:  # too few lengths to tell
        assert PackedFile(path).num_documents == distinct
    else:
        with pytest.raises(DataError, match="the header says 1-byte tokens, but each of the 16 documents is a whole "
                                            "number of 2-byte tokens"):
            PackedFile(path)


@pytest.mark.parametrize("header_width, real_width", [(2, 4), (1, 4)])
def test_a_width_narrowed_from_four_bytes_is_named(tmp_path, header_width, real_width):
    lengths = [4 * (i + 1) for i in range(16)]  # whole 4-byte tokens
    offsets = np.cumsum([0] + lengths[:-1]).tolist()
    path = tmp_path / "f.pbin"
    index = pickle.dumps(list(zip(offsets, lengths)))
    path.write_bytes(encode_header(sum(lengths), header_width) + b"\x00" * sum(lengths) + index)
    with pytest.raises(DataError, match=f"the header says {header_width}-byte tokens, but each of the 16 documents "
                                        f"is a whole number of {real_width}-byte tokens"):
        PackedFile(path)


def test_sixteen_lengths_with_one_odd_are_not_a_narrowed_width(tmp_path):
    lengths = [2 * (i + 1) for i in range(15)] + [3]
    offsets = np.cumsum([0] + lengths[:-1]).tolist()
    path = tmp_path / "f.pbin"
    index = pickle.dumps(list(zip(offsets, lengths)))
    path.write_bytes(encode_header(sum(lengths), 1) + b"\x00" * sum(lengths) + index)
    assert PackedFile(path).num_documents == 16


def test_the_writer_refuses_what_would_make_a_broken_file(tmp_path):
    for width in (0, 3, 8):
        with pytest.raises(ValueError, match=f"token width must be 1, 2 or 4, got {width}"):
            PackedFileWriter(tmp_path / "w.pbin", width)
    writer = PackedFileWriter(tmp_path / "w.pbin", 2)
    with pytest.raises(ValueError, match="document lengths add up to 3 tokens, but 4 tokens were given"):
        writer.write_tokens(np.array([1, 2, 3, 4]), [1, 2])
    writer.abort()
    assert not (tmp_path / "w.pbin").exists() and not list(tmp_path.iterdir())


def test_a_writer_closed_without_a_write_and_one_aborted_after_closing(tmp_path):
    writer = PackedFileWriter(tmp_path / "nothing.pbin", 4)
    assert writer.close() == (0, 0)
    assert (tmp_path / "nothing.pbin").read_bytes() == encode_header(0, 4) + pickle.dumps([], protocol=4)
    writer.abort()  # after close: nothing to drop, the file stays
    assert PackedFile(tmp_path / "nothing.pbin").num_documents == 0


def test_appending_a_file_of_another_width_is_refused(tmp_path):
    _write(tmp_path / "one.pbin", 1, [[1, 2]], [])
    writer = PackedFileWriter(tmp_path / "two.pbin", 2)
    with pytest.raises(DataError, match="one.pbin: token width 1 differs from 2"):
        writer.write_packed(PackedFile(tmp_path / "one.pbin"))
    writer.abort()


def test_merge_refuses_no_input_and_an_output_among_the_inputs(tmp_path):
    with pytest.raises(DataError, match="merge needs at least one input"):
        merge_packed_files([], tmp_path / "m.pbin")
    _write(tmp_path / "a.pbin", 1, [[1]], [])
    with pytest.raises(DataError, match="a.pbin: the output must not be one of the inputs"):
        merge_packed_files([tmp_path / "a.pbin"], tmp_path / "a.pbin", overwrite=True)
    assert merge_packed_files([tmp_path / "a.pbin"], tmp_path / "one.pbin") == (1, 1)  # one input: a copy
    assert (tmp_path / "one.pbin").read_bytes() == (tmp_path / "a.pbin").read_bytes()
    with pytest.raises(DataError, match="one.pbin: output file already exists"):
        merge_packed_files([tmp_path / "a.pbin"], tmp_path / "one.pbin")


# --- the index pickle -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, rows",
    [([], []), ([(0, 2)], [[0, 2]]), ([[0, 2], [2, 0]], [[0, 2], [2, 0]]), ([(2**63 - 1, 0)], [[2**63 - 1, 0]])],
)
def test_indices_that_load(value, rows):
    index = load_offsets_index(pickle.dumps(value), "x.idx")
    assert index.dtype == np.int64 and index.shape == (len(rows), 2) and index.tolist() == rows


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not a valid pickled list"),
        (b"not a pickle", "not a valid pickled list"),
        (pickle.dumps(((0, 2),)), "must be a list of .* got tuple"),
        (pickle.dumps([0, 2]), "must be a list of .* got list"),
        (pickle.dumps([(0,)]), "pair of integers"),
        (pickle.dumps([(0, 2, 4)]), "pair of integers"),
        (pickle.dumps([(True, 2)]), "pair of integers"),
        (pickle.dumps([(0, 2.0)]), "pair of integers"),
        (pickle.dumps([(0, 2**63)]), "integers too large for a file offset"),
        (pickle.dumps([(0, -1)]), "negative offsets or lengths"),
        (pickle.dumps([(-1, 0)]), "negative offsets or lengths"),
        (pickle.dumps([np.int64(3)]), "refusing to load 'numpy"),
        (b"(lp0\nPext\na.", "refusing a persistent id: an index holds only lists, tuples and ints"),
        (pickle.dumps([(0, 2), 5]), "must be a list of .* got list"),  # one entry that is not a pair
        (pickle.dumps({0: 2}), "must be a list of .* got dict"),
    ],
)
def test_indices_that_do_not_load_name_the_file(data, message):
    with pytest.raises(DataError, match=f"x.idx: .*{message}"):
        load_offsets_index(data, "x.idx")


@pytest.mark.parametrize("offsets, lengths", [([], []), ([0], [3]), ([0, 3, 3], [3, 0, 5])])
def test_an_index_is_pickled_as_modalities_writes_it(offsets, lengths):
    data = dump_offsets_index(np.array(offsets, dtype=np.int64), np.array(lengths, dtype=np.int64))
    assert data == pickle.dumps(list(zip(offsets, lengths)), protocol=4)
    assert data[:2] == b"\x80\x04"  # protocol 4 on every Python
    restored = pickle.loads(data)
    assert all(type(v) is int for row in restored for v in row)


def test_the_writer_makes_its_folder_and_leaves_the_destination_alone_until_closed(tmp_path):
    destination = tmp_path / "new" / "deeper" / "d.pbin"
    writer = PackedFileWriter(destination, 1)
    writer.write_tokens(np.array([5, 6]), [2])
    assert not destination.exists()  # only the temporary file, beside it
    assert [p.name for p in destination.parent.iterdir()] == [f".d.pbin.{__import__('os').getpid()}.tmp"]
    assert writer.close() == (1, 2)
    assert [p.name for p in destination.parent.iterdir()] == ["d.pbin"]
    assert PackedFile(destination).document(0).tolist() == [5, 6]
    replaced = PackedFileWriter(destination, 2, overwrite=True)  # an existing file, with overwrite: replaced
    replaced.write_tokens(np.array([300]), [1])
    assert PackedFile(destination).token_width == 1  # until closed, the old file
    replaced.close()
    assert (PackedFile(destination).token_width, PackedFile(destination).document(0).tolist()) == (2, [300])


@pytest.mark.parametrize("width, top", [(1, 255), (2, 65535), (4, 2**32 - 1)])
def test_the_largest_id_of_each_width_reads_back(tmp_path, width, top):
    """The widest id a width holds, and 0, written and read through the little-endian token section."""
    writer = PackedFileWriter(tmp_path / "d.pbin", width)
    writer.write_tokens(np.array([top, 0, top - 1], dtype=np.int64), [1, 2])
    writer.close()
    raw = (tmp_path / "d.pbin").read_bytes()
    assert raw[12 : 12 + width] == top.to_bytes(width, "little") == b"\xff" * width
    packed = PackedFile(tmp_path / "d.pbin")
    assert [packed.document(0).tolist(), packed.document(1).tolist()] == [[top], [0, top - 1]]
    assert packed.index.tolist() == [[0, width], [width, 2 * width]]


def test_merging_files_of_different_widths_names_each(tmp_path):
    for name, width in (("a", 1), ("b", 2)):
        writer = PackedFileWriter(tmp_path / f"{name}.pbin", width)
        writer.write_tokens(np.array([1]), [1])
        writer.close()
    with pytest.raises(DataError, match=r"different token widths .*: .*a\.pbin \(1 bytes\), .*b\.pbin \(2 bytes\)"):
        merge_packed_files([tmp_path / "a.pbin", tmp_path / "b.pbin"], tmp_path / "m.pbin")
    assert not (tmp_path / "m.pbin").exists()


def test_a_narrowed_width_is_not_claimed_where_the_token_section_is_not_whole_wider_tokens(tmp_path):
    """16 documents of whole 2-byte tokens, but a token section of an odd number of bytes (a last byte outside
    every document): the 1-byte width in the header may be right."""
    lengths = [2 * (i + 1) for i in range(16)]
    offsets = np.cumsum([0] + lengths[:-1]).tolist()
    path = tmp_path / "f.pbin"
    path.write_bytes(encode_header(sum(lengths) + 1, 1) + b"\x00" * (sum(lengths) + 1)
                     + pickle.dumps(list(zip(offsets, lengths))))
    assert PackedFile(path).num_documents == 16
