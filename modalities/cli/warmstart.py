"""``modalities warmstart --config_file_path CFG --last_checkpoint_info_file_path FILE``: the reference's
warm start, i.e. ``modalities train CFG --last-checkpoint-info FILE``."""

from __future__ import annotations

import argparse

from modalities.cli.reference_aliases import add_reference_training_arguments, note, train_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_reference_training_arguments(parser, warmstart=True)


def run(args: argparse.Namespace) -> int:
    from modalities.cli import train

    note("modalities warmstart ...", "modalities train CFG --last-checkpoint-info FILE")
    return train.run(train_arguments(args, warmstart=True))
