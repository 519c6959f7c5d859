"""Pipeline parallelism on torch.distributed.pipelining: the reference's `pipeline/*` and `stages_generator/*`.

The run is described as in the reference: ``pipeline/staged`` cuts the whole model into this rank's stage
modules (pruned copies that keep their parameter names, so checkpoints move between layouts), the model parts
are then tensor-parallelized, sharded and initialized like any model (each wrapper takes the list of parts),
``pipeline/builder`` pairs the stages with the wrapped parts and ``pipeline/scheduled`` gives them a schedule
(GPipe, 1F1B, Interleaved1F1B, LoopedBFS). ``pipeline/selector`` hands one piece on (the parts to the optimizer
and app state, the stages to the builder). The training loop runs a step through ``PipelinedStep``: the first
stage feeds token ids, the last computes the loss per micro-batch, gradients flow back through torch's P2P
sends; no collective here is home-made.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh

from modalities.models.gpt2.model import POSITIONS_KEY, held_token_positions
from modalities.models.model_parts import (
    STAGE_MODULES_ATTRIBUTE,
    WHOLE_MODEL_PARAMETERS_ATTRIBUTE,
    stand_in_forward,
)
from modalities.training.distributed import TrainingSetupError
from modalities.training.pipeline_plan import (
    GPT2StagesGenerator,
    PipelinePlanError,
    schedule_class_name,
    stage_indices_of_rank,
)
from modalities.training.step_inputs import loss_parallel_context, model_inputs, plain_tensor, scale_loss_in_backward

PP = "pp"


@dataclass
class Pipeline:
    """This rank's stages, the model parts they run (the same modules) and, once scheduled, the schedule."""

    pp_stages: list[Any]
    model_parts: list[nn.Module]
    pp_schedule: Any = None
    # Set by pipeline/scheduled: what a step needs to feed the schedule.
    num_microbatches: int = 0
    loss_fn: Any = None

    @property
    def has_first_stage(self) -> bool:
        return any(stage.is_first for stage in self.pp_stages)

    @property
    def has_last_stage(self) -> bool:
        return any(stage.is_last for stage in self.pp_stages)


def _zero_filled_stage_class():
    from torch.distributed.pipelining import PipelineStage

    class ZeroFilledPipelineStage(PipelineStage):
        """torch's stage, except that the stand-in inputs with which a later stage infers its tensor shapes (on
        the first step) are zeros rather than uninitialized memory: a model's NaN hook (model_debugging_hook)
        would stop the run on that garbage, and garbage can be slow (denormals) where zeros are not."""

        def _to_tensor(self, arg):
            tensor = super()._to_tensor(arg)
            if not isinstance(arg, torch.Tensor):  # made from metadata: torch.empty
                with torch.no_grad():
                    tensor.zero_()
            return tensor

        def _forward_metadata_inference(self, *args, **kwargs):
            # a forward on stand-ins: the model counts it in no statistics (MoE routing, auxiliary losses)
            with stand_in_forward():
                return super()._forward_metadata_inference(*args, **kwargs)

    return ZeroFilledPipelineStage


def pipeline_mesh(device_mesh: DeviceMesh) -> DeviceMesh:
    if PP not in (device_mesh.mesh_dim_names or ()):
        raise TrainingSetupError(
            "pipeline/staged needs a device mesh with a 'pp' dimension: set device_mesh.config.pipeline_parallel_degree "
            "to 2 or more"
        )
    return device_mesh[PP]


