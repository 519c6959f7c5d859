"""Modalities as a library: register a custom collate function at runtime and train with it from YAML.

torchrun --nproc_per_node 2 examples/library_usage/main.py          # from the repository root, on CPU
python examples/library_usage/main.py                              # one process
python examples/library_usage/main.py --resume experiments/<id>/checkpoints/latest
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from pydantic import BaseModel

from modalities import Main, load_app_config_dict
from modalities.batch import DatasetBatch
from modalities.training.distributed import exit_process

CONFIG = Path(__file__).resolve().parent / "config_lorem_ipsum.yaml"


class CustomGPT2LLMCollateFnConfig(BaseModel):
    sample_key: str
    target_key: str
    custom_attribute: str


class CustomGPT2LLMCollateFn:
    """GPT-2 collation (inputs tokens[:, :-1], targets tokens[:, 1:]) that also reports a custom attribute."""

    def __init__(self, sample_key: str, target_key: str, custom_attribute: str):
        self.sample_key = sample_key
        self.target_key = target_key
        self.custom_attribute = custom_attribute
        self.reported = False

    def __call__(self, batch: list[dict[str, torch.Tensor]]) -> DatasetBatch:
        sample_tensor = torch.stack([torch.as_tensor(d[self.sample_key], dtype=torch.long) for d in batch])
        samples = {self.sample_key: sample_tensor[:, :-1]}
        targets = {self.target_key: sample_tensor[:, 1:]}
        if not self.reported:  # once per loader and rank keeps the log readable
            print(f"Custom attribute: {self.custom_attribute}", flush=True)
            self.reported = True
        return DatasetBatch(targets=targets, samples=samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG, help="training config (default: %(default)s)")
    parser.add_argument("--experiments-root", type=Path, default=Path("experiments"), help="where runs are written")
    parser.add_argument("--experiment-id", default=None, help="experiment folder name (default: a timestamp)")
    parser.add_argument("--resume", default=None, help="checkpoint folder to continue from")
    args = parser.parse_args()

    # load and resolve the config file
    config_dict = load_app_config_dict(args.config, args.experiment_id, experiments_root=args.experiments_root)

    # the Main entry point of modalities, built from the config
    modalities_main = Main(
        config_dict=config_dict, experiments_root=args.experiments_root, experiment_id=args.experiment_id
    )

    # add the custom component: the YAML can now use collate_fn/custom_gpt_2_llm_collator
    modalities_main.add_custom_component(
        component_key="collate_fn",
        variant_key="custom_gpt_2_llm_collator",
        custom_component=CustomGPT2LLMCollateFn,
        custom_config=CustomGPT2LLMCollateFnConfig,
    )

    # run the experiment (every rank under torchrun; rank 0's experiment id is used by all)
    modalities_main.run(resume_from=args.resume)


if __name__ == "__main__":
    main()
    # Leave without interpreter finalization, as the `modalities` command does: torch's gloo threads can still be
    # releasing the last collective's tensors then, and that aborts a run that succeeded (see exit_process).
    exit_process(0)
