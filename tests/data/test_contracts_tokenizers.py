"""The tokenizers' contracts, against the libraries they wrap: every padding/truncation/max_length setting
encodes as transformers' own ``tokenizer(texts, ...)`` (directly, through the packer's batch encoder, pickled,
and from the tokenizer cache); the SentencePiece model's special pieces against sentencepiece; small rules by
hand."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

from modalities.data.errors import DataError
from modalities.data.tokenizers import (
    HFBatchEncoder,
    PreTrainedHFTokenizer,
    PreTrainedSPTokenizer,
    SPBatchEncoder,
    TokenizerWrapper,
    hf_identity,
    sentencepiece_releases_gil,
    tokenizer_parallelism_off,
    without_empty_bpe_affixes,
)
from tests.data.conftest import EOD, SAMPLE_TOKENIZER, TEXTS

SHORT_AND_LONG = [TEXTS[0], "", "a b", TEXTS[3], TEXTS[6]]  # lengths differ: padding and truncation show


@pytest.fixture(scope="module")
def reference():
    """transformers' own tokenizer of the sample folder, with EOD as its pad token."""
    import warnings

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(SAMPLE_TOKENIZER), local_files_only=True)
    tokenizer.add_special_tokens({"pad_token": EOD})
    warnings.filterwarnings("ignore", message=".*(max_length|no maximum length|truncat).*")
    return tokenizer


@pytest.mark.parametrize("max_length", [None, 4])
@pytest.mark.parametrize("truncation", [False, True])
@pytest.mark.parametrize("padding", [False, True, "longest", "max_length", "do_not_pad"])
def test_every_setting_encodes_as_transformers_call(reference, padding, truncation, max_length):
    expected = reference(SHORT_AND_LONG, padding=padding, truncation=truncation, max_length=max_length)["input_ids"]
    tokenizer = PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER), truncation=truncation, padding=padding,
                                      max_length=max_length, special_tokens={"pad_token": EOD})
    assert tokenizer.tokenize_batch(SHORT_AND_LONG) == expected
    encoder = tokenizer.batch_encoder()
    assert encoder(SHORT_AND_LONG) == expected
    assert pickle.loads(pickle.dumps(encoder))(SHORT_AND_LONG) == expected  # as a worker process gets it
    alone = reference(SHORT_AND_LONG[3], padding=padding, truncation=truncation, max_length=max_length)["input_ids"]
    assert tokenizer.tokenize(SHORT_AND_LONG[3]) == alone


@pytest.mark.parametrize(
    "padding, truncation, max_length",
    [(False, True, None), ("max_length", False, None), ("max_length", True, None), (True, True, None)],
)
def test_a_model_maximum_applies_where_max_length_is_not_given(tmp_path, padding, truncation, max_length):
    """transformers truncates (and pads, with padding max_length) to the tokenizer's model_max_length when no
    max_length is given; the packer's encoder does the same."""
    from transformers import AutoTokenizer

    folder = tmp_path / "tok"
    shutil.copytree(SAMPLE_TOKENIZER, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 8, "pad_token": EOD}))
    reference = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    expected = reference(SHORT_AND_LONG, padding=padding, truncation=truncation, max_length=max_length)["input_ids"]
    if truncation:
        assert max(map(len, expected)) <= 8
    tokenizer = PreTrainedHFTokenizer(str(folder), truncation=truncation, padding=padding, max_length=max_length)
    assert tokenizer.tokenize_batch(SHORT_AND_LONG) == expected
    assert tokenizer.batch_encoder()(SHORT_AND_LONG) == expected


@pytest.mark.parametrize("padding, truncation, max_length", [(False, False, None), ("max_length", True, 4),
                                                             ("max_length", False, None)])
