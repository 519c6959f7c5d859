"""`modalities data ...`: the four subcommands, their output, and clear errors with exit code 1."""

from modalities.cli.main import main
from modalities.data.pbin import PackedFile
from tests.data.conftest import EOD, SAMPLE_TOKENIZER, TEXTS, write_jsonl


def _pack_config(tmp_path, corpus, **settings):
    extra = "".join(f"  {k}: {v}\n" for k, v in settings.items())
    path = tmp_path / "pack.yaml"
    path.write_text(
        f"settings:\n  src_path: {corpus}\n  dst_path: {tmp_path / 'out.pbin'}\n  jq_pattern: .text\n"
        f"  num_cpus: 1\n  eod_token: '{EOD}'\n  processing_batch_size: 8\n{extra}"
        f"tokenizer:\n  component_key: tokenizer\n  variant_key: pretrained_hf_tokenizer\n"
        f"  config:\n    pretrained_model_name_or_path: {SAMPLE_TOKENIZER}\n"
    )
    return path


def test_index_pack_inspect_merge(tmp_path, corpus, capsys):
    assert main(["data", "create_raw_index", str(corpus)]) == 0
    assert f"{len(TEXTS)} documents indexed" in capsys.readouterr().out
    config = _pack_config(tmp_path, corpus)
    assert main(["data", "pack_encoded_data", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"{len(TEXTS)} documents" in out and "tokens/s" in out
    packed = PackedFile(tmp_path / "out.pbin")
    assert main(["data", "inspect", str(tmp_path / "out.pbin"), "--tokenizer", str(SAMPLE_TOKENIZER)]) == 0
    out = capsys.readouterr().out
    assert f"tokens:      {packed.num_tokens:,}" in out
    assert f"documents:   {len(TEXTS)}" in out
    assert "token width: 2 byte(s)" in out
    assert repr(TEXTS[0] + EOD) in out
    merged = tmp_path / "merged.pbin"
    assert main(["data", "merge_packed_data", str(tmp_path / "out.pbin"), str(tmp_path / "out.pbin"), str(merged)]) == 0
    assert PackedFile(merged).num_documents == 2 * len(TEXTS)


def test_errors_exit_1_without_traceback(tmp_path, corpus, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "a"}, {"text": "b"}], raw_lines={1: "{oops"})
    assert main(["data", "create_raw_index", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl:2: not a valid JSON line" in err and "Traceback" not in err
    assert main(["data", "create_raw_index", str(bad), "--skip-malformed"]) == 0
    assert "skipped 1 malformed line(s): 2" in capsys.readouterr().out

    assert main(["data", "inspect", str(tmp_path / "missing.pbin")]) == 1
    assert "missing.pbin: packed data file not found" in capsys.readouterr().err
    (tmp_path / "junk.pbin").write_bytes(b"not a pbin file at all")
    assert main(["data", "inspect", str(tmp_path / "junk.pbin")]) == 1
    assert "junk.pbin" in capsys.readouterr().err

    assert main(["data", "create_raw_index", str(corpus)]) == 0
    config = _pack_config(tmp_path, corpus)
    assert main(["data", "pack_encoded_data", str(config)]) == 0
    assert main(["data", "pack_encoded_data", str(config)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "pack_encoded_data", str(config), "--overwrite"]) == 0


def test_pack_config_errors_point_at_the_line(tmp_path, corpus, capsys):
    config = _pack_config(tmp_path, corpus, processing_batch_size_typo=3)
    assert main(["data", "pack_encoded_data", str(config)]) == 1
    err = capsys.readouterr().err
    assert "pack.yaml:8" in err and "processing_batch_size_typo" in err
    config.write_text(config.read_text().replace("num_cpus: 1", "num_cpus: 0"))
    assert main(["data", "pack_encoded_data", str(config)]) == 1
    assert "pack.yaml:5" in capsys.readouterr().err


def test_pack_tokenizer_errors_point_at_the_line(tmp_path, corpus, capsys):
    create_raw_index_cli = ["data", "create_raw_index", str(corpus)]
    assert main(create_raw_index_cli) == 0
    config = _pack_config(tmp_path, corpus)
    text = config.read_text()
    config.write_text(text.replace("    pretrained_model_name_or_path:", "    truncation: 3\n    pretrained_model_name_or_pth:"))
    assert main(["data", "pack_encoded_data", str(config)]) == 1
    err = capsys.readouterr().err
    assert "pack.yaml:12:17: error: tokenizer.config.truncation:" in err
    assert "pack.yaml:13:5: error: tokenizer.config.pretrained_model_name_or_pth: unknown field" in err
    assert "did you mean 'pretrained_model_name_or_path'?" in err
    assert not (tmp_path / "out.pbin").exists()


def test_pack_skip_bad_documents_flag(tmp_path, capsys):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": "ok"}, {"body": "no text"}, {"text": "fine"}])
    assert main(["data", "create_raw_index", str(corpus)]) == 0
    config = _pack_config(tmp_path, corpus)
    assert main(["data", "pack_encoded_data", str(config)]) == 1
    assert "c.jsonl:2: document 1: no field 'text'" in capsys.readouterr().err
    assert main(["data", "pack_encoded_data", str(config), "--skip-bad-documents"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 bad document(s)" in out and "c.jsonl:2" in out
    assert PackedFile(tmp_path / "out.pbin").num_documents == 2


def test_pack_without_index_says_how_to_make_one(tmp_path, corpus, capsys):
    config = _pack_config(tmp_path, corpus)
    assert main(["data", "pack_encoded_data", str(config)]) == 1
    assert (
        "corpus.idx: index file not found; create it with `modalities data create_raw_index`" in capsys.readouterr().err
    )
