"""The training contract's checks of a mixture-of-experts run (model/moe, model/ep_wrapped, model/qwen_tp,
loss/moe_cross_entropy), made by `validate` before anything is built; see contract.py for the conventions."""

from __future__ import annotations

import math

from modalities.registry.types import NodeInfo

ERROR, WARNING = "error", "warning"


def _n(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def moe_models(checks) -> list[NodeInfo]:
    return [info for info in checks.view.nodes() if (info.component_key, info.variant_key) == ("model", "moe")]


def borrowed_expert_dims(checks) -> set[str]:
    """Mesh dimensions model/ep_wrapped splits the experts over in the reference's older spelling
    (ep_mesh_dim_name): their ranks are data-parallel ranks, not model-parallel ones."""
    return {name for info in checks.view.nodes() if (info.component_key, info.variant_key) == ("model", "ep_wrapped")
            and (name := checks.field(info, "ep_mesh_dim_name")) not in (None, "ep")}


def check_mixture_of_experts(checks) -> None:
    models = moe_models(checks)
    _loss_matches_the_model(checks, models)
    for info in checks.view.nodes():
        if info.component_key != "model" or info.config is None:
            continue
        if info.variant_key == "ep_wrapped":
            _expert_parallel(checks, info)
        elif info.variant_key == "qwen_tp":
            _qwen_tensor_parallel(checks, info)
    for model in models:
        _capacity(checks, model)
    mesh = checks.node(checks.run.device_mesh)
    degree = _n(checks.field(mesh, "expert_parallel_degree")) or 1
    if degree > 1 and not any((i.component_key, i.variant_key) == ("model", "ep_wrapped") for i in checks.view.nodes()):
        checks.add(checks.at(mesh, "expert_parallel_degree"),
                   f"expert_parallel_degree {degree}, but no model/ep_wrapped splits the experts: every rank holds "
                   "all of them", WARNING, hint="wrap the model/moe in model/ep_wrapped before FSDP2")


def _wrapped_model(checks, info: NodeInfo) -> NodeInfo | None:
    """The model/moe a wrapper (or a pipeline selector of its parts) ends at."""
    return next((i for i in checks.chain(getattr(info.config, "model", None)) if i.variant_key == "moe"), None)


def _loss_matches_the_model(checks, models: list[NodeInfo]) -> None:
    loss = checks.node(getattr(checks.run, "loss_fn", None))
    if loss is None:
        return
    if (loss.component_key, loss.variant_key) == ("loss", "moe_cross_entropy") and loss.config is not None:
        target = checks.node(getattr(loss.config, "model", None))
        if target is not None and _wrapped_model(checks, loss) is None:
            checks.add(checks.at(loss, "model"),
                       f"loss/moe_cross_entropy adds the auxiliary losses of a model/moe's blocks, but its model "
                       f"({target.component_key}/{target.variant_key} at {checks.where(target.path)}) is none",
                       hint="give it the model/moe (model_raw), or use loss/clm_cross_entropy_loss")
    elif models and loss.component_key == "loss" and loss.variant_key == "clm_cross_entropy_loss":
        checks.add(loss.path, f"the model/moe at {checks.where(models[0].path)} computes load-balancing and z "
                   "losses that this loss leaves out: nothing keeps the router balanced", WARNING,
                   hint="use loss/moe_cross_entropy with model: the model/moe")


def _expert_parallel(checks, info: NodeInfo) -> None:
    mesh = checks.node(checks.run.device_mesh)
    model = _wrapped_model(checks, info)
    name = checks.field(info, "ep_mesh_dim_name")
    if name not in (None, "ep"):
        field = {"tp": "tensor_parallel_degree", "pp": "pipeline_parallel_degree", "cp": "context_parallel_degree",
                 "dp_shard": "data_parallel_shard_degree", "dp_replicate": "data_parallel_replicate_degree"}.get(name)
        degree, where = (_n(checks.field(mesh, field)), checks.at(mesh, field)) if field else (None, None)
        if name == "tp" and any(i.variant_key in ("qwen_tp", "gpt2_tp") for i in checks.view.nodes()):
            checks.add(checks.at(info, "ep_mesh_dim_name"), "ep_mesh_dim_name tp splits the experts over the ranks "
                       "that model/qwen_tp splits the attention over: give expert parallelism its own dimension",
                       hint="remove ep_mesh_dim_name and set device_mesh.config.expert_parallel_degree")
        _borrowed_dimension_reads_its_own_data(checks, info, name)
    else:
        degree, where = _n(checks.field(mesh, "expert_parallel_degree")) or 1, checks.at(mesh, "expert_parallel_degree")
        shard = _data_parallel_shard(checks, mesh)
        if shard is not None and degree > 1 and shard % degree:
            checks.add(where, f"expert_parallel_degree {degree} must divide the data-parallel shard degree {shard}: "
                       "expert-parallel ranks are data-parallel ranks splitting the experts",
                       hint="choose a degree dividing data_parallel_shard_degree")
    experts = _n(checks.field(model, "moe_num_experts")) if model is not None else None
    if degree is not None and experts is not None and experts % degree:
        checks.add(where, f"{experts} experts (moe_num_experts of {checks.where(model.path)}) do not split evenly "
                   f"over expert-parallel degree {degree}", hint="choose a degree that divides moe_num_experts")
    _averaged_by_fsdp2(checks, info, degree)


def _borrowed_dimension_reads_its_own_data(checks, info: NodeInfo, name: str) -> None:
    """The ranks of a borrowed dimension average their gradients like data-parallel ranks, and the run counts
    their tokens: a sampler keyed on the mesh's dp_shard would give them the same samples."""
    for role, loader in checks.loaders():
        batch_sampler = checks.node(getattr(loader.config, "batch_sampler", None))
        sampler = checks.node(getattr(batch_sampler.config, "sampler", None)) if batch_sampler and \
            batch_sampler.config else None
        if role == "train" and sampler is not None and sampler.variant_key == "resumable_distributed_multi_dim_sampler":
            checks.add(sampler.path, f"the experts borrow the mesh's {name} dimension "
                       f"({checks.where(checks.at(info, 'ep_mesh_dim_name'))}), whose ranks then are data-parallel, "
                       "but this sampler reads the dp_shard rank only: they would read the same samples",
                       hint="use sampler/resumable_distributed_sampler over the world (rank, num_replicas), as the "
                       "reference's config does, or device_mesh.config.expert_parallel_degree")


def _averaged_by_fsdp2(checks, info: NodeInfo, degree: int | None) -> None:
    if not degree or degree == 1:
        return
    app_state = checks.node(getattr(checks.run, "app_state", None))
    model_ref = getattr(app_state.config, "model", None) if app_state and app_state.config else None
    chain = list(checks.chain(model_ref))
    if any(i.path == info.path for i in chain) and not any(i.variant_key == "fsdp2_wrapped" for i in chain):
        checks.add(info.path, "with expert parallelism the model must be wrapped by model/fsdp2_wrapped, which "
                   "averages the experts' and the other parameters' gradients over the data-parallel ranks",
                   hint="wrap it in model/fsdp2_wrapped with the device_mesh")


def _data_parallel_shard(checks, mesh: NodeInfo | None) -> int | None:
    shard = _n(checks.field(mesh, "data_parallel_shard_degree"))
    if shard is not None and shard != -1:
        return shard
    world = checks.world_size()
    if world is None or (world[0] == 1 and shard == -1):
        return None
    others = math.prod(_n(checks.field(mesh, name)) or 1 for name in (
        "pipeline_parallel_degree", "data_parallel_replicate_degree", "context_parallel_degree",
        "tensor_parallel_degree"))
    return world[0] // others if not world[0] % others else None


def _qwen_tensor_parallel(checks, info: NodeInfo) -> None:
    mesh = checks.node(checks.run.device_mesh)
    degree = _n(checks.field(mesh, "tensor_parallel_degree"))
    model = _wrapped_model(checks, info)
    if degree is None or degree == 1 or model is None:
        return
    bad = [f"{name} {size}" for name in ("n_heads", "n_kv_heads", "vocab_size")
           if (size := _n(checks.field(model, name))) is not None and size % degree]
    if bad:
        checks.add(checks.at(mesh, "tensor_parallel_degree"),
                   f"tensor_parallel_degree {degree} must divide {', '.join(bad)} of {checks.where(model.path)}, "
                   "which model/qwen_tp splits across the tp ranks", hint="choose a degree that divides them")


def _capacity(checks, model: NodeInfo) -> None:
    """A capacity that drops slots even under perfect balance: E x capacity < tokens x k per forward."""
    profile = checks.run.settings.step_profile
    tokens = _n(profile.local_train_micro_batch_size)
    length = _n(profile.sequence_length)
    for info in checks.view.nodes():
        if (info.component_key, info.variant_key) == ("pipeline", "scheduled"):
            tokens = _n(checks.field(info, "microbatch_size")) or tokens
    values = [checks.field(model, name) for name in ("moe_capacity_factor", "moe_num_experts", "moe_top_k",
                                                      "moe_min_capacity")]
    if tokens is None or length is None or any(v is None for v in values):
        return
    factor, experts, top_k, minimum = values
    tokens *= length
    capacity = max(math.ceil(factor * tokens / experts), minimum)
    fits, slots = min(experts * capacity, tokens * top_k), tokens * top_k
    if fits < slots:
        checks.add(checks.at(model, "moe_capacity_factor"),
                   f"a forward of {tokens} tokens routes {slots} slots ({top_k} per token), but {experts} experts take "
                   f"{capacity} each: at least {1 - fits / slots:.1%} of the slots are dropped even when the router is "
                   "perfectly balanced (as the reference computes capacity: not multiplied by top_k)", WARNING,
                   hint=f"moe_capacity_factor {top_k} (= moe_top_k) or more fits a balanced router's slots")
