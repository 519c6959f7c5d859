"""``modalities train CONFIG``: validate the whole config, start the process group, build and train.

Under torchrun every rank runs this. The experiment id comes from rank 0 (``run_training`` agrees on it; set
MODALITIES_EXPERIMENT_ID or --experiment-id to choose it), so every rank writes into the same experiment folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from modalities.cli.common import add_compile_arguments, use_color

EXPERIMENT_ID_ENV = "MODALITIES_EXPERIMENT_ID"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_compile_arguments(parser)
    parser.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue from a checkpoint folder, e.g. experiments/<id>/checkpoints/latest",
    )
    parser.add_argument("--experiment-id", default=None, help="name of the experiment folder (default: a timestamp)")
    parser.add_argument(
        "--error-log-folder",
        "--error_log_folder",
        dest="error_log_folder",
        default=None,
        metavar="FOLDER",
        help="on failure each rank also writes error_logs_<host>_<local rank>.log (JSON: environment, error type, "
        "message, stack) there, as the reference does; `modalities benchmark list_remaining_runs` reads them",
    )


def _is_rank_zero() -> bool:
    """Before the process group exists, torchrun's RANK variable tells the ranks apart."""
    return os.environ.get("RANK", "0") == "0"


class _Reported(Exception):
    """An error already reported to the user; `run` returns 1 for it after logging it."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _error(error: BaseException) -> _Reported:
    print(f"modalities train: error: {error}", file=sys.stderr)
    return _Reported(error)


def write_error_log(folder: str | os.PathLike, error: BaseException) -> Path:
    """The reference's error log: one JSON file per rank with where it ran and what failed."""
    import json
    import socket
    import traceback

    environment = {
        "rank": int(os.environ.get("RANK", -1)),
        "local_rank": int(os.environ.get("LOCAL_RANK", -1)),
        "world_size": int(os.environ.get("WORLD_SIZE", -1)),
        "hostname": socket.gethostname(),
    }
    record = {
        "environment": environment,
        "error": {
            "error": str(error),
            "type": type(error).__name__,
            "stacktrace": traceback.format_exception(type(error), error, error.__traceback__),
        },
    }
    path = Path(folder) / f"error_logs_{environment['hostname']}_{environment['local_rank']}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def run(args: argparse.Namespace) -> int:
    error_log_folder = getattr(args, "error_log_folder", None)
    try:
        _train(args)
    except _Reported as reported:
        if error_log_folder is not None:
            write_error_log(error_log_folder, reported.error)
        return 1
    except Exception as e:
        if error_log_folder is not None:
            write_error_log(error_log_folder, e)
        raise
    return 0


def _train(args: argparse.Namespace) -> None:
    from modalities.api import Main, load_app_config_dict
    from modalities.config.build import BuildError
    from modalities.config.diagnostics import ConfigError, render_text

    experiment_id = args.experiment_id or os.environ.get(EXPERIMENT_ID_ENV)
    try:
        config = load_app_config_dict(
            args.config,
            experiment_id,
            overrides=args.overrides,
            experiments_root=args.experiments_root,
            last_checkpoint_info=args.last_checkpoint_info,
        )
        main = Main(config, experiments_root=args.experiments_root, experiment_id=experiment_id)
        warnings = main.validate()
    except ConfigError as e:
        if _is_rank_zero():  # every rank compiles the same file: one report is enough
            print(render_text(e.diagnostics, color=use_color()), file=sys.stderr)
        raise _Reported(e) from e
    if warnings and _is_rank_zero():
        print(render_text(warnings, color=use_color()), file=sys.stderr)

    from modalities.checkpointing.layout import CheckpointError, resolve_checkpoint
    from modalities.training.distributed import TrainingSetupError
    from modalities.training.entry import TrainingConfigError, check_training_config, run_training

    try:
        check_training_config(main.config_dict)
        if args.resume is not None:
            resolve_checkpoint(args.resume)
        run_training(main, resume_from=args.resume)
    except ConfigError as e:
        print(render_text(e.diagnostics, color=use_color()), file=sys.stderr)
        raise _Reported(e) from e
    except (TrainingConfigError, TrainingSetupError, CheckpointError, BuildError) as e:
        raise _error(e) from e
    except RuntimeError as e:
        from modalities.training.gym import DataExhaustedError, NonFiniteLossError

        if isinstance(e, (NonFiniteLossError, DataExhaustedError)):
            raise _error(e) from e
        raise