def test_the_cached_tokenizer_encodes_as_transformers_call(reference, tmp_path, monkeypatch, padding, truncation,
                                                           max_length):
    from modalities.data.prepared_tokenizer import PreparedHFTokenizer, hf_tokenizer_for_packing

    monkeypatch.setenv("MODALITIES_CACHE_DIR", str(tmp_path / "cache"))
    settings = {"truncation": truncation, "padding": padding, "max_length": max_length,
                "special_tokens": {"pad_token": EOD}}
    expected = reference(SHORT_AND_LONG, padding=padding, truncation=truncation, max_length=max_length)["input_ids"]
    cold = hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER), **settings)
    warm = hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER), **settings)
    assert isinstance(warm, PreparedHFTokenizer)
    for tokenizer in (cold, warm):
        assert tokenizer.batch_encoder()(SHORT_AND_LONG) == expected
    assert warm.tokenize_batch(SHORT_AND_LONG) == expected
    assert (warm.vocab_size, warm.get_token_id(EOD), warm.special_token_ids) == (
        cold.vocab_size, cold.get_token_id(EOD), cold.special_token_ids)
    assert warm.identity() == cold.identity()
    with pytest.raises(DataError, match="token '<nope>' is not a single token"):
        warm.get_token_id("<nope>")
    eod = reference.convert_tokens_to_ids(EOD)
    assert warm.decode(reference("ab")["input_ids"] + [eod]) == "ab" + EOD  # special tokens written out
    for as_text in (False, True):  # the EOD string inside a text: the token, or its characters
        ids = hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER), **settings).batch_encoder(as_text)([f"a{EOD}"])[0]
        assert (eod in ids) is (not as_text)


def test_special_tokens_a_post_processor_adds_are_added_as_transformers_adds_them(tmp_path):
    """A tokenizer whose post-processor puts a token before each text (as Llama's puts BOS): transformers'
    call adds it, and so do tokenize_batch and the packer's encoder."""
    from transformers import AutoTokenizer

    folder = tmp_path / "tok"
    shutil.copytree(SAMPLE_TOKENIZER, folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    first, second = {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}
    data["post_processor"] = {
        "type": "TemplateProcessing", "single": [{"SpecialToken": {"id": EOD, "type_id": 0}}, first],
        "pair": [first, second], "special_tokens": {EOD: {"id": EOD, "ids": [0], "tokens": [EOD]}},
    }
    (folder / "tokenizer.json").write_text(json.dumps(data))
    expected = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)(SHORT_AND_LONG)["input_ids"]
    assert all(ids[0] == 0 for ids in expected)
    tokenizer = PreTrainedHFTokenizer(str(folder))
    assert tokenizer.tokenize_batch(SHORT_AND_LONG) == expected
    assert tokenizer.batch_encoder()(SHORT_AND_LONG) == expected


def test_the_hf_tokenizers_ids_and_special_tokens(reference):
    tokenizer = PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER))
    eod = reference.convert_tokens_to_ids(EOD)
    assert tokenizer.vocab_size == len(reference)  # the pad token marked an existing token: no new id
    assert tokenizer.get_token_id(EOD) == eod  # also the unknown token of this tokenizer: still found
    assert tokenizer.is_special_token_id(eod) and not tokenizer.is_special_token_id(eod + 1)
    assert tokenizer.decode(reference(TEXTS[0])["input_ids"] + [eod]) == TEXTS[0] + EOD
    for token in ("<|not a token|>", "the old miller"):  # absent; text of several tokens
        with pytest.raises(DataError, match=f"token {token!r} is not a single token of this tokenizer"):
            tokenizer.get_token_id(token)


def test_the_hf_identity_names_the_files_and_the_settings(tmp_path):
    from modalities.data.pbin_info import files_digest

    tokenizer = PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER), truncation=True, max_length=7)
    assert tokenizer.identity() == {
        "kind": "huggingface", "source": str(SAMPLE_TOKENIZER.resolve()), "fingerprint": files_digest(SAMPLE_TOKENIZER),
        "settings": {"truncation": True, "padding": False, "max_length": 7, "special_tokens": None}}
    given = hf_identity(SAMPLE_TOKENIZER, {}, files="abc")
    assert (given["fingerprint"], given["settings"]) == ("abc", {})


