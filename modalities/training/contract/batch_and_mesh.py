"""The run contract's checks of the batch and the device mesh: the sampler against the step profile and the
ranks, the degrees against the world size, and what tensor, pipeline and context parallelism refuse when built."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

from modalities.registry.types import Finding, NodeInfo
from modalities.training.contract.parts import RunParts, finding, known_int


def batch(parts: RunParts) -> Iterator[Finding]:
    """The train batch sampler against the step profile, its sampler's ranks against the mesh."""
    train = parts.train_loader()
    if train is None:
        return
    batch_sampler = parts.batch_sampler(train)
    batch_size = parts.field(batch_sampler, "batch_size")
    micro = known_int(parts.run.settings.step_profile.local_train_micro_batch_size)
    if isinstance(batch_size, int) and micro is not None and batch_size != micro:
        yield finding(
            parts.at(batch_sampler, "batch_size"),
            f"the train batch sampler makes batches of {batch_size} samples, but the step profile says {micro} "
            f"({parts.where(('settings', 'step_profile', 'local_train_micro_batch_size'))}); targets and token "
            "counts computed from the step profile would be wrong",
            hint="use ${settings.step_profile.local_train_micro_batch_size} for both",
        )
    sampler = parts.sampler(batch_sampler)
    replicas = parts.field(sampler, "num_replicas")
    world = parts.world_size()
    tp = parts.model_parallel_degree()
    if isinstance(replicas, int) and world is not None and replicas * tp != world[0]:
        readers = (f"{world[0] // tp} data-parallel ranks ({world[0]} / tensor x pipeline x context degree {tp})"
                   if tp > 1 else f"{world[0]}")
        yield finding(
            parts.at(sampler, "num_replicas"),
            f"the train sampler splits the data over {replicas} ranks, but the run has {readers} "
            f"({parts.where(world[1])}); ranks would read the same or no samples",
            hint="use sampler/resumable_distributed_multi_dim_sampler, which reads the mesh, or the device mesh's "
            "data-parallel degree (number_conversion/parallel_degree)" if tp > 1 else
            "use the device mesh's data-parallel degree (number_conversion/parallel_degree) or "
            "${settings.cuda_env.world_size}",
        )


def replicas_read_their_own_data(parts: RunParts) -> Iterator[Finding]:
    """A mesh-reading sampler keyed on dp_shard gives every replica (dp_replicate) the same samples."""
    mesh = parts.mesh()
    replicate = known_int(parts.field(mesh, "data_parallel_replicate_degree")) or 1
    if replicate == 1:
        return
    for role, loader in parts.loaders():
        sampler = parts.sampler(parts.batch_sampler(loader))
        if sampler is None or sampler.variant_key != "resumable_distributed_multi_dim_sampler":
            continue
        if parts.field(sampler, "data_parallel_key") == "dp_shard":
            yield finding(parts.at(sampler, "data_parallel_key"),
                          f"the {role} sampler reads the dp_shard rank only, so the {replicate} replicas of "
                          f"{parts.where(parts.at(mesh, 'data_parallel_replicate_degree'))} would read the same "
                          "samples", hint="use data_parallel_key: dp (dp_replicate x dp_shard)")


def tensor_parallel(parts: RunParts) -> Iterator[Finding]:
    """What model/gpt2_tp refuses when it splits the model: a degree that does not divide the heads, the
    vocabulary or the MLP's hidden width; qk-norm; dp_replicate with tp; loss parallelism with another loss."""
    mesh = parts.mesh()
    degree = known_int(parts.field(mesh, "tensor_parallel_degree"))
    if degree is None or degree == 1:
        return
    loss = parts.node(getattr(parts.run, "loss_fn", None))  # absent from a run with errors of its own
    if parts.field(mesh, "enable_loss_parallel") is True and loss is not None and \
            (loss.component_key, loss.variant_key) != ("loss", "clm_cross_entropy_loss"):
        yield finding(parts.at(mesh, "enable_loss_parallel"),
                      f"loss parallelism computes a cross-entropy on vocabulary shards; the run's loss_fn "
                      f"({loss.component_key}/{loss.variant_key}) would get sharded logits",
                      hint="use loss/clm_cross_entropy_loss or set enable_loss_parallel: false")
    for info in parts.nodes():
        if info.component_key != "model" or info.variant_key != "gpt2_tp" or info.config is None:
            continue
        model = parts.node(getattr(info.config, "model", None))
        if model is not None and model.config is not None:
            yield from _gpt2_tensor_parallel(parts, mesh, model, degree)


