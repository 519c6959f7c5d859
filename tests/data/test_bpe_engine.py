"""tiktoken as the packing engine: the same ids as Hugging Face `tokenizers` on GPT-2's, Llama-3's and Qwen's kinds
of byte-level BPE (made here), the same packed bytes, and `tokenizers` wherever tiktoken cannot be trusted.

The expectations come from `tokenizers` itself (`Tokenizer.encode`), and for GPT-2 also from tiktoken's own
`Encoding` built straight from the rank table, which is how OpenAI runs GPT-2."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tiktoken")

from tokenizers import Regex, Tokenizer, processors, trainers
from tokenizers.models import BPE

from modalities.data.bpe_engine import (
    GPT2_PATTERN,
    NotExpressible,
    TiktokenBatchEncoder,
    cached_tiktoken_spec,
    choose_engine,
    stress_documents,
    tiktoken_spec,
)
from modalities.data.errors import DataError
from modalities.data.packing import pack_encoded_data
from modalities.data.pbin import PackedFile
from modalities.data.pbin_info import read_info
from modalities.data.prepared_tokenizer import hf_tokenizer_for_packing
from modalities.data.raw_index import create_raw_index
from modalities.data.tokenizers import HFBatchEncoder
from tests.data.conftest import EOD, TEXTS, write_jsonl

# The pre-tokenizer regexes of Llama-3's and Qwen2's tokenizer.json files.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")
CHAT = "<|im_start|>user\nWhat's 12345 + 678?<|im_end|>\n<|im_start|>assistant\n<think>\nadd</think>13023<|im_end|>"
EXTRA = [
    CHAT, "a<|endoftext|>b", "<|endoftext|>", "text then <|endoftext|>", "<|begin_of_text|>Hi", "x<|end_of_text|>",
    "Cafe\u0301 de\u0301ja\u0300 vu", "\u212b and A\u030a", "mixed Café and Cafe\u0301",
]
TRAINING_TEXT = TEXTS + [CHAT, "Ünïcödé façade 日本語 12345 678 🤖 it's THEY'RE", "    indented\r\n\ttabs  "]


def _corpus_tool():
    spec = importlib.util.spec_from_file_location(
        "packing_corpus", Path(__file__).resolve().parents[2] / "tools" / "bench" / "packing_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gpt2_ranks() -> dict[bytes, int]:
    """A small GPT-2-style rank table, trained the way tiktoken documents it (its educational BPE trainer)."""
    from tiktoken._educational import bpe_train

    return bpe_train("\n".join(TEXTS), 330, GPT2_PATTERN, visualise=None)


def _save(tokenizer: Tokenizer, folder: Path, edit=None) -> Path:
    data = json.loads(tokenizer.to_str())
    if edit is not None:
        edit(data)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return folder / "tokenizer.json"


def _trained(pattern: str, normalizer=None) -> Tokenizer:
    """A byte-level BPE of 420 ids trained on the test texts, cutting text with ``pattern`` as Llama-3 and Qwen2
    do (Split with isolated matches, then ByteLevel without its own regex)."""
    from tokenizers import pre_tokenizers as pt

    tokenizer = Tokenizer(BPE())
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pt.Sequence(
        [pt.Split(Regex(pattern), behavior="isolated"), pt.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=420, initial_alphabet=pt.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer=trainer)
    return tokenizer


@pytest.fixture(scope="module")
def tokenizer_files(tmp_path_factory, gpt2_ranks) -> dict[str, Path]:
    """GPT-2 (from the rank table, as the benchmark rebuilds GPT-2), Llama-3-style (its regex, merges ignored for
    pre-tokens in the vocabulary, <|begin_of_text|> before each text) and Qwen-style (its regex, NFC, special
    chat tokens and non-special <think> tokens) tokenizer.json files."""
    from tokenizers import AddedToken, normalizers

    folder = tmp_path_factory.mktemp("bpe")
    gpt2 = _corpus_tool().tokenizer_from_ranks(gpt2_ranks, {EOD: len(gpt2_ranks)})

    llama = _trained(LLAMA3_PATTERN)
    llama.add_special_tokens(["<|begin_of_text|>", "<|end_of_text|>", EOD])
    bos = llama.token_to_id("<|begin_of_text|>")
    llama.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)]),
    ])

    def ignore_merges(data):
        data["model"]["ignore_merges"] = True

    def bos_and_eod_around(data):  # a template ending each text with the packer's EOD: no second one
        ignore_merges(data)
        eod = next(token["id"] for token in data["added_tokens"] if token["content"] == EOD)
        pieces = [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": EOD, "type_id": 0}}]
        data["post_processor"] = {
            "type": "TemplateProcessing", "single": pieces, "pair": pieces[:2] + [{"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bos], "tokens": ["<|begin_of_text|>"]},
                               EOD: {"id": EOD, "ids": [eod], "tokens": [EOD]}}}

    qwen = _trained(QWEN2_PATTERN, normalizers.NFC())
    qwen.add_special_tokens([EOD, "<|im_start|>", "<|im_end|>"])
    qwen.add_tokens([AddedToken("<think>", special=False, normalized=False),
                     AddedToken("</think>", special=False, normalized=False)])
    qwen.post_processor = processors.ByteLevel(trim_offsets=False)
    return {"gpt2": _save(gpt2, folder / "gpt2"), "llama3": _save(llama, folder / "llama3", ignore_merges),
            "qwen": _save(qwen, folder / "qwen"), "bos_eod": _save(llama, folder / "bos_eod", bos_and_eod_around)}


def _texts(path: Path) -> list[str]:
    added = [token["content"] for token in json.loads(path.read_text(encoding="utf-8"))["added_tokens"]]
    return TEXTS + EXTRA + stress_documents(added)


@pytest.mark.parametrize("name", ["gpt2", "llama3", "qwen"])
@pytest.mark.parametrize("as_text", [False, True])
def test_tiktoken_gives_the_ids_of_tokenizers(tokenizer_files, name, as_text):
    tokenizer_json = tokenizer_files[name].read_text(encoding="utf-8")
    spec = tiktoken_spec(tokenizer_json, as_text)
    encoder = TiktokenBatchEncoder(spec, HFBatchEncoder(tokenizer_json, as_text))
    reference = Tokenizer.from_str(tokenizer_json)
    reference.encode_special_tokens = as_text
    texts = _texts(tokenizer_files[name])
    expected = [encoding.ids for encoding in reference.encode_batch(texts)]
    assert encoder(texts) == expected
    flat, lengths = encoder.encode_flat(texts)
    assert lengths.tolist() == [len(ids) for ids in expected] and flat.tolist() == [i for ids in expected for i in ids]
    special = {"gpt2": EOD, "llama3": EOD, "qwen": "<|im_end|>"}[name]
    text_with_special = f"a{special}b"
    assert (reference.token_to_id(special) in encoder([text_with_special])[0]) is not as_text


def test_the_gpt2_rebuilt_from_ranks_encodes_as_tiktoken_on_the_rank_table_itself(tokenizer_files, gpt2_ranks):
    """The rank table through its tokenizer.json and back gives what tiktoken gives on the table itself."""
    import tiktoken

    direct = tiktoken.Encoding("tiny-gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=gpt2_ranks,
                               special_tokens={EOD: len(gpt2_ranks)})
    spec = tiktoken_spec(tokenizer_files["gpt2"].read_text(encoding="utf-8"))
    assert spec.ranks == gpt2_ranks and spec.added == {EOD: len(gpt2_ranks)} and spec.pattern == GPT2_PATTERN
    texts = _texts(tokenizer_files["gpt2"])
    assert TiktokenBatchEncoder(spec, None)(texts) == [direct.encode(t, allowed_special="all") for t in texts]


def test_llama3_style_puts_its_bos_first_and_qwen_style_sends_text_not_in_nfc_to_tokenizers(tokenizer_files):
    llama = tiktoken_spec(tokenizer_files["llama3"].read_text(encoding="utf-8"))
    bos = llama.added["<|begin_of_text|>"]
    assert (llama.prefix, llama.suffix, llama.nfc) == ((bos,), (), False)
    qwen_json = tokenizer_files["qwen"].read_text(encoding="utf-8")
    qwen = tiktoken_spec(qwen_json)
    assert qwen.nfc and qwen.matched_in_text == {EOD, "<|im_start|>", "<|im_end|>", "<think>", "</think>"}
    assert tiktoken_spec(qwen_json, special_tokens_as_text=True).matched_in_text == {"<think>", "</think>"}
    decomposed = "Cafe\u0301"
    encoder = TiktokenBatchEncoder(qwen, HFBatchEncoder(qwen_json))
    raw = encoder.encoding.encode(decomposed, disallowed_special=())
    assert raw != Tokenizer.from_str(qwen_json).encode(decomposed).ids  # tiktoken alone would not normalize it
    assert encoder([decomposed]) == [Tokenizer.from_str(qwen_json).encode(decomposed).ids]


def _corpus(tmp_path: Path, texts: list[str]) -> Path:
    path = write_jsonl(tmp_path / "corpus.jsonl", [{"text": text} for text in texts])
    create_raw_index(path)
    return path


@pytest.mark.parametrize("name", ["gpt2", "llama3", "qwen", "bos_eod"])
def test_both_engines_pack_the_same_bytes_the_tokenizers_ids_then_eod(tmp_path, tokenizer_files, name, monkeypatch):
    monkeypatch.setenv("MODALITIES_CACHE_DIR", str(tmp_path / "cache"))
    texts = _texts(tokenizer_files[name])
    corpus = _corpus(tmp_path, texts)
    tokenizer = hf_tokenizer_for_packing(str(tokenizer_files[name]))
    packed = {}
    for engine in ("tiktoken", "huggingface", "auto"):
        result = pack_encoded_data(corpus, tokenizer, EOD, dst_path=tmp_path / f"{engine}.pbin", num_cpus=2,
                                   processing_batch_size=7, tokenizer_engine=engine)
        packed[engine] = result.dst_path.read_bytes()
        assert result.engine.startswith("tiktoken" if engine != "huggingface" else "Hugging Face tokenizers")
    assert packed["tiktoken"] == packed["huggingface"] == packed["auto"]
    reference = Tokenizer.from_file(str(tokenizer_files[name]))
    eod = reference.token_to_id(EOD)
    documents = PackedFile(tmp_path / "auto.pbin")
    for i, text in enumerate(texts):
        ids = reference.encode(text).ids
        assert documents.document(i).tolist() == (ids if ids[-1:] == [eod] else ids + [eod])
        if name == "bos_eod":
            assert ids[0] == reference.token_to_id("<|begin_of_text|>") and ids[-1] == eod
    assert read_info(tmp_path / "auto.pbin")["engine"]["name"] == "tiktoken"
    assert read_info(tmp_path / "huggingface.pbin")["engine"] == {
        "name": "huggingface", "version": read_info(tmp_path / "huggingface.pbin")["engine"]["version"],
        "reason": "asked for"}


def _edited(path: Path, edit) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    return data


def _set(key, value):
    def edit(data):
        data[key] = value
    return edit


def _model(key, value):
    def edit(data):
        data["model"][key] = value
    return edit


def _added(**changes):
    def edit(data):
        data["added_tokens"].append({"id": data["added_tokens"][-1]["id"] + 1, "content": "<|x|>", "single_word": False,
                                     "lstrip": False, "rstrip": False, "normalized": False, "special": True, **changes})
    return edit


def _merges_swapped(data):
    merges = data["model"]["merges"]
    merges[10], merges[11] = merges[11], merges[10]


def _last_merge_dropped(data):
    data["model"]["merges"].pop()


def _token_not_encoding_to_itself(data):
    """ab, bc, then abc as a + bc: merging abc's bytes makes ab first and stops at ab + c."""
    a, b, c = "\u0100", "\u0101", "\u0102"  # the stand-ins of bytes 0, 1, 2: in no merge of the tokenizer
    vocab = data["model"]["vocab"]
    next_id = max([*vocab.values(), *(token["id"] for token in data["added_tokens"])]) + 1
    for offset, token in enumerate((a + b, b + c, a + b + c)):
        vocab[token] = next_id + offset
    data["model"]["merges"] += [[a, b], [b, c], [a, b + c]]


