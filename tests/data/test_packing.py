"""pack_encoded_data: round trips, determinism across worker counts, EOD, bad documents, atomic output."""

import json

import numpy as np
import pytest

from modalities.data.errors import DataError
from modalities.data.packing import pack_encoded_data
from modalities.data.pbin import PackedFile
from modalities.data.raw_index import create_raw_index
from tests.data.conftest import EOD, TEXTS, write_jsonl


def _pack(corpus, tokenizer, **kwargs):
    if not corpus.with_suffix(".idx").exists():
        create_raw_index(corpus)
    return pack_encoded_data(corpus, tokenizer, EOD, **kwargs)


def test_round_trip_hf(corpus, hf_tokenizer):
    result = _pack(corpus, hf_tokenizer, processing_batch_size=7)
    packed = PackedFile(result.dst_path)
    eod = hf_tokenizer.get_token_id(EOD)
    assert result.dst_path == corpus.with_suffix(".pbin")
    assert packed.num_documents == result.num_documents == len(TEXTS)
    expected = [hf_tokenizer.tokenize(t) for t in TEXTS]
    assert packed.num_tokens == result.num_tokens == sum(len(e) + 1 for e in expected)
    assert packed.token_width == 2
    for i, text in enumerate(TEXTS):
        doc = packed.document(i).tolist()
        assert doc == expected[i] + [eod], "exactly the tokenizer's ids, then EOD once"
        assert doc.count(eod) == 1
        assert hf_tokenizer.decode(doc[:-1]) == text  # byte-level BPE decodes losslessly


def test_round_trip_sentencepiece(corpus, sp_model):
    from modalities.data.tokenizers import PreTrainedSPTokenizer

    tokenizer = PreTrainedSPTokenizer(str(sp_model))
    result = _pack(corpus, tokenizer, processing_batch_size=5)
    packed = PackedFile(result.dst_path)
    assert packed.token_width == 2  # 400 pieces need two bytes
    assert packed.num_documents == len(TEXTS)
    eod = tokenizer.get_token_id(EOD)
    for i, text in enumerate(TEXTS):
        doc = packed.document(i).tolist()
        assert doc[-1] == eod and doc.count(eod) == 1
        # SentencePiece normalizes whitespace (newlines become spaces); byte fallback keeps every character.
        assert tokenizer.decode(doc[:-1]) == " ".join(text.split())


def test_output_identical_for_1_and_3_workers(tmp_path, corpus, hf_tokenizer):
    one = _pack(corpus, hf_tokenizer, dst_path=tmp_path / "one.pbin", num_cpus=1, processing_batch_size=4)
    three = _pack(corpus, hf_tokenizer, dst_path=tmp_path / "three.pbin", num_cpus=3, processing_batch_size=4)
    assert one.dst_path.read_bytes() == three.dst_path.read_bytes()


def test_nested_jq_pattern(corpus, hf_tokenizer):
    result = _pack(corpus, hf_tokenizer, jq_pattern=".meta.body")
    packed = PackedFile(result.dst_path)
    assert hf_tokenizer.decode(packed.document(0)[:-1].tolist()) == TEXTS[0].upper()


@pytest.mark.parametrize(
    "records, raw_lines, reason",
    [
        ([{"text": "a"}, {"txt": "b"}, {"text": "c"}], {}, "no field 'text'"),
        ([{"text": "a"}, {"text": 5}, {"text": "c"}], {}, "the jq pattern selects a value of type int, not a string"),
        ([{"text": "a"}, {"text": "b"}, {"text": "c"}], {1: "{broken"}, "not valid JSON"),
    ],
)
def test_bad_document_stops_with_line_number(tmp_path, hf_tokenizer, records, raw_lines, reason):
    path = write_jsonl(tmp_path / "c.jsonl", records)
    create_raw_index(path)  # a valid index; then the line goes bad (or never had the field)
    write_jsonl(path, records, raw_lines={i: r.ljust(len(json.dumps(records[i]))) for i, r in raw_lines.items()})
    with pytest.raises(DataError, match=f"c.jsonl:2: document 1: {reason}"):
        pack_encoded_data(path, hf_tokenizer, EOD)
    assert not path.with_suffix(".pbin").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_skip_bad_documents_counts_them(tmp_path, hf_tokenizer):
    records = [{"text": "first"}, {"other": 1}, {"text": "third"}, {"text": None}]
    path = write_jsonl(tmp_path / "c.jsonl", records)
    create_raw_index(path)
    result = pack_encoded_data(path, hf_tokenizer, EOD, skip_bad_documents=True, num_cpus=2, processing_batch_size=1)
    assert [(s.line, s.document) for s in result.skipped] == [(2, 1), (4, 3)]
    packed = PackedFile(result.dst_path)
    assert packed.num_documents == 2
    assert [hf_tokenizer.decode(packed.document(i)[:-1].tolist()) for i in range(2)] == ["first", "third"]


def test_existing_output_needs_overwrite(corpus, hf_tokenizer):
    first = _pack(corpus, hf_tokenizer)
    before = first.dst_path.read_bytes()
    with pytest.raises(DataError, match="already exists"):
        _pack(corpus, hf_tokenizer)
    assert _pack(corpus, hf_tokenizer, overwrite=True).dst_path.read_bytes() == before