def _gpt2_tensor_parallel(parts: RunParts, mesh: NodeInfo, model: NodeInfo, degree: int) -> Iterator[Finding]:
    from modalities.models.gpt2.config import swiglu_hidden_dim, tensor_parallel_misfits

    replicate = known_int(parts.field(mesh, "data_parallel_replicate_degree"))
    if replicate is not None and replicate > 1:
        yield finding(parts.at(mesh, "data_parallel_replicate_degree"),
                      "model/gpt2_tp cannot be combined with data_parallel_replicate_degree > 1 (as in the "
                      "reference); use dp_shard for data parallelism with tensor parallelism")
    hidden = known_int(parts.field(model, "ffn_hidden"))
    if hidden is not None and parts.field(model, "activation_type") == "swiglu":
        multiple = known_int(parts.field(model, "enforce_swiglu_hidden_dim_multiple_of")) or 1
        hidden = swiglu_hidden_dim(hidden, multiple)
    bad = tensor_parallel_misfits(degree, {
        "n_head_q": known_int(parts.field(model, "n_head_q")), "n_head_kv": known_int(parts.field(model, "n_head_kv")),
        "vocab_size": known_int(parts.field(model, "vocab_size")), "the MLP's hidden width": hidden})
    if bad:
        yield finding(parts.at(mesh, "tensor_parallel_degree"),
                      f"tensor_parallel_degree {degree} must divide {', '.join(bad)} of "
                      f"{parts.where(model.path)}, which model/gpt2_tp splits across the tp ranks",
                      hint="choose a degree that divides them")
    attention = parts.field(model, "attention_config")
    if getattr(attention, "qk_norm_config", None) is not None:
        yield finding(parts.at(model, "attention_config"),
                      "model/gpt2_tp does not support qk-norm yet (attention_config.qk_norm_config)")


def mesh_fits_the_world(parts: RunParts) -> Iterator[Finding]:
    """The degrees must fill the world size, when it is known: set by the launcher (WORLD_SIZE, e.g.
    ``WORLD_SIZE=8 modalities validate``) or written into the mesh; 1 from the default is not a job's size."""
    mesh = parts.mesh()
    world = parts.world_size()
    if mesh is None or world is None or (world[0] == 1 and "WORLD_SIZE" not in os.environ):
        return
    names = ("pipeline_parallel_degree", "data_parallel_replicate_degree", "context_parallel_degree",
             "tensor_parallel_degree")
    degrees = {name: known_int(parts.field(mesh, name)) or 1 for name in names}
    shard = known_int(parts.field(mesh, "data_parallel_shard_degree"))
    fixed = math.prod(degrees.values())
    product = " x ".join(f"{name} {value}" for name, value in degrees.items() if value > 1) or "1"
    if shard == -1 and world[0] % fixed:
        yield finding(parts.at(mesh, "world_size"),
                      f"the world size {world[0]} is not divisible by {product}",
                      hint="launch a multiple of that many processes or change the degrees")
    elif shard is not None and shard != -1 and shard * fixed != world[0]:
        yield finding(parts.at(mesh, "data_parallel_shard_degree"),
                      f"{product} x data_parallel_shard_degree {shard} is {shard * fixed} ranks, but the world size "
                      f"is {world[0]} ({parts.where(world[1])})", hint="use -1 to fill in the shard degree")


def pipeline_parallel(parts: RunParts) -> Iterator[Finding]:
    """What pipeline/staged, pipeline/scheduled and the loop refuse when they are built: a plan that does not
    cut the model into a multiple of pp stages, a schedule that cannot run them or these micro-batches, tied
    weights across stages, a loader batch the schedule does not split, a clipper blind to other stages."""
    mesh = parts.mesh()
    degree = known_int(parts.field(mesh, "pipeline_parallel_degree"))
    if degree is None or degree == 1:
        return
    if parts.run.scheduled_pipeline is None:
        yield finding(parts.at(mesh, "pipeline_parallel_degree"),
                      f"pipeline_parallel_degree {degree} needs the run's scheduled_pipeline (a pipeline/scheduled), "
                      "which runs the model's stages", hint="see the pipeline section of docs/multi-node.md")
    clipper = parts.node(getattr(parts.run, "gradient_clipper", None))
    if clipper is not None and clipper.config is not None and "device_mesh" in type(clipper.config).model_fields \
            and getattr(clipper.config, "device_mesh", None) is None:
        yield finding(clipper.path + ("config",), "with pipeline parallelism the gradient clipper needs the "
                      "device_mesh, so that its norm covers the gradients of every stage",
                      hint="add device_mesh: {instance_key: device_mesh, pass_type: BY_REFERENCE}")
    for info in parts.nodes():
        if info.component_key != "pipeline" or info.config is None:
            continue
        if info.variant_key == "staged":
            yield from _staged_pipeline(parts, info, degree)
        elif info.variant_key == "scheduled":
            yield from _scheduled_pipeline(parts, info, degree)