def get_staged_pipeline(
    whole_model: nn.Module,
    stages_generator: GPT2StagesGenerator,
    device_mesh: DeviceMesh,
    local_rank: int,
    pp_schedule_name: str,
    num_layers_per_stage: int,
    **static_io,
) -> Pipeline:
    """`pipeline/staged`: this rank's stage modules, cut from ``whole_model`` (typically on the meta device).
    ``static_io``: the static_io_* fields (all or none): the stages' input and output shapes, so that no stage
    infers them with a forward before the first step."""
    stage_class = _zero_filled_stage_class()
    pp_mesh = pipeline_mesh(device_mesh)
    degree, pp_rank = pp_mesh.size(), pp_mesh.get_local_rank()
    try:
        names_per_stage = stages_generator.get_stages(num_layers_per_stage=num_layers_per_stage, pp_dims=degree)
        indices = stage_indices_of_rank(pp_rank, degree, len(names_per_stage), pp_schedule_name)
    except PipelinePlanError as e:
        raise TrainingSetupError(f"pipeline/staged: {e}") from None
    if getattr(whole_model, "use_weight_tying", False):
        raise TrainingSetupError(
            "pipeline/staged: the model ties its embedding to its head (use_weight_tying), and the two land on "
            "different pipeline stages; set use_weight_tying: false"
        )
    device = torch.device("cuda", local_rank) if device_mesh.device_type == "cuda" else torch.device("cpu")
    stages, parts = [], []
    for index in indices:
        part = stage_module(whole_model, names_per_stage[index])
        parts.append(part)
        shapes = _static_shapes(index, len(names_per_stage), static_io)
        stages.append(stage_class(part, stage_index=index, num_stages=len(names_per_stage), device=device,
                                    group=pp_mesh.get_group(), **shapes))
    return Pipeline(pp_stages=stages, model_parts=parts)


def _static_shapes(index: int, num_stages: int, static_io: dict) -> dict:
    """PipelineStage's input_args and output_args (meta tensors) from the static_io_* fields, or {} without them:
    token ids into the first stage, hidden states between stages, logits out of the last."""
    if not static_io or any(value is None for value in static_io.values()):
        return {}
    batch, length = static_io["static_io_microbatch_size"], static_io["static_io_sequence_length"]
    dtype = _DTYPES[getattr(static_io["static_io_dtype"], "value", static_io["static_io_dtype"])]
    # Hidden states and logits carry gradients: the stages exchange them in backward (as inferred shapes would say).
    hidden = torch.empty(batch, length, static_io["static_io_hidden_dim"], dtype=dtype, device="meta",
                         requires_grad=True)
    inputs = torch.empty(batch, length, dtype=torch.long, device="meta") if index == 0 else hidden
    outputs = (torch.empty(batch, length, static_io["static_io_vocab_size"], dtype=dtype, device="meta",
                           requires_grad=True) if index == num_stages - 1 else hidden)
    return {"input_args": (inputs,), "output_args": (outputs,)}


_DTYPES = {"FP_32": torch.float32, "FP_16": torch.float16, "BF_16": torch.bfloat16}


def stage_module(whole_model: nn.Module, keep: list[str]) -> nn.Module:
    """A copy of ``whole_model`` holding only the modules named in ``keep`` (and what they contain); every kept
    parameter keeps its name. Modules holding nothing kept are removed; the model's forward skips what is
    missing."""
    for name in keep:
        try:
            whole_model.get_submodule(name)
        except AttributeError:
            raise TrainingSetupError(
                f"pipeline/staged: the stages generator names '{name}', which {type(whole_model).__name__} does not "
                "have; use the stages generator of this model"
            ) from None
    part = copy.deepcopy(whole_model)
    _prune(part, "", set(keep))
    setattr(part, STAGE_MODULES_ATTRIBUTE, list(keep))
    setattr(part, WHOLE_MODEL_PARAMETERS_ATTRIBUTE,
            [(name, tuple(p.shape), p.dtype) for name, p in whole_model.named_parameters()])
    return part


