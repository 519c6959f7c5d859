"""A corpus and tokenizer of realistic size for the packing benchmark, made here (nothing is downloaded).

    python tools/bench/packing_corpus.py WORKDIR [--documents 20000] [--megabytes 36] [--vocab-size 50257]
                                                 [--gpt2-ranks gpt2.tiktoken]

Writes WORKDIR/corpus.jsonl (+ .idx), and WORKDIR/gpt2_like/, a transformers tokenizer folder shaped like GPT-2's:
a byte-level BPE with ``--vocab-size`` entries (50,257 like GPT-2, with <|endoftext|> as its last id) trained on
the corpus, saved as tokenizer.json, vocab.json and merges.txt, with GPT-2's tokenizer_config.json and a
config.json of model_type gpt2 (so AutoTokenizer picks the GPT-2 class, as for the hub's "gpt2").

With ``--gpt2-ranks`` it also writes WORKDIR/gpt2/, GPT-2's own tokenizer rebuilt from its rank table (the hub's
"gpt2" is not downloadable here; openai-whisper's source package ships the table, MIT-licensed).

The text: sentences of words drawn from a Zipf law over 1.5 million synthetic words (syllables, some capitalised,
some accented or with digits), with punctuation and paragraphs, so that a 50k BPE learns real merges.
Deterministic for a seed; reused when present. The BPE trained on it learns its words whole (7.2 M tokens for
37.4 MB, 0.19 tokens per byte); GPT-2's tokenizer, which never saw these words, cuts them into 14.9 M tokens
(0.40 per byte), close to the packing issue's corpus (13.3 M tokens for 36 MB with GPT-2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SYLLABLES = (
    "ka ri to na me lo su vi de an en or ul is ar ber ton mer sta pre con pro der ing ment tion ly al ous ful "
    "ness ble ter ver per com dis sub ex in im ab ad ob re un de ja qu ze xo wy ha fe gi bo pu st ch sh th ph "
    "gr tr pl cl br fr dr sp sk sm sn sw"
).split()
ACCENTED = "é è ü ö ä ñ ç ø å ß".split()


def _words(rng, count: int) -> list[str]:
    """``count`` distinct words of 1-4 syllables (mostly 2-3), a few accented or with a number."""
    syllables = rng.integers(0, len(SYLLABLES), size=(2 * count, 4))
    lengths = rng.choice(4, size=2 * count, p=[0.2, 0.45, 0.25, 0.1]) + 1
    rolls = rng.random(2 * count)
    accents = rng.integers(0, len(ACCENTED), size=2 * count)
    numbers = rng.integers(0, 2000, size=2 * count)
    words: dict[str, None] = {}
    for i in range(2 * count):
        word = "".join(SYLLABLES[j] for j in syllables[i, : lengths[i]])
        if rolls[i] < 0.03:
            word = word[: len(word) // 2] + ACCENTED[accents[i]] + word[len(word) // 2 :]
        elif rolls[i] < 0.05:
            word += str(numbers[i])
        words[word] = None
        if len(words) == count:
            break
    return list(words)


def make_corpus(path: Path, documents: int, megabytes: float, seed: int = 0) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    words = _words(rng, 1_500_000)
    capitalised = [w.capitalize() for w in words]
    target_chars = megabytes * 1e6 / documents
    punctuation = [". ", ". ", ". ", "? ", "! ", "; ", ": "]
    tmp = path.with_name(f".tmp-{path.name}")
    with tmp.open("w", encoding="utf-8") as out:
        for document in range(documents):
            # document lengths vary (a log-normal around the mean), as web documents do
            length = max(50, int(rng.lognormal(np.log(target_chars), 0.8) * np.exp(-0.32)))
            ranks = (rng.zipf(1.1, size=length // 4) - 1) % len(words)
            parts, chars, sentence_start = [], 0, True
            for rank in ranks.tolist():
                word = capitalised[rank] if sentence_start or rng.random() < 0.04 else words[rank]
                parts.append(word)
                chars += len(word) + 1
                sentence_start = False
                roll = rng.random()
                if roll < 0.07:
                    parts.append(punctuation[int(rng.integers(0, len(punctuation)))])
                    sentence_start = True
                    if rng.random() < 0.08:
                        parts.append("\n\n")
                elif roll < 0.12:
                    parts.append(", ")
                else:
                    parts.append(" ")
                if chars >= length:
                    break
            text = "".join(parts).strip() + "."
            out.write(json.dumps({"id": document, "text": text}, ensure_ascii=False) + "\n")
    tmp.replace(path)


def make_gpt2_like_tokenizer(corpus: Path, folder: Path, vocab_size: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def texts():
        with corpus.open(encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)["text"]

    tokenizer.train_from_iterator(texts(), trainer=trainer)
    tokenizer.add_special_tokens(["<|endoftext|>"])  # the last id, as in GPT-2
    _save_gpt2_folder(tokenizer, folder, vocab_size)


def _save_gpt2_folder(tokenizer, folder: Path, vocab_size: int) -> None:
    """``tokenizer`` as the hub's gpt2 folder holds it, so that AutoTokenizer picks the GPT-2 class."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    tokenizer.model.save(str(folder))  # vocab.json and merges.txt, as the hub's gpt2 folder has them
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "add_prefix_space": False,
                "bos_token": "<|endoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "model_max_length": 1024,
                "tokenizer_class": "GPT2Tokenizer",
            },
            indent=2,
        )
    )
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": vocab_size}, indent=2))


