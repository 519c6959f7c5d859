"""Token routing of a mixture-of-experts block, as the reference computes it, in small functions whose
arithmetic a test can work out by hand.

For N tokens, E experts and top-k routing:

    probs     = softmax(logits)                         logits: router(x) (+ noise in training) / temperature
    top-k     = the k largest probs per token; weights = those probs / (their sum + 1e-9)
    capacity  = max(ceil(capacity_factor x N / E), min_capacity)      (not multiplied by k, as in the reference)
    a slot (token n, expert e) is kept while e has taken at most `capacity` slots of tokens 0..n (token order)
    load_e    = kept slots of expert e;  importance_e = sum_n probs[n, e]
    balance   = E x sum_e (importance_e / (sum importance + 1e-9)) x (load_e / (sum load + 1e-9))
    z         = mean_n logsumexp(logits[n])^2
    aux loss  = aux_coef x balance (if aux_coef > 0)  +  z_coef x z (if z_coef > 0)

Counting is done in integers (the reference counts in the activation dtype, which in bf16 miscounts past 256
tokens per expert).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Routing:
    """Where a block's tokens go. The kept slots are sorted by expert (token order within an expert)."""

    token_ids: torch.Tensor  # (S,) the token of each kept slot
    weights: torch.Tensor  # (S,) its routing weight
    counts: torch.Tensor  # (E,) kept slots per expert (int64), the segments of the sorted slots
    demand: torch.Tensor  # (E,) slots the router chose per expert, before capacity (int64)
    probs: torch.Tensor  # (N, E) router probabilities (float32)
    capacity: int


def top_k_weights(probs: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, experts), each (N, k): the k most probable experts per token, weights renormalized over them."""
    values, experts = torch.topk(probs, k=top_k, dim=-1)
    return values / (values.sum(dim=-1, keepdim=True) + 1e-9), experts


def kept_slots(experts: torch.Tensor, num_experts: int, capacity: int) -> torch.Tensor:
    """(N, k) bool: whether each chosen slot fits its expert's capacity, first come (lowest token index) first
    served."""
    chosen = F.one_hot(experts, num_classes=num_experts).sum(dim=1)  # (N, E): 1 where token n chose expert e
    position = torch.cumsum(chosen, dim=0)  # (N, E): token n's place in expert e's queue, counting from 1
    return (position <= capacity).gather(1, experts)


def route(logits: torch.Tensor, top_k: int, capacity: int) -> Routing:
    """The routing of N tokens from their (N, E) float32 router logits (noise and temperature applied)."""
    num_experts = logits.shape[-1]
    probs = torch.softmax(logits, dim=-1)
    weights, experts = top_k_weights(probs, top_k)
    keep = kept_slots(experts, num_experts, capacity).reshape(-1)
    flat_experts = experts.reshape(-1)
    slot_tokens = torch.arange(experts.shape[0], device=logits.device).repeat_interleave(top_k)
    kept_experts = flat_experts[keep]
    order = torch.argsort(kept_experts, stable=True)
    return Routing(
        token_ids=slot_tokens[keep][order],
        weights=weights.reshape(-1)[keep][order],
        counts=torch.bincount(kept_experts, minlength=num_experts),
        demand=torch.bincount(flat_experts, minlength=num_experts),
        probs=probs,
        capacity=capacity,
    )


def load_balancing_loss(probs: torch.Tensor, load: torch.Tensor) -> torch.Tensor:
    """E x sum_e (importance share of e) x (kept-load share of e): 1 when both are uniform, up to E when one
    expert takes everything (Switch Transformer's loss, the reference's normalization)."""
    importance = probs.sum(dim=0)
    load = load.to(probs.dtype)
    return probs.shape[-1] * torch.sum(importance / (importance.sum() + 1e-9) * (load / (load.sum() + 1e-9)))


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """mean over tokens of logsumexp(logits)^2 (ST-MoE): keeps the router logits small."""
    return torch.mean(torch.logsumexp(logits, dim=-1) ** 2)


def auxiliary_loss(routing: Routing, logits: torch.Tensor, aux_loss_coef: float,
                   z_loss_coef: float) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(the block's auxiliary loss, its balance part, its z part), each already weighted; None where its coef is
    0 (the total is None when both are)."""
    balance = aux_loss_coef * load_balancing_loss(routing.probs, routing.counts) if aux_loss_coef > 0 else None
    z = z_loss_coef * router_z_loss(logits) if z_loss_coef > 0 else None
    parts = [part for part in (balance, z) if part is not None]
    return (sum(parts[1:], parts[0]) if parts else None), balance, z
