"""tiktoken as the packer's engine for byte-level BPE tokenizers it represents exactly.

Packing a corpus is mostly encoding it. GPT-2's tokenizer, Llama-3's and Qwen's are byte-level BPEs, which
tiktoken (OpenAI's encoder; Llama-3 and Qwen were released with it) encodes two to three times faster than Hugging
Face `tokenizers`. The packer uses it where it gives the same ids, and `tokenizers` everywhere else:

1. **It can express the tokenizer** (``tiktoken_spec``; strict, anything else is refused with the reason): no
   truncation or padding; no normalizer, or NFC (then each text that is not already NFC goes to `tokenizers`); a
   pre-tokenizer that is GPT-2's ByteLevel regex, or one Split regex (isolated matches) followed by ByteLevel
   without its own regex; a BPE model over the 256 byte symbols with no dropout, prefix or suffix, each merge's
   pair and result in the vocabulary, results' ids rising with the merges' ranks (tiktoken ranks merges by the
   id they make) and every token of two or more bytes made by a merge (without ``ignore_merges``, also every token
   encoding to itself, as tiktoken takes a whole pre-token that is in the vocabulary); added tokens with no
   stripping or word boundaries, none a prefix of another; and a post-processor that adds at most fixed ids
   before and after (ByteLevel, TemplateProcessing, a Sequence of them).
2. **It gives the same ids** (``first_difference``): before the pack, both engines encode a sample of the corpus
   and documents built to stress them (``stress_documents``: whitespace runs, digits, scripts, emoji and combining
   marks, CR LF, the tokenizer's added tokens inside text, empty text); any difference and the pack uses
   `tokenizers`, saying which document differed.

The choice is made once per pack (``choose_engine``), forced either way with ``tokenizer_engine`` (settings) or
``--tokenizer-engine``; forcing tiktoken where it cannot be used is an error rather than a quiet fallback.
The packer's EOD is appended after the engine's ids, the same way for both. tiktoken is an optional extra
(``pip install 'modalities[tiktoken]'``); without it packing uses `tokenizers` and says so.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from modalities.data.errors import DataError

ENGINES = ("auto", "tiktoken", "huggingface")
TIKTOKEN = "tiktoken"
HUGGINGFACE = "huggingface"

# The regex of `tokenizers`' ByteLevel pre-tokenizer with use_regex (GPT-2's).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
SAMPLE_DOCUMENTS = 128  # corpus documents compared before a pack (fewer when the corpus has fewer)
SAMPLE_CHARACTERS = 1 << 20  # at most this much of their text


class NotExpressible(Exception):
    """tiktoken cannot encode this tokenizer exactly; ``args[0]`` says why."""


def byte_symbols() -> dict[int, str]:
    """The printable stand-in of each byte in a byte-level BPE's vocabulary (GPT-2's encoder.py table):
    printable Latin-1 bytes stand for themselves, the others take the code points from 256 up, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


@dataclass(frozen=True)
class TiktokenSpec:
    """A tokenizer as tiktoken takes it, and what tiktoken does not do itself."""

    pattern: str
    ranks: dict[bytes, int]  # mergeable tokens: their bytes -> id (= merge priority)
    added: dict[str, int]  # every added token's text -> id
    matched_in_text: frozenset[str]  # the added tokens a text's occurrences are encoded as
    prefix: tuple[int, ...]  # ids the post-processor puts before / after each text's
    suffix: tuple[int, ...]
    nfc: bool  # the tokenizer normalizes to NFC: texts not already NFC go to `tokenizers`


def tiktoken_spec(tokenizer_json: str | dict, special_tokens_as_text: bool = False) -> TiktokenSpec:
    """The tiktoken form of a `tokenizers` tokenizer (its JSON), or NotExpressible saying what tiktoken lacks."""
    data = json.loads(tokenizer_json) if isinstance(tokenizer_json, str) else tokenizer_json
    for setting in ("truncation", "padding"):
        if data.get(setting) is not None:
            raise NotExpressible(f"the tokenizer has {setting} set")
    nfc = _normalizer_is_nfc(data.get("normalizer"))
    pattern = _pattern(data.get("pre_tokenizer"))
    added, matched = _added_tokens(data.get("added_tokens") or [], special_tokens_as_text)
    ranks = _ranks(data.get("model") or {}, added)
    prefix, suffix = _fixed_ids(data.get("post_processor"))
    return TiktokenSpec(pattern, ranks, added, frozenset(matched), prefix, suffix, nfc)