def _prune(module: nn.Module, prefix: str, keep: set[str]) -> None:
    for name, child in list(module.named_children()):
        fqn = f"{prefix}{name}"
        if fqn in keep:
            continue
        if any(k.startswith(fqn + ".") for k in keep):
            _prune(child, fqn + ".", keep)
        elif isinstance(module, nn.ModuleDict):
            del module[name]
        elif isinstance(module, nn.ModuleList):
            raise TrainingSetupError(
                f"pipeline/staged: '{fqn}' is in an nn.ModuleList, which cannot lose members without renaming the "
                "rest; the model must keep its blocks in an nn.ModuleDict"
            )
        else:
            setattr(module, name, None)


def get_pipeline(pp_stages: list, model_parts: list[nn.Module], pp_schedule: Any = None) -> Pipeline:
    """`pipeline/builder`: the stages beside the parts as wrapped (tensor parallel, FSDP2: the same modules)."""
    parts = model_parts if isinstance(model_parts, list) else [model_parts]
    stages = pp_stages if isinstance(pp_stages, list) else [pp_stages]
    if len(parts) != len(stages):
        raise TrainingSetupError(f"pipeline/builder: {len(stages)} stages but {len(parts)} model parts")
    for stage, part in zip(stages, parts):
        if stage.submod is not part:
            raise TrainingSetupError(
                "pipeline/builder: model_parts are not the modules of the stages (a wrapper made a copy); build "
                "model_parts from the same pipeline/staged through wrappers that work in place"
            )
    return Pipeline(pp_stages=stages, model_parts=parts, pp_schedule=pp_schedule)


def get_scheduled_pipeline(loss_fn, pp_schedule_name: str, batch_size: int, microbatch_size: int, pp_degree: int,
                           pipeline: Pipeline) -> Pipeline:
    """`pipeline/scheduled`: the pipeline with a schedule running ``batch_size / microbatch_size`` micro-batches.

    The loss of each micro-batch is divided (see ``PipelinedStep``) instead of torch scaling the gradients after
    a step, so gradients accumulated over several steps (gradient_accumulation_steps) are not divided again."""
    from torch.distributed.pipelining.schedules import PipelineScheduleSingle, get_schedule_class

    if batch_size % microbatch_size:
        raise TrainingSetupError(f"pipeline/scheduled: batch_size {batch_size} is not a multiple of microbatch_size "
                                 f"{microbatch_size}")
    num_microbatches = batch_size // microbatch_size
    schedule_class = get_schedule_class(schedule_class_name(pp_schedule_name))
    scaled = _ScaledLoss(loss_fn)
    if issubclass(schedule_class, PipelineScheduleSingle):
        if len(pipeline.pp_stages) != 1:
            raise TrainingSetupError(f"pipeline/scheduled: {pp_schedule_name} runs one stage per rank, this rank has "
                                     f"{len(pipeline.pp_stages)}")
        schedule = schedule_class(pipeline.pp_stages[0], n_microbatches=num_microbatches, loss_fn=scaled,
                                  scale_grads=False)
    else:
        schedule = schedule_class(pipeline.pp_stages, n_microbatches=num_microbatches, loss_fn=scaled,
                                  scale_grads=False)
    pipeline.pp_schedule = schedule
    pipeline.num_microbatches = num_microbatches
    pipeline.loss_fn = scaled
    return pipeline


class _ScaledLoss:
    """The run's loss on one pipeline micro-batch, divided by ``scale`` (micro-batches x accumulation steps), so
    that the summed gradients are those of the mean loss."""

    def __init__(self, loss_fn):
        self.loss_fn = loss_fn
        self.scale = 1

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        from modalities.batch import InferenceResultBatch

        batch = InferenceResultBatch(targets={self.loss_fn.target_key: targets},
                                     predictions={self.loss_fn.prediction_key: logits})
        return self.loss_fn(batch) / self.scale


def select_from_pipeline(pipeline: Pipeline, selection_type: str):
    """`pipeline/selector`: one piece of a pipeline (its model parts, stages or schedule)."""
    selection = getattr(selection_type, "value", selection_type)
    return {"MODEL_PART": pipeline.model_parts, "PP_STAGE": pipeline.pp_stages,
            "PP_SCHEDULE": pipeline.pp_schedule}[selection]


