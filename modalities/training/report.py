"""What rank 0 tells the user about a run: the start banner (where it writes, how big it is, how long it goes)
and the end summary (how far it got, the final losses, where the last checkpoint is).

``describe_run`` gathers the facts once (every rank calls it: the per-rank parameter counts are reduced);
``RunInfo`` carries them to the banner and to every subscriber (the RUN_START message), so TensorBoard and
W&B learn the experiment folder and the resolved config from the same place.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from modalities.logging.broker import Message, MessageType, RunInfo
from modalities.logging.formatting import duration, human
from modalities.models.model_parts import as_parts, sum_over_pipeline_stages
from modalities.training.device_mesh import data_parallel_degree


def count_parameters(model: torch.nn.Module | list[torch.nn.Module]) -> tuple[int, int]:
    """(parameters of the whole model, parameters this rank holds). A DTensor (FSDP2) counts its global size
    and its local shard; an FSDP1 flat parameter counts its original parameters' sizes (no padding) and its
    shard; a plain parameter is whole on every rank."""
    total = local = 0
    seen: set[int] = set()
    parts = as_parts(model)
    for parameter in (p for part in parts for p in part.parameters()):
        if id(parameter) in seen:  # tied weights are one parameter
            continue
        seen.add(id(parameter))
        to_local = getattr(parameter, "to_local", None)
        if to_local is not None:
            total += parameter.numel()
            local += to_local().numel()
        elif hasattr(parameter, "_numels"):
            total += sum(parameter._numels)
            local += parameter.numel()
        else:
            total += parameter.numel()
            local += parameter.numel()
    return total, local


def _min_max_over_ranks(value: int, device: torch.device) -> tuple[int, int]:
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value, value
    low = torch.tensor([value], dtype=torch.int64, device=device)
    high = low.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return int(low.item()), int(high.item())


def _mesh_text(run) -> str | None:
    from torch.distributed.device_mesh import DeviceMesh

    for value in (getattr(run, "device_mesh", None), *(run.model_extra or {}).values()):
        if isinstance(value, DeviceMesh):
            names = value.mesh_dim_names or tuple(f"dim{i}" for i in range(value.ndim))
            text = " x ".join(f"{name}={size}" for name, size in zip(names, value.shape))
            expert_mesh, borrowed = getattr(value, "expert_mesh", None), getattr(value, "ep_borrowed_dim", None)
            if expert_mesh is not None:
                text += f" (experts over ep={expert_mesh['ep'].size()} of dp_shard)"
            elif borrowed is not None:
                text += f" (experts over {borrowed}, which reads its own data)"
            return text
    return None


def _dataset_size(loader) -> int | None:
    inner = getattr(loader, "dataloader", loader)  # a RepeatingDataLoader wraps the loader
    dataset = getattr(inner, "dataset", None)
    try:
        return len(dataset) if dataset is not None else None
    except TypeError:
        return None


def describe_run(
    run,
    *,
    experiment_id: str,
    experiment_folder: Path,
    config_values: dict,
    config_text: str,
    device: torch.device,
    num_seen_steps: int,
    num_seen_tokens: int,
    resumed_from: str | None,
) -> RunInfo:
    """The facts of a built run (collective: every rank calls it)."""
    settings = run.settings
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    from modalities.models.moe.model import inactive_parameters_per_token

    total, local = count_parameters(run.app_state.model)
    total = sum_over_pipeline_stages(total, run.device_mesh)
    inactive = sum_over_pipeline_stages(inactive_parameters_per_token(run.app_state.model), run.device_mesh)
    profile = settings.step_profile
    # A dimension the experts borrowed (ep_wrapped's older spelling) reads its own data: the loop counts it too.
    borrowed = getattr(run.device_mesh, "ep_borrowed_dim", None)
    dp_degree = data_parallel_degree(run.device_mesh) if borrowed else profile.dp_degree or world_size
    samples_per_step = profile.local_train_micro_batch_size * profile.gradient_accumulation_steps * dp_degree
    return RunInfo(
        experiment_id=experiment_id,
        experiment_folder=Path(experiment_folder),
        config=config_values,
        config_text=config_text,
        world_size=world_size,
        device=device.type,
        mesh=_mesh_text(run),
        num_parameters=total,
        num_parameters_per_rank=_min_max_over_ranks(local, device),
        samples_per_step=samples_per_step,
        tokens_per_step=samples_per_step * profile.sequence_length,
        sequence_length=profile.sequence_length,
        micro_batch_size=profile.local_train_micro_batch_size,
        gradient_accumulation_steps=profile.gradient_accumulation_steps,
        dp_degree=dp_degree,
        num_seen_steps=num_seen_steps,
        num_seen_tokens=num_seen_tokens,
        num_target_steps=settings.training_target.num_target_steps,
        num_target_tokens=settings.training_target.num_target_tokens,
        dataset_samples=_dataset_size(run.train_dataloader),
        resumed_from=resumed_from,
        num_active_parameters=total - inactive if inactive else None,
    )


def _lines(rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label.ljust(width)}  {text}" for label, text in rows)


def _active(info: RunInfo) -> str:
    """A mixture of experts: how many of the parameters a token uses."""
    if info.num_active_parameters is None:
        return ""
    return f", {human(info.num_active_parameters)} active per token ({info.num_active_parameters:,})"


def format_banner(info: RunInfo) -> str:
    low, high = info.num_parameters_per_rank
    per_rank = f"{human(low)} on each rank" if low == high else f"{human(low)} to {human(high)} per rank"
    ranks = f"{info.world_size} on {info.device}" + (f", mesh {info.mesh}" if info.mesh else "")
    step = (
        f"{info.tokens_per_step:,} tokens = {info.samples_per_step:,} samples x {info.sequence_length:,} tokens "
        f"(micro-batch {info.micro_batch_size} x {info.gradient_accumulation_steps} accumulated x "
        f"{info.dp_degree} data-parallel)"
    )
    target_tokens = info.num_target_tokens or info.num_target_steps * info.tokens_per_step
    rows = [
        ("experiment", f"{info.experiment_folder}/ (config.yaml, results.jsonl)"),
        ("ranks", ranks),
        ("model", f"{human(info.num_parameters)} parameters ({info.num_parameters:,}){_active(info)}; {per_rank}"),
        ("each step", step),
        ("target", f"{info.num_target_steps:,} steps, {target_tokens:,} tokens"),
    ]
    if info.dataset_samples:
        epochs = info.num_target_steps * info.samples_per_step / info.dataset_samples
        rows.append(
            (
                "train data",
                f"{info.dataset_samples:,} samples of {info.sequence_length:,} tokens: the target is "
                f"{epochs:.3g} epoch{'s' if epochs != 1 else ''}",
            )
        )
    if info.resumed_from:
        rows.append(
            (
                "start",
                f"resuming after step {info.num_seen_steps:,} ({info.num_seen_tokens:,} tokens) from {info.resumed_from}",
            )
        )
    elif info.num_seen_steps:  # a warm start: settings.training_progress says where
        rows.append(("start", f"after step {info.num_seen_steps:,} ({info.num_seen_tokens:,} tokens), as "
                              "settings.training_progress says (a warm start)"))
    else:
        rows.append(("start", "from the beginning (step 0)"))
    return "modalities train\n" + _lines(rows)


class RunSummary:
    """Subscriber (rank 0) that remembers the last training loss and each evaluation loader's last loss, for
    the end summary."""

    def __init__(self, train_tag: str) -> None:
        self.train_tag = train_tag
        self.train_loss: tuple[int, float] | None = None
        self.eval_losses: dict[str, tuple[int, float]] = {}

    def consume_message(self, message: Message) -> None:
        if message.message_type is not MessageType.RESULT:
            return
        result = message.payload
        losses = result.losses or {}
        if result.dataloader_tag == self.train_tag:
            loss = losses.get("train loss avg", next(iter(losses.values()), None))
            if loss is not None:
                self.train_loss = (result.num_train_steps_done, float(loss))
        elif losses:
            self.eval_losses[result.dataloader_tag] = (result.num_train_steps_done, float(next(iter(losses.values()))))

    def close(self) -> None:
        pass

    def format(self, info: RunInfo, final: dict, wall_seconds: float, last_checkpoint: str | None) -> str:
        steps = int(final["num_seen_steps"])
        tokens = int(final["global_num_seen_tokens"])
        this_run_tokens = tokens - info.num_seen_tokens
        rate = f" ({this_run_tokens / wall_seconds:,.0f} tokens/s)" if wall_seconds > 0 else ""
        resumed = f" ({steps - info.num_seen_steps:,} in this run)" if info.num_seen_steps else ""
        losses = []
        if self.train_loss is not None:
            losses.append(f"train {self.train_loss[1]:.4f} (step {self.train_loss[0]}, log-interval mean)")
        losses += [f"{tag} {loss:.4f} (step {step})" for tag, (step, loss) in self.eval_losses.items()]
        rows = [
            ("finished", f"{steps:,} steps{resumed}, {tokens:,} tokens, in {duration(wall_seconds)}{rate}"),
            ("final loss", "; ".join(losses) if losses else "none logged"),
            ("checkpoint", last_checkpoint or "none saved by this run"),
            ("curves", f"modalities plot {info.experiment_folder} -o curves.png"),
        ]
        return "modalities train: done\n" + _lines(rows)
