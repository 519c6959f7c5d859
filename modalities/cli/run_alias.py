"""``modalities run --config_file_path CFG``: the reference's spelling of ``modalities train CFG``."""

from __future__ import annotations

import argparse

from modalities.cli.reference_aliases import add_reference_training_arguments, note, train_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_reference_training_arguments(parser, warmstart=False)


def run(args: argparse.Namespace) -> int:
    from modalities.cli import train

    note("modalities run --config_file_path CFG", "modalities train CFG")
    return train.run(train_arguments(args, warmstart=False))
