import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE_TOKENIZER = REPO / "data" / "sample" / "tokenizer"
EOD = "<|endoftext|>"

TEXTS = [
    "The old miller carried the wooden bridge.",
    "Café au lait, naïve façade — unicode survives byte offsets. 日本語も。",
    "",
    'A line with "quotes", a backslash \\ and a\nnewline inside the string.',
    "Numbers 1650 and 2025; punctuation!? Done.",
] + [f"Document number {i} says the river crossed the distant hills {i % 7} times." for i in range(40)]


def write_jsonl(path: Path, records: list, raw_lines: dict[int, str] | None = None) -> Path:
    """Write records as JSON lines; raw_lines replaces line i (0-based) with a literal string."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    for i, raw in (raw_lines or {}).items():
        lines[i] = raw
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_jsonl(
        tmp_path / "corpus.jsonl", [{"id": i, "text": t, "meta": {"body": t.upper()}} for i, t in enumerate(TEXTS)]
    )


@pytest.fixture(scope="session")
def hf_tokenizer():
    from modalities.data.tokenizers import PreTrainedHFTokenizer

    return PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER))


@pytest.fixture(scope="session")
def sp_model(tmp_path_factory) -> Path:
    import sentencepiece

    folder = tmp_path_factory.mktemp("sp")
    text = folder / "train.txt"
    text.write_text("\n".join(TEXTS * 3 + ["the quick brown fox jumps over the lazy dog"] * 20), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(folder / "sp"),
        vocab_size=400,
        model_type="bpe",
        character_coverage=1.0,
        user_defined_symbols=[EOD],
        byte_fallback=True,
        minloglevel=2,
    )
    return folder / "sp.model"
