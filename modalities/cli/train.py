"""``modalities train CONFIG``: validate the whole config, start the process group, build and train.

Under torchrun every rank runs this. The experiment id is agreed before the config is compiled (rank 0's
default, shared through torchrun's store; or --experiment-id, MODALITIES_EXPERIMENT_ID, or the checkpoint's for
--resume), so every rank compiles the same config and writes into the same experiment folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from modalities.cli.common import add_compile_arguments, use_color


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_compile_arguments(parser)
    parser.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue from a checkpoint folder, e.g. experiments/<id>/checkpoints/latest (in that run's experiment "
        "folder unless --experiment-id says otherwise); `auto`: this experiment's latest checkpoint if there is one, "
        "else start from the beginning (for jobs that are requeued; needs --experiment-id)",
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
    from modalities.training.signals import EXIT_STOPPED, TrainingStopped

    error_log_folder = getattr(args, "error_log_folder", None)
    try:
        _train(args)
    except TrainingStopped as stopped:
        if _is_rank_zero():
            print(f"modalities train: {stopped}; run the same command with --resume auto (or --resume "
                  f"{stopped.checkpoint or 'CHECKPOINT'}) to continue; exit code {EXIT_STOPPED}", file=sys.stderr)
        return EXIT_STOPPED
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
    from modalities.api import ExperimentIdError, choose_experiment_id, train_compiled
    from modalities.checkpointing.layout import CheckpointError, resolve_checkpoint
    from modalities.config.build import BuildError
    from modalities.config.diagnostics import ConfigError, render_text

    try:
        experiment_id = choose_experiment_id(args.experiment_id, args.resume)  # before compiling: nothing patched
    except (ExperimentIdError, CheckpointError) as e:
        raise _error(e) from e
    compiled = _compiled(args, experiment_id)

    from modalities.training.distributed import TrainingSetupError  # torch: only once the config is sound
    from modalities.training.entry import TrainingConfigError

    try:
        if args.resume not in (None, "auto"):
            resolve_checkpoint(args.resume)
        train_compiled(
            compiled,
            experiment_id=experiment_id,
            experiments_root=args.experiments_root or "experiments",
            resume_from=args.resume,
        )
    except ConfigError as e:
        print(render_text(e.diagnostics, color=use_color()), file=sys.stderr)
        raise _Reported(e) from e
    except (TrainingConfigError, TrainingSetupError, CheckpointError, BuildError) as e:
        raise _error(e) from e
    except RuntimeError as e:
        reported = _explained(e)
        if reported is None:
            raise
        raise reported from e


def _compiled(args: argparse.Namespace, experiment_id: str):
    """The config compiled as a training run; its errors reported (by rank 0: every rank compiles the same file)."""
    from modalities.config.compiler import compile_file
    from modalities.config.diagnostics import ConfigError, render_text

    try:
        compiled = compile_file(
            args.config,
            overrides=args.overrides,
            experiment_id=experiment_id,
            experiments_root=args.experiments_root,
            last_checkpoint_info=args.last_checkpoint_info,
            root="training",
            resume_from=args.resume,
        )
        compiled.raise_for_errors()
    except ConfigError as e:
        if _is_rank_zero():
            print(render_text(e.diagnostics, color=use_color()), file=sys.stderr)
        raise _Reported(e) from e
    if compiled.diagnostics and _is_rank_zero():
        print(render_text(compiled.diagnostics, color=use_color()), file=sys.stderr)
    return compiled


def _explained(error: RuntimeError) -> _Reported | None:
    """A run that failed while training, reported with what it means for the run; None for an error that is
    not one of those (it is raised on as it is)."""
    from modalities.training.failures import TrainingFailed
    from modalities.training.gym import DataExhaustedError, NonFiniteLossError

    if isinstance(error, TrainingFailed):
        import traceback

        # The cause as Python tells it (a component's bug needs its traceback), then what it means for the run.
        cause = error.__cause__ or error
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)
        return _error(error)
    if isinstance(error, (NonFiniteLossError, DataExhaustedError)):
        return _error(error)
    return None