class PipelinedStep:
    """Forward and backward of one loader batch through the schedule; the loss is known on the last stage only.

    ``run(batch, accumulation_steps)`` returns the batch's mean loss (over its pipeline micro-batches) on a rank
    holding the last stage; elsewhere what its stages add to that loss (the auxiliary losses of MoE blocks, so
    that the loss summed over a pipeline's ranks is the whole model's) or None where they add nothing."""

    def __init__(self, pipeline: Pipeline, loss_parallel: bool = False, context_parallel=None):
        if pipeline.pp_schedule is None:
            raise TrainingSetupError("scheduled_pipeline has no schedule: build it with pipeline/scheduled")
        self.pipeline = pipeline
        self.schedule = pipeline.pp_schedule
        self.loss_fn = pipeline.loss_fn.loss_fn
        first = pipeline.model_parts[0]
        self.sample_key = getattr(first, "sample_key", None)
        self.loss_parallel = loss_parallel
        self.context_parallel = context_parallel

    def _targets(self, targets: dict) -> torch.Tensor:
        mask = targets.get("attention_mask")
        targets = targets[self.loss_fn.target_key]
        if mask is not None:  # folded in: the schedule hands the loss one target tensor per micro-batch
            ignore = getattr(self.loss_fn, "ignore_index", -100)
            targets = torch.where(mask.to(targets.device) == 0, torch.full_like(targets, ignore), targets)
        return targets.contiguous()

    def _check_batch(self, batch) -> None:
        size = len(batch)
        if size % self.pipeline.num_microbatches:
            raise TrainingSetupError(
                f"a batch of {size} samples does not split into {self.pipeline.num_microbatches} pipeline "
                "micro-batches; batch_size of pipeline/scheduled must be the loader's batch size"
            )

    def run(self, batch, accumulation_steps: int, train: bool = True) -> torch.Tensor | None:
        """With context parallelism the schedule is fed this rank's share of each sequence (ring attention in
        force), and every stage takes the positions of the tokens it holds from ``held_token_positions``: one row,
        as the rows of a batch hold their tokens at the same positions."""
        self._check_batch(batch)
        with model_inputs(batch, self.context_parallel) as (samples, targets):
            positions = samples.get(POSITIONS_KEY)
            with held_token_positions(positions[:1] if positions is not None else None):
                return self._step(samples, targets, accumulation_steps, train)

    def _step(self, samples: dict, targets: dict, accumulation_steps: int, train: bool) -> torch.Tensor | None:
        """The batch's mean loss on a rank holding the last stage; elsewhere what the rank's stages add to it
        (the auxiliary losses of MoE blocks) or None."""
        pipeline = self.pipeline
        scale = pipeline.num_microbatches * accumulation_steps if train else 1
        pipeline.loss_fn.scale = scale
        scale_loss_in_backward(self.loss_fn, 1 / scale)
        other_stages = getattr(self.loss_fn, "pop_values_of_other_stages", None) or (lambda: None)
        other_stages()  # what forwards outside a step left
        last = pipeline.has_last_stage
        targets, losses = (self._targets(targets), []) if last else (None, None)
        inputs = (samples[self.sample_key].contiguous(),) if pipeline.has_first_stage else ()
        with loss_parallel_context(self.loss_parallel):
            if train:
                self.schedule.step(*inputs, target=targets, losses=losses, return_outputs=False)
            else:
                self.schedule.eval(*inputs, target=targets, losses=losses)
        share = other_stages()
        share = share / pipeline.num_microbatches if share is not None else None  # the mean over micro-batches
        if not last:
            return share
        loss = torch.stack([plain_tensor(loss.detach()) for loss in losses]).mean() * scale
        return loss if share is None else loss + share.to(loss.device, loss.dtype)
