"""How packing spreads its work (tokenizer threads or worker processes), shards of the index, and the plain
progress lines a batch job's log gets: every way must write the tokenizer's ids, document by document."""

from __future__ import annotations

import numpy as np
import pytest

from modalities.cli.main import main
from modalities.data.errors import DataError
from modalities.data.packing import _flatten, pack_encoded_data, shard_bounds
from modalities.data.pbin import PackedFile
from modalities.data.raw_index import create_raw_index
from modalities.data.tokenizers import HFBatchEncoder, SPBatchEncoder
from tests.data.conftest import EOD, TEXTS, write_jsonl


class _ProcessesOnly(HFBatchEncoder):
    """The same encoder, declared unable to release the GIL: the packer must use worker processes."""

    releases_gil = False


class _HFInProcesses:
    """The sample tokenizer, its encoder routed through worker processes."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.vocab_size

    def get_token_id(self, token):
        return self.tokenizer.get_token_id(token)

    def batch_encoder(self):
        return _ProcessesOnly(self.tokenizer.batch_encoder().tokenizer_json)


def _expected_stream(tokenizer, texts) -> list[int]:
    """Written out by hand: each document's ids from the tokenizer, then the EOD id once."""
    eod = tokenizer.get_token_id(EOD)
    stream = []
    for text in texts:
        stream += tokenizer.tokenize(text) + [eod]
    return stream


