"""``modalities data ...``: the arguments of the data commands and what they print; the work is in modalities/data/
(and data_api.py where a config file is compiled), the progress display in cli/progress.py."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    _add_index(sub)
    _add_pack(sub)
    _add_prepare(sub)
    _add_shuffles(sub)
    _add_inspect(sub)
    _add_merge(sub)


def _add_index(sub) -> None:
    index = sub.add_parser("create_raw_index", help="write the byte offset and length of every JSONL line (.idx)")
    index.add_argument("src_path", help="the JSONL file")
    index.add_argument(
        "--index-path",
        "--index_path",
        dest="index_path",
        default=None,
        help="where to write the index (default: the JSONL path with suffix .idx)",
    )
    index.add_argument(
        "--skip-malformed",
        action="store_true",
        help="leave lines that are not valid JSON out of the index (they are counted and listed)",
    )
    index.add_argument("--overwrite", action="store_true", help="replace an existing index")
    _add_existence_policy(index)
    index.set_defaults(_data_run=_create_raw_index)


def _add_pack(sub) -> None:
    pack = sub.add_parser("pack_encoded_data", help="tokenize a JSONL corpus into a .pbin file, as a config describes")
    pack.add_argument("config", help="pack config: `settings` (src_path, dst_path, ...) and a `tokenizer` component")
    pack.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    pack.add_argument(
        "--skip-bad-documents",
        action="store_true",
        help="leave out documents that cannot be read or encoded (counted and listed) instead of stopping",
    )
    pack.add_argument("--num-cpus", type=int, default=None, help="CPUs to tokenize on (overrides settings.num_cpus)")
    pack.add_argument(
        "--special-tokens-in-text",
        choices=["as_tokens", "as_text"],
        default=None,
        help="a special token's string inside a document: the token (the reference's way) or its characters "
        "(overrides settings.special_tokens_in_text)",
    )
    pack.add_argument(
        "--tokenizer-engine",
        choices=["auto", "tiktoken", "huggingface"],
        default=None,
        help="what encodes a Hugging Face byte-level BPE: tiktoken where it gives the same ids (auto), tiktoken or "
        "an error (tiktoken), or Hugging Face tokenizers (huggingface); overrides settings.tokenizer_engine",
    )
    pack.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="pack only the I-th of N contiguous slices of the documents (0 <= I < N), into DST.IIIII-of-NNNNN.pbin; "
        "merge_packed_data of the N parts in order gives the file packing the whole would (for a SLURM array)",
    )
    _add_existence_policy(pack)
    pack.set_defaults(_data_run=_pack_encoded_data)


def _add_prepare(sub) -> None:
    prepare = sub.add_parser(
        "prepare_instruction_tuning_data",
        help="apply a chat template to conversations, split them, index and pack each partition",
    )
    prepare.add_argument("config", nargs="?", help="the chat-template config (or --config_file_path)")
    prepare.add_argument("--config_file_path", dest="config_file_path", default=None, help=argparse.SUPPRESS)
    prepare.set_defaults(_data_run=_prepare_instruction_tuning_data)


def _add_shuffles(sub) -> None:
    shuffle = sub.add_parser("shuffle_tokenized_data", help="shuffle the documents of a .pbin file")
    shuffle.add_argument("--input_data_path", required=True, help="the .pbin file")
    shuffle.add_argument("--output_data_path", required=True, help="the shuffled .pbin to write")
    shuffle.add_argument("--batch_size", type=int, default=100, help="documents copied per batch (default 100)")
    shuffle.add_argument("--seed", type=int, default=None, help="seed of the shuffle (the reference's Random(seed))")
    _add_existence_policy(shuffle)
    shuffle.set_defaults(_data_run=_shuffle_tokenized_data)

    shuffle_jsonl = sub.add_parser("shuffle_jsonl_data", help="shuffle the lines of a JSONL file")
    shuffle_jsonl.add_argument("--input_data_path", required=True, help="the .jsonl file")
    shuffle_jsonl.add_argument("--output_data_path", required=True, help="the shuffled .jsonl to write")
    shuffle_jsonl.add_argument("--seed", type=int, default=None, help="seed of the shuffle")
    _add_existence_policy(shuffle_jsonl)
    shuffle_jsonl.set_defaults(_data_run=_shuffle_jsonl_data)

    for name, kind in (("create_shuffled_dataset_chunk", "pbin"), ("create_shuffled_jsonl_chunk", "jsonl")):
        aliases = ["create_shuffled_jsonl_dataset_chunk"] if kind == "jsonl" else []  # the reference's other name
        chunk = sub.add_parser(
            name, aliases=aliases, help=f"chunk i of N of several .{kind} files, shuffled (for splitting a corpus over jobs)"
        )
        chunk.add_argument("--input_file_list_path", required=True, help=f"a file listing the .{kind} files, one per line")
        chunk.add_argument("--input_data_root_path", required=True, help="the folder the listed paths are relative to")
        chunk.add_argument("--output_chunk_file_path", required=True, help=f"the .{kind} chunk to write")
        chunk.add_argument("--chunk_id", type=int, required=True, help="which chunk (0-based)")
        chunk.add_argument("--num_chunks", type=int, required=True, help="how many chunks in all")
        chunk.add_argument("--global_seed", type=int, default=None, help="seed; each chunk's seed derives from it")
        _add_existence_policy(chunk)
        chunk.set_defaults(_data_run=_create_shuffled_chunk, _chunk_kind=kind)


def _add_inspect(sub) -> None:
    inspect = sub.add_parser("inspect", help="show tokens, documents and token width of a .pbin, and decode a sample")
    inspect.add_argument("path", help="the .pbin file")
    inspect.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer to decode with: a Hugging Face folder or tokenizer.json, or a SentencePiece .model",
    )
    inspect.add_argument("--document", type=int, default=0, help="which document to show (default 0)")
    inspect.add_argument("--max-tokens", type=int, default=64, help="tokens of the document to show (default 64)")
    inspect.add_argument(
        "--sequence-length",
        type=int,
        action="append",
        default=None,
        metavar="N",
        help="count the training samples at this sequence length (repeatable; default 1024, 2048, 4096, 8192)",
    )
    inspect.set_defaults(_data_run=_inspect)


def _add_merge(sub) -> None:
    merge = sub.add_parser("merge_packed_data", help="concatenate .pbin files into one")
    merge.add_argument("paths", nargs="+", metavar="PATH", help="input .pbin files, then the output path")
    merge.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    merge.set_defaults(_data_run=_merge)


def _add_existence_policy(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file_existence_policy",
        "--file-existence-policy",
        dest="file_existence_policy",
        choices=("error", "skip", "override"),
        default=None,
        help="when the output exists: error (default), skip the command, or override it",
    )


def run(args: argparse.Namespace) -> int:
    from modalities.data.errors import DataError

    try:
        return args._data_run(args)
    except DataError as e:
        return _fail(str(e))


def _fail(message: str) -> int:
    print(f"modalities data: error: {message}", file=sys.stderr)
    return 1


def _create_raw_index(args: argparse.Namespace) -> int:
    import os
    import time

    from modalities.cli.progress import progress_bar, rates
    from modalities.data.raw_index import create_raw_index, default_index_path

    policy = _existence_policy(args)
    index_path = args.index_path or default_index_path(args.src_path)
    if policy == "skip" and os.path.exists(index_path):
        print(f"{index_path} exists; skipped (--file_existence_policy skip)")
        return 0
    args.overwrite = args.overwrite or policy == "override"
    total = os.path.getsize(args.src_path) if os.path.isfile(args.src_path) else 0
    began = time.perf_counter()
    with progress_bar("bytes") as progress:
        task = progress.add_task("indexing", total=total or None, rate="")

        def on_progress(position: int, documents: int) -> None:
            progress.update(task, completed=position, rate=rates(documents, None, time.perf_counter() - began))

        result = create_raw_index(
            args.src_path,
            args.index_path,
            skip_malformed=args.skip_malformed,
            overwrite=args.overwrite,
            on_progress=on_progress,
        )
    print(f"{result.index_path}: {result.num_documents} documents indexed from {args.src_path}")
    if result.skipped_lines:
        shown = ", ".join(map(str, result.skipped_lines[:10])) + (" ..." if len(result.skipped_lines) > 10 else "")
        print(f"skipped {len(result.skipped_lines)} malformed line(s): {shown}")
    return 0


def _pack_encoded_data(args: argparse.Namespace) -> int:
    shard = parse_shard(args.shard) if args.shard is not None else None
    policy = _existence_policy(args)
    from modalities.data_api import pack_destination_exists

    if policy == "skip" and pack_destination_exists(args.config, shard):
        print(f"{args.config}: the output exists; skipped (--file_existence_policy skip)")
        return 0
    return pack_from_config(
        args.config,
        overwrite=args.overwrite or policy == "override",
        skip_bad_documents=args.skip_bad_documents,
        num_cpus=args.num_cpus,
        special_tokens_in_text=getattr(args, "special_tokens_in_text", None),
        shard=shard,
        tokenizer_engine=getattr(args, "tokenizer_engine", None),
    )


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` -> (I, N), 0 <= I < N; DataError saying what to write otherwise."""
    from modalities.data.errors import DataError

    parts = text.split("/")
    if len(parts) != 2 or not all(part.strip().isdigit() and len(part.strip()) <= 18 for part in parts):
        raise DataError(f"--shard {text!r}: write I/N, e.g. --shard 0/8 for the first of 8 slices")
    index, count = (int(part) for part in parts)
    if count < 1 or index >= count:
        raise DataError(f"--shard {text!r}: I must be in 0..N-1 and N at least 1 (e.g. 0/{max(count, 1)})")
    return index, count