def _describe(node) -> str:
    return json.dumps(node, ensure_ascii=False)[:200]


def _normalizer_is_nfc(normalizer) -> bool:
    if normalizer is None:
        return False
    if normalizer.get("type") == "NFC":
        return True
    if normalizer.get("type") == "Sequence" and [n.get("type") for n in normalizer.get("normalizers", [])] == ["NFC"]:
        return True
    raise NotExpressible(f"its normalizer is {_describe(normalizer)} (tiktoken has none; NFC alone is handled)")


def _byte_level(node, use_regex: bool) -> bool:
    return (
        isinstance(node, dict)
        and node.get("type") == "ByteLevel"
        and not node.get("add_prefix_space", True)
        and bool(node.get("use_regex", True)) == use_regex
    )


def _pattern(pre_tokenizer) -> str:
    """The regex that cuts a text into pre-tokens, as tiktoken applies it."""
    if _byte_level(pre_tokenizer, use_regex=True):
        return GPT2_PATTERN
    steps = pre_tokenizer.get("pretokenizers") if isinstance(pre_tokenizer, dict) else None
    if isinstance(pre_tokenizer, dict) and pre_tokenizer.get("type") == "Sequence" and steps and len(steps) == 2:
        split, byte_level = steps
        regex = (split.get("pattern") or {}).get("Regex") if split.get("type") == "Split" else None
        if (
            isinstance(regex, str)
            and split.get("behavior") == "Isolated"
            and not split.get("invert", False)
            and _byte_level(byte_level, use_regex=False)
        ):
            return regex
    raise NotExpressible(
        f"its pre-tokenizer is {_describe(pre_tokenizer)} (tiktoken needs GPT-2's ByteLevel, or one Split regex "
        "with isolated matches and then ByteLevel without a prefix space or regex)"
    )


def _added_tokens(tokens: list[dict], special_tokens_as_text: bool) -> tuple[dict[str, int], list[str]]:
    """Every added token's text -> id, and those that `tokenizers` matches in a text (with special tokens as
    text, only the non-special ones)."""
    added: dict[str, int] = {}
    matched: list[str] = []
    for token in tokens:
        content = token.get("content")
        if not content or any(token.get(flag) for flag in ("single_word", "lstrip", "rstrip")):
            raise NotExpressible(f"its added token {_describe(token)} is empty or strips or matches whole words only")
        added[content] = int(token["id"])
        if not (special_tokens_as_text and token.get("special")):
            matched.append(content)
    # `tokenizers` takes the longest added token at a position, tiktoken the first its regex lists.
    ordered = sorted(added)
    for shorter, longer in pairwise(ordered):
        if longer.startswith(shorter):
            raise NotExpressible(f"its added token {shorter!r} begins another, {longer!r}")
    if special_tokens_as_text:
        # `tokenizers` skips a special token's whole occurrence; tiktoken would look inside it for the others.
        for special in set(added) - set(matched):
            for other in matched:
                if any(special[i:].startswith(other[: len(special) - i]) for i in range(1, len(special))):
                    raise NotExpressible(f"its added token {other!r} can start inside the special token {special!r}")
    if len(set(added.values())) != len(added):
        raise NotExpressible("two of its added tokens share an id")
    return added, matched


