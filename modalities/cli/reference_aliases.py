"""The reference Modalities' command spellings, carried out by our commands with a one-line note on stderr.

    modalities run --config_file_path CFG [--experiments_root_path DIR] [--experiment_id ID]
        -> modalities train CFG [--experiments-root DIR] [--experiment-id ID]
    modalities warmstart --config_file_path CFG --last_checkpoint_info_file_path FILE [--experiments_root_path DIR]
        -> modalities train CFG --last-checkpoint-info FILE [--experiments-root DIR]
    modalities convert_pytorch_to_hf_checkpoint --config_file_path CFG --output_hf_checkpoint_dir DIR
        -> modalities convert to-hf CFG DIR

Each alias is a command module of its own below (``add_arguments`` / ``run``) so that the CLI table treats it like
any other command.
"""

from __future__ import annotations

import argparse
import sys


def note(old: str, new: str) -> None:
    print(f"modalities: note: `{old}` is the reference's spelling of `{new}`", file=sys.stderr)


def add_reference_training_arguments(parser: argparse.ArgumentParser, *, warmstart: bool) -> None:
    parser.add_argument("--config_file_path", required=True, help="the YAML training config file")
    parser.add_argument("--experiments_root_path", default=None, help="folder for experiment outputs")
    parser.add_argument("--experiment_id", default=None, help="name of the experiment folder")
    parser.add_argument(
        "--error_log_folder", default=None, help="on failure each rank writes error_logs_<host>_<local rank>.log here"
    )
    parser.add_argument("--test_comm", action="store_true", help="accepted; the process group is checked anyway")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="override a config value (ours; repeatable)")
    if warmstart:
        parser.add_argument(
            "--last_checkpoint_info_file_path", required=True, help="the checkpoint's last_checkpoint_info.json"
        )


def train_arguments(args: argparse.Namespace, *, warmstart: bool) -> argparse.Namespace:
    """The ``modalities train`` arguments an aliased training command stands for."""
    return argparse.Namespace(
        config=[args.config_file_path],
        overrides=list(args.overrides),
        experiments_root=args.experiments_root_path,
        last_checkpoint_info=args.last_checkpoint_info_file_path if warmstart else None,
        resume=None,
        experiment_id=args.experiment_id,
        error_log_folder=args.error_log_folder,
        plugin=getattr(args, "plugin", []),
    )
