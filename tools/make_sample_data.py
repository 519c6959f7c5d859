"""Write the shipped sample data: a corpus with its tokenizer (data/sample/corpus.jsonl, data/sample/tokenizer/)
and a small chat set with a tokenizer that knows the chat markers (data/sample/chat/).

Everything is generated here from a fixed seed (no downloads), so running it again reproduces the committed
files byte for byte. After it, build the index and the packed file with our own commands:

    python tools/make_sample_data.py [--only corpus|chat]
    python -m modalities data create_raw_index data/sample/corpus.jsonl --overwrite
    python -m modalities data pack_encoded_data configs/pack_quickstart.yaml --overwrite
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

EOD_TOKEN = "<|endoftext|>"
VOCAB_SIZE = 2048
NUM_DOCUMENTS = 600
SEED = 20261124

SUBJECTS = [
    "the old miller",
    "a young engineer",
    "the river",
    "our small village",
    "the council",
    "a tired traveller",
    "the baker's daughter",
    "every student",
    "the north wind",
    "a quiet librarian",
    "the ship's captain",
    "the committee",
    "my grandmother",
    "the city",
    "a careful gardener",
    "the machine",
    "the first settlers",
    "a patient teacher",
    "the night train",
    "the market",
    "the research team",
    "a curious child",
]
VERBS = [
    "carried",
    "remembered",
    "built",
    "followed",
    "measured",
    "repaired",
    "described",
    "opened",
    "watched",
    "counted",
    "painted",
    "discovered",
    "explained",
    "planted",
    "crossed",
    "questioned",
    "collected",
    "wrote",
    "improved",
    "tested",
    "shared",
    "studied",
    "protected",
    "lost",
    "found",
    "moved",
]
OBJECTS = [
    "the wooden bridge",
    "a long letter",
    "the harvest",
    "three heavy stones",
    "the old map",
    "a new theory",
    "the broken clock",
    "the morning light",
    "a basket of apples",
    "the village records",
    "the narrow road",
    "a set of tools",
    "the distant hills",
    "the winter stores",
    "a small boat",
    "the results",
    "the lamps",
    "a forgotten song",
    "the stone wall",
    "the accounts",
    "the garden",
    "a warm coat",
]
CLAUSES = [
    "before the rain began",
    "after a long winter",
    "while the bells were ringing",
    "without saying a word",
    "because nobody else would",
    "as the sun went down",
    "in spite of the cold",
    "during the spring fair",
    "when the work was done",
    "for the second time",
    "with great care",
    "under a grey sky",
    "near the edge of the forest",
    "at the end of the week",
    "on the way to the harbour",
]
OPENERS = ["", "", "", "Later, ", "Meanwhile, ", "In the end, ", "Some say that ", "By evening, ", "Once again, "]
SYLLABLES = ["ka", "ren", "mor", "ta", "vel", "an", "dor", "li", "mes", "ord", "in", "bra", "ho", "sten", "gar", "wyn"]
ADJECTIVES = [
    "quiet",
    "ancient",
    "bright",
    "heavy",
    "narrow",
    "golden",
    "frozen",
    "crowded",
    "empty",
    "gentle",
    "busy",
    "distant",
    "famous",
    "hidden",
    "simple",
    "strange",
    "useful",
    "wealthy",
    "modest",
    "restless",
]
TOPICS = ["history", "farming", "weather", "engineering", "the sea", "music", "trade", "education", "medicine"]


def place_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def sentence(rng: random.Random) -> str:
    opener = rng.choice(OPENERS)
    subject = rng.choice(SUBJECTS)
    text = f"{opener}{subject} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    if rng.random() < 0.3:
        text += f" in the {rng.choice(ADJECTIVES)} town of {place_name(rng)}"
    if rng.random() < 0.6:
        text += f" {rng.choice(CLAUSES)}"
    if rng.random() < 0.2:
        text += f", and {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    if rng.random() < 0.15:
        text += f" in {rng.randint(1650, 2025)}"
    text = text[0].upper() + text[1:]
    return text + rng.choice([".", ".", ".", "!", "?"] if rng.random() < 0.1 else ["."])


def document(rng: random.Random, doc_id: int) -> dict:
    paragraphs = []
    for _ in range(rng.randint(1, 3)):
        paragraphs.append(" ".join(sentence(rng) for _ in range(rng.randint(2, 6))))
    return {"id": doc_id, "topic": rng.choice(TOPICS), "text": "\n\n".join(paragraphs)}


def write_corpus(path: Path) -> list[str]:
    rng = random.Random(SEED)
    docs = [document(rng, i) for i in range(NUM_DOCUMENTS)]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        for doc in docs:
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return [doc["text"] for doc in docs]


CHAT_MARKERS = ["<|im_start|>", "<|im_end|>"]
NUM_CONVERSATIONS = 160
QUESTIONS = [
    "What did {subject} do?",
    "Tell me what happened to {subject}.",
    "Can you describe what {subject} did?",
    "Why is {subject} remembered?",
]


def conversation(rng: random.Random) -> dict:
    """A user asks about a subject, the assistant answers with sentences of the corpus's grammar."""
    messages = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": "Answer in one or two sentences."})
    for _ in range(rng.randint(1, 3)):
        subject = rng.choice(SUBJECTS)
        messages.append({"role": "user", "content": rng.choice(QUESTIONS).format(subject=subject)})
        answer = " ".join(sentence(rng) for _ in range(rng.randint(1, 2)))
        messages.append({"role": "assistant", "content": answer})
    return {"messages": messages}


