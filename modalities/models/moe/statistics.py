"""What a run logs about its routers, so that a collapsing router shows on the progress line, in results.jsonl,
TensorBoard and ``modalities plot``.

Each MoE block sums, over the training forwards since it was last read, the slots the router chose per expert
(demand), the slots kept under capacity, and its weighted balance and z losses (model.py). At each logging
step :meth:`MoEStatistics.metrics` reads every block of this rank, sums over all ranks (one all-reduce; every
rank calls it) and returns, for the interval:

- ``moe aux loss``: the auxiliary loss added to the training loss, summed over the blocks (mean per forward);
  ``moe z loss`` its z part when the z-loss is on;
- ``moe over capacity``: the share of routed slots dropped because their expert was full;
- ``moe load max/mean``: the busiest expert's demand over the mean demand, in the worst block (1: even; E/k: every
  token of that block goes to the same k experts);
- ``moe tokens per expert``: demand per expert, per block (a list of lists, in results.jsonl).

Tensor-parallel peers route the same tokens: token counts are divided by the tp degree; losses are means per
forward, which duplicates do not change. Pipeline stages hold different blocks: a block's row is zero elsewhere.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from modalities.models.model_parts import as_parts
from modalities.models.moe.model import QwenModel


class MoEStatistics:
    def __init__(self, models: list[QwenModel], num_layers: int, num_experts: int, duplicates: int = 1,
                 z_loss: bool = False):
        self.models, self.num_layers, self.num_experts = models, num_layers, num_experts
        self.duplicates, self.z_loss = duplicates, z_loss

    @classmethod
    def of(cls, model_parts: nn.Module | list[nn.Module], device_mesh=None) -> MoEStatistics | None:
        """The statistics of a run's model (parts), or None when it has no MoE blocks (the same on every rank: a
        pipeline stage holding none is still a part of a QwenModel)."""
        parts = as_parts(model_parts)
        models = [part for part in parts if isinstance(part, QwenModel)]
        if not models:
            return None
        config = models[0].config
        names = getattr(device_mesh, "mesh_dim_names", None) or ()
        # tp peers route the same tokens, unless the experts borrowed tp (ep_wrapped's older spelling: own data)
        duplicates = device_mesh["tp"].size() if "tp" in names and getattr(device_mesh, "ep_borrowed_dim", None) != "tp" \
            else 1
        return cls(models, config.num_layers, config.moe_num_experts, duplicates, config.moe_z_loss_coef > 0)

    @torch.no_grad()
    def metrics(self, device: torch.device) -> dict[str, object]:
        """The interval's routing metrics (collective over all ranks); {} when no block ran in training."""
        counts = torch.zeros(self.num_layers, 2, self.num_experts, dtype=torch.float64, device=device)
        losses = torch.zeros(self.num_layers, 3, dtype=torch.float64, device=device)
        for model in self.models:
            for layer, block in model.moe_blocks().items():
                popped = block.pop_statistics()
                if popped is not None:
                    counts[layer] += popped[0].to(device)
                    losses[layer] += popped[1].to(device)
        if dist.is_initialized() and dist.get_world_size() > 1:
            packed = torch.cat([counts.flatten(), losses.flatten()])
            dist.all_reduce(packed)
            counts, losses = packed[: counts.numel()].view_as(counts), packed[counts.numel():].view_as(losses)
        return summarize(counts / self.duplicates, losses, self.z_loss)


def summarize(counts: torch.Tensor, losses: torch.Tensor, z_loss: bool = False) -> dict[str, object]:
    """The metrics of summed statistics: ``counts`` (layers, [demand, kept], E), ``losses`` (layers, [balance,
    z, forwards])."""
    ran = losses[:, 2] > 0
    if not bool(ran.any()):
        return {}
    demand, kept = counts[ran, 0], counts[ran, 1]
    per_forward = losses[ran, :2] / losses[ran, 2:3]
    metrics: dict[str, object] = {
        "moe aux loss": float(per_forward.sum()),
        "moe over capacity": float(1 - kept.sum() / demand.sum()) if float(demand.sum()) else 0.0,
        "moe load max/mean": float((demand.max(dim=1).values / demand.mean(dim=1).clamp_min(1e-12)).max()),
        "moe tokens per expert": [[round(v) for v in row] for row in counts[:, 0].tolist()],
    }
    if z_loss:
        metrics["moe z loss"] = float(per_forward[:, 1].sum())
    return metrics