def _existence_policy(args: argparse.Namespace) -> str:
    return getattr(args, "file_existence_policy", None) or ("override" if getattr(args, "overwrite", False) else "error")


def pack_from_config(
    config_path,
    *,
    overwrite: bool = False,
    skip_bad_documents: bool = False,
    num_cpus=None,
    special_tokens_in_text: str | None = None,
    shard: tuple[int, int] | None = None,
    tokenizer_engine: str | None = None,
) -> int:
    """Pack as a pack config describes (only slice I of N with ``shard=(I, N)``); 0 on success, 1 after printing
    what is wrong."""
    from modalities.cli.progress import PackingProgress
    from modalities.config.diagnostics import ConfigError, render_text
    from modalities.data.errors import DataError
    from modalities.data.packing import pack_as_configured
    from modalities.data_api import load_pack_config

    try:
        settings, tokenizer = load_pack_config(config_path)
    except ConfigError as e:
        print(render_text(e.diagnostics), file=sys.stderr)
        return 1
    except DataError as e:
        return _fail(str(e))
    description = "packing" if shard is None else f"packing shard {shard[0]}/{shard[1]}"
    with PackingProgress(description) as progress:
        result = pack_as_configured(
            settings,
            tokenizer,
            overwrite=overwrite,
            skip_bad_documents=skip_bad_documents,
            num_cpus=num_cpus,
            special_tokens_in_text=special_tokens_in_text,
            shard=shard,
            tokenizer_engine=tokenizer_engine,
            on_start=progress.start,
            on_progress=progress.update,
        )
    _print_packing_result(result, settings, special_tokens_in_text)
    return 0