def _merge_of(ranks: dict[bytes, int], token: bytes) -> tuple[bytes, bytes]:
    """The pair whose merge made ``token``: byte-pair merging of its bytes with only the tokens ranked before it
    ends in exactly two pieces (how a rank table and a merge list describe the same BPE)."""
    limit = ranks[token]
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < limit and (best is None or rank < best[1]):
                best = (i, rank)
        if best is None:
            break
        i = best[0]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    if len(parts) != 2:
        raise ValueError(f"token {token!r} (rank {limit}) is not one merge of two earlier tokens")
    return parts[0], parts[1]


def read_ranks(ranks_file: Path) -> dict[bytes, int]:
    """A rank table in tiktoken's format: one ``base64(token bytes) rank`` per line."""
    import base64

    ranks: dict[bytes, int] = {}
    for line in ranks_file.read_text(encoding="ascii").splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def tokenizer_from_ranks(ranks: dict[bytes, int], special_tokens: dict[str, int]):
    """A `tokenizers` byte-level BPE (GPT-2's ByteLevel pre-tokenizer, decoder and post-processor) from a rank
    table: ids are the ranks, each merge is recovered as the split the earlier ranks reach (_merge_of), in rank
    order; ``special_tokens`` (text -> id) are added as special tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    from modalities.data.bpe_engine import byte_symbols

    as_text = byte_symbols()

    def spelled(token: bytes) -> str:
        return "".join(as_text[b] for b in token)

    vocab = {spelled(token): rank for token, rank in ranks.items()}
    merges = [
        (spelled(a), spelled(b))
        for token, _ in sorted(ranks.items(), key=lambda item: item[1])
        if len(token) > 1
        for a, b in [_merge_of(ranks, token)]
    ]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, continuing_subword_prefix="", end_of_word_suffix=""))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    for text, token_id in sorted(special_tokens.items(), key=lambda item: item[1]):
        if token_id != tokenizer.get_vocab_size():
            raise ValueError(f"special token {text!r} must take the next id, {tokenizer.get_vocab_size()}, not {token_id}")
        tokenizer.add_special_tokens([AddedToken(text, special=True)])
    return tokenizer


def make_gpt2_tokenizer_from_ranks(ranks_file: Path, folder: Path) -> None:
    """GPT-2's own tokenizer as a transformers folder (tokenizer.json, vocab.json, merges.txt, configs), from its
    rank table in tiktoken's format (openai-whisper ships it as whisper/assets/gpt2.tiktoken: ``pip download
    openai-whisper --no-deps --no-binary :all:``). GPT-2's ids are the ranks, <|endoftext|> is 50256, merge i
    makes id 256 + i."""
    ranks = read_ranks(ranks_file)
    if sorted(ranks.values()) != list(range(len(ranks))) or len(ranks) != 50_256:
        raise SystemExit(f"{ranks_file}: not GPT-2's rank table (50,256 tokens ranked 0..50255)")
    tokenizer = tokenizer_from_ranks(ranks, {"<|endoftext|>": 50_256})
    _save_gpt2_folder(tokenizer, folder, len(ranks) + 1)


def sentencepiece_model(workdir: Path, vocab_size: int = 32_000, documents: int = 2_000) -> Path:
    """A SentencePiece BPE model of ``vocab_size`` pieces (Llama-2's size) trained on the corpus's first
    ``documents`` documents, with <eod> as a user-defined piece; made once under ``workdir``."""
    import sentencepiece

    model = workdir / f"sp_bpe{vocab_size}.model"
    if model.is_file():
        return model
    sample = workdir / ".sp_train.txt"
    with (workdir / "corpus.jsonl").open(encoding="utf-8") as f:
        sample.write_text("\n".join(json.loads(line)["text"] for _, line in zip(range(documents), f)), encoding="utf-8")
    prefix = workdir / f".tmp-sp_bpe{vocab_size}"
    sentencepiece.SentencePieceTrainer.train(
        input=str(sample),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="bpe",
        user_defined_symbols=["<eod>"],
        max_sentence_length=1 << 16,
        minloglevel=2,
    )
    prefix.with_suffix(".model").replace(model)
    prefix.with_suffix(".vocab").unlink(missing_ok=True)
    sample.unlink()
    return model


def prepare(
    workdir: Path,
    documents: int = 20_000,
    megabytes: float = 36.0,
    vocab_size: int = 50_257,
    gpt2_ranks: Path | None = None,
) -> dict:
    """The corpus, its index and the tokenizer folder under ``workdir`` (made once; reused after): GPT-2's own
    tokenizer when ``gpt2_ranks`` (its rank table) is given, else a GPT-2-like BPE trained on the corpus."""
    from modalities.data.raw_index import create_raw_index

    workdir.mkdir(parents=True, exist_ok=True)
    corpus = workdir / "corpus.jsonl"
    stamp = workdir / "made-with.json"
    wanted = {"documents": documents, "megabytes": megabytes, "vocab_size": vocab_size, "version": 1}
    if not stamp.is_file() or json.loads(stamp.read_text()) != wanted:
        make_corpus(corpus, documents, megabytes)
        create_raw_index(corpus, overwrite=True)
        make_gpt2_like_tokenizer(corpus, workdir / "gpt2_like", vocab_size)
        stamp.write_text(json.dumps(wanted))
    if gpt2_ranks is None:
        return {"corpus": corpus, "index": corpus.with_suffix(".idx"), "tokenizer": workdir / "gpt2_like"}
    import hashlib

    folder = workdir / "gpt2"
    made_from = hashlib.sha256(Path(gpt2_ranks).read_bytes()).hexdigest()
    stamp = folder / "made-from.sha256"
    if not stamp.is_file() or stamp.read_text() != made_from:
        make_gpt2_tokenizer_from_ranks(Path(gpt2_ranks), folder)
        stamp.write_text(made_from)
    return {"corpus": corpus, "index": corpus.with_suffix(".idx"), "tokenizer": folder}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--megabytes", type=float, default=36.0)
    parser.add_argument("--vocab-size", type=int, default=50_257)
    parser.add_argument(
        "--gpt2-ranks",
        type=Path,
        default=None,
        help="GPT-2's rank table (whisper/assets/gpt2.tiktoken): use GPT-2's own tokenizer",
    )
    args = parser.parse_args()
    paths = prepare(args.workdir, args.documents, args.megabytes, args.vocab_size, args.gpt2_ranks)
    print(json.dumps({k: str(v) for k, v in paths.items()}))


if __name__ == "__main__":
    main()
