"""``modalities convert_pytorch_to_hf_checkpoint``: the reference's spelling of ``modalities convert to-hf``.

The reference's command always writes the model with its own modelling code; this spelling therefore implies
``--remote-code``: a model a transformers architecture holds is still written as that architecture, one none holds
with its modelling code, and the command says which."""

from __future__ import annotations

import argparse

from modalities.cli.reference_aliases import note


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config_file_path", required=True, help="a config whose model loads the checkpoint")
    parser.add_argument("--output_hf_checkpoint_dir", required=True, help="the folder to write")
    parser.add_argument("--prediction_key", default=None, help="accepted; the exported model returns logits")


def run(args: argparse.Namespace) -> int:
    from modalities.cli import convert

    note("modalities convert_pytorch_to_hf_checkpoint", "modalities convert to-hf CONFIG OUT_DIR --remote-code")
    return convert.run(
        argparse.Namespace(target="to-hf", source=args.config_file_path, output=args.output_hf_checkpoint_dir, model_key=None,
                           tokenizer=None, overrides=[], remote_code=True)
    )
