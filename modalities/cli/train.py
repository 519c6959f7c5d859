"""``modalities train CONFIG``: validate the whole config, start the process group, build and train.

Under torchrun every rank runs this. The experiment id comes from rank 0 (``run_training`` agrees on it; set
MODALITIES_EXPERIMENT_ID or --experiment-id to choose it), so every rank writes into the same experiment folder.
"""

from __future__ import annotations

import argparse
import os
import sys

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


def _is_rank_zero() -> bool:
    """Before the process group exists, torchrun's RANK variable tells the ranks apart."""
    return os.environ.get("RANK", "0") == "0"


def _error(message: str) -> int:
    print(f"modalities train: error: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
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
        return 1
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
        return 1
    except (TrainingConfigError, TrainingSetupError, CheckpointError, BuildError) as e:
        return _error(str(e))
    except RuntimeError as e:
        from modalities.training.gym import DataExhaustedError, NonFiniteLossError

        if isinstance(e, (NonFiniteLossError, DataExhaustedError)):
            return _error(str(e))
        raise
    return 0
