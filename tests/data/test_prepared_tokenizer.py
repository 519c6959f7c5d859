"""The packing tokenizer cache: a warm entry encodes exactly as transformers' tokenizer does, without importing
transformers or torch; any change to the tokenizer's files makes a new entry, so the cache is never stale."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from modalities.data.prepared_tokenizer import PreparedHFTokenizer, hf_tokenizer_for_packing
from modalities.data.tokenizers import PreTrainedHFTokenizer, without_empty_bpe_affixes
from tests.data.conftest import EOD, REPO, SAMPLE_TOKENIZER, TEXTS, write_jsonl


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("MODALITIES_CACHE_DIR", str(folder))
    return folder


def test_a_warm_entry_encodes_as_the_transformers_tokenizer(cache, hf_tokenizer):
    cold = hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER))
    assert isinstance(cold, PreTrainedHFTokenizer)
    assert len(list((cache / "tokenizers").iterdir())) == 1
    warm = hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER))
    assert isinstance(warm, PreparedHFTokenizer)
    assert warm.vocab_size == hf_tokenizer.vocab_size == 2048
    assert warm.get_token_id(EOD) == hf_tokenizer.get_token_id(EOD)
    assert warm.special_token_ids == hf_tokenizer.special_token_ids
    assert warm.batch_encoder()(TEXTS) == [hf_tokenizer.tokenize(t) for t in TEXTS]
    assert warm.decode(hf_tokenizer.tokenize(TEXTS[1])) == TEXTS[1]
    assert warm.identity()["fingerprint"] == hf_tokenizer.identity()["fingerprint"]


def test_other_settings_or_files_make_another_entry(cache, tmp_path):
    hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER))
    assert isinstance(hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER), truncation=True, max_length=4),
                      PreTrainedHFTokenizer)
    truncated = hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER), truncation=True, max_length=4)
    assert isinstance(truncated, PreparedHFTokenizer)
    assert [len(ids) for ids in truncated.batch_encoder()(TEXTS[:2])] == [4, 4]  # the settings took effect

    folder = tmp_path / "tok"
    shutil.copytree(SAMPLE_TOKENIZER, folder)
    hf_tokenizer_for_packing(str(folder))
    data = json.loads((folder / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    a, b = (next(t for t, i in vocab.items() if i == wanted) for wanted in (300, 301))
    vocab[a], vocab[b] = 301, 300
    (folder / "tokenizer.json").write_text(json.dumps(data))
    changed = hf_tokenizer_for_packing(str(folder))
    assert isinstance(changed, PreTrainedHFTokenizer)  # cold again: the entry for the old files does not apply
    assert len(list((cache / "tokenizers").iterdir())) == 3
    again = hf_tokenizer_for_packing(str(folder))
    text = next(t for t in TEXTS if {300, 301} & set(changed.tokenize(t)))
    assert again.batch_encoder()([text]) == [changed.tokenize(text)]


def test_a_broken_entry_is_rebuilt_and_an_unwritable_cache_only_means_no_cache(cache, tmp_path, monkeypatch,
                                                                              hf_tokenizer):
    hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER))
    (entry,) = (cache / "tokenizers").iterdir()
    for broken in ("record.json", "tokenizer.json"):
        (entry / broken).write_text("{broken")
        assert isinstance(hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER)), PreTrainedHFTokenizer)
        warm = hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER))
        assert isinstance(warm, PreparedHFTokenizer)
        assert warm.batch_encoder()(TEXTS[:2]) == [hf_tokenizer.tokenize(t) for t in TEXTS[:2]]
    assert [p.name for p in (cache / "tokenizers").iterdir()] == [entry.name]  # no temporary folders left

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("MODALITIES_CACHE_DIR", str(blocked))
    tokenizer = hf_tokenizer_for_packing(str(SAMPLE_TOKENIZER))
    assert tokenizer.batch_encoder()(TEXTS[:3]) == [hf_tokenizer.tokenize(t) for t in TEXTS[:3]]


def test_packing_from_a_warm_cache_imports_neither_transformers_nor_torch_nor_networkx(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": t} for t in TEXTS])
    config = tmp_path / "pack.yaml"
    config.write_text(
        f"settings:\n  src_path: {corpus}\n  dst_path: {tmp_path / 'out.pbin'}\n  eod_token: '{EOD}'\n  num_cpus: 2\n"
        f"tokenizer:\n  component_key: tokenizer\n  variant_key: pretrained_hf_tokenizer\n"
        f"  config:\n    pretrained_model_name_or_path: {SAMPLE_TOKENIZER}\n"
    )
    probe = (
        "import sys\n"
        "from modalities.cli.main import main\n"
        f"assert main(['data', 'create_raw_index', {str(corpus)!r}, '--overwrite']) == 0\n"
        f"assert main(['data', 'pack_encoded_data', {str(config)!r}, '--overwrite']) == 0\n"
        "print('IMPORTED', *(name in sys.modules for name in ('transformers', 'torch', 'networkx')))\n"
    )
    env = {**os.environ, "MODALITIES_CACHE_DIR": str(tmp_path / "cache")}

    def run() -> str:
        done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=False,
                              timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cold, warm = run(), run()
    assert "IMPORTED True" in cold  # the first time, transformers prepares the tokenizer
    # nor the compiler's later stages (networkx): a tokenizer of plain values is checked by its config class
    assert "IMPORTED False False False" in warm
    from modalities.data.pbin import PackedFile

    eod = PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER)).get_token_id(EOD)
    expected = []
    for text in TEXTS:
        expected += PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER)).tokenize(text) + [eod]
    assert PackedFile(tmp_path / "out.pbin").tokens.tolist() == expected


def test_empty_bpe_affixes_dropped_encode_the_same_ids():
    from tokenizers import Tokenizer

    data = json.loads((SAMPLE_TOKENIZER / "tokenizer.json").read_text())
    data["model"]["continuing_subword_prefix"] = ""
    data["model"]["end_of_word_suffix"] = ""
    with_empty = json.dumps(data)
    cleaned = without_empty_bpe_affixes(with_empty)
    model = json.loads(cleaned)["model"]
    assert model["continuing_subword_prefix"] is None and model["end_of_word_suffix"] is None
    texts = TEXTS + ["ünïcödé  spaces\t\ttabs", "x" * 300]
    before = [e.ids for e in Tokenizer.from_str(with_empty).encode_batch(texts)]
    after = [e.ids for e in Tokenizer.from_str(cleaned).encode_batch(texts)]
    assert before == after
    # a prefix that means something is left alone
    data["model"]["continuing_subword_prefix"] = "##"
    assert json.loads(without_empty_bpe_affixes(json.dumps(data)))["model"]["continuing_subword_prefix"] == "##"
    # and a tokenizer without empty affixes comes back as it was, text for text
    plain = (SAMPLE_TOKENIZER / "tokenizer.json").read_text()
    assert without_empty_bpe_affixes(plain) == plain


@pytest.mark.parametrize("name", ["transformers", "tokenizers", "modalities", "no_such_package_here"])
def test_package_versions_agree_with_importlib_metadata(name):
    # transformers and tokenizers are found by their dist-info folder; modalities (an editable install here) by
    # importlib.metadata
    from importlib.metadata import PackageNotFoundError, version

    from modalities.data.prepared_tokenizer import _package_version

    try:
        expected = version(name)
    except PackageNotFoundError:
        expected = "absent"
    assert _package_version(name) == expected


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    from modalities.data.prepared_tokenizer import cache_dir

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MODALITIES_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "modalities"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "modalities"
    monkeypatch.setenv("MODALITIES_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_package_versions_in_the_cache_key_are_the_installed_ones():
    """The tokenizer cache's key names the versions of the packages that make the tokenizer (a new version
    invalidates it): read from the dist-info folder beside the package, as importlib.metadata reports them."""
    from importlib.metadata import version

    from modalities.data.prepared_tokenizer import _package_version

    for name in ("tokenizers", "numpy"):
        assert _package_version(name) == version(name)
    assert _package_version("surely_not_an_installed_package") == "absent"