def _print_packing_result(result, settings, special_tokens_in_text: str | None) -> None:
    from modalities.cli.progress import rates
    from modalities.data.packing import source_lines_of
    from modalities.data.raw_index import default_index_path

    print(
        f"{result.dst_path}: {result.num_documents} documents, {result.num_tokens} tokens "
        f"({result.token_width}-byte tokens) in {result.seconds:.1f}s on {result.parallelism}: "
        f"{rates(result.num_documents, result.num_tokens, result.seconds)}"
    )
    print(f"engine: {result.engine}")
    if result.num_with_eod_inside:
        as_text = (special_tokens_in_text or settings.special_tokens_in_text) == "as_text"
        index_path = settings.index_path or default_index_path(settings.src_path)
        lines = ", ".join(map(str, source_lines_of(settings.src_path, index_path, result.first_with_eod_inside)))
        more = " ..." if result.num_with_eod_inside > len(result.first_with_eod_inside) else ""
        print(
            f"warning: {result.num_with_eod_inside} document(s) hold the EOD token before their end (lines {lines}"
            f"{more} of {settings.src_path}): "
            + (
                "their encoding produced it although special tokens were encoded as text"
                if as_text
                else f"their text contains {settings.eod_token!r}, which was encoded as the token (as the reference "
                "does), so the model sees a document boundary inside them; pack with --special-tokens-in-text "
                "as_text (or special_tokens_in_text: as_text) to encode such text as characters"
            ),
            file=sys.stderr,
        )
    if result.skipped:
        print(f"skipped {len(result.skipped)} bad document(s):")
        for skipped in result.skipped[:10]:
            print(f"  {settings.src_path}:{skipped.line}: {skipped.reason}")
        if len(result.skipped) > 10:
            print(f"  ... and {len(result.skipped) - 10} more")


