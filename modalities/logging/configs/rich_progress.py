"""Config of ``progress_subscriber/rich`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import (
    ComponentConfig,
    ComponentRef,
    Field,
    NonNegativeStrictInt,
    PositiveStrictInt,
    StrictInt,
)


class RichProgressSubscriberConfig(ComponentConfig):
    """A live progress bar (rank 0 only) with the step, the latest training loss and tokens/s."""

    global_rank: StrictInt = Field(ge=0, description="This process's rank; only rank 0 draws.")
    num_seen_steps: NonNegativeStrictInt = Field(default=0, description="Steps already done when the run starts.")
    num_target_steps: PositiveStrictInt = Field(description="Steps of the whole run (the bar's total).")
    train_dataloader_tag: str = Field(default="train", description="Tag of the training data loader.")
    eval_dataloaders: list[ComponentRef["data_loader"]] | None = Field(
        default=None, description="Evaluation loaders (one line each while evaluating)."
    )
