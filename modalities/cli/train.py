"""``modalities train CONFIG``: validate the whole config, start the process group, build and train.

Under torchrun every rank runs this. The experiment id comes from rank 0 (set MODALITIES_EXPERIMENT_ID to
choose it), so every rank writes into the same experiment folder.
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


def _error(message: str) -> int:
    print(f"modalities train: error: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    from modalities.api import Main, load_app_config_dict
    from modalities.config.build import BuildError
    from modalities.config.diagnostics import ConfigError, render_text

    def compile_main(experiment_id: str | None) -> Main:
        config = load_app_config_dict(
            args.config, experiment_id, overrides=args.overrides, experiments_root=args.experiments_root
        )
        main = Main(config, experiments_root=args.experiments_root, experiment_id=experiment_id)
        main.validate()
        return main

    experiment_id = args.experiment_id or os.environ.get(EXPERIMENT_ID_ENV)
    try:
        main = compile_main(experiment_id)
    except ConfigError as e:
        print(render_text(e.diagnostics, color=use_color()), file=sys.stderr)
        return 1

    from modalities.checkpointing.layout import CheckpointError, resolve_checkpoint
    from modalities.training.distributed import TrainingSetupError, check_device_available, ensure_process_group
    from modalities.training.entry import TrainingConfigError, check_training_config, device_type_of, run_training

    try:
        check_training_config(main.config_dict)
        if args.resume is not None:
            resolve_checkpoint(args.resume)
        device_type = device_type_of(main.config_dict)
        check_device_available(device_type)
        ensure_process_group(device_type)
        shared_id = _rank0_experiment_id(main)
        if shared_id != main.config_dict.get("settings", {}).get("experiment_id") and experiment_id is None:
            main = compile_main(shared_id)  # this rank's timestamp differed from rank 0's
        main.experiment_id = main.experiment_id or shared_id
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


def _rank0_experiment_id(main) -> str | None:
    import torch.distributed as dist

    settings = main.config_dict.get("settings", {})
    own = settings.get("experiment_id") if isinstance(settings, dict) else None
    if dist.get_world_size() == 1:
        return own
    box = [own]
    dist.broadcast_object_list(box, src=0)
    return box[0]