def _inspect(args: argparse.Namespace) -> int:
    from modalities.data.pbin import PackedFile
    from modalities.data.pbin_info import describe_tokenizer, read_info, recorded_tokenizer_path
    from modalities.data.pbin_stats import length_histogram, length_stats, sample_counts

    packed = PackedFile(args.path)
    info = read_info(args.path)
    print(f"file:        {packed.path} ({packed.path.stat().st_size:,} bytes)")
    print(f"tokens:      {packed.num_tokens:,}")
    print(f"documents:   {packed.num_documents:,}")
    print(f"token width: {packed.token_width} byte(s) (ids up to {(1 << (8 * packed.token_width)) - 1:,})")
    if info is not None:
        identity = info.get("tokenizer") or {}
        fingerprint = identity.get("fingerprint")
        print(f"tokenizer:   {describe_tokenizer(identity)}" + (f", sha256 {fingerprint[:16]}" if fingerprint else ""))
        source = info.get("source") or {}
        if source and not source.get("path"):  # merged, shuffled or a chunk of other files
            import json

            made_from = json.dumps(source, ensure_ascii=False)
            print(f"made from:   {made_from if len(made_from) <= 200 else made_from[:200] + ' ...'}")
        elif source.get("path"):
            first, end = source.get("documents", [None, None])
            print(f"packed from: {source['path']} (documents {first}..{end} of {source.get('of')}, "
                  f"jq {source.get('jq_pattern')}) on {info.get('written')} by modalities {info.get('modalities')}")
        engine = info.get("engine") or {}
        if engine.get("name"):
            print(f"encoded by:  {engine['name']} {engine.get('version') or ''}".rstrip()
                  + (f" ({engine['reason']})" if engine.get("reason") else ""))
    else:
        print("tokenizer:   not recorded (no info file beside the .pbin: packed elsewhere or before it existed)")
    if packed.num_documents == 0:
        return 0
    if not 0 <= args.document < packed.num_documents:
        return _fail(f"{args.path}: --document {args.document} is out of range (0..{packed.num_documents - 1})")
    documents = packed.index // packed.token_width
    lengths = documents[:, 1]
    stats = length_stats(lengths)
    print(
        f"document length (tokens): min {stats.min:,}, median {stats.median:,g}, mean {stats.mean:,.1f}, "
        f"p99 {stats.p99:,}, max {stats.max:,}"
    )
    rows = length_histogram(lengths)
    widest = max(count for _, _, count in rows)
    for low, high, count in rows:
        label = f"{low:,}" if low == high else f"{low:,}-{high:,}"
        bar = "#" * (math.ceil(40 * count / widest) if count else 0)
        print(f"  {label:>15} {count:>12,}  {bar}")
    print("training samples (continuous: reuse_last_target true / false; megatron):")
    for sequence_length in args.sequence_length or (1024, 2048, 4096, 8192):
        if sequence_length < 2:
            return _fail(f"--sequence-length {sequence_length}: a sequence holds at least 2 tokens")
        counts = sample_counts(packed.num_tokens, documents, sequence_length)
        print(f"  sequence_length {sequence_length:>6}: {counts.continuous:,} / {counts.continuous_disjoint:,}; "
              f"{counts.megatron:,}")
    tokens = packed.document(args.document)
    shown = tokens[: args.max_tokens].tolist()
    more = f" ... ({len(tokens)} tokens)" if len(tokens) > len(shown) else ""
    print(f"document {args.document}: {shown}{more}")
    tokenizer_path = args.tokenizer or recorded_tokenizer_path(info)
    if tokenizer_path:
        from modalities.data.tokenizers import tokenizer_from_path

        tokenizer = tokenizer_from_path(tokenizer_path)
        print(f"decoded:     {tokenizer.decode(shown)!r}{' ...' if more else ''}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from modalities.data.pbin import merge_packed_files

    if len(args.paths) < 2:
        return _fail("merge_packed_data needs input files and an output path: A.pbin [B.pbin ...] OUT.pbin")
    *sources, destination = args.paths
    documents, tokens = merge_packed_files(sources, destination, overwrite=args.overwrite)
    print(f"{destination}: {documents} documents, {tokens} tokens from {len(sources)} file(s)")
    return 0


def _prepare_instruction_tuning_data(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pydantic import ValidationError

    from modalities import ConfigError
    from modalities.config.diagnostics import render_text
    from modalities.data_api import prepare_instruction_tuning_data

    config = args.config or args.config_file_path
    if not config:
        return _fail("prepare_instruction_tuning_data needs the chat-template config (CONFIG or --config_file_path)")

    def pack(pack_config: Path) -> None:
        if pack_from_config(pack_config, overwrite=True) != 0:
            raise _PackFailed(pack_config)

    try:
        outputs = prepare_instruction_tuning_data(Path(config), pack)
    except ConfigError as e:
        print(render_text(e.diagnostics), file=sys.stderr)
        return 1
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        return _fail(f"{config}: {problems}")
    except _PackFailed as e:
        return _fail(f"packing with {e.args[0]} failed (see above)")
    for partition, paths in outputs.items():
        print(f"{partition}: " + ", ".join(str(path) for path in paths.values()))
    return 0


class _PackFailed(Exception):
    pass


def _refuse_or_skip(output, policy: str) -> bool:
    """Whether to stop because ``output`` exists (skip); raises for the error policy."""
    from pathlib import Path

    from modalities.data.errors import DataError

    path = Path(output)
    if not path.exists():
        return False
    if policy == "skip":
        print(f"{path} exists; skipped (--file_existence_policy skip)")
        return True
    if policy == "override":
        return False
    raise DataError(f"{path} already exists; choose another output or pass --file_existence_policy override")


def _shuffle_tokenized_data(args: argparse.Namespace) -> int:
    from modalities.data.shuffling import shuffle_tokenized_data

    if _refuse_or_skip(args.output_data_path, _existence_policy(args)):
        return 0
    documents = shuffle_tokenized_data(args.input_data_path, args.output_data_path, args.batch_size, args.seed)
    print(f"{args.output_data_path}: {documents} documents shuffled from {args.input_data_path}")
    return 0


def _shuffle_jsonl_data(args: argparse.Namespace) -> int:
    from modalities.data.shuffling import shuffle_jsonl_data

    if _refuse_or_skip(args.output_data_path, _existence_policy(args)):
        return 0
    lines = shuffle_jsonl_data(args.input_data_path, args.output_data_path, args.seed)
    print(f"{args.output_data_path}: {lines} lines shuffled from {args.input_data_path}")
    return 0


def _create_shuffled_chunk(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modalities.data.shuffling import (
        create_shuffled_dataset_chunk,
        create_shuffled_jsonl_dataset_chunk,
        listed_files,
    )

    if _refuse_or_skip(args.output_chunk_file_path, _existence_policy(args)):
        return 0
    files = listed_files(args.input_file_list_path, args.input_data_root_path, args._chunk_kind)
    create = create_shuffled_dataset_chunk if args._chunk_kind == "pbin" else create_shuffled_jsonl_dataset_chunk
    count = create(files, Path(args.output_chunk_file_path), args.chunk_id, args.num_chunks, args.global_seed)
    print(f"{args.output_chunk_file_path}: chunk {args.chunk_id} of {args.num_chunks}, {count} documents from {len(files)} file(s)")
    return 0