@pytest.mark.parametrize("num_cpus", [1, 2])
def test_threads_and_worker_processes_both_write_the_tokenizers_ids(tmp_path, corpus, hf_tokenizer, num_cpus,
                                                                    monkeypatch):
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    create_raw_index(corpus)
    threaded = pack_encoded_data(corpus, hf_tokenizer, EOD, dst_path=tmp_path / "t.pbin", num_cpus=num_cpus,
                                 processing_batch_size=4)
    pooled = pack_encoded_data(corpus, _HFInProcesses(hf_tokenizer), EOD, dst_path=tmp_path / "p.pbin",
                               num_cpus=num_cpus, processing_batch_size=4)
    expected = _expected_stream(hf_tokenizer, TEXTS)
    for result in (threaded, pooled):
        packed = PackedFile(result.dst_path)
        assert packed.tokens.tolist() == expected
        assert (packed.index[:, 1] // 2).tolist() == [len(hf_tokenizer.tokenize(t)) + 1 for t in TEXTS]
    assert threaded.parallelism == f"one process, the tokenizer on {num_cpus} thread(s)"
    assert pooled.parallelism == ("2 worker process(es)" if num_cpus == 2 else "one process")


def test_batches_encoded_out_of_order_are_written_in_order(tmp_path, corpus, hf_tokenizer):
    """Encoder threads take batches side by side; one that finishes late must not move its documents."""
    import threading

    first_batch_may_finish = threading.Event()

    class _SlowFirstBatch(HFBatchEncoder):
        def encodings(self, texts):
            if texts[0] == TEXTS[0]:
                first_batch_may_finish.wait(timeout=60)  # until a later batch is encoded (or a generous bound)
            else:
                first_batch_may_finish.set()
            return super().encodings(texts)

    class _Tokenizer(_HFInProcesses):
        def batch_encoder(self):
            return _SlowFirstBatch(self.tokenizer.batch_encoder().tokenizer_json)

    create_raw_index(corpus)
    result = pack_encoded_data(corpus, _Tokenizer(hf_tokenizer), EOD, dst_path=tmp_path / "o.pbin", num_cpus=2,
                               processing_batch_size=4)
    assert first_batch_may_finish.is_set()  # the second batch was encoded before the first
    assert PackedFile(result.dst_path).tokens.tolist() == _expected_stream(hf_tokenizer, TEXTS)


def test_a_failing_batch_in_the_threaded_path_names_the_document(tmp_path, hf_tokenizer):
    class _Refuses(HFBatchEncoder):
        def encodings(self, texts):
            if any("BOOM" in t for t in texts):
                raise RuntimeError("cannot encode this")
            return super().encodings(texts)

    class _Tokenizer(_HFInProcesses):
        def batch_encoder(self):
            return _Refuses(self.tokenizer.batch_encoder().tokenizer_json)

    path = write_jsonl(tmp_path / "c.jsonl", [{"text": "fine"}] * 5 + [{"text": "a BOOM"}] + [{"text": "ok"}] * 5)
    create_raw_index(path)
    with pytest.raises(DataError, match=r"c.jsonl:6: document 5: the tokenizer failed on it \(RuntimeError"):
        pack_encoded_data(path, _Tokenizer(hf_tokenizer), EOD, num_cpus=2, processing_batch_size=2)
    assert not (tmp_path / "c.pbin").exists()  # nothing half-written is left
    result = pack_encoded_data(path, _Tokenizer(hf_tokenizer), EOD, num_cpus=2, processing_batch_size=2,
                               skip_bad_documents=True)
    assert [(s.document, s.line) for s in result.skipped] == [(5, 6)]
    assert PackedFile(result.dst_path).tokens.tolist() == _expected_stream(hf_tokenizer, ["fine"] * 5 + ["ok"] * 5)


def test_flatten_appends_eod_unless_the_encoding_ends_with_it_and_finds_eods_inside():
    eod = 0
    encoded = [[5, 6], [], [7, 0], [0, 8, 0, 0], [9], [0]]
    result = _flatten(encoded, [10, 11, 12, 13, 14, 15], [], eod, 1)
    assert np.frombuffer(result.tokens, dtype=np.uint8).tolist() == [5, 6, 0, 0, 7, 0, 0, 8, 0, 0, 9, 0, 0]
    assert result.doc_token_lengths.tolist() == [3, 1, 2, 4, 2, 1]
    # only document 13 holds an EOD before the run of EODs it ends with
    assert result.with_eod_inside == [13]


def test_flatten_refuses_ids_the_token_width_cannot_hold():
    with pytest.raises(DataError, match=r"outside 0\.\.255"):
        _flatten([[1, 256]], [0], [], 0, 1)
    assert np.frombuffer(_flatten([[1, 256]], [0], [], 0, 2).tokens, dtype="<u2").tolist() == [1, 256, 0]


@pytest.mark.parametrize(
    ("num_documents", "shard", "bounds"),
    [(10, (0, 3), (0, 3)), (10, (1, 3), (3, 6)), (10, (2, 3), (6, 10)), (2, (0, 3), (0, 0)), (2, (2, 3), (1, 2))],
)
def test_shards_are_contiguous_slices_of_nearly_equal_size(num_documents, shard, bounds):
    assert shard_bounds(num_documents, shard) == bounds


def test_packing_in_shards_and_merging_gives_the_whole_file_byte_for_byte(tmp_path, corpus, capsys):
    from tests.data.test_cli import _pack_config

    assert main(["data", "create_raw_index", str(corpus)]) == 0
    config = _pack_config(tmp_path, corpus)
    assert main(["data", "pack_encoded_data", str(config)]) == 0
    whole = tmp_path / "out.pbin"
    parts = [tmp_path / f"out.{i:05d}-of-00004.pbin" for i in range(4)]
    for i in (2, 0, 3, 1):  # the order the nodes finish in does not matter
        assert main(["data", "pack_encoded_data", str(config), "--shard", f"{i}/4"]) == 0
    capsys.readouterr()
    sizes = [PackedFile(p).num_documents for p in parts]
    assert sizes == [11, 11, 11, 12]  # 45 documents
    assert main(["data", "merge_packed_data", *map(str, parts), str(tmp_path / "merged.pbin")]) == 0
    assert (tmp_path / "merged.pbin").read_bytes() == whole.read_bytes()
    # each part holds its own slice of the documents
    expected = [tok.tolist() for tok in (PackedFile(whole).document(i) for i in range(45))]
    assert [PackedFile(parts[3]).document(i).tolist() for i in range(12)] == expected[33:]


def test_more_shards_than_documents_leave_empty_parts_that_merge(tmp_path, capsys):
    from tests.data.test_cli import _pack_config

    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": "one"}, {"text": "two"}])
    assert main(["data", "create_raw_index", str(corpus)]) == 0
    config = _pack_config(tmp_path, corpus)
    assert main(["data", "pack_encoded_data", str(config)]) == 0
    for i in range(3):
        assert main(["data", "pack_encoded_data", str(config), "--shard", f"{i}/3"]) == 0
    parts = [str(tmp_path / f"out.{i:05d}-of-00003.pbin") for i in range(3)]
    assert [PackedFile(p).num_documents for p in parts] == [0, 1, 1]
    assert main(["data", "merge_packed_data", *parts, str(tmp_path / "m.pbin")]) == 0
    assert (tmp_path / "m.pbin").read_bytes() == (tmp_path / "out.pbin").read_bytes()


@pytest.mark.parametrize("shard", ["3/3", "a/b", "1-2", "-1/3", "1/0", "1/2/3"])
def test_a_bad_shard_is_refused_with_the_form_to_write(tmp_path, corpus, capsys, shard):
    from tests.data.test_cli import _pack_config

    create_raw_index(corpus)
    assert main(["data", "pack_encoded_data", str(_pack_config(tmp_path, corpus)), f"--shard={shard}"]) == 1
    err = capsys.readouterr().err
    assert f"error: --shard {shard!r}:" in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.pbin"))


def test_a_log_gets_plain_progress_lines_with_rates_and_an_eta(tmp_path, corpus, capsys, monkeypatch):
    from tests.data.test_cli import _pack_config

    monkeypatch.setenv("MODALITIES_PROGRESS_SECONDS", "0")  # a line for every batch
    create_raw_index(corpus)
    assert main(["data", "pack_encoded_data", str(_pack_config(tmp_path, corpus)), "--shard", "1/2"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("packing")]
    # shard 1 of 2 holds documents 22..44 (23), in batches of 8
    assert [line.split(",")[0] for line in lines] == [
        "packing shard 1/2: 8/23 documents (35%)",
        "packing shard 1/2: 16/23 documents (70%)",
        "packing shard 1/2: 23/23 documents (100%)",
    ]
    assert all("documents/s" in line and "tokens/s" in line and ", ETA " in line for line in lines)
    assert lines[-1].endswith("ETA 0:00:00")


def test_progress_lines_are_throttled(tmp_path, corpus, capsys, monkeypatch):
    from tests.data.test_cli import _pack_config

    monkeypatch.setenv("MODALITIES_PROGRESS_SECONDS", "3600")
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    create_raw_index(corpus)
    assert main(["data", "pack_encoded_data", str(_pack_config(tmp_path, corpus))]) == 0
    captured = capsys.readouterr()
    assert not [line for line in captured.err.splitlines() if line.startswith("packing")]
    assert f"{tmp_path / 'out.pbin'}: {len(TEXTS)} documents" in captured.out
    assert "the tokenizer on 1 thread(s)" in captured.out  # num_cpus: 1 in the config



def test_the_tokenizer_thread_settings_are_put_back(tmp_path, corpus, hf_tokenizer, monkeypatch):
    import os

    create_raw_index(corpus)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    pack_encoded_data(corpus, hf_tokenizer, EOD, dst_path=tmp_path / "a.pbin", num_cpus=2)
    # set for the packing (true, 2 threads), then what the caller had: false, and no thread count
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert "RAYON_NUM_THREADS" not in os.environ


class _SPHoldsTheGil(SPBatchEncoder):
    """SentencePiece's encoder as before 0.2.2, declared unable to release the GIL."""

    releases_gil = False


class _SPInProcesses(_HFInProcesses):
    """The same wrapper around a SentencePiece tokenizer: its encoder must go to worker processes."""

    def batch_encoder(self):
        return _SPHoldsTheGil(self.tokenizer.model_proto)


def test_sentencepiece_that_releases_the_gil_packs_on_threads_as_worker_processes_do(tmp_path, corpus, sp_model):
    import sentencepiece

    from modalities.data.tokenizers import PreTrainedSPTokenizer, sentencepiece_releases_gil

    tokenizer = PreTrainedSPTokenizer(str(sp_model))
    create_raw_index(corpus)
    threaded = pack_encoded_data(corpus, tokenizer, EOD, dst_path=tmp_path / "t.pbin", num_cpus=2,
                                 processing_batch_size=3)
    pooled = pack_encoded_data(corpus, _SPInProcesses(tokenizer), EOD, dst_path=tmp_path / "p.pbin", num_cpus=2,
                               processing_batch_size=3)
    eod = tokenizer.get_token_id(EOD)
    expected = [token for text in TEXTS for token in [*tokenizer.processor.encode(text), eod]]
    assert PackedFile(threaded.dst_path).tokens.tolist() == expected
    assert threaded.dst_path.read_bytes() == pooled.dst_path.read_bytes()
    assert pooled.parallelism == "2 worker process(es)"
    releases = sentencepiece_releases_gil(sentencepiece.__version__)
    assert threaded.parallelism == ("one process, the tokenizer on 2 thread(s)" if releases else "2 worker process(es)")


@pytest.mark.parametrize(("version", "releases"), [("0.1.99", False), ("0.2.0", False), ("0.2.1", False),
                                                   ("0.2.2", True), ("0.2.3", True), ("0.10.0", True),
                                                   ("1.0", True)])
def test_sentencepiece_releases_the_gil_from_0_2_2(version, releases):
    from modalities.data.tokenizers import sentencepiece_releases_gil

    assert sentencepiece_releases_gil(version) is releases


def test_threads_asking_a_fresh_sentencepiece_encoder_at_once_all_get_the_loaded_model(sp_model):
    """The packer's encoder threads share one encoder and the first batches arrive together: none may see a
    processor whose model is still loading ("Model is not initialized")."""
    import threading

    from modalities.data.tokenizers import PreTrainedSPTokenizer

    tokenizer = PreTrainedSPTokenizer(str(sp_model))
    expected = tokenizer.processor.encode(TEXTS)
    for _ in range(5):
        encoder = SPBatchEncoder(tokenizer.model_proto)
        start = threading.Barrier(8)
        results, errors = [], []

        def first_call(encoder=encoder, start=start, results=results, errors=errors):
            start.wait(timeout=60)
            try:
                results.append(encoder(TEXTS))
            except Exception as e:  # noqa: BLE001 - collected and reported below
                errors.append(e)

        threads = [threading.Thread(target=first_call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors[:1]
        assert results == [expected] * 8
