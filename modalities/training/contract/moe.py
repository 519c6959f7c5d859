"""The run contract's checks of a mixture-of-experts run (model/moe, model/ep_wrapped, model/qwen_tp,
loss/moe_cross_entropy): the loss against the model, the expert-parallel degree against the experts and the
mesh, model/qwen_tp's divisibility, a capacity that drops slots even when balanced."""

from __future__ import annotations

import math
from collections.abc import Iterator

from modalities.registry.types import Finding, NodeInfo
from modalities.training.contract.parts import WARNING, RunParts, finding, known_int


def moe_models(parts: RunParts) -> list[NodeInfo]:
    return [info for info in parts.nodes() if (info.component_key, info.variant_key) == ("model", "moe")]


def moe_loss(parts: RunParts) -> Iterator[Finding]:
    """loss/moe_cross_entropy on a model/moe, and a model/moe trained with its auxiliary losses."""
    yield from _loss_matches_the_model(parts, moe_models(parts))


def expert_parallelism(parts: RunParts) -> Iterator[Finding]:
    """Each model/ep_wrapped against its mesh dimension, the experts and FSDP2; each model/qwen_tp's degree
    against its heads and vocabulary."""
    for info in parts.nodes():
        if info.component_key != "model" or info.config is None:
            continue
        if info.variant_key == "ep_wrapped":
            yield from _expert_parallel(parts, info)
        elif info.variant_key == "qwen_tp":
            yield from _qwen_tensor_parallel(parts, info)


def expert_capacity(parts: RunParts) -> Iterator[Finding]:
    for model in moe_models(parts):
        yield from _capacity(parts, model)


def experts_split_by_a_wrapper(parts: RunParts) -> Iterator[Finding]:
    """An expert-parallel degree without a model/ep_wrapped leaves every expert on every rank."""
    mesh = parts.mesh()
    degree = known_int(parts.field(mesh, "expert_parallel_degree")) or 1
    if degree > 1 and not any((i.component_key, i.variant_key) == ("model", "ep_wrapped") for i in parts.nodes()):
        yield finding(parts.at(mesh, "expert_parallel_degree"),
                      f"expert_parallel_degree {degree}, but no model/ep_wrapped splits the experts: every rank holds "
                      "all of them", WARNING, hint="wrap the model/moe in model/ep_wrapped before FSDP2")


def _wrapped_model(parts: RunParts, info: NodeInfo) -> NodeInfo | None:
    """The model/moe a wrapper (or a pipeline selector of its parts) ends at."""
    return next((i for i in parts.chain(getattr(info.config, "model", None)) if i.variant_key == "moe"), None)


def _loss_matches_the_model(parts: RunParts, models: list[NodeInfo]) -> Iterator[Finding]:
    loss = parts.node(getattr(parts.run, "loss_fn", None))
    if loss is None:
        return
    if (loss.component_key, loss.variant_key) == ("loss", "moe_cross_entropy") and loss.config is not None:
        target = parts.node(getattr(loss.config, "model", None))
        if target is not None and _wrapped_model(parts, loss) is None:
            yield finding(parts.at(loss, "model"),
                          f"loss/moe_cross_entropy adds the auxiliary losses of a model/moe's blocks, but its model "
                          f"({target.component_key}/{target.variant_key} at {parts.where(target.path)}) is none",
                          hint="give it the model/moe (model_raw), or use loss/clm_cross_entropy_loss")
    elif models and loss.component_key == "loss" and loss.variant_key == "clm_cross_entropy_loss":
        yield finding(loss.path, f"the model/moe at {parts.where(models[0].path)} computes load-balancing and z "
                      "losses that this loss leaves out: nothing keeps the router balanced", WARNING,
                      hint="use loss/moe_cross_entropy with model: the model/moe")


def _expert_parallel(parts: RunParts, info: NodeInfo) -> Iterator[Finding]:
    mesh = parts.mesh()
    model = _wrapped_model(parts, info)
    name = parts.field(info, "ep_mesh_dim_name")
    if name not in (None, "ep"):
        field = {"tp": "tensor_parallel_degree", "pp": "pipeline_parallel_degree", "cp": "context_parallel_degree",
                 "dp_shard": "data_parallel_shard_degree", "dp_replicate": "data_parallel_replicate_degree"}.get(name)
        degree, where = (known_int(parts.field(mesh, field)), parts.at(mesh, field)) if field else (None, None)
        if name == "tp" and any(i.variant_key in ("qwen_tp", "gpt2_tp") for i in parts.nodes()):
            yield finding(parts.at(info, "ep_mesh_dim_name"), "ep_mesh_dim_name tp splits the experts over the ranks "
                          "that model/qwen_tp splits the attention over: give expert parallelism its own dimension",
                          hint="remove ep_mesh_dim_name and set device_mesh.config.expert_parallel_degree")
        yield from _borrowed_dimension_reads_its_own_data(parts, info, name)
    else:
        degree, where = known_int(parts.field(mesh, "expert_parallel_degree")) or 1, parts.at(mesh, "expert_parallel_degree")
        shard = _data_parallel_shard(parts, mesh)
        if shard is not None and degree > 1 and shard % degree:
            yield finding(where, f"expert_parallel_degree {degree} must divide the data-parallel shard degree {shard}: "
                          "expert-parallel ranks are data-parallel ranks splitting the experts",
                          hint="choose a degree dividing data_parallel_shard_degree")
    experts = known_int(parts.field(model, "moe_num_experts")) if model is not None else None
    if degree is not None and experts is not None and experts % degree:
        yield finding(where, f"{experts} experts (moe_num_experts of {parts.where(model.path)}) do not split evenly "
                      f"over expert-parallel degree {degree}", hint="choose a degree that divides moe_num_experts")
    yield from _averaged_by_fsdp2(parts, info, degree)