@pytest.mark.parametrize(
    "model, changed",
    [
        ({"type": "WordPiece", "continuing_subword_prefix": ""}, False),  # not BPE: left as it is
        ({"type": "BPE", "continuing_subword_prefix": None, "end_of_word_suffix": None}, False),
        ({"type": "BPE", "continuing_subword_prefix": "##", "end_of_word_suffix": None}, False),
        ({"type": "BPE", "continuing_subword_prefix": "", "end_of_word_suffix": None}, True),
        ({"type": "BPE", "continuing_subword_prefix": None, "end_of_word_suffix": ""}, True),
        ({"type": "BPE", "continuing_subword_prefix": "", "end_of_word_suffix": ""}, True),
    ],
)
def test_empty_bpe_affixes_are_written_as_absent(model, changed):
    text = json.dumps({"version": "1.0", "model": model})
    result = without_empty_bpe_affixes(text)
    if not changed:
        assert result is text
    else:
        written = json.loads(result)["model"]
        assert written == {k: (None if v == "" else v) for k, v in model.items()}
    assert without_empty_bpe_affixes(json.dumps({"model": None})) == json.dumps({"model": None})


def test_a_batch_encoder_needs_its_tokenizer_and_keeps_its_setting_when_pickled():
    with pytest.raises(ValueError, match="needs the tokenizer's JSON or the tokenizer"):
        HFBatchEncoder(None)
    json_text = PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER)).batch_encoder().tokenizer_json
    for as_text in (False, True):
        encoder = pickle.loads(pickle.dumps(HFBatchEncoder(json_text, special_tokens_as_text=as_text)))
        assert encoder.special_tokens_as_text is as_text
        ids = encoder([f"a {EOD} b"])[0]
        assert (0 in ids) is (not as_text)  # EOD (id 0) as the token, or as its characters
    old_state = HFBatchEncoder.__new__(HFBatchEncoder)
    old_state.__setstate__({"tokenizer_json": json_text})  # pickled before the setting existed
    assert old_state.special_tokens_as_text is False


@pytest.mark.parametrize(
    "version, releases",
    [("0.2.2", True), ("0.2.1", False), ("0.2.10", True), ("0.10.0", True), ("1.0", True), ("0.2", False),
     ("0.1.99", False), ("0.2.2rc1", True), ("", False), ("unknown", False)],
)
def test_sentencepiece_releases_the_gil_from_0_2_2(version, releases):
    assert sentencepiece_releases_gil(version) is releases


def test_the_sentencepiece_models_special_pieces(sp_model):
    import sentencepiece

    library = sentencepiece.SentencePieceProcessor(model_file=str(sp_model))
    tokenizer = PreTrainedSPTokenizer(str(sp_model), padding=True, truncation=True)  # accepted, no effect
    # the control and unknown pieces as the library tells them, and the one user-defined symbol it was trained with
    expected = {library.id_to_piece(i): i for i in range(library.vocab_size())
                if library.is_control(i) or library.is_unknown(i)} | {EOD: library.piece_to_id(EOD)}
    assert tokenizer.special_token_ids == expected and len(expected) == 4  # <unk>, <s>, </s>, EOD
    assert [i for i in range(library.vocab_size()) if tokenizer.is_special_token_id(i)] == [
        i for i in range(library.vocab_size()) if library.is_control(i)]
    assert tokenizer.get_token_id("<unk>") == library.unk_id()  # the unknown piece itself is a piece
    assert tokenizer.tokenize_batch(TEXTS[:3]) == library.encode(TEXTS[:3])
    assert tokenizer.tokenize(TEXTS[0]) == library.encode(TEXTS[0])
    identity = tokenizer.identity()
    import hashlib

    assert identity == {"kind": "sentencepiece", "source": str(sp_model.resolve()),
                        "fingerprint": hashlib.sha256(sp_model.read_bytes()).hexdigest()}
    encoder = pickle.loads(pickle.dumps(tokenizer.batch_encoder()))
    assert isinstance(encoder, SPBatchEncoder) and encoder(TEXTS[:3]) == library.encode(TEXTS[:3])
    assert encoder.releases_gil is sentencepiece_releases_gil()


def test_a_file_that_is_not_a_sentencepiece_model_is_named(tmp_path):
    (tmp_path / "x.model").write_bytes(b"not a model")
    with pytest.raises(DataError, match="x.model: not a SentencePiece model"):
        PreTrainedSPTokenizer(str(tmp_path / "x.model"))


class Characters(TokenizerWrapper):
    def tokenize_batch(self, texts):
        return [[ord(c) for c in t] for t in texts]

    @property
    def special_token_ids(self):
        return {"<e>": 5}