@pytest.mark.parametrize("edit, reason", [
    (_set("normalizer", {"type": "Lowercase"}), "its normalizer is"),
    (_set("pre_tokenizer", {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}),
     "its pre-tokenizer is"),
    (_set("pre_tokenizer", {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}),
     "its pre-tokenizer is"),
    (_set("truncation", {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0}),
     "truncation set"),
    (_set("post_processor", {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
                             "trim_offsets": True, "add_prefix_space": False}), "its post-processor is"),
    (_model("type", "WordPiece"), "not BPE"),
    (_model("dropout", 0.1), "dropout"),
    (_model("continuing_subword_prefix", "##"), "continuing_subword_prefix"),
    (_added(lstrip=True), "strips"),
    (_added(content=EOD + "!"), "begins another"),
    (_merges_swapped, "below an earlier merge's"),
    (_last_merge_dropped, "made by no merge"),
    (_token_not_encoding_to_itself, "does not encode to itself"),
])
def test_what_tiktoken_cannot_express_is_refused_with_the_reason(tokenizer_files, edit, reason):
    with pytest.raises(NotExpressible, match=reason):
        tiktoken_spec(_edited(tokenizer_files["gpt2"], edit))


def _encoder(data: dict, as_text: bool = False) -> HFBatchEncoder:
    return HFBatchEncoder(json.dumps(data, ensure_ascii=False), as_text)


