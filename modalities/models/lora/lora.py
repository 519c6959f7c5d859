"""LoRA (Hu et al. 2021, arXiv 2106.09685): y = W x + b + (alpha / r) * B A dropout(x), with W and b frozen.

A wrapped layer stays an ``nn.Linear`` with the same ``weight`` and ``bias`` names, so base checkpoints still
load into a wrapped model; the adapters add ``lora_A`` (r, in) and ``lora_B`` (out, r). B starts at zero, so a
freshly wrapped model computes exactly what the base model computes.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

ADAPTER_FORMAT = "modalities-lora-adapters/1"


class LoRALinear(nn.Linear):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        r: int,
        alpha: float,
        dropout: float = 0.0,
        bias: bool = True,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.r = r
        self.alpha = alpha
        self.scaling = alpha / r
        self.lora_dropout = nn.Dropout(dropout)
        self.lora_A = nn.Parameter(torch.empty(r, in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(out_features, r, device=device, dtype=dtype))
        # A like a Linear's weight, B zero: the adapter starts as the zero map but gets gradients through B.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    @classmethod
    def from_linear(cls, linear: nn.Linear, r: int, alpha: float, dropout: float) -> "LoRALinear":
        """A LoRA layer sharing ``linear``'s weight and bias tensors (no copy), frozen."""
        layer = cls(
            linear.in_features,
            linear.out_features,
            r,
            alpha,
            dropout,
            bias=linear.bias is not None,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        layer.weight = linear.weight
        layer.bias = linear.bias
        layer.weight.requires_grad_(False)
        if layer.bias is not None:
            layer.bias.requires_grad_(False)
        layer.train(linear.training)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.linear(x, self.weight, self.bias)
        return base + F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B) * self.scaling

    def merged_linear(self) -> nn.Linear:
        """A plain Linear computing what this layer computes (in eval mode): W + (alpha / r) * B A."""
        merged = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        with torch.no_grad():
            delta = (self.lora_B.float() @ self.lora_A.float()) * self.scaling
            merged.weight.copy_((self.weight.float() + delta).to(self.weight.dtype))
            if self.bias is not None:
                merged.bias.copy_(self.bias)
        merged.train(self.training)
        return merged

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r={self.r}, alpha={self.alpha}"


def _matches_name(name: str, patterns: list[str]) -> bool:
    """A pattern matches the whole dotted name or any tail of it (``q_proj`` matches ``blocks.0.attn.q_proj``)."""
    parts = name.split(".")
    tails = [".".join(parts[i:]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(tail, p) for p in patterns for tail in tails)


def select_target_linears(
    model: nn.Module, target_modules: list[str] | None, target_layer_class_names: list[str] | None
) -> list[str]:
    """Dotted names of the nn.Linear layers chosen by name pattern or by the class name of an enclosing module."""
    patterns = list(target_modules or [])
    class_names = set(target_layer_class_names or [])
    inside_target_class: set[str] = set()
    for name, module in model.named_modules():
        if type(module).__name__ in class_names:
            inside_target_class.update(f"{name}.{sub}" if name else sub for sub, _ in module.named_modules())
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and not isinstance(module, LoRALinear)
        and (_matches_name(name, patterns) or name in inside_target_class)
    ]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _parameter_counts(model: nn.Module) -> tuple[int, int]:
    # A tied parameter (e.g. embedding and LM head) is one tensor: count it once.
    unique = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in unique if p.requires_grad), sum(p.numel() for p in unique)


