"""Small stand-in components (model, data, loss, optimizer, clipper, scheduler) for executor tests, registered
by the plugin `tests.training.standins_plugin`: the executor's behaviour is tested independently of the other
areas' components."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from modalities.batch import DatasetBatch
from modalities.models.model import NNModel
from modalities.registry.types import ComponentConfig, ComponentRef, Field


class TinyBlock(nn.Module):
    def __init__(self, n_embd: int):
        super().__init__()
        self.fc = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        return x + torch.nn.functional.gelu(self.fc(x))


class TinyLM(NNModel):
    def __init__(self, vocab_size: int, n_embd: int, n_layer: int, sample_key: str, prediction_key: str, seed: int = 0):
        super().__init__(seed=seed)
        self.sample_key, self.prediction_key = sample_key, prediction_key
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.h = nn.ModuleList(TinyBlock(n_embd) for _ in range(n_layer))
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, inputs):
        x = self.wte(inputs[self.sample_key])
        for block in self.h:
            x = block(x)
        return {self.prediction_key: self.head(x)}


class TinyLMConfig(ComponentConfig):
    vocab_size: int = Field(description="v")
    n_embd: int = Field(description="e")
    n_layer: int = Field(description="l")
    sample_key: str = Field(description="s")
    prediction_key: str = Field(description="p")
    seed: int = Field(default=0, description="seed")


class TinyLoss:
    def __init__(self, target_key: str, prediction_key: str):
        self.target_key, self.prediction_key = target_key, prediction_key

    def __call__(self, result):
        logits = result.get_predictions(self.prediction_key)
        return nn.functional.cross_entropy(logits.flatten(0, 1).float(), result.get_targets(self.target_key).flatten())


class TinyLossConfig(ComponentConfig):
    target_key: str = Field(description="t")
    prediction_key: str = Field(description="p")


def tiny_adam_w(wrapped_model, lr: float):
    return torch.optim.AdamW(wrapped_model.parameters(), lr=lr, weight_decay=0.0)


class TinyAdamWConfig(ComponentConfig):
    wrapped_model: ComponentRef["model"] = Field(description="m")
    lr: float = Field(description="lr")


def tiny_step_lr(optimizer, step_size: int, gamma: float):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)


class TinyStepLRConfig(ComponentConfig):
    optimizer: ComponentRef["optimizer"] = Field(description="o")
    step_size: int = Field(description="s")
    gamma: float = Field(description="g")


class TinyClipper:
    def __init__(self, wrapped_model, max_norm: float):
        self.model, self.max_norm = wrapped_model, max_norm

    def clip_gradients(self):
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_norm)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


class TinyClipperConfig(ComponentConfig):
    wrapped_model: ComponentRef["model"] = Field(description="m")
    max_norm: float = Field(description="n")


class TinyLoader(DataLoader):
    """Sequences following token -> (token * 3 + 1) % vocab from random starts: learnable, deterministic."""

    def __init__(self, num_samples, sequence_length, vocab_size, batch_size, rank, world_size, sample_key, target_key, dataloader_tag, seed=0):
        g = torch.Generator().manual_seed(seed)
        tokens = torch.empty(num_samples, sequence_length + 1, dtype=torch.long)
        tokens[:, 0] = torch.randint(0, vocab_size, (num_samples,), generator=g)
        for i in range(1, sequence_length + 1):
            tokens[:, i] = (tokens[:, i - 1] * 3 + 1) % vocab_size
        sampler = DistributedSampler(TensorDataset(tokens), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)

        def collate(rows):
            t = torch.stack([r[0] for r in rows])
            return DatasetBatch(samples={sample_key: t[:, :-1]}, targets={target_key: t[:, 1:]})

        super().__init__(TensorDataset(tokens), batch_size=batch_size, sampler=sampler, collate_fn=collate, drop_last=True)
        self.dataloader_tag = dataloader_tag


class TinyLoaderConfig(ComponentConfig):
    num_samples: int = Field(description="n")
    sequence_length: int = Field(description="s")
    vocab_size: int = Field(description="v")
    batch_size: int = Field(description="b")
    rank: int = Field(description="r")
    world_size: int = Field(description="w")
    sample_key: str = Field(description="s")
    target_key: str = Field(description="t")
    dataloader_tag: str = Field(description="t")
    seed: int = Field(default=0, description="s")


STANDINS = [
    ("model", "tiny_lm", TinyLM, TinyLMConfig),
    ("loss", "tiny_ce", TinyLoss, TinyLossConfig),
    ("optimizer", "tiny_adam_w", tiny_adam_w, TinyAdamWConfig),
    ("scheduler", "tiny_step_lr", tiny_step_lr, TinyStepLRConfig),
    ("gradient_clipper", "tiny", TinyClipper, TinyClipperConfig),
    ("data_loader", "tiny", TinyLoader, TinyLoaderConfig),
]
