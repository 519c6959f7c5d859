"""The reference's FSDP1 components, carried out with FSDP2.

Most published Modalities configs name ``model/fsdp1_wrapped`` (and its activation checkpointing, checkpoint
loading and clipping). torch's FSDP1 is deprecated and does not run on CPU ranks, so those configs are carried
out with FSDP2 (``fully_shard``) on a data-parallel mesh derived from the sharding strategy:

    FULL_SHARD       shard over all ranks, parameters freed after forward
    SHARD_GRAD_OP    shard over all ranks, parameters kept from forward to backward (ZeRO-2)
    HYBRID_SHARD     shard within a node, replicate across nodes (HSDP); _HYBRID_SHARD_ZERO2 keeps parameters
    NO_SHARD         replicate everywhere (DDP-like)

Mixed precision maps each FSDP1 policy to FSDP2's (param_dtype, reduce_dtype). The numbers trained are those
of FSDP1; the state dicts have the same names, and ``checkpoint_saving_execution/fsdp1`` writes the reference's
``.bin`` files, so checkpoints load where the config says.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict
from torch.distributed.fsdp import FSDPModule

from modalities.checkpointing.compat import fit_state_dict_to_model
from modalities.checkpointing.fsdp1 import read_optimizer_state_file
from modalities.checkpointing.layout import CheckpointError
from modalities.checkpointing.torch_loading import read_state_dict_file
from modalities.training.config import FSDP1_PRECISION
from modalities.training.distributed import TrainingSetupError
from modalities.training.model_wrappers import find_blocks, get_fsdp2_wrapped_model


class _DtypePair:
    def __init__(self, param_dtype: str, reduce_dtype: str):
        self.param_dtype, self.reduce_dtype = param_dtype, reduce_dtype


def fsdp1_mesh(sharding_strategy: str, device_type: str | None = None):
    """The data-parallel mesh a sharding strategy describes, over every rank."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from modalities.training.distributed import ensure_process_group

    device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    ensure_process_group(device_type)
    world = dist.get_world_size()
    if sharding_strategy in ("HYBRID_SHARD", "_HYBRID_SHARD_ZERO2"):
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        if world % per_node:
            raise TrainingSetupError(
                f"sharding_strategy {sharding_strategy}: world size {world} is not a multiple of the ranks per node "
                f"({per_node}, LOCAL_WORLD_SIZE)"
            )
        replicate, shard = world // per_node, per_node
    elif sharding_strategy == "NO_SHARD":
        replicate, shard = world, 1
    else:
        replicate, shard = 1, world
    if replicate == 1:
        return init_device_mesh(device_type, (shard,), mesh_dim_names=("dp_shard",))
    return init_device_mesh(device_type, (replicate, shard), mesh_dim_names=("dp_replicate", "dp_shard"))


def get_fsdp1_wrapped_model(
    model: nn.Module,
    block_names: list[str],
    mixed_precision_settings="FP_32",
    sharding_strategy="FULL_SHARD",
    sync_module_states: bool = True,
) -> nn.Module:
    """``model/fsdp1_wrapped`` (and the older ``fsdp_wrapped``): sharded per block and at the root with FSDP2."""
    strategy = getattr(sharding_strategy, "value", sharding_strategy)
    precision = getattr(mixed_precision_settings, "value", mixed_precision_settings)
    if not isinstance(precision, str):  # an explicit {param_dtype, reduce_dtype}
        dtypes = precision
    else:
        dtypes = _DtypePair(*FSDP1_PRECISION[precision])
    reshard = strategy in ("FULL_SHARD", "HYBRID_SHARD")
    return get_fsdp2_wrapped_model(model, fsdp1_mesh(strategy), block_names, dtypes, reshard_after_forward=reshard)


def get_activation_checkpointed_fsdp1_model(model: nn.Module, activation_checkpointing_modules: list[str] = ()) -> nn.Module:
    """``model/activation_checkpointed_fsdp1``: every module whose class is named is checkpointed, in place."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper

    if not activation_checkpointing_modules:
        return model
    blocks = {id(block) for block in find_blocks(model, list(activation_checkpointing_modules))}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in blocks and type(parent).__name__ != "CheckpointWrapper":
                parent.register_module(name, checkpoint_wrapper(child, checkpoint_impl=CheckpointImpl.NO_REENTRANT))
    return model


class FSDP1CheckpointLoading:
    """Loads a full state dict file into a model, then shards it as the reference's FSDP1 loading does."""

    def __init__(self, global_rank: int, block_names: list[str], mixed_precision_settings, sharding_strategy):
        self.block_names = block_names
        self.mixed_precision_settings = mixed_precision_settings
        self.sharding_strategy = sharding_strategy

    def load_model_checkpoint(self, model: nn.Module, file_path: Path) -> nn.Module:
        state = fit_state_dict_to_model(read_state_dict_file(Path(file_path), torch.device("cpu")), model)
        try:
            if isinstance(model, FSDPModule):
                set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=True))
                return model
            if any(p.is_meta for p in model.parameters()):
                model.to_empty(device="cpu")
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"{file_path} does not fit the model {type(model).__name__}: {e}") from None
        return get_fsdp1_wrapped_model(
            model, self.block_names, self.mixed_precision_settings, self.sharding_strategy
        )

    def load_optimizer_checkpoint(self, optimizer, model: nn.Module, file_path: Path):
        """The file's optimizer state (moments, step counts) in ``optimizer``; its hyperparameters stay the
        config's (the scheduler built next starts from them), and the file's are recorded for the executor to
        compare (optim/continuation.py). The reference's files hold no scheduler state."""
        from modalities.optim.continuation import config_hyperparameters_kept

        state = read_optimizer_state_file(Path(file_path))
        steps = re.findall(r"seen_steps_(\d+)", Path(file_path).name)
        with config_hyperparameters_kept(optimizer, str(file_path), None, int(steps[0]) if len(steps) == 1 else None):
            # Entries a scheduler added to the saved groups (initial_lr, ...) must exist in ours for the state to
            # map onto them.
            for ours, saved in zip(optimizer.param_groups, state["param_groups"]):
                for key, value in saved.items():
                    if key != "params":
                        ours.setdefault(key, value)
            try:
                set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
            except (KeyError, RuntimeError, ValueError) as e:
                raise CheckpointError(
                    f"{file_path} does not fit the optimizer of {type(model).__name__}: {e}"
                ) from None
        return optimizer