def apply_lora(
    model: nn.Module,
    r: int,
    alpha: float,
    dropout: float = 0.0,
    target_modules: list[str] | None = None,
    target_layer_class_names: list[str] | None = None,
) -> nn.Module:
    """Freeze ``model`` and wrap the selected Linear layers with adapters, in place.

    Sets ``model.lora_trainable_parameters`` and ``model.lora_total_parameters`` and logs them.
    """
    names = select_target_linears(model, target_modules, target_layer_class_names)
    if not names:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(
            f"LoRA: no Linear layer matches target_modules={target_modules} / "
            f"target_layer_class_names={target_layer_class_names}; the model's Linear layers are "
            f"{linears[:20]}{' ...' if len(linears) > 20 else ''}"
        )
    for param in model.parameters():
        param.requires_grad_(False)
    for name in names:
        _set_submodule(model, name, LoRALinear.from_linear(model.get_submodule(name), r, alpha, dropout))
    trainable, total = _parameter_counts(model)
    model.lora_trainable_parameters = trainable
    model.lora_total_parameters = total
    logger.info(
        "LoRA r=%d alpha=%g on %d Linear layers: %d trainable of %d parameters (%.3f%%)",
        r,
        alpha,
        len(names),
        trainable,
        total,
        100.0 * trainable / max(total, 1),
    )
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight; the LoRA layers become plain (still frozen) Linear layers."""
    for name, layer in lora_layers(model).items():
        merged = layer.merged_linear()
        merged.requires_grad_(False)
        _set_submodule(model, name, merged)
    model.lora_trainable_parameters = 0
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter weights, keyed as in the model's state dict."""
    return {
        f"{name}.{part}": getattr(layer, part).detach().cpu().clone()
        for name, layer in lora_layers(model).items()
        for part in ("lora_A", "lora_B")
    }


def save_lora_adapters(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the adapters (and their r and alpha) to ``path``: a temporary file renamed into place."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("save_lora_adapters: the model has no LoRA layers (apply_lora first; merged ones are gone)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": ADAPTER_FORMAT,
        "layers": {name: {"r": layer.r, "alpha": layer.alpha} for name, layer in layers.items()},
        "state_dict": lora_state_dict(model),
    }
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_lora_adapters(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load adapters written by ``save_lora_adapters`` into a model wrapped with the same layers, r and alpha."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LoRA adapter file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable LoRA adapter file ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != ADAPTER_FORMAT:
        raise ValueError(f"{path}: not a LoRA adapter file of format '{ADAPTER_FORMAT}' (save_lora_adapters writes it)")
    layers = lora_layers(model)
    saved_layers: dict = payload["layers"]
    missing, unexpected = sorted(set(layers) - set(saved_layers)), sorted(set(saved_layers) - set(layers))
    if missing or unexpected:
        raise ValueError(
            f"{path}: the adapters do not fit this model: layers without saved adapters {missing}, saved adapters "
            f"for layers the model does not adapt {unexpected}; wrap the model with the same target layers"
        )
    for name, layer in layers.items():
        saved = saved_layers[name]
        if saved["r"] != layer.r or saved["alpha"] != layer.alpha:
            raise ValueError(
                f"{path}: layer '{name}' was saved with r={saved['r']}, alpha={saved['alpha']} but the model uses "
                f"r={layer.r}, alpha={layer.alpha}"
            )
    state = payload["state_dict"]
    with torch.no_grad():
        for name, layer in layers.items():
            for part in ("lora_A", "lora_B"):
                target = getattr(layer, part)
                source = state[f"{name}.{part}"]
                if source.shape != target.shape:
                    raise ValueError(
                        f"{path}: '{name}.{part}' has shape {tuple(source.shape)}, the model expects "
                        f"{tuple(target.shape)}"
                    )
                target.copy_(source)
    return model


def build_lora_model(
    model: nn.Module,
    r: int,
    alpha: float,
    dropout: float = 0.0,
    target_modules: list[str] | None = None,
    target_layer_class_names: list[str] | None = None,
    adapter_path: str | None = None,
) -> nn.Module:
    """Builder of `model/lora`."""
    apply_lora(model, r, alpha, dropout, target_modules, target_layer_class_names)
    if adapter_path is not None:
        load_lora_adapters(model, adapter_path)
    return model
