"""The base of the distributed samplers' configs: their rank must be below num_replicas."""

from pydantic import model_validator

from modalities.registry.types import ComponentConfig


class _RankedSamplerConfig(ComponentConfig):
    @model_validator(mode="after")
    def _rank_below_replicas(self):
        if isinstance(self.rank, int) and isinstance(self.num_replicas, int) and self.rank >= self.num_replicas:
            raise ValueError(f"rank ({self.rank}) must be below num_replicas ({self.num_replicas})")
        return self