def test_auto_falls_back_to_tokenizers_with_the_reason_and_forced_tiktoken_is_an_error(tokenizer_files, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setenv("MODALITIES_CACHE_DIR", str(tmp_path))
    lowercase = _encoder(_edited(tokenizer_files["gpt2"], _set("normalizer", {"type": "Lowercase"})))
    choice = choose_engine(lowercase, "auto", list)
    assert choice.encoder is lowercase and choice.engine == "huggingface"
    assert "tiktoken cannot express it: its normalizer is" in choice.describe()
    with pytest.raises(DataError, match="tokenizer engine tiktoken cannot be used: .*its normalizer is"):
        choose_engine(lowercase, "tiktoken", list)
    with pytest.raises(DataError, match="choose one of auto, tiktoken, huggingface"):
        choose_engine(lowercase, "fastest", list)


def test_a_difference_on_the_sample_or_the_built_documents_means_tokenizers(tokenizer_files, tmp_path, monkeypatch):
    """A regex matching letters only: `tokenizers` keeps the text between matches, tiktoken drops it."""
    monkeypatch.setenv("MODALITIES_CACHE_DIR", str(tmp_path))

    def letters_only(data):
        data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"\p{L}+"}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}

    encoder = _encoder(_edited(tokenizer_files["gpt2"], letters_only))
    choice = choose_engine(encoder, "auto", lambda: ["nogaps", "a gap: here"])
    assert choice.engine == "huggingface" and choice.encoder is encoder
    assert "tiktoken differs on corpus sample document 1 ('a gap: here'...)" in choice.reason
    with pytest.raises(DataError, match="differs on corpus sample document 1"):
        choose_engine(encoder, "tiktoken", lambda: ["nogaps", "a gap: here"])
    assert "differs on built document" in choose_engine(encoder, "auto", list).reason


