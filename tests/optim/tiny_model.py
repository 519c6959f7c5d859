"""A tiny NNModel with weight-decay groups, for the optim tests (the real GPT-2 lives in modalities.models)."""

from __future__ import annotations

import torch
from torch import nn

from modalities.models.model import NNModel

TINY_WEIGHT_DECAY_GROUPS = {
    "linear": [r"\.attn\.", r"\.mlp\.", r"^lm_head\."],
    "embedding": [r"^wte\."],
    "layernorm": [r"norm\."],
}


class TinyBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.Linear(dim, dim)
        self.mlp = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(torch.tanh(self.attn(self.norm(x))))


class TinyLM(NNModel):
    def __init__(self, vocab_size: int = 13, dim: int = 8, n_layer: int = 2, seed: int = 0):
        super().__init__(seed=seed, weight_decay_groups=TINY_WEIGHT_DECAY_GROUPS)
        self.wte = nn.Embedding(vocab_size, dim)
        self.blocks = nn.ModuleList(TinyBlock(dim) for _ in range(n_layer))
        self.final_norm = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.wte(inputs["input_ids"])
        for block in self.blocks:
            x = block(x)
        return {"logits": self.lm_head(self.final_norm(x))}


def tiny_batch(vocab_size: int = 13, batch_size: int = 3, seq_len: int = 5, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch_size, seq_len + 1), generator=generator)
    return ids[:, :-1], ids[:, 1:]
