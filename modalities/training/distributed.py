"""Process-group setup: torchrun's environment, or a single process without it."""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


class TrainingSetupError(RuntimeError):
    """A problem with the run's configuration or environment, found before training starts."""


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def env_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_device_available(device_type: str) -> None:
    if device_type == "cuda" and not torch.cuda.is_available():
        raise TrainingSetupError(
            "device_mesh.config.device_type is 'cuda' but this machine has no CUDA device; "
            "train on the CPU with --set device_mesh.config.device_type=cpu"
        )
    if device_type == "cuda" and env_local_rank() >= torch.cuda.device_count():
        raise TrainingSetupError(
            f"LOCAL_RANK {env_local_rank()} has no GPU (this node has {torch.cuda.device_count()}); "
            "launch at most one process per GPU (torchrun --nproc_per_node)"
        )


def ensure_process_group(device_type: str) -> None:
    """Start the process group once: NCCL on CUDA, gloo on CPU. Without torchrun, a one-rank group in memory."""
    if dist.is_initialized():
        return
    check_device_available(device_type)
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(env_local_rank())
    timeout = timedelta(seconds=int(os.environ.get("MODALITIES_DIST_TIMEOUT_S", "600")))
    if "MASTER_ADDR" in os.environ and "RANK" in os.environ:
        dist.init_process_group(backend=backend, timeout=timeout)
    else:
        # Single process without torchrun: a one-rank group needs no rendezvous, so no port is taken.
        store = dist.HashStore()
        dist.init_process_group(backend=backend, store=store, rank=0, world_size=1, timeout=timeout)


def local_device(device_type: str) -> torch.device:
    return torch.device("cuda", env_local_rank()) if device_type == "cuda" else torch.device("cpu")


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