def _staged_pipeline(parts: RunParts, info: NodeInfo, degree: int) -> Iterator[Finding]:
    from modalities.training.pipeline_plan import (
        GPT2StagesGenerator,
        PipelinePlanError,
        QwenStagesGenerator,
        stage_indices_of_rank,
    )

    generator = parts.node(getattr(info.config, "stages_generator", None))
    layers = known_int(parts.field(generator, "num_model_layers"))
    per_stage = known_int(parts.field(info, "num_layers_per_stage"))
    schedule = parts.field(info, "pp_schedule_name")
    if generator is None or None in (layers, per_stage) or not isinstance(schedule, str):
        return
    generator_class = QwenStagesGenerator if generator.variant_key == "qwen_stages_generator" else \
        GPT2StagesGenerator
    plan = generator_class(layers, known_int(parts.field(generator, "input_layer_equivalence")) or 1,
                           known_int(parts.field(generator, "output_layer_equivalence")) or 1)
    try:
        stages = plan.get_stages(per_stage, degree)
        stage_indices_of_rank(0, degree, len(stages), schedule)
    except PipelinePlanError as e:
        yield finding(parts.at(info, "num_layers_per_stage"), str(e))
    moe = parts.first_with(getattr(info.config, "whole_model", None), "num_layers")
    depth, tying = ("num_layers", "tie_embeddings") if moe is not None else ("n_layer", "use_weight_tying")
    model = moe or parts.first_with(getattr(info.config, "whole_model", None), "n_layer")
    if model is not None and known_int(parts.field(model, depth)) not in (None, layers):
        yield finding(parts.at(generator, "num_model_layers"),
                      f"num_model_layers {layers} is not the {depth} {parts.field(model, depth)} of "
                      f"{parts.where(model.path)}", hint=f"use ${{model_raw.config.{depth}}}")
    if model is not None and parts.field(model, tying) is True:
        yield finding(parts.at(model, tying),
                      "the embedding and the head it is tied to land on different pipeline stages; set "
                      f"{tying}: false for pipeline parallelism")


def _scheduled_pipeline(parts: RunParts, info: NodeInfo, degree: int) -> Iterator[Finding]:
    from modalities.training.pipeline_plan import microbatch_misfit

    micro = known_int(parts.run.settings.step_profile.local_train_micro_batch_size)
    batch_size, size = known_int(parts.field(info, "batch_size")), known_int(parts.field(info, "microbatch_size"))
    schedule = parts.field(info, "pp_schedule_name")
    if micro is not None and batch_size is not None and batch_size != micro:
        yield finding(parts.at(info, "batch_size"),
                      f"batch_size {batch_size} is not the loader's batch of {micro} samples (local_train_micro_"
                      "batch_size); each loader batch is what the schedule splits into micro-batches",
                      hint="use ${settings.step_profile.local_train_micro_batch_size}")
    if batch_size and size and not batch_size % size and isinstance(schedule, str):
        misfit = microbatch_misfit(schedule, batch_size // size, degree)
        if misfit:
            yield finding(parts.at(info, "microbatch_size"), misfit)


def context_parallel(parts: RunParts) -> Iterator[Finding]:
    """What context parallelism needs: model/gpt2 with torch's attention (which ring attention replaces), or
    model/moe without expert parallelism, under model/fsdp2_wrapped (which averages the gradients of the
    sequence's shares), and sequences the degree divides."""
    mesh = parts.mesh()
    degree = known_int(parts.field(mesh, "context_parallel_degree"))
    if degree is None or degree == 1:
        return
    length = known_int(parts.run.settings.step_profile.sequence_length)
    if length is not None and length % degree:
        yield finding(parts.at(mesh, "context_parallel_degree"),
                      f"context_parallel_degree {degree} does not divide the sequence length {length} "
                      f"({parts.where(('settings', 'step_profile', 'sequence_length'))}); every rank holds an equal "
                      "share of each sequence", hint=f"use a sequence length divisible by {2 * degree} (twice the "
                      "degree balances causal attention over the ranks)")
    chain = list(parts.chain(parts.model_ref()))
    if chain and not any((info.component_key, info.variant_key) == ("model", "fsdp2_wrapped") for info in chain):
        yield finding(chain[0].path, "with context parallelism the model must be wrapped by model/fsdp2_wrapped, "
                      "which averages the gradients of the ranks sharing a sequence",
                      hint="wrap it in model/fsdp2_wrapped with the device_mesh")
    model = parts.model()
    if model is None:
        return
    if (model.component_key, model.variant_key) == ("model", "moe"):
        experts = known_int(parts.field(mesh, "expert_parallel_degree")) or 1
        if experts > 1 or any(i.variant_key == "ep_wrapped" and parts.field(i, "ep_mesh_dim_name") not in (None, "ep")
                              for i in parts.nodes() if i.component_key == "model"):
            yield finding(parts.at(mesh, "context_parallel_degree"), "context parallelism does not combine with "
                          "expert parallelism yet: the experts' gradients would not be averaged over the ranks "
                          "sharing a sequence", hint="set expert_parallel_degree to 1 (every rank holds all "
                          "experts) or context_parallel_degree to 1")
    elif (model.component_key, model.variant_key) != ("model", "gpt2"):
        yield finding(model.path, f"context parallelism is built for model/gpt2 and model/moe, not "
                      f"{model.component_key}/{model.variant_key}: the model must take the positions of the tokens "
                      "a rank holds")
    elif parts.field(model, "attention_implementation") not in (None, "pytorch_flash"):
        yield finding(parts.at(model, "attention_implementation"),
                      f"context parallelism runs torch's ring attention in place of torch's scaled_dot_product_"
                      f"attention; attention_implementation {parts.field(model, 'attention_implementation')} "
                      "bypasses it", hint="use attention_implementation: pytorch_flash")