def test_what_a_tokenizer_of_ones_own_inherits():
    tokenizer = Characters()
    assert tokenizer.tokenize("ab") == [97, 98]
    assert tokenizer.is_special_token_id(5) and not tokenizer.is_special_token_id(6)
    assert tokenizer.identity() is None
    for name in ("decode", "get_token_id", "batch_encoder"):
        with pytest.raises(NotImplementedError):
            getattr(TokenizerWrapper, name)(tokenizer, *(["x"] if name != "batch_encoder" else []))
    with pytest.raises(NotImplementedError):
        _ = TokenizerWrapper().vocab_size


def test_worker_processes_turn_the_tokenizers_own_threads_off(monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    tokenizer_parallelism_off()
    import os

    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"


@pytest.mark.parametrize("fails", [False, True])
def test_a_cache_entry_is_written_whole_or_not_at_all(tmp_path, monkeypatch, fails):
    from pathlib import Path

    from modalities.data.prepared_tokenizer import _write_entry

    entry = tmp_path / "tokenizers" / "key"
    if fails:
        def refuse(self, target):
            raise OSError("disk full")

        monkeypatch.setattr(Path, "rename", refuse)
    _write_entry(entry, '{"record": 1}', '{"model": {}}')
    if fails:
        assert not entry.exists() and list((tmp_path / "tokenizers").iterdir()) == []  # nothing half-written left
    else:
        assert (entry / "record.json").read_text() == '{"record": 1}'
        assert (entry / "tokenizer.json").read_text() == '{"model": {}}'
        assert sorted(p.name for p in (tmp_path / "tokenizers").iterdir()) == ["key"]


def test_the_packers_encoder_is_made_without_transformers_warnings():
    """transformers warns that max_length is ignored under padding=True without truncation when asked verbosely
    (its __call__ does); making the packer's encoder reads the same settings silently."""
    import warnings

    tokenizer = PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER), padding=True, max_length=4,
                                      special_tokens={"pad_token": EOD})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoder = tokenizer.batch_encoder()
    assert [str(w.message) for w in caught] == []
    with warnings.catch_warnings(record=True) as verbose:  # the same settings, read verbosely: the warning
        warnings.simplefilter("always")
        tokenizer.tokenizer._get_padding_truncation_strategies(padding=True, truncation=False, max_length=4)
    assert any("max_length" in str(w.message) for w in verbose)
    lengths = [len(ids) for ids in encoder(SHORT_AND_LONG)]
    assert len(set(lengths)) == 1 and lengths[0] > 4  # padded to the longest, not to 4


def test_a_hugging_face_tokenizer_is_loaded_from_local_files_only_and_must_be_fast(monkeypatch):
    from types import SimpleNamespace

    import transformers

    asked = []

    def slow(path, **kwargs):
        asked.append((path, kwargs))
        return SimpleNamespace(is_fast=False)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", slow)
    with pytest.raises(DataError, match="sample/tokenizer: only fast \\(tokenizers-backed\\) Hugging Face tokenizers"):
        PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER))
    assert asked == [(str(SAMPLE_TOKENIZER), {"local_files_only": True})]  # never a download


@pytest.mark.parametrize("name", ["tokenizer.json", "folder"])
def test_a_tokenizer_that_cannot_be_loaded_is_named(tmp_path, name):
    if name == "folder":
        (tmp_path / "folder").mkdir()
        (tmp_path / "folder" / "tokenizer.json").write_text("{not json")
        (tmp_path / "folder" / "tokenizer_config.json").write_text("{}")
    else:
        (tmp_path / name).write_text("{not json")
    with pytest.raises(DataError, match=f"{name}: cannot load the tokenizer: "):
        PreTrainedHFTokenizer(str(tmp_path / name))


def test_a_tokenizer_path_names_its_kind(sp_model):
    from modalities.data.tokenizers import tokenizer_from_path

    assert type(tokenizer_from_path(str(sp_model))) is PreTrainedSPTokenizer  # a .model file
    assert type(tokenizer_from_path(str(SAMPLE_TOKENIZER))) is PreTrainedHFTokenizer  # a folder
    from_file = tokenizer_from_path(str(SAMPLE_TOKENIZER / "tokenizer.json"))
    assert type(from_file) is PreTrainedHFTokenizer and from_file.vocab_size == 2048


