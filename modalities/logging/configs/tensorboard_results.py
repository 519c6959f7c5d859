"""Config of ``results_subscriber/tensorboard`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, Field, PositiveStrictInt, StrictInt


class TensorBoardResultSubscriberConfig(ComponentConfig):
    """Writes TensorBoard event files (rank 0): losses, learning rate, grad norm, throughput and MFU as scalars
    at each logged step, and the resolved config as text. Needs `pip install 'modalities[tensorboard]'`."""

    global_rank: StrictInt | None = Field(
        default=None, ge=0, description="This process's rank; only rank 0 writes (default: from torch.distributed)."
    )
    log_dir: str | None = Field(
        default=None, description="Folder of the event files; default: `tensorboard/` in the experiment folder."
    )
    flush_secs: PositiveStrictInt = Field(default=30, description="Seconds between flushes of pending events.")
