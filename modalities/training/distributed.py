"""Process-group setup: torchrun's environment, or a single process without it."""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from typing import NoReturn

import torch
import torch.distributed as dist


_started_process_group = False


class TrainingSetupError(RuntimeError):
    """A problem with the run's configuration or environment, found before training starts."""




def env_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))




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
    global _started_process_group
    _started_process_group = True


def started_process_group() -> bool:
    """Whether this process started a process group, whose background threads outlive its destruction."""
    return _started_process_group or (dist.is_available() and dist.is_initialized())


def local_device(device_type: str) -> torch.device:
    return torch.device("cuda", env_local_rank()) if device_type == "cuda" else torch.device("cpu")


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def exit_process(exit_code: int) -> NoReturn:
    """End a process that ran collectives, flushing its output but skipping interpreter finalization.

    A backend's worker thread may still be releasing the tensors of the last collective when Python finalizes.
    Releasing a tensor takes the GIL; a finalizing interpreter answers by ending that thread, which the C++
    runtime turns into SIGABRT, so a run that succeeded exits as failed and torchrun tears its peers down.
    destroy_process_group does not prevent it: once torch._dynamo is imported (DTensor and FSDP2 import it)
    the group stays referenced from C++, so its threads are never joined. Training closes its own files and
    loggers before returning, so nothing is left for finalization to do but flush the standard streams.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be written to it anyway
            pass
    logging.shutdown()
    os._exit(exit_code)