@pytest.mark.parametrize(
    "explicit, xdg, expected",
    [
        ("mine", "xdg", "mine"),
        ("", "xdg", "xdg/modalities"),  # set but empty: not a folder
        (None, "", "home/.cache/modalities"),
        ("", "", "home/.cache/modalities"),
    ],
)
def test_the_cache_folder_skips_empty_settings(tmp_path, monkeypatch, explicit, xdg, expected):
    from modalities.data.prepared_tokenizer import cache_dir

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in (("MODALITIES_CACHE_DIR", explicit), ("XDG_CACHE_HOME", xdg)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(tmp_path / value) if value else "")
    assert cache_dir() == tmp_path / expected


def test_the_cache_key_is_sha256_of_the_files_settings_and_library_versions():
    import hashlib
    from importlib.metadata import version

    from modalities.data.prepared_tokenizer import RECORD_VERSION, fingerprint

    settings = {"truncation": True, "padding": False, "max_length": 4, "special_tokens": None}
    key = {"record": RECORD_VERSION, "files": "abc", "settings": settings, "transformers": version("transformers"),
           "tokenizers": version("tokenizers")}
    assert fingerprint("abc", settings) == hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    assert fingerprint("abd", settings) != fingerprint("abc", settings)
    assert fingerprint("abc", {**settings, "max_length": 5}) != fingerprint("abc", settings)


def test_a_cache_entry_of_another_record_version_is_rebuilt(tmp_path, monkeypatch):
    from modalities.data.prepared_tokenizer import RECORD_VERSION, PreparedHFTokenizer, hf_tokenizer_for_packing

    monkeypatch.setenv("MODALITIES_CACHE_DIR", str(tmp_path / "cache"))
    cold = hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER))
    (entry,) = (tmp_path / "cache" / "tokenizers").iterdir()
    record = json.loads((entry / "record.json").read_text())
    assert record == {"record": RECORD_VERSION, "source": str(SAMPLE_TOKENIZER.resolve()),
                      "vocab_size": cold.vocab_size, "special_token_ids": cold.special_token_ids}
    (entry / "record.json").write_text(json.dumps({**record, "record": RECORD_VERSION - 1}))
    assert type(hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER))) is PreTrainedHFTokenizer  # not trusted: rebuilt
    assert json.loads((entry / "record.json").read_text())["record"] == RECORD_VERSION
    assert type(hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER))) is PreparedHFTokenizer


def test_a_prepared_tokenizer_whose_backend_cannot_be_read_says_what_to_delete(tmp_path):
    from modalities.data.prepared_tokenizer import PreparedHFTokenizer

    backend = tmp_path / "entry" / "tokenizer.json"
    backend.parent.mkdir()
    backend.write_text("{broken")
    prepared = PreparedHFTokenizer(SAMPLE_TOKENIZER, {"vocab_size": 7, "special_token_ids": {"x": 1}}, {}, backend,
                                   "abc")
    assert (prepared.vocab_size, prepared.special_token_ids) == (7, {"x": 1})  # from the record, no backend read
    with pytest.raises(DataError, match=r"entry/tokenizer.json: the prepared tokenizer cannot be read .*; delete "
                                        r".*entry and pack again"):
        prepared.get_token_id(EOD)


def test_special_tokens_given_add_to_the_tokenizers_own(tmp_path):
    """A tokenizer that already marks a token special keeps it when the config marks another: transformers'
    add_special_tokens replaces the extra special tokens unless told not to."""
    folder = tmp_path / "tok"
    shutil.copytree(SAMPLE_TOKENIZER, folder)
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    own, given = (next(t for t, i in vocab.items() if i == wanted) for wanted in (300, 301))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "extra_special_tokens": [own]}))
    tokenizer = PreTrainedHFTokenizer(str(folder), special_tokens={"additional_special_tokens": [given]})
    assert tokenizer.special_token_ids == {EOD: 0, own: 300, given: 301}
    assert tokenizer.vocab_size == 2048  # marked, not added