def write_chat(out_dir: Path) -> list[str]:
    rng = random.Random(SEED + 1)
    conversations = [conversation(rng) for _ in range(NUM_CONVERSATIONS)]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "conversations.jsonl"
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        for entry in conversations:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return [turn["content"] for entry in conversations for turn in entry["messages"]]


def train_tokenizer(texts: list[str], out_dir: Path, extra_special_tokens: list[str] = ()) -> None:
    # Single-threaded training keeps the merges (and so the committed files) reproducible.
    os.environ["RAYON_NUM_THREADS"] = "1"
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOD_TOKEN, *extra_special_tokens],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOD_TOKEN, bos_token=EOD_TOKEN, unk_token=EOD_TOKEN
    )
    if extra_special_tokens:
        wrapped.add_special_tokens({"additional_special_tokens": list(extra_special_tokens)})
    out_dir.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(str(out_dir))
    # Name the class every transformers version knows, so the folder loads with 4.x as well as 5.x.
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config.pop("backend", None)
    # transformers 5 writes extra_special_tokens as a list, which 4.x cannot read; both read this key.
    extra = config.pop("extra_special_tokens", None)
    if extra:
        config["additional_special_tokens"] = list(extra)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/sample"), help="output folder (default: data/sample)")
    parser.add_argument("--only", choices=("corpus", "chat"), default=None, help="write only one of the two sets")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "corpus"):
        texts = write_corpus(args.out / "corpus.jsonl")
        train_tokenizer(texts, args.out / "tokenizer")
        size = (args.out / "corpus.jsonl").stat().st_size
        print(f"wrote {args.out / 'corpus.jsonl'} ({len(texts)} documents, {size / 1024:.0f} KiB) and {args.out / 'tokenizer'}")
    if args.only in (None, "chat"):
        chat_dir = args.out / "chat"
        texts = write_chat(chat_dir)
        # The chat tokenizer learns from the corpus too, so the chat text splits as the corpus does.
        corpus = [json.loads(line)["text"] for line in (args.out / "corpus.jsonl").read_text().splitlines()]
        train_tokenizer(corpus + texts, chat_dir / "tokenizer", extra_special_tokens=CHAT_MARKERS)
        print(f"wrote {chat_dir / 'conversations.jsonl'} ({NUM_CONVERSATIONS} conversations) and {chat_dir / 'tokenizer'}")


if __name__ == "__main__":
    main()
