"""Tokenizer components against the libraries they wrap."""

import pytest

from modalities.data.errors import DataError
from modalities.data.tokenizers import PreTrainedHFTokenizer, PreTrainedSPTokenizer
from tests.data.conftest import EOD, SAMPLE_TOKENIZER, TEXTS


def test_hf_matches_transformers(hf_tokenizer):
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(SAMPLE_TOKENIZER), local_files_only=True)
    assert hf_tokenizer.tokenize_batch(TEXTS) == [reference(t)["input_ids"] for t in TEXTS]
    assert hf_tokenizer.tokenize(TEXTS[1]) == reference(TEXTS[1])["input_ids"]
    assert hf_tokenizer.vocab_size == len(reference) == 2048
    assert hf_tokenizer.get_token_id(EOD) == reference.convert_tokens_to_ids(EOD)
    assert hf_tokenizer.special_token_ids == {EOD: reference.convert_tokens_to_ids(EOD)}
    assert hf_tokenizer.is_special_token_id(hf_tokenizer.get_token_id(EOD))


def test_hf_from_tokenizer_json_file(hf_tokenizer):
    from_file = PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER / "tokenizer.json"))
    assert from_file.tokenize_batch(TEXTS) == hf_tokenizer.tokenize_batch(TEXTS)


def test_hf_batch_encoder_applies_truncation_and_padding_like_call():
    import pickle

    tokenizer = PreTrainedHFTokenizer(
        str(SAMPLE_TOKENIZER), truncation=True, padding="max_length", max_length=6, special_tokens={"pad_token": EOD}
    )
    encoder = pickle.loads(pickle.dumps(tokenizer.batch_encoder()))
    expected = tokenizer.tokenize_batch(TEXTS)
    assert all(len(ids) == 6 for ids in expected)
    assert encoder(TEXTS) == expected


def test_hf_rejects_unknown_special_tokens_and_missing_paths(tmp_path):
    with pytest.raises(DataError, match="only tokens already in the vocabulary"):
        PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER), special_tokens={"pad_token": "<|brand new|>"})
    with pytest.raises(DataError, match="tokenizer not found.*nothing is downloaded"):
        PreTrainedHFTokenizer(str(tmp_path / "gpt2"))


def test_sentencepiece_matches_library(sp_model):
    import sentencepiece

    reference = sentencepiece.SentencePieceProcessor(model_file=str(sp_model))
    tokenizer = PreTrainedSPTokenizer(str(sp_model))
    assert tokenizer.tokenize_batch(TEXTS) == [reference.encode(t) for t in TEXTS]
    assert tokenizer.decode(reference.encode(TEXTS[1])) == reference.decode(reference.encode(TEXTS[1]))
    assert tokenizer.vocab_size == reference.vocab_size() == 400
    assert tokenizer.get_token_id(EOD) == reference.piece_to_id(EOD)
    assert tokenizer.batch_encoder()(TEXTS[:3]) == [reference.encode(t) for t in TEXTS[:3]]
    with pytest.raises(DataError, match="not a piece"):
        tokenizer.get_token_id("<|not a piece|>")
    with pytest.raises(DataError, match="model file not found"):
        PreTrainedSPTokenizer(str(sp_model.with_name("missing.model")))