def _borrowed_dimension_reads_its_own_data(parts: RunParts, info: NodeInfo, name: str) -> Iterator[Finding]:
    """The ranks of a borrowed dimension average their gradients like data-parallel ranks, and the run counts
    their tokens: a sampler keyed on the mesh's dp_shard would give them the same samples."""
    for role, loader in parts.loaders():
        sampler = parts.sampler(parts.batch_sampler(loader))
        if role == "train" and sampler is not None and sampler.variant_key == "resumable_distributed_multi_dim_sampler":
            yield finding(sampler.path, f"the experts borrow the mesh's {name} dimension "
                          f"({parts.where(parts.at(info, 'ep_mesh_dim_name'))}), whose ranks then are data-parallel, "
                          "but this sampler reads the dp_shard rank only: they would read the same samples",
                          hint="use sampler/resumable_distributed_sampler over the world (rank, num_replicas), as the "
                          "reference's config does, or device_mesh.config.expert_parallel_degree")


def _averaged_by_fsdp2(parts: RunParts, info: NodeInfo, degree: int | None) -> Iterator[Finding]:
    if not degree or degree == 1:
        return
    chain = list(parts.chain(parts.model_ref()))
    if any(i.path == info.path for i in chain) and not any(i.variant_key == "fsdp2_wrapped" for i in chain):
        yield finding(info.path, "with expert parallelism the model must be wrapped by model/fsdp2_wrapped, which "
                      "averages the experts' and the other parameters' gradients over the data-parallel ranks",
                      hint="wrap it in model/fsdp2_wrapped with the device_mesh")


def _data_parallel_shard(parts: RunParts, mesh: NodeInfo | None) -> int | None:
    shard = known_int(parts.field(mesh, "data_parallel_shard_degree"))
    if shard is not None and shard != -1:
        return shard
    world = parts.world_size()
    if world is None or (world[0] == 1 and shard == -1):
        return None
    others = math.prod(known_int(parts.field(mesh, name)) or 1 for name in (
        "pipeline_parallel_degree", "data_parallel_replicate_degree", "context_parallel_degree",
        "tensor_parallel_degree"))
    return world[0] // others if not world[0] % others else None


def _qwen_tensor_parallel(parts: RunParts, info: NodeInfo) -> Iterator[Finding]:
    mesh = parts.mesh()
    degree = known_int(parts.field(mesh, "tensor_parallel_degree"))
    model = _wrapped_model(parts, info)
    if degree is None or degree == 1 or model is None:
        return
    bad = [f"{name} {size}" for name in ("n_heads", "n_kv_heads", "vocab_size")
           if (size := known_int(parts.field(model, name))) is not None and size % degree]
    if bad:
        yield finding(parts.at(mesh, "tensor_parallel_degree"),
                      f"tensor_parallel_degree {degree} must divide {', '.join(bad)} of {parts.where(model.path)}, "
                      "which model/qwen_tp splits across the tp ranks", hint="choose a degree that divides them")


def _capacity(parts: RunParts, model: NodeInfo) -> Iterator[Finding]:
    """A capacity that drops slots even under perfect balance: E x capacity < tokens x k per forward."""
    profile = parts.run.settings.step_profile
    tokens = known_int(profile.local_train_micro_batch_size)
    length = known_int(profile.sequence_length)
    for info in parts.nodes():
        if (info.component_key, info.variant_key) == ("pipeline", "scheduled"):
            tokens = known_int(parts.field(info, "microbatch_size")) or tokens
    values = [parts.field(model, name) for name in ("moe_capacity_factor", "moe_num_experts", "moe_top_k",
                                                      "moe_min_capacity")]
    if tokens is None or length is None or any(v is None for v in values):
        return
    factor, experts, top_k, minimum = values
    tokens *= length
    capacity = max(math.ceil(factor * tokens / experts), minimum)
    fits, slots = min(experts * capacity, tokens * top_k), tokens * top_k
    if fits < slots:
        yield finding(parts.at(model, "moe_capacity_factor"),
                      f"a forward of {tokens} tokens routes {slots} slots ({top_k} per token), but {experts} experts take "
                      f"{capacity} each: at least {1 - fits / slots:.1%} of the slots are dropped even when the router is "
                      "perfectly balanced (as the reference computes capacity: not multiplied by top_k)", WARNING,
                      hint=f"moe_capacity_factor {top_k} (= moe_top_k) or more fits a balanced router's slots")
