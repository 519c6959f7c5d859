"""Tokenizers: a local Hugging Face tokenizer (folder or tokenizer.json) and a local SentencePiece model.

Both implement :class:`TokenizerWrapper`. ``batch_encoder()`` returns a small picklable callable that the
packer ships to its worker processes: it encodes a batch exactly as ``tokenize_batch`` does, but loads only the
`tokenizers`/`sentencepiece` runtime in the worker (no transformers import per process).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from modalities.data.errors import DataError


class TokenizerWrapper:
    """What the data pipeline needs from a tokenizer."""

    def tokenize(self, text: str) -> list[int]:
        """The ids of one text: ``tokenize_batch([text])[0]``."""
        return self.tokenize_batch([text])[0]

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """The ids of each text, in order (one list per text, [] for a text that encodes to nothing)."""
        raise NotImplementedError

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of ``token_ids``, special tokens written out."""
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        """Number of token ids, special and added tokens included (every id is below it)."""
        raise NotImplementedError

    def get_token_id(self, token: str) -> int:
        """The id of ``token``, a single entry of the vocabulary; DataError naming the tokenizer otherwise."""
        raise NotImplementedError

    @property
    def special_token_ids(self) -> dict[str, int]:
        """Each special token and its id."""
        raise NotImplementedError

    def is_special_token_id(self, token_id: int) -> bool:
        """Whether ``token_id`` is one of ``special_token_ids``' ids."""
        return token_id in set(self.special_token_ids.values())

    def batch_encoder(self, special_tokens_as_text: bool = False) -> Callable[[list[str]], list[list[int]]]:
        """``special_tokens_as_text``: a special token's string inside a text is encoded as ordinary text (its
        characters), instead of as the special token."""
        raise NotImplementedError

    def identity(self) -> dict | None:
        """What names this tokenizer in a packed file's info file: kind, source and a fingerprint (a SHA-256
        over the files that define its ids), or None when it cannot be told (a tokenizer of one's own)."""
        return None


def hf_identity(path: Path, settings: dict, files: str | None = None) -> dict:
    """The fingerprint covers the tokenizer's files alone (``files``: their files_digest, when already computed):
    they fix what each id means. The settings (padding, truncation, special tokens, which can only mark existing
    tokens) are recorded beside it."""
    from modalities.data.pbin_info import files_digest

    return {"kind": "huggingface", "source": str(path.resolve()), "fingerprint": files or files_digest(path),
            "settings": settings}


class PreTrainedHFTokenizer(TokenizerWrapper):
    """A Hugging Face tokenizer loaded from a local folder (or a tokenizer.json file); never downloads.

    Encodes as transformers' ``tokenizer(texts, padding=, truncation=, max_length=)`` does, in
    ``tokenize_batch`` and in the packer's ``batch_encoder`` alike, for every value of the three settings.
    ``vocab_size`` counts added tokens too. ``special_tokens`` may only mark tokens the vocabulary has
    (DataError otherwise: the model's embedding is not resized); a missing or unreadable tokenizer, or a slow
    (not tokenizers-backed) one, is a DataError."""

    def __init__(
        self,
        pretrained_model_name_or_path: str,
        truncation: bool = False,
        padding: bool | str = False,
        max_length: int | None = None,
        special_tokens: dict[str, str | list[str]] | None = None,
    ):
        from transformers import AutoTokenizer, PreTrainedTokenizerFast

        from modalities.interop.hub import HubResolutionError, resolve_pretrained

        try:
            path = resolve_pretrained(pretrained_model_name_or_path)
        except HubResolutionError as e:
            raise DataError(
                f"tokenizer not found: {e}. Give a local folder (with tokenizer.json), a tokenizer.json file, or a hub "
                "id in the local Hugging Face cache (nothing is downloaded)"
            ) from None
        try:
            if path.is_file():
                self.tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(path))
            else:
                self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as e:  # noqa: BLE001 - transformers raises OSError, ValueError, ... for a bad folder
            raise DataError(f"{path}: cannot load the tokenizer: {e}") from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise DataError(f"{path}: only fast (tokenizers-backed) Hugging Face tokenizers are supported")
        if special_tokens:
            size_before = len(self.tokenizer)
            self.tokenizer.add_special_tokens(special_tokens, **_keep_existing_special_tokens(self.tokenizer))
            if len(self.tokenizer) > size_before:
                raise DataError(
                    f"{path}: special_tokens {special_tokens} add tokens the vocabulary does not have; only tokens "
                    "already in the vocabulary can be marked special (the model's embedding is not resized)"
                )
        self.path = path
        self.truncation = truncation
        self.padding = padding
        self.max_length = max_length
        self.special_tokens = special_tokens

    def identity(self) -> dict:
        settings = {"truncation": self.truncation, "padding": self.padding, "max_length": self.max_length,
                    "special_tokens": self.special_tokens}
        return hf_identity(self.path, settings)

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(
            list(texts), max_length=self.max_length, padding=self.padding, truncation=self.truncation
        )["input_ids"]

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(token_ids))

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def get_token_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        unk = self.tokenizer.unk_token_id
        if not isinstance(token_id, int) or (token_id == unk and token != self.tokenizer.unk_token):
            raise DataError(f"{self.path}: token {token!r} is not a single token of this tokenizer's vocabulary")
        return token_id

    @property
    def special_token_ids(self) -> dict[str, int]:
        return {token: self.tokenizer.convert_tokens_to_ids(token) for token in self.tokenizer.all_special_tokens}

    def batch_encoder(self, special_tokens_as_text: bool = False) -> HFBatchEncoder:
        # Let transformers configure truncation/padding on a copy of the backend, exactly as its __call__ does:
        # its own reading of the settings (padding to max_length without one pads to the model's maximum, or not
        # at all when the model has none), then its own configuration of the backend.
        backend = self.tokenizer.backend_tokenizer
        padding, truncation, max_length, _ = self.tokenizer._get_padding_truncation_strategies(
            padding=self.padding, truncation=self.truncation, max_length=self.max_length, verbose=False
        )
        self.tokenizer.set_truncation_and_padding(
            padding_strategy=padding,
            truncation_strategy=truncation,
            max_length=max_length,
            stride=0,
            pad_to_multiple_of=None,
            padding_side=None,
        )
        try:
            tokenizer_json = backend.to_str()
        finally:
            backend.no_truncation()
            backend.no_padding()
        return HFBatchEncoder(without_empty_bpe_affixes(tokenizer_json), special_tokens_as_text)


