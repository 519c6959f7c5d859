"""``modalities data ...``: index a JSONL corpus, pack it into tokens, inspect and merge packed files."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

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
    index.set_defaults(_data_run=_create_raw_index)

    pack = sub.add_parser("pack_encoded_data", help="tokenize a JSONL corpus into a .pbin file, as a config describes")
    pack.add_argument("config", help="pack config: `settings` (src_path, dst_path, ...) and a `tokenizer` component")
    pack.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    pack.add_argument(
        "--skip-bad-documents",
        action="store_true",
        help="leave out documents that cannot be read or encoded (counted and listed) instead of stopping",
    )
    pack.add_argument("--num-cpus", type=int, default=None, help="worker processes (overrides settings.num_cpus)")
    pack.set_defaults(_data_run=_pack_encoded_data)

    inspect = sub.add_parser("inspect", help="show tokens, documents and token width of a .pbin, and decode a sample")
    inspect.add_argument("path", help="the .pbin file")
    inspect.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer to decode with: a Hugging Face folder or tokenizer.json, or a SentencePiece .model",
    )
    inspect.add_argument("--document", type=int, default=0, help="which document to show (default 0)")
    inspect.add_argument("--max-tokens", type=int, default=64, help="tokens of the document to show (default 64)")
    inspect.set_defaults(_data_run=_inspect)

    merge = sub.add_parser("merge_packed_data", help="concatenate .pbin files into one")
    merge.add_argument("paths", nargs="+", metavar="PATH", help="input .pbin files, then the output path")
    merge.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    merge.set_defaults(_data_run=_merge)


def run(args: argparse.Namespace) -> int:
    from modalities.data.errors import DataError

    try:
        return args._data_run(args)
    except DataError as e:
        return _fail(str(e))


def _fail(message: str) -> int:
    print(f"modalities data: error: {message}", file=sys.stderr)
    return 1


def _progress(unit_label: str):
    """A rich progress bar with documents/s and tokens/s; silent when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def _rates(documents: int, tokens: int | None, seconds: float) -> str:
    seconds = max(seconds, 1e-9)
    text = f"{documents / seconds:,.0f} documents/s"
    if tokens is not None:
        text += f", {tokens / seconds:,.0f} tokens/s"
    return text


def _create_raw_index(args: argparse.Namespace) -> int:
    import os
    import time

    from modalities.data.raw_index import create_raw_index

    total = os.path.getsize(args.src_path) if os.path.isfile(args.src_path) else 0
    began = time.perf_counter()
    with _progress("bytes") as progress:
        task = progress.add_task("indexing", total=total or None, rate="")

        def on_progress(position: int, documents: int) -> None:
            progress.update(task, completed=position, rate=_rates(documents, None, time.perf_counter() - began))

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
    import time

    from pydantic import ValidationError

    from modalities import ConfigError, Main, load_app_config_dict
    from modalities.config.diagnostics import Diagnostic, render_text
    from modalities.data.config import PackEncodedDataSettings
    from modalities.data.packing import pack_encoded_data

    try:
        config = load_app_config_dict(args.config)
    except ConfigError as e:
        print(render_text(e.diagnostics), file=sys.stderr)
        return 1
    source_map = config.document.source_map if config.document is not None else None
    if not isinstance(config.get("settings"), dict) or "tokenizer" not in config:
        return _fail(f"{args.config}: a pack config needs a `settings` block and a `tokenizer` component")
    try:
        settings = PackEncodedDataSettings.model_validate(config["settings"])
    except ValidationError as e:
        diagnostics = [
            Diagnostic(
                error["msg"],
                span=source_map.value(("settings", *error["loc"])) if source_map else None,
                path=("settings", *error["loc"]),
            )
            for error in e.errors()
        ]
        print(render_text(diagnostics), file=sys.stderr)
        return 1
    try:
        tokenizer = Main({"tokenizer": config["tokenizer"]}).build_components()["tokenizer"]
    except ConfigError as e:
        print(render_text(e.diagnostics), file=sys.stderr)
        return 1

    num_cpus = args.num_cpus or settings.num_cpus
    began = time.perf_counter()
    with _progress("documents") as progress:
        from modalities.data.raw_index import default_index_path, read_raw_index

        index_path = settings.index_path or default_index_path(settings.src_path)
        total = len(read_raw_index(index_path)) if index_path.is_file() else None
        task = progress.add_task("packing", total=total, rate="")

        def on_progress(documents: int, tokens: int) -> None:
            progress.update(task, completed=documents, rate=_rates(documents, tokens, time.perf_counter() - began))

        result = pack_encoded_data(
            src_path=settings.src_path,
            tokenizer=tokenizer,
            eod_token=settings.eod_token,
            dst_path=settings.dst_path,
            index_path=settings.index_path,
            jq_pattern=settings.jq_pattern,
            num_cpus=num_cpus,
            processing_batch_size=settings.processing_batch_size,
            max_batches_in_flight=num_cpus + settings.raw_samples_queue_size + settings.processed_samples_queue_size,
            skip_bad_documents=args.skip_bad_documents or settings.skip_bad_documents,
            overwrite=args.overwrite or settings.overwrite,
            on_progress=on_progress,
        )
    print(
        f"{result.dst_path}: {result.num_documents} documents, {result.num_tokens} tokens "
        f"({result.token_width}-byte tokens) in {result.seconds:.1f}s with {num_cpus} worker(s): "
        f"{_rates(result.num_documents, result.num_tokens, result.seconds)}"
    )
    if result.skipped:
        print(f"skipped {len(result.skipped)} bad document(s):")
        for skipped in result.skipped[:10]:
            print(f"  {settings.src_path}:{skipped.line}: {skipped.reason}")
        if len(result.skipped) > 10:
            print(f"  ... and {len(result.skipped) - 10} more")
    return 0


def _load_tokenizer(path: str):
    from modalities.data.tokenizers import PreTrainedHFTokenizer, PreTrainedSPTokenizer

    if path.endswith(".model"):
        return PreTrainedSPTokenizer(path)
    return PreTrainedHFTokenizer(path)


def _inspect(args: argparse.Namespace) -> int:
    from modalities.data.pbin import PackedFile

    packed = PackedFile(args.path)
    print(f"file:        {packed.path} ({packed.path.stat().st_size:,} bytes)")
    print(f"tokens:      {packed.num_tokens:,}")
    print(f"documents:   {packed.num_documents:,}")
    print(f"token width: {packed.token_width} byte(s) (ids up to {(1 << (8 * packed.token_width)) - 1:,})")
    if packed.num_documents == 0:
        return 0
    if not 0 <= args.document < packed.num_documents:
        return _fail(f"{args.path}: --document {args.document} is out of range (0..{packed.num_documents - 1})")
    tokens = packed.document(args.document)
    shown = tokens[: args.max_tokens].tolist()
    more = f" ... ({len(tokens)} tokens)" if len(tokens) > len(shown) else ""
    print(f"document {args.document}: {shown}{more}")
    if args.tokenizer:
        tokenizer = _load_tokenizer(args.tokenizer)
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