def _ranks(model: dict, added: dict[str, int]) -> dict[bytes, int]:
    """The BPE's mergeable tokens as bytes -> id, after checking that tiktoken's way of merging (the adjacent
    pair making the lowest id first) is the model's (the pair of the lowest-ranked merge first)."""
    if model.get("type") != "BPE":
        raise NotExpressible(f"its model is {model.get('type')!r}, not BPE")
    if model.get("dropout") not in (None, 0, 0.0):
        raise NotExpressible("its BPE has dropout")
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise NotExpressible(f"its BPE has a {key} ({model[key]!r})")
    symbols = byte_symbols()
    to_byte = {symbol: byte for byte, symbol in symbols.items()}
    vocab: dict[str, int] = model.get("vocab") or {}
    added_ids = set(added.values())
    # An added token's entry in the model's vocabulary (GPT-2 lists <|endoftext|> there) is matched before the
    # model sees the text: it is tiktoken's special token, not a mergeable one.
    mergeable = {token: i for token, i in vocab.items() if not (i in added_ids and added.get(token) == i)}
    if not set("".join(mergeable)) <= to_byte.keys():
        raise NotExpressible("its vocabulary is not over the 256 byte symbols of a byte-level BPE")
    if any(symbol not in mergeable for symbol in symbols.values()):
        raise NotExpressible("its vocabulary lacks some of the 256 single bytes")
    ids_taken = set(mergeable.values())
    if len(ids_taken) != len(mergeable) or ids_taken & added_ids:
        raise NotExpressible("its vocabulary gives one id to two tokens")
    made = _check_merges(model.get("merges") or [], mergeable)
    unmade = [token for token in mergeable if len(token) > 1 and token not in made]
    if unmade:
        raise NotExpressible(f"{len(unmade)} of its tokens (e.g. {unmade[0]!r}) are made by no merge")
    if not model.get("ignore_merges"):
        _check_tokens_encode_to_themselves(model, mergeable)
    table = str.maketrans({symbol: chr(byte) for symbol, byte in to_byte.items()})
    return {token.translate(table).encode("latin-1"): i for token, i in mergeable.items()}


def _check_merges(merges: list, vocab: dict[str, int]) -> set[str]:
    """The tokens the merges make; NotExpressible where a merge's parts or result are not tokens, or where a
    later merge makes a lower id than an earlier one (tiktoken would apply it first)."""
    made: set[str] = set()
    last = -1
    for rank, merge in enumerate(merges):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        result = left + right
        made_id = vocab.get(result)
        if made_id is None or left not in vocab or right not in vocab:
            raise NotExpressible(f"its merge {rank} ({left!r} + {right!r}) joins or makes a token not in its vocabulary")
        if made_id < last:
            raise NotExpressible(f"its merge {rank} ({left!r} + {right!r}) makes id {made_id}, below an earlier merge's")
        last = made_id
        made.add(result)
    return made


def _check_tokens_encode_to_themselves(model: dict, mergeable: dict[str, int]) -> None:
    """Without ignore_merges, `tokenizers` merges a pre-token that is itself a token like any other; tiktoken
    takes it whole. The same where merging each token's bytes gives back the token (one call, all tokens)."""
    from tokenizers import Tokenizer

    tokens = sorted((token for token in mergeable if len(token) > 1), key=mergeable.__getitem__)
    bare = Tokenizer.from_str(json.dumps({"version": "1.0", "model": {**model, "vocab": mergeable}}))
    ids = bare.encode(tokens, is_pretokenized=True, add_special_tokens=False).ids
    if ids != [mergeable[token] for token in tokens]:
        first = next(t for t in tokens if bare.encode([t], is_pretokenized=True).ids != [mergeable[t]])
        raise NotExpressible(f"its token {first!r} does not encode to itself (tiktoken would take it whole)")


