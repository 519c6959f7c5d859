"""The ``modalities`` command line. Each command lives in its own module, imported only when it runs."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import NoReturn

# command -> (module, one-line help). A command module defines add_arguments(parser) and run(args) -> int and
# keeps heavy imports (torch, rich, matplotlib) inside run().
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("modalities.cli.validate", "check a config file and report every error with its position"),
    "components": ("modalities.cli.components", "list registered components, or show one's config fields"),
    "schema": ("modalities.cli.schema", "write (or --check) the JSON Schemas for editors"),
    "graph": ("modalities.cli.graph", "draw the component graph of a config (.dot .mmd .svg .png)"),
    "docs": ("modalities.cli.docs", "write the Markdown component reference"),
    "plot": ("modalities.cli.plot", "draw training curves (loss, lr, throughput) of experiments from results.jsonl"),
    "diff": ("modalities.cli.diff", "what differs between two resolved configs (or a config and a checkpoint's)"),
    "data": ("modalities.cli.data", "index, pack, inspect and merge datasets"),
    "train": ("modalities.cli.train", "train from a config (also under torchrun)"),
    "torchrun": ("modalities.cli.torchrun", "torchrun for training that may be preempted: torchrun OPTIONS train CFG"),
    "convert": ("modalities.cli.convert", "convert checkpoints (to-torch, to-hf)"),
    "benchmark": ("modalities.cli.benchmark", "expand a sweep template into one config per combination"),
    "profile": ("modalities.cli.profile", "step a config's steppable_component under its profiler"),
    "generate_text": ("modalities.cli.generate", "generate text with a config's inference_component/text"),
    "lsp": ("modalities.cli.lsp", "the config compiler as a language server for editors (LSP over stdio)"),
    # the reference Modalities' spellings, each carried out by one of the commands above
    "run": ("modalities.cli.run_alias", "the reference's `run --config_file_path CFG` (= train CFG)"),
    "warmstart": ("modalities.cli.warmstart", "the reference's warm start (= train CFG --last-checkpoint-info FILE)"),
    "convert_pytorch_to_hf_checkpoint": ("modalities.cli.convert_alias", "the reference's spelling of convert to-hf"),
}


# Commands that only read files and print: when one ends, the process flushes its output and leaves without
# interpreter finalization (freeing every object one by one takes ~20 ms, a tenth of a quick start's validate).
# Not with --plugin: a plugin may register exit handlers.
LEAVE_WITHOUT_FINALIZATION = frozenset({"validate"})
_leave_without_finalization = False


def plugin_parent_parser() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE before compiling, so the components it registers are known (repeatable)",
    )
    return parent


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modalities")
    except PackageNotFoundError:  # run from a source tree that is not installed
        from modalities import __version__

        return __version__


class _VersionAction(argparse.Action):
    """``--version``: the installed version is looked up only when asked for (reading the package metadata
    costs more than a quick command's whole start)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"modalities {_version()}")
        parser.exit()


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modalities", description=__doc__)
    parser.add_argument("--version", action=_VersionAction, help="show program's version number and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parent = plugin_parent_parser()
    # Only the module of the command being run is imported; the others get a stub entry for --help.
    requested = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        if requested not in (None, name):
            sub.add_parser(name, help=help_text)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            sub.add_parser(name, help=help_text + " (not available yet)")
            continue
        command_parser = sub.add_parser(name, help=help_text, description=help_text, parents=[parent])
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["torchrun"] and not {"-h", "--help"} & set(argv[1:2]):
        from modalities.cli.torchrun import launch  # torchrun's own options: not parsed here

        return launch(argv[1:])
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    global _leave_without_finalization
    _leave_without_finalization = args.command in LEAVE_WITHOUT_FINALIZATION and not args.plugin
    if args.plugin:
        from modalities.registry import default_registry
        from modalities.registry.plugins import PluginError, import_plugin_module

        default_registry()
        for module_name in args.plugin:
            try:
                import_plugin_module(module_name)
            except PluginError as e:
                print(f"modalities: error: --plugin {module_name}: {e}", file=sys.stderr)
                return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("modalities: interrupted", file=sys.stderr)
        return 130


def run_as_program() -> NoReturn:
    """The ``modalities`` command and ``python -m modalities``: run main() and exit with its status.

    A process that trained leaves through exit_process, which skips interpreter finalization (see there why);
    every other command exits normally. main() stays a plain function so tests can call it in-process.
    A path or argument that is not UTF-8 (held as lone surrogates) is printed escaped, never a crash: what the
    commands print themselves is made printable where it is composed (config/diagnostics.py printable).
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        status: object = main()
    except SystemExit as e:
        status = e.code
    except BaseException:  # a bug: show it as Python would, then leave the same way as any other ending
        traceback.print_exc()
        status = 1
    if isinstance(status, str):
        print(status, file=sys.stderr)
        status = 1
    exit_code = 0 if status is None else int(status)
    distributed = sys.modules.get("modalities.training.distributed")  # imported only by commands that train
    if distributed is not None and distributed.started_process_group():
        distributed.exit_process(exit_code)
    if _leave_without_finalization:
        _flush_and_leave(exit_code)
    sys.exit(exit_code)


def _flush_and_leave(exit_code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe; Python's own exit says 120 when stdout fails
            if stream is sys.stdout and exit_code == 0:
                exit_code = 120
    os._exit(exit_code)