def test_without_tiktoken_installed_packing_uses_tokenizers_and_says_how_to_get_it(tokenizer_files, monkeypatch):
    import modalities.data.prepared_tokenizer as prepared

    real = prepared._package_version
    monkeypatch.setattr(prepared, "_package_version", lambda name: "absent" if name == "tiktoken" else real(name))
    encoder = _encoder(json.loads(tokenizer_files["gpt2"].read_text(encoding="utf-8")))
    choice = choose_engine(encoder, "auto", list)
    assert choice.engine == "huggingface" and "pip install 'modalities[tiktoken]'" in choice.reason


def test_sentencepiece_and_encoders_of_ones_own_keep_their_engine(sp_model, tokenizer_files):
    from modalities.data.tokenizers import PreTrainedSPTokenizer

    sp = PreTrainedSPTokenizer(str(sp_model)).batch_encoder()
    for wanted in ("auto", "huggingface"):
        choice = choose_engine(sp, wanted, list)
        assert choice.encoder is sp and choice.engine == "sentencepiece"
    with pytest.raises(DataError, match="Hugging Face BPE tokenizers only, not this SPBatchEncoder"):
        choose_engine(sp, "tiktoken", list)

    class OwnWay(HFBatchEncoder):
        pass

    own = OwnWay(tokenizer_files["gpt2"].read_text(encoding="utf-8"))
    assert choose_engine(own, "auto", list).encoder is own