def test_eod_must_be_a_token(corpus, hf_tokenizer):
    create_raw_index(corpus)
    with pytest.raises(DataError, match="not a single token"):
        pack_encoded_data(corpus, hf_tokenizer, "<|no such token|>")


def test_shipped_sample_matches_a_fresh_pack(tmp_path, hf_tokenizer):
    from tests.data.conftest import REPO

    sample = REPO / "data" / "sample"
    result = pack_encoded_data(
        sample / "corpus.jsonl",
        hf_tokenizer,
        EOD,
        dst_path=tmp_path / "s.pbin",
        index_path=sample / "corpus.idx",
        processing_batch_size=200,
    )
    assert result.dst_path.read_bytes() == (sample / "corpus.pbin").read_bytes()
    assert np.array_equal(PackedFile(sample / "corpus.pbin").tokens, PackedFile(result.dst_path).tokens)


class _FailsOnBoom:
    def __call__(self, texts):
        if any("BOOM" in t for t in texts):
            raise RuntimeError("cannot encode this")
        return [[ord(c) % 200 + 1 for c in t] for t in texts]


class _ByteTokenizer:
    """Stands in for a tokenizer whose encoder fails on some documents."""

    vocab_size = 256

    def get_token_id(self, token):
        return 0

    def batch_encoder(self):
        return _FailsOnBoom()


def test_encode_failure_names_the_document(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"text": "fine"}, {"text": "a BOOM here"}, {"text": "ok"}])
    create_raw_index(path)
    with pytest.raises(DataError, match=r"c.jsonl:2: document 1: the tokenizer failed on it \(RuntimeError"):
        pack_encoded_data(path, _ByteTokenizer(), EOD)
    result = pack_encoded_data(path, _ByteTokenizer(), EOD, skip_bad_documents=True)
    assert [s.line for s in result.skipped] == [2]
    packed = PackedFile(result.dst_path)
    assert packed.token_width == 1
    assert [packed.document(i).tolist() for i in range(2)] == [
        _FailsOnBoom()(["fine"])[0] + [0],
        _FailsOnBoom()(["ok"])[0] + [0],
    ]


# --- the EOD string inside a document's text --------------------------------------------------------------------

WITH_EOD = ["plain text", f"a literal {EOD} in the middle", f"ends with it {EOD}", "more plain text",
            f"{EOD} starts and {EOD} twice"]


def test_eod_text_inside_documents_is_counted_and_kept_as_the_reference_packs_it(tmp_path, hf_tokenizer):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": t} for t in WITH_EOD])
    result = _pack(corpus, hf_tokenizer)
    eod = hf_tokenizer.get_token_id(EOD)
    packed = PackedFile(result.dst_path)
    # Documents 1 and 4 hold the token inside; document 2 ends with it, so it gets no second one (as the
    # reference: the encoding already ends with EOD), which leaves it a well-formed document.
    assert (result.num_with_eod_inside, result.first_with_eod_inside) == (2, [1, 4])
    assert [packed.document(i).tolist().count(eod) for i in range(5)] == [1, 2, 1, 1, 3]
    assert all(packed.document(i).tolist()[-1] == eod for i in range(5))


def test_eod_text_as_text_leaves_one_eod_per_document(tmp_path, hf_tokenizer):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": t} for t in WITH_EOD])
    result = _pack(corpus, hf_tokenizer, special_tokens_as_text=True)
    eod = hf_tokenizer.get_token_id(EOD)
    packed = PackedFile(result.dst_path)
    assert result.num_with_eod_inside == 0
    for i, text in enumerate(WITH_EOD):
        doc = packed.document(i).tolist()
        assert doc.count(eod) == 1 and doc[-1] == eod
        assert hf_tokenizer.decode(doc[:-1]) == text  # the marker's characters, decoded back


def test_the_pack_command_warns_with_the_lines_and_the_way_out(tmp_path, capsys):
    from modalities.cli.main import main
    from tests.data.conftest import SAMPLE_TOKENIZER

    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": t} for t in WITH_EOD])
    create_raw_index(corpus)
    config = tmp_path / "pack.yaml"
    config.write_text(f"""settings:
  src_path: {corpus}
  dst_path: {tmp_path / "out.pbin"}
  eod_token: "{EOD}"
  num_cpus: 1
tokenizer:
  component_key: tokenizer
  variant_key: pretrained_hf_tokenizer
  config: {{pretrained_model_name_or_path: {SAMPLE_TOKENIZER}}}
""")
    assert main(["data", "pack_encoded_data", str(config)]) == 0
    err = capsys.readouterr().err
    assert f"warning: 2 document(s) hold the EOD token before their end (lines 2, 5 of {corpus})" in err
    assert "--special-tokens-in-text as_text" in err
    assert main(["data", "pack_encoded_data", str(config), "--overwrite", "--special-tokens-in-text", "as_text"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_special_tokens_as_text_is_refused_where_sentencepiece_cannot_do_it(corpus, sp_model):
    from modalities.data.tokenizers import PreTrainedSPTokenizer

    with pytest.raises(DataError, match="user-defined symbols"):
        _pack(corpus, PreTrainedSPTokenizer(str(sp_model)), special_tokens_as_text=True)