def _fixed_ids(post_processor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ids the post-processor puts before and after a single text's, where that is all it does."""
    if post_processor is None:
        return (), ()
    kind = post_processor.get("type")
    if kind == "ByteLevel":  # changes offsets only
        return (), ()
    if kind == "Sequence":
        prefix: tuple[int, ...] = ()
        suffix: tuple[int, ...] = ()
        for step in post_processor.get("processors", []):
            before, after = _fixed_ids(step)
            prefix, suffix = before + prefix, suffix + after
        return prefix, suffix
    if kind == "TemplateProcessing":
        pieces = post_processor.get("single") or []
        sequences = [i for i, piece in enumerate(pieces) if "Sequence" in piece]
        if len(sequences) == 1 and pieces[sequences[0]]["Sequence"].get("id") == "A":
            specials = post_processor.get("special_tokens") or {}
            try:
                ids = [tuple(specials[piece["SpecialToken"]["id"]]["ids"]) for piece in pieces if "SpecialToken" in piece]
            except (KeyError, TypeError):
                ids = None
            if ids is not None:
                before = sum(ids[: sequences[0]], ())
                return before, sum(ids[sequences[0] :], ())
    raise NotExpressible(f"its post-processor is {_describe(post_processor)}")


SPEC_RECORD = 1


def cached_tiktoken_spec(tokenizer_json: str, special_tokens_as_text: bool = False) -> TiktokenSpec:
    """tiktoken_spec, kept in the packing cache (prepared_tokenizer.cache_dir()/tiktoken/, plain JSON and numpy
    arrays) under a SHA-256 of the tokenizer's JSON, the setting and the `tokenizers` version: reading GPT-2's
    vocabulary and checking it takes about 0.4 s, loading the result 0.02 s. A refusal is kept too."""
    import hashlib

    from modalities.data.prepared_tokenizer import _package_version, cache_dir

    key = hashlib.sha256(json.dumps([SPEC_RECORD, special_tokens_as_text, _package_version("tokenizers")]).encode()
                         + tokenizer_json.encode("utf-8", "surrogatepass")).hexdigest()
    entry = cache_dir() / "tiktoken" / key
    try:
        return _load_spec(entry)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or unreadable: made again
    try:
        spec = tiktoken_spec(tokenizer_json, special_tokens_as_text)
    except NotExpressible as e:
        _save_spec(entry, {"record": SPEC_RECORD, "refused": e.args[0]})
        raise
    _save_spec(entry, {"record": SPEC_RECORD, "pattern": spec.pattern, "added": spec.added,
                       "matched_in_text": sorted(spec.matched_in_text), "prefix": spec.prefix, "suffix": spec.suffix,
                       "nfc": spec.nfc}, spec.ranks)
    return spec


def _load_spec(entry) -> TiktokenSpec:
    record = json.loads((entry / "spec.json").read_text(encoding="utf-8"))
    if record["record"] != SPEC_RECORD:
        raise ValueError("another record version")
    if "refused" in record:
        raise NotExpressible(record["refused"])
    blob = (entry / "tokens.bin").read_bytes()
    lengths = np.load(entry / "lengths.npy", allow_pickle=False)
    ids = np.load(entry / "ids.npy", allow_pickle=False)
    ends = np.cumsum(lengths)
    if len(lengths) != len(ids) or (len(ends) and ends[-1] != len(blob)):
        raise ValueError("a partial entry")
    ranks = {blob[start:end]: i for start, end, i in zip((ends - lengths).tolist(), ends.tolist(), ids.tolist())}
    return TiktokenSpec(record["pattern"], ranks, dict(record["added"]), frozenset(record["matched_in_text"]),
                        tuple(record["prefix"]), tuple(record["suffix"]), bool(record["nfc"]))


def _save_spec(entry, record: dict, ranks: dict[bytes, int] | None = None) -> None:
    """Into a temporary folder, renamed into place; a cache that cannot be written only means no cache."""
    import os
    import shutil

    tmp = entry.with_name(f".tmp-{os.getpid()}-{entry.name}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        if ranks is not None:
            (tmp / "tokens.bin").write_bytes(b"".join(ranks))
            np.save(tmp / "lengths.npy", np.fromiter(map(len, ranks), dtype=np.int64, count=len(ranks)))
            np.save(tmp / "ids.npy", np.fromiter(ranks.values(), dtype=np.int64, count=len(ranks)))
        (tmp / "spec.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        if entry.exists():
            shutil.rmtree(entry)
        tmp.rename(entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


class TiktokenBatchEncoder:
    """Encodes batches with tiktoken as ``fallback`` (the `tokenizers` encoder of the same tokenizer) would:
    its post-processor's fixed ids around each text; a text that is not NFC where the tokenizer normalizes, or
    that tiktoken refuses (a lone surrogate), goes to ``fallback``, which fails on the latter as it always has. tiktoken releases the GIL while it encodes: the packer encodes batches on threads side by side."""

    releases_gil = True

    def __init__(self, spec: TiktokenSpec, fallback):
        import tiktoken

        self.spec = spec
        self.fallback = fallback
        self.encoding = tiktoken.Encoding(
            "modalities-bpe", pat_str=spec.pattern, mergeable_ranks=spec.ranks, special_tokens=spec.added
        )
        # The core encoder, not Encoding.encode: that replaces lone surrogates with U+FFFD where `tokenizers`
        # refuses the text, and returns Python ints where a buffer of uint32 costs the GIL nothing.
        self._encode = self.encoding._core_bpe.encode_to_tiktoken_buffer
        # tiktoken converts the set of tokens to match to Rust strings at every call: 0.13 ms for Llama-3's 256,
        # more than encoding a short document. Each text gets only those it holds (usually none).
        self._no_tokens: set[str] = set()
        self._first_characters = sorted({token[0] for token in spec.matched_in_text})
        longest_first = sorted(spec.matched_in_text, key=len, reverse=True)
        self._find_tokens = re.compile("|".join(map(re.escape, longest_first))).findall if longest_first else None
        self._prefix = np.array(spec.prefix, dtype=np.uint32)
        self._suffix = np.array(spec.suffix, dtype=np.uint32)

    def encode_flat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """All texts' ids back to back (uint32) and each text's number of ids."""
        arrays, elsewhere = self._own_ids(texts)
        if elsewhere:
            for i, encoding in zip(elsewhere, self.fallback.encodings([texts[i] for i in elsewhere])):
                arrays[i] = np.asarray(encoding.ids, dtype=np.uint32)
        lengths = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))
        return (np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint32)), lengths

    def _own_ids(self, texts: Sequence[str]) -> tuple[list, list[int]]:
        encode, nfc = self._encode, self.spec.nfc
        framed = bool(len(self._prefix) or len(self._suffix))
        arrays: list = []
        elsewhere: list[int] = []
        for i, text in enumerate(texts):
            if nfc and not (text.isascii() or unicodedata.is_normalized("NFC", text)):
                elsewhere.append(i)
                arrays.append(None)
                continue
            try:
                ids = np.frombuffer(encode(text, self._tokens_in(text)), dtype=np.uint32)
            except Exception:  # noqa: BLE001 - a lone surrogate (UnicodeEncodeError), or any other refusal
                elsewhere.append(i)
                arrays.append(None)
                continue
            arrays.append(np.concatenate((self._prefix, ids, self._suffix)) if framed else ids)
        return arrays, elsewhere

    def _tokens_in(self, text: str) -> set[str]:
        """The added tokens to match that ``text`` holds. (No token begins another, so the leftmost matches
        findall lists are the ones tiktoken takes.)"""
        if self._find_tokens is None or not any(first in text for first in self._first_characters):
            return self._no_tokens
        return set(self._find_tokens(text))

    def __call__(self, texts: list[str]) -> list[list[int]]:
        flat, lengths = self.encode_flat(texts)
        ends = np.cumsum(lengths).tolist()
        ids = flat.tolist()
        return [ids[end - length : end] for end, length in zip(ends, lengths.tolist())]


def stress_documents(added_tokens: Iterable[str] = ()) -> list[str]:
    """Texts built to find where two encoders of a byte-level BPE part ways: empty text, whitespace runs
    (trailing, mixed, CR LF, Unicode spaces), digit runs of every length and script, contractions in both cases
    and their Unicode case folds, scripts, emoji sequences, combining marks, control and unassigned code points,
    long runs, and each added token inside text, at its edges, repeated and cut short."""
    documents = [
        "", " ", "  ", "\n", "\n\n\n", "\t", " \t \n ", "\r\n", "\r", "\r\r\n\n", "trailing spaces   ",
        "trailing newline\n", "trailing mixed \n \t ", "  leading spaces", "a\r\nb\r\n\r\nc\r\n", " \r\n x",
        "word  two   three    four     five\t\tsix \n\n seven", "no\u00a0break ideographic\u3000em\u2003thin\u2009",
        "\u2028line\u2029para\x85nel\x0bvt\x0cff\u180emvs\u200bzwsp\ufeffbom\u202fnnbsp\u205fmmsp\u1680ogham",
        "0 1 12 123 1234 12345 123456 1234567 12345678901234567890 3.14159 1,000,000 -42 +7e10 0x1F 2024-12-04",
        "fullwidth １２３４ arabic-indic ٣٤٥٦ devanagari ४५६७ thai ๑๒๓ superscript ²³¹ roman ⅫⅯ fractions ½¾ ⑴⑵",
        "it's they're we've I'm you'll he'd IT'S THEY'RE WE'VE I'M YOU'LL HE'D it’s don't 'tis ''s 's",
        "long s 'ſ and 'ſt, Kelvin 'K, dotted 'İ, 'Ｓ fullwidth",
        "Café naïve façade résumé Ångström Øresund Straße İstanbul ĳsland ﬁne ﬂow",
        "combining: e\u0301 a\u0308\u0304 n\u0303 \u0301alone Z̴̧͈̈́a̷l̸g̵o̶ ก\u0e31\u0e49",
        "decomposed Cafe\u0301 and Å (angstrom sign) and \u1100\u1161\u11a8 (jamo) and \u212b",
        "日本語のテキスト、句読点。中文文本，标点符号！한국어 텍스트 ｶﾀｶﾅ",
        "Русский текст. Ελληνικά. עברית. العربية. हिन्दी. தமிழ். ไทย. ქართული. Հայերեն. አማርኛ",
        "emoji 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇩🇪🇯🇵 ❤️ ⌚ 🤌🏻 🫠 #️⃣ 1️⃣",
        "math ∑∫√∞≠≤≥ ℝℕ 𝔸𝔹 𝒳 𝟙𝟚 music 𝄞 and ©®™ §¶ †‡ • … ‰ ′″ «» „“ ‹› ¡¿",
        "def f(x):\n    return x**2  # comment\n\tif(a&&b||!c){x+=1;}\n\n\n    \n",
        "https://example.com/a/b?c=d&e=f#g mail a.b@c.de path C:\\Users\\x\\y.txt",
        "control \x00\x01\x07\x1b[0m\x7f\x80\x9f",
        "private \ue000\uf8ff unassigned \u0378\U000e0000 noncharacter \ufffe\U0010ffff tag \U000e0041",
        "newer code points: \U0001e030\U00011f04\U00031350\U0002ebf0\U0001fae0\U00010570\u0870\U0001e290",
        "x" * 3000, " " * 300 + "end", "\n" * 120, "a " * 600, "ab" * 900, "ー" * 150, "!?" * 400, "9" * 500,
        " \u0301" * 50, "mixed scripts abcабвαβγ123٣٤٥ and case AbCdEf ÀÉÎ",
    ]
    for token in added_tokens:
        documents += [
            token, f"before{token}after", f" {token} ", f"{token}{token}", f"\n{token}\n", f"x {token}",
            f"{token} trailing  ", token[:-1], token[1:], f"{token[:-1]} {token[-1:]}", f"'s{token}'s",
            f"123{token}456", f"{token}\r\n",
        ]
    return documents


def encode_each(encoder, texts: list[str]) -> list:
    """Each text's ids from ``encoder``, None for a text it fails on (the batch first, one by one if it fails)."""
    try:
        return encoder(texts)
    except Exception:  # noqa: BLE001 - some text fails: encoded one by one below
        return [_ids_or_failure(encoder, text) for text in texts]


def first_difference(expected: list, got: list, texts: Sequence[str], labels: Sequence[str]) -> str | None:
    """Where ``got`` (tiktoken's ids, by encode_each) differs from ``expected`` (`tokenizers`'): the first such
    text (its label, and the first differing position), or None. A text `tokenizers` cannot encode (the packer
    reports it as a bad document) must fail with tiktoken too."""
    for label, text, want, have in zip(labels, texts, expected, got):
        if want is None or have is None:
            if (want is None) != (have is None):
                return f"{label} ({text[:40]!r}...): only one of them can encode it"
            continue
        if list(want) != list(have):
            at = next((i for i, (a, b) in enumerate(zip(want, have)) if a != b), min(len(want), len(have)))
            return (f"{label} ({text[:40]!r}...): the ids differ from position {at} on ({len(want)} ids from "
                    f"tokenizers, {len(have)} from tiktoken)")
    return None


@dataclass
class EngineChoice:
    """What encodes a pack, and why: for the summary and the info file."""

    encoder: object
    engine: str  # "tiktoken", "huggingface", or the encoder's own kind
    version: str | None
    reason: str

    def describe(self) -> str:
        name = {TIKTOKEN: "tiktoken", HUGGINGFACE: "Hugging Face tokenizers"}.get(self.engine, self.engine)
        return f"{name} {self.version or ''}".strip() + (f" ({self.reason})" if self.reason else "")

    def record(self) -> dict:
        return {"name": self.engine, "version": self.version, "reason": self.reason}


def choose_engine(encoder, wanted: str, sample: Callable[[], list[str]]) -> EngineChoice:
    """The engine of a pack: tiktoken where ``wanted`` is auto or tiktoken, ``encoder`` is the built-in Hugging
    Face one (not a subclass, which may encode otherwise), tiktoken can express its tokenizer and gives its ids
    on ``sample()`` (corpus texts) and the stress documents; `tokenizers` otherwise. Forced tiktoken that cannot
    be used is a DataError saying why."""
    from modalities.data.prepared_tokenizer import _package_version
    from modalities.data.tokenizers import HFBatchEncoder

    if wanted not in ENGINES:
        raise DataError(f"tokenizer engine {wanted!r}: choose one of {', '.join(ENGINES)}")
    if type(encoder) is not HFBatchEncoder:
        if wanted == TIKTOKEN:
            raise DataError(f"tokenizer engine tiktoken: it encodes Hugging Face BPE tokenizers only, not this "
                            f"{type(encoder).__name__}; use auto")
        return _own_engine(encoder)

    def huggingface(reason: str) -> EngineChoice:
        if wanted == TIKTOKEN:
            raise DataError(f"tokenizer engine tiktoken cannot be used: {reason}; use auto or huggingface")
        return EngineChoice(encoder, HUGGINGFACE, _package_version("tokenizers"), reason)

    if wanted == HUGGINGFACE:
        return huggingface("asked for")
    version = _package_version("tiktoken")
    if version == "absent":
        return huggingface("tiktoken is not installed: pip install 'modalities[tiktoken]' for faster packing")
    try:
        spec = cached_tiktoken_spec(encoder.tokenizer_json, encoder.special_tokens_as_text)
    except NotExpressible as e:
        return huggingface(f"tiktoken cannot express it: {e.args[0]}")
    corpus = sample()
    built = stress_documents(spec.added)
    texts = corpus + built
    # `tokenizers` encodes the texts with the GIL released while tiktoken builds its tables (0.1-0.2 s for GPT-2).
    expected: list = []
    reference = threading.Thread(target=lambda: expected.extend(encode_each(encoder, texts)), daemon=True)
    reference.start()
    try:
        candidate = TiktokenBatchEncoder(spec, encoder)
    except ValueError as e:  # tiktoken refuses the regex (a syntax its regex engine lacks)
        return huggingface(f"tiktoken cannot express it: {e}")
    except AttributeError:  # a tiktoken before encode_to_tiktoken_buffer
        return huggingface(f"tiktoken {version} is too old: pip install 'tiktoken>=0.8'")
    finally:
        reference.join()
    labels = [f"corpus sample document {i}" for i in range(len(corpus))] + [f"built document {i}" for i in range(len(built))]
    difference = first_difference(expected, encode_each(candidate, texts), texts, labels)
    if difference is not None:
        return huggingface(f"tiktoken differs on {difference}")
    return EngineChoice(candidate, TIKTOKEN, version,
                        f"same ids as tokenizers on {len(corpus)} corpus and {len(built)} built documents")


def _ids_or_failure(encoder, text: str) -> list[int] | None:
    try:
        return encoder([text])[0]
    except Exception:  # noqa: BLE001 - the failure is what is compared
        return None


def _own_engine(encoder) -> EngineChoice:
    """A tokenizer that keeps its engine: SentencePiece, a tokenizer of one's own, an HF encoder subclass."""
    from modalities.data.prepared_tokenizer import _package_version
    from modalities.data.tokenizers import HFBatchEncoder, SPBatchEncoder

    if type(encoder) is SPBatchEncoder:
        return EngineChoice(encoder, "sentencepiece", _package_version("sentencepiece"), "")
    kind = HUGGINGFACE if isinstance(encoder, HFBatchEncoder) else f"{type(encoder).__module__}.{type(encoder).__qualname__}"
    return EngineChoice(encoder, kind, None, "the tokenizer's own encoder")