def test_a_text_tokenizers_cannot_take_fails_the_same_way_with_tiktoken(tmp_path, tokenizer_files, monkeypatch):
    """A lone surrogate (valid JSON escape, not UTF-8): `tokenizers` refuses it; tiktoken alone would encode a
    replacement character. Both engines stop at the line, or skip it and write the same file."""
    monkeypatch.setenv("MODALITIES_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "bad \\ud800 here"}\n{"text": "fine too"}\n', encoding="utf-8")
    create_raw_index(path)
    tokenizer = hf_tokenizer_for_packing(str(tokenizer_files["gpt2"]))
    files = []
    for engine in ("tiktoken", "huggingface"):
        with pytest.raises(DataError, match="corpus.jsonl:2: document 1: the tokenizer failed on it"):
            pack_encoded_data(path, tokenizer, EOD, dst_path=tmp_path / "x.pbin", tokenizer_engine=engine)
        result = pack_encoded_data(path, tokenizer, EOD, dst_path=tmp_path / f"{engine}.pbin", tokenizer_engine=engine,
                                   skip_bad_documents=True)
        assert [s.line for s in result.skipped] == [2]
        files.append(result.dst_path.read_bytes())
    assert files[0] == files[1]


def test_the_spec_is_kept_in_the_cache_and_so_is_a_refusal(tokenizer_files, tmp_path, monkeypatch):
    from modalities.data import bpe_engine

    monkeypatch.setenv("MODALITIES_CACHE_DIR", str(tmp_path))
    tokenizer_json = tokenizer_files["qwen"].read_text(encoding="utf-8")
    refused = json.dumps(_edited(tokenizer_files["gpt2"], _model("dropout", 0.1)))
    made = cached_tiktoken_spec(tokenizer_json, True)
    assert made == tiktoken_spec(tokenizer_json, True)
    with pytest.raises(NotExpressible, match="dropout"):
        cached_tiktoken_spec(refused)

    def not_again(*args):
        raise AssertionError("analysed again instead of read from the cache")

    monkeypatch.setattr(bpe_engine, "tiktoken_spec", not_again)
    assert cached_tiktoken_spec(tokenizer_json, True) == made
    with pytest.raises(NotExpressible, match="dropout"):
        cached_tiktoken_spec(refused)
    with pytest.raises(AssertionError, match="analysed again"):
        cached_tiktoken_spec(tokenizer_json, False)  # another setting: another entry


def test_the_cli_flag_and_the_setting_choose_the_engine_and_the_summary_says_which(tmp_path, tokenizer_files, capsys,
                                                                                   monkeypatch):
    from modalities.cli.main import main

    monkeypatch.setenv("MODALITIES_CACHE_DIR", str(tmp_path / "cache"))
    corpus = _corpus(tmp_path, TEXTS)
    config = tmp_path / "pack.yaml"
    config.write_text(f"""settings:
  src_path: {corpus}
  eod_token: "{EOD}"
  num_cpus: 2
  tokenizer_engine: tiktoken
tokenizer:
  component_key: tokenizer
  variant_key: pretrained_hf_tokenizer
  config:
    pretrained_model_name_or_path: {tokenizer_files['llama3']}
""")
    assert main(["data", "pack_encoded_data", str(config)]) == 0
    assert "engine: tiktoken" in capsys.readouterr().out
    assert main(["data", "inspect", str(corpus.with_suffix(".pbin"))]) == 0
    assert "encoded by:  tiktoken" in capsys.readouterr().out
    assert main(["data", "pack_encoded_data", str(config), "--overwrite", "--tokenizer-engine", "huggingface"]) == 0
    assert "engine: Hugging Face tokenizers" in capsys.readouterr().out


def test_flatten_takes_ids_back_to_back_as_it_takes_lists():
    from modalities.data.packing import _flatten

    lists = [[5, 1], [], [2, 9, 9], [9]]
    flat = (np.array([5, 1, 2, 9, 9, 9], dtype=np.uint32), np.array([2, 0, 3, 1]))
    by_lists, by_flat = _flatten(copy.deepcopy(lists), [0, 1, 2, 3], [], 9, 2), _flatten(flat, [0, 1, 2, 3], [], 9, 2)
    assert np.frombuffer(by_flat.tokens, dtype=np.uint16).tolist() == [5, 1, 9, 9, 2, 9, 9, 9]
    assert by_flat.tokens == by_lists.tokens and by_flat.doc_token_lengths.tolist() == [3, 1, 3, 1]
