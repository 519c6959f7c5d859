"""The packing benchmark builds GPT-2's own tokenizer from its rank table (tools/bench/packing_corpus.py); these
check the two conversions it rests on against GPT-2's published tables, worked out by hand."""

import base64
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "bench" / "packing_corpus.py"


@pytest.fixture(scope="module")
def corpus_tool():
    spec = importlib.util.spec_from_file_location("packing_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bytes_stand_in_as_gpt2s_table_has_them():
    from modalities.data.bpe_engine import byte_symbols

    table = byte_symbols()
    assert len(set(table.values())) == 256
    # printable bytes stand for themselves; the 68 others count up from U+0100 in byte order
    assert table[ord("!")] == "!" and table[ord("~")] == "~" and table[0xA1] == "¡" and table[0xFF] == "ÿ"
    assert table[0] == "\u0100"
    assert table[ord("\n")] == "\u010a"  # "Ċ", GPT-2's newline
    assert table[ord(" ")] == "\u0120"  # "Ġ", GPT-2's leading space
    assert table[0xAD] == "\u0143"  # the soft hyphen, the last byte outside the printable ranges


def test_the_merge_of_a_token_is_the_split_earlier_ranks_reach(corpus_tool):
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"bc": 256, b"ab": 257, b"abc": 258, b"abcd": 259})
    # "abc": bc (256) merges before ab (257), so abc is a + bc, not ab + c
    assert corpus_tool._merge_of(ranks, b"abc") == (b"a", b"bc")
    assert corpus_tool._merge_of(ranks, b"ab") == (b"a", b"b")
    assert corpus_tool._merge_of(ranks, b"abcd") == (b"abc", b"d")
    ranks[b"xyz"] = 260  # no pair of earlier tokens makes it
    with pytest.raises(ValueError, match="not one merge"):
        corpus_tool._merge_of(ranks, b"xyz")


def test_a_rank_table_that_is_not_gpt2s_is_refused(corpus_tool, tmp_path):
    table = tmp_path / "ranks.tiktoken"
    table.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)), encoding="ascii")
    with pytest.raises(SystemExit, match="not GPT-2's rank table"):
        corpus_tool.make_gpt2_tokenizer_from_ranks(table, tmp_path / "gpt2")