def without_empty_bpe_affixes(tokenizer_json: str) -> str:
    """The same tokenizer with a BPE model's empty continuing_subword_prefix/end_of_word_suffix written as
    absent. transformers 5 rebuilds a GPT-2 BPE with "" for both, which encodes the same ids as absent but
    about 13% slower (the empty affix is still stripped and appended on every merge)."""
    import json

    data = json.loads(tokenizer_json)
    model = data.get("model") or {}
    if model.get("type") != "BPE" or not any(model.get(k) == "" for k in ("continuing_subword_prefix", "end_of_word_suffix")):
        return tokenizer_json
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key) == "":
            model[key] = None
    return json.dumps(data, ensure_ascii=False)


def _keep_existing_special_tokens(tokenizer) -> dict[str, bool]:
    # transformers 4.x calls the flag replace_additional_special_tokens, 5.x replace_extra_special_tokens.
    import inspect

    parameters = inspect.signature(tokenizer.add_special_tokens).parameters
    for name in ("replace_extra_special_tokens", "replace_additional_special_tokens"):
        if name in parameters:
            return {name: False}
    return {}


class HFBatchEncoder:
    """Picklable batch encoder over a `tokenizers.Tokenizer` (rebuilt from its JSON in each process)."""

    # `tokenizers` releases the GIL while it encodes: the packer encodes batches on threads side by side.
    releases_gil = True

    def __init__(self, tokenizer_json: str | None, special_tokens_as_text: bool = False, tokenizer=None):
        """``tokenizer``: the `tokenizers.Tokenizer` of ``tokenizer_json`` when the caller has it already (building
        one from a 50k-entry BPE's JSON takes ~0.1 s); it must not be used elsewhere for encoding."""
        if tokenizer_json is None and tokenizer is None:
            raise ValueError("HFBatchEncoder needs the tokenizer's JSON or the tokenizer")
        self._tokenizer_json = tokenizer_json
        self.special_tokens_as_text = special_tokens_as_text
        self._tokenizer = tokenizer
        if tokenizer is not None:
            tokenizer.encode_special_tokens = special_tokens_as_text

    @property
    def tokenizer_json(self) -> str:
        if self._tokenizer_json is None:
            self._tokenizer_json = self._tokenizer.to_str()
        return self._tokenizer_json

    def __getstate__(self) -> dict:
        return {"tokenizer_json": self.tokenizer_json, "special_tokens_as_text": self.special_tokens_as_text}

    def __setstate__(self, state: dict) -> None:
        self._tokenizer_json = state["tokenizer_json"]
        self.special_tokens_as_text = state.get("special_tokens_as_text", False)
        self._tokenizer = None

    def __call__(self, texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.encodings(texts)]

    def encodings(self, texts: list[str]) -> list:
        """The `tokenizers` Encoding objects (without offsets), GIL released; on the tokenizer's own thread pool
        unless TOKENIZERS_PARALLELISM is off (the packer's threads then encode batches side by side)."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_str(self.tokenizer_json)
            self._tokenizer.encode_special_tokens = self.special_tokens_as_text
        return self._tokenizer.encode_batch_fast(texts, add_special_tokens=True)


class PreTrainedSPTokenizer(TokenizerWrapper):
    """A SentencePiece model from a local .model file (DataError when missing or not a model). Encodes as
    ``SentencePieceProcessor.encode``; ``special_token_ids`` are the control, unknown and user-defined pieces,
    of which ``is_special_token_id`` counts the control ones only. ``padding``/``truncation`` are accepted and
    have no effect, as in the reference."""

    def __init__(self, tokenizer_model_file: str, padding: bool | str | None = None, truncation: bool | None = None):
        import sentencepiece

        path = Path(tokenizer_model_file)
        if not path.is_file():
            raise DataError(f"{path}: SentencePiece model file not found")
        self.path = path
        self.model_proto = path.read_bytes()
        self.processor = sentencepiece.SentencePieceProcessor()
        try:
            self.processor.LoadFromSerializedProto(self.model_proto)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{path}: not a SentencePiece model: {e}") from None

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.processor.encode(list(texts))

    def identity(self) -> dict:
        import hashlib

        return {"kind": "sentencepiece", "source": str(Path(self.path).resolve()), "fingerprint": hashlib.sha256(self.model_proto).hexdigest()}

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.processor.decode([int(t) for t in token_ids])

    @property
    def vocab_size(self) -> int:
        return self.processor.vocab_size()

    def get_token_id(self, token: str) -> int:
        piece_id = self.processor.piece_to_id(token)
        if piece_id == self.processor.unk_id() and token != self.processor.id_to_piece(self.processor.unk_id()):
            raise DataError(f"{self.path}: token {token!r} is not a piece of this SentencePiece model")
        return piece_id

    @property
    def special_token_ids(self) -> dict[str, int]:
        # The processor tells control and unknown pieces but not user-defined ones: the model's pieces do.
        from sentencepiece import sentencepiece_model_pb2

        model = sentencepiece_model_pb2.ModelProto()
        model.ParseFromString(self.model_proto)
        piece = sentencepiece_model_pb2.ModelProto.SentencePiece
        special = (piece.CONTROL, piece.UNKNOWN, piece.USER_DEFINED)
        return {entry.piece: i for i, entry in enumerate(model.pieces) if entry.type in special}

    def is_special_token_id(self, token_id: int) -> bool:
        return bool(self.processor.is_control(token_id))

    def batch_encoder(self, special_tokens_as_text: bool = False) -> SPBatchEncoder:
        if special_tokens_as_text:
            from sentencepiece import sentencepiece_model_pb2

            model = sentencepiece_model_pb2.ModelProto()
            model.ParseFromString(self.model_proto)
            user_defined = sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED
            matched = [piece.piece for piece in model.pieces if piece.type == user_defined]
            if matched:
                # Control symbols (<s>, </s>) are never matched in text; user-defined symbols always are.
                raise DataError(
                    f"{self.path}: special tokens as text is not possible with this SentencePiece model: its "
                    f"user-defined symbols ({', '.join(matched[:5])}) are always matched in text"
                )
        return SPBatchEncoder(self.model_proto)


# The first sentencepiece release whose encoding lets other Python threads run. Measured with a 32k BPE model
# (two threads encoding batches side by side against one): 0.1.99, 0.2.0 and 0.2.1 keep the GIL (x0.97-1.00),
# 0.2.2 and 0.2.3 release it (x2.06, x1.95).
SENTENCEPIECE_RELEASES_GIL_FROM = (0, 2, 2)


def sentencepiece_releases_gil(version: str | None = None) -> bool:
    """Whether the installed sentencepiece (or ``version``) encodes without holding the GIL: from 0.2.2 on,
    comparing the first three numbers of the version (``0.2.10`` is later than ``0.2.2``; a version without
    numbers counts as 0)."""
    if version is None:
        import sentencepiece

        version = getattr(sentencepiece, "__version__", "0")
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
    return numbers >= SENTENCEPIECE_RELEASES_GIL_FROM


class SPBatchEncoder:
    """Picklable batch encoder over a serialized SentencePiece model. Where sentencepiece releases the GIL the
    packer encodes batches on threads side by side in one process (16% faster than two worker processes on a
    37 MB corpus); the model is then loaded once, under a lock, however many threads ask first."""

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self._processor = None
        self._loading = threading.Lock()

    def __getstate__(self) -> dict:
        return {"model_proto": self.model_proto}

    def __setstate__(self, state: dict) -> None:
        self.model_proto = state["model_proto"]
        self._processor = None
        self._loading = threading.Lock()

    @property
    def releases_gil(self) -> bool:
        return sentencepiece_releases_gil()

    def _loaded(self):
        with self._loading:
            if self._processor is None:
                import sentencepiece

                processor = sentencepiece.SentencePieceProcessor()
                # Loading releases the GIL: the processor is shared only once it holds the model.
                processor.LoadFromSerializedProto(self.model_proto)
                self._processor = processor
        return self._processor

    def __call__(self, texts: list[str]) -> list[list[int]]:
        processor = self._processor or self._loaded()
        return processor.encode(texts)


def tokenizer_parallelism_off() -> None:
    """Worker processes encode one batch each; Rust threads inside them would only oversubscribe the cores."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def tokenizer_from_path(path: str) -> TokenizerWrapper:
    """A SentencePiece ``.model`` file, or a Hugging Face folder or tokenizer.json (what ``data inspect``
    decodes with)."""
    if path.endswith(".model"):
        return PreTrainedSPTokenizer(path)
    return PreTrainedHFTokenizer(path)
