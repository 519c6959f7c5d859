"""`model/moe`: the reference's Qwen-style mixture-of-experts decoder (Qwen3-MoE's architecture).

    token ids -> token_emb -> num_layers x TransformerBlock -> final_norm -> lm_head -> logits
    TransformerBlock:  x + attn(pre_attn_norm(x)),  then  x + ffn(pre_ffn_norm(x))
    attn: q/k/v projections, RMSNorm of each query and key head, RoPE, causal grouped-query attention, o_proj
    ffn (MoEBlock): a router picks k of E experts per token (routing.py), the experts run on their tokens as one
         grouped computation (experts.py), the outputs are summed with the routing weights

Same YAML, same model as the reference: module and parameter names (``layers.<i>.attn.q_proj``,
``layers.<i>.ffn.router``, ``layers.<i>.ffn.experts.w1``, ...), the block class names configs give to FSDP2 and
activation checkpointing (TransformerBlock) and its weight-decay groups. Every name maps one to one onto
transformers' Qwen3MoeForCausalLM (``model.embed_tokens``, ``model.layers.<i>.self_attn.q_proj``,
``input_layernorm``, ``post_attention_layernorm``, ``mlp.gate``, ``mlp.experts.gate_up_proj`` = cat(w1, w2),
``mlp.experts.down_proj`` = w3, ``model.norm``, ``lm_head``); with no token over capacity the two compute the same
function.

Each MoEBlock keeps its last auxiliary loss (``last_aux_loss``, read by loss/moe_cross_entropy), the sum of its
auxiliary losses since last read (a pipeline stage's share of the reported loss) and, in training, sums of its
routing statistics since they were last read (statistics.py). A block given an ``aux_loss_backward_scale`` (by
loss/moe_cross_entropy) carries its auxiliary loss's gradient on its output (``AuxLossGradient``): the router then
learns from it in the backward of whatever stage holds the block, not only in the stage that computes the loss. The blocks live in a
ModuleDict keyed "0", "1", ... so a pipeline stage can drop layers and keep the names; the model's forward runs
the modules a stage holds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from modalities.models.gpt2.model import POSITIONS_KEY, held_positions, rotary_cos_sin, rotate_half
from modalities.models.model import NNModel
from modalities.models.model_parts import as_parts, in_stand_in_forward
from modalities.models.moe.config import MoEModelConfig, moe_capacity
from modalities.models.moe.experts import GroupedExperts
from modalities.models.moe.routing import auxiliary_loss, route

# Searched in parameter names (the reference's groups); every parameter falls in exactly one.
WEIGHT_DECAY_GROUPS = {
    "linear": ["q_proj", "k_proj", "v_proj", "o_proj", "lm_head", "router", "w1", "w2", "w3"],
    "embedding": ["token_emb"],
    "layernorm": ["pre_attn_norm", "pre_ffn_norm", "final_norm", "q_norm", "k_norm"],
}


def _in_backward() -> bool:
    """Whether autograd is running a backward pass, where activation checkpointing recomputes a forward."""
    current = getattr(torch._C, "_current_graph_task_id", None)
    return current is not None and current() != -1


class AuxLossGradient(torch.autograd.Function):
    """The identity on a block's output, whose backward also hands the block's auxiliary loss the gradient
    ``scale``: what that loss would receive as a term of the training loss, backpropagated times ``scale`` (1 /
    the micro-batches the step's loss is averaged over). So the auxiliary loss need not travel to the loss: every
    pipeline stage's routers learn from it in that stage's ordinary backward (Megatron's MoEAuxLossAutoScaler)."""

    @staticmethod
    def forward(ctx, output: torch.Tensor, aux_loss: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale, ctx.aux_dtype, ctx.aux_device = scale, aux_loss.dtype, aux_loss.device
        return output

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output, torch.full((), ctx.scale, dtype=ctx.aux_dtype, device=ctx.aux_device), None


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight, computed in float32 (as transformers' Qwen3MoeRMSNorm)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class GroupedQueryAttention(nn.Module):
    def __init__(self, config: MoEModelConfig):
        super().__init__()
        d_model = config.d_model
        self.n_heads, self.n_kv_heads = config.n_heads, config.n_kv_heads
        self.head_dim = d_model // config.n_heads
        self.rope_base = config.rope_base
        self.q_proj = nn.Linear(d_model, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d_model, bias=False)
        self.q_norm = RMSNorm(self.head_dim, eps=config.norm_eps)
        self.k_norm = RMSNorm(self.head_dim, eps=config.norm_eps)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``positions`` (batch, tokens): where the tokens held stand in their sequences, when they are not 0, 1,
        2, ... (a context-parallel rank's share; its attention is then torch's ring attention)."""
        B, T, _ = x.shape
        # -1: under tensor parallelism a rank holds some of the heads.
        q = self.q_norm(self.q_proj(x).view(B, T, -1, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(B, T, -1, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        cos, sin = rotary_cos_sin(T, self.head_dim, self.rope_base, x.device, q.dtype, positions)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        # Query head h reads key/value head h // (n_heads / n_kv_heads), as the reference's expand does.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.shape[1] != k.shape[1])
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MoEBlock(nn.Module):
    """Routed experts in place of a dense feed-forward layer."""

    def __init__(self, config: MoEModelConfig):
        super().__init__()
        self.num_experts, self.top_k = config.moe_num_experts, config.moe_top_k
        self.capacity_factor, self.min_capacity = config.moe_capacity_factor, config.moe_min_capacity
        self.overflow_policy = config.moe_overflow_policy
        self.router_noise_std, self.router_temperature = config.moe_router_noise_std, config.moe_router_temperature
        self.aux_loss_coef, self.z_loss_coef = config.moe_aux_loss_coef, config.moe_z_loss_coef
        self.router_dropout = nn.Dropout(config.moe_router_dropout) if config.moe_router_dropout > 0 else nn.Identity()
        self.router = nn.Linear(config.d_model, config.moe_num_experts, bias=False)
        self.experts = GroupedExperts(config.moe_num_experts, config.d_model, config.moe_d_ff, config.ffn_dropout,
                                      config.moe_experts_backend)
        self.last_aux_loss: torch.Tensor | None = None
        # Set by loss/moe_cross_entropy: the auxiliary loss's gradient then rides on the output (AuxLossGradient).
        self.aux_loss_backward_scale: float | None = None
        self.aux_loss_sum: torch.Tensor | None = None  # over the forwards of data since last read
        # Sums since last read (statistics.py): rows demand and kept per expert, then [balance, z, forwards].
        self.routing_totals: torch.Tensor | None = None
        self.loss_totals: torch.Tensor | None = None

    def router_logits(self, x_flat: torch.Tensor) -> torch.Tensor:
        logits = self.router(self.router_dropout(x_flat).to(self.router.weight.dtype)).float()
        if self.router_noise_std > 0 and self.training:
            logits = logits + torch.randn_like(logits) * self.router_noise_std
        return logits / self.router_temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        x_flat = x.reshape(B * T, D)
        logits = self.router_logits(x_flat)
        routing = route(logits, self.top_k, moe_capacity(self.capacity_factor, B * T, self.num_experts,
                                                            self.min_capacity))
        weights = routing.weights.to(x.dtype)
        expert_out = self.experts(x_flat[routing.token_ids], routing.counts)
        out = x_flat.new_zeros(B * T, D).index_add(0, routing.token_ids, expert_out * weights.unsqueeze(-1))
        if self.overflow_policy == "residual":
            # A token none of whose slots fit (its kept weights sum to ~0) passes its input through.
            assigned = x_flat.new_zeros(B * T).index_add(0, routing.token_ids, weights)
            out = torch.where((assigned < 1e-6).unsqueeze(-1), x_flat, out)
        aux, balance, z = auxiliary_loss(routing, logits, self.aux_loss_coef, self.z_loss_coef)
        # Neither activation checkpointing's recomputation nor a pipeline stage's shape inference is a forward of
        # the run's data: they count in no sum.
        if not _in_backward() and not in_stand_in_forward():
            if aux is not None:
                self.aux_loss_sum = aux.detach() if self.aux_loss_sum is None else self.aux_loss_sum + aux.detach()
            if self.training:
                self._record(routing, balance, z)
        out = out.view(B, T, D)
        if aux is not None and aux.requires_grad and self.aux_loss_backward_scale is not None:
            out, aux = AuxLossGradient.apply(out, aux, self.aux_loss_backward_scale), aux.detach()
        self.last_aux_loss = aux
        return out

    def pop_aux_loss_sum(self) -> torch.Tensor | None:
        """The auxiliary losses of the forwards since the last call, summed (None: none ran, or both coefs are
        0)."""
        total, self.aux_loss_sum = self.aux_loss_sum, None
        return total

    @torch.no_grad()
    def _record(self, routing, balance: torch.Tensor | None, z: torch.Tensor | None) -> None:
        counts = torch.stack([routing.demand, routing.counts]).double()
        losses = torch.stack([balance.detach() if balance is not None else counts.new_zeros(()),
                              z.detach() if z is not None else counts.new_zeros(()),
                              counts.new_ones(())]).double()
        if self.routing_totals is None:
            self.routing_totals, self.loss_totals = counts, losses
        else:
            self.routing_totals += counts
            self.loss_totals += losses

    def pop_statistics(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(demand and kept slots per expert (2, E), [balance loss, z loss, forwards]) summed since the last
        call, or None if the block has not run in training since."""
        if self.routing_totals is None:
            return None
        totals = (self.routing_totals, self.loss_totals)
        self.routing_totals = self.loss_totals = None
        return totals


class TransformerBlock(nn.Module):
    def __init__(self, config: MoEModelConfig):
        super().__init__()
        self.pre_attn_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.attn = GroupedQueryAttention(config)
        self.pre_ffn_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.ffn = MoEBlock(config)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.pre_attn_norm(x), positions)
        return x + self.ffn(self.pre_ffn_norm(x))

    @property
    def aux_loss(self) -> torch.Tensor | None:
        return self.ffn.last_aux_loss


class QwenModel(NNModel):
    """Takes the fields of ``MoEModelConfig`` as keyword arguments (as the reference's QwenModel does)."""

    def __init__(self, **fields):
        fields.pop("use_meta_device", None)
        config = MoEModelConfig.model_validate(fields)
        super().__init__(seed=config.seed, weight_decay_groups=WEIGHT_DECAY_GROUPS)
        self.config = config
        self.sample_key, self.prediction_key = config.sample_key, config.prediction_key
        self.max_seq_len, self.vocab_size = config.max_seq_len, config.vocab_size
        self.token_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleDict({str(i): TransformerBlock(config) for i in range(config.num_layers)})
        self.final_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.token_emb.weight  # the embedding's matrix is kept, as in the reference

    @property
    def use_weight_tying(self) -> bool:  # what pipeline/staged checks
        return self.config.tie_embeddings

    def block_classes(self) -> tuple[type[nn.Module], ...]:
        return (TransformerBlock,)

    def moe_blocks(self) -> dict[int, MoEBlock]:
        """This model's (or pipeline stage's) MoE blocks by layer index."""
        return {int(name): block.ffn for name, block in self.layers.items()} if self.layers is not None else {}

    def forward(self, inputs: dict[str, torch.Tensor] | torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        """A dict holding ``sample_key`` -> ``{prediction_key: logits}``; a tensor (token ids, or a pipeline
        stage's hidden states) -> the tensor the held modules make of it. The tokens' positions, where they are
        not 0, 1, 2, ... (context parallelism): the dict's ``position_ids``, for a tensor those held around the
        pipeline schedule's step (``held_token_positions``)."""
        if isinstance(inputs, dict):
            return {self.prediction_key: self.forward_tokens(inputs[self.sample_key], inputs.get(POSITIONS_KEY))}
        return self.forward_tokens(inputs, held_positions())

    def forward_tokens(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[1] > self.max_seq_len:
            raise ValueError(f"input has {x.shape[1]} tokens but the model's max_seq_len is {self.max_seq_len}; "
                             "raise max_seq_len in the model config or shorten the samples")
        # A pipeline stage holds only some of these modules (pipeline/staged sets the others to None).
        if self.token_emb is not None:
            x = self.token_emb(x)
        for block in self.layers.values() if self.layers is not None else ():
            x = block(x, positions)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.lm_head(x) if self.lm_head is not None else x


def build_moe_model(*, use_meta_device: bool = False, **config) -> QwenModel:
    """Builder of ``model/moe``: on the meta device when asked (parameters are materialized later)."""
    if use_meta_device:
        with torch.device("meta"):
            return QwenModel(**config)
    return QwenModel(**config)


def inactive_parameters_per_token(model: nn.Module | list[nn.Module]) -> int:
    """Expert parameters a token does not use: each MoE block's experts times (E - k) / E (a token runs k of its E
    experts). The whole model's parameters less these are its active parameters per token. DTensors (expert or
    data-parallel shards) count their global size."""
    parts = as_parts(model)
    inactive = 0
    for block in (m for part in parts for m in part.modules() if isinstance(m, MoEBlock)):
        experts = sum(p.numel() for p in block.experts.parameters())
        inactive += experts * (block.num_experts - block.top_k) // block.num_experts
    return inactive
