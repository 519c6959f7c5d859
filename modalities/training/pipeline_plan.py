"""Where a pipeline cuts a model, and which stages a rank runs (torch-free, so `validate` computes the same plan).

A model offers *split points*: runs of modules (by fully qualified name) that must stay together, each with a
weight in layer equivalents (a transformer block weighs 1; the embeddings and the head weigh what the config
says). ``ceil((layers + input weight + output weight) / num_layers_per_stage)`` virtual stages are filled in
order, each up to ``ceil(total weight / stages)``: the reference's (and torchtitan's) rule, so a config cuts its
model at the same places here. Schedules that run several stages per rank ("interleaved") take stage
``rank + k * pp`` (a loop); the V-shaped ones take ``rank`` and ``2 pp - 1 - rank``.
"""

from __future__ import annotations

import math

# torch's schedule names (torch.distributed.pipelining.schedules.get_schedule_class, case-insensitive) that a
# run here can use: each is trained against one process in tests/training/test_pipeline_parallel.py.
SINGLE_STAGE_SCHEDULES = {"gpipe": "GPipe", "1f1b": "1F1B"}
MULTI_STAGE_SCHEDULES = {"interleaved1f1b": "Interleaved1F1B", "loopedbfs": "LoopedBFS"}
# Known to torch but refused: their backward is split into input and weight halves, which FSDP2's gradient
# reduction here is not arranged for, and no test shows them right.
REFUSED_SCHEDULES = {"interleavedzerobubble": "InterleavedZeroBubble", "zbvzerobubble": "ZBVZeroBubble",
                     "dualpipev": "DualPipeV", "pipelineschedulesingle": "PipelineScheduleSingle",
                     "pipelineschedulemulti": "PipelineScheduleMulti"}


class PipelinePlanError(ValueError):
    pass


def schedule_class_name(name: str) -> str:
    """torch's class-map key of a schedule name (any case); raises with the choices for an unknown one."""
    key = name.lower()
    known = {**SINGLE_STAGE_SCHEDULES, **MULTI_STAGE_SCHEDULES}
    if key in known:
        return known[key]
    if key in REFUSED_SCHEDULES:
        raise PipelinePlanError(
            f"pp_schedule_name '{name}' is a zero-bubble schedule (split backward), which is not supported here; "
            f"use one of {', '.join(known.values())}"
        )
    raise PipelinePlanError(f"unknown pp_schedule_name '{name}'; choose one of {', '.join(known.values())}")


def runs_several_stages_per_rank(schedule_name: str) -> bool:
    return schedule_class_name(schedule_name).lower() in MULTI_STAGE_SCHEDULES


class GPT2StagesGenerator:
    """`stages_generator/gpt2_stages_generator`: model/gpt2's split points, the embeddings (and dropout), each
    block, the head norm with the head, cut into stages (used by the build and by `validate` alike)."""

    def __init__(self, num_model_layers: int, input_layer_equivalence: int = 1, output_layer_equivalence: int = 1):
        self.num_model_layers = num_model_layers
        self.input_layer_equivalence = input_layer_equivalence
        self.output_layer_equivalence = output_layer_equivalence

    def split_points(self) -> list[tuple[list[str], int]]:
        return [
            (["transformer.wte", "transformer.wpe", "transformer.drop"], self.input_layer_equivalence),
            *[([f"transformer.h.{i}"], 1) for i in range(self.num_model_layers)],
            (["transformer.lm_head_norm", "transformer.lm_head"], self.output_layer_equivalence),
        ]

    def get_stages(self, num_layers_per_stage: int, pp_dims: int) -> list[list[str]]:
        return modules_per_stage(self.split_points(), num_layers_per_stage, pp_dims)


class QwenStagesGenerator(GPT2StagesGenerator):
    """`stages_generator/qwen_stages_generator`: model/moe's split points: the token embedding, each block, the
    final norm with the head."""

    def split_points(self) -> list[tuple[list[str], int]]:
        return [
            (["token_emb"], self.input_layer_equivalence),
            *[([f"layers.{i}"], 1) for i in range(self.num_model_layers)],
            (["final_norm", "lm_head"], self.output_layer_equivalence),
        ]


def modules_per_stage(split_points: list[tuple[list[str], int]], num_layers_per_stage: int,
                      pp_degree: int) -> list[list[str]]:
    """The module names of each virtual stage, in order."""
    total_weight = sum(weight for _, weight in split_points)
    num_stages = math.ceil(total_weight / num_layers_per_stage)
    if num_stages % pp_degree:
        raise PipelinePlanError(
            f"{num_stages} stages (ceil of {total_weight} layer equivalents / num_layers_per_stage "
            f"{num_layers_per_stage}) do not divide over pipeline_parallel_degree {pp_degree}; choose a "
            "num_layers_per_stage that gives a multiple of the degree"
        )
    weight_per_stage = math.ceil(total_weight / num_stages)
    stages: list[list[str]] = []
    next_point = 0
    for _ in range(num_stages):
        names: list[str] = []
        weight = 0
        while next_point < len(split_points):
            point_names, point_weight = split_points[next_point]
            if point_weight > weight_per_stage:
                raise PipelinePlanError(
                    f"{', '.join(point_names)} weigh {point_weight} layers, more than a stage holds "
                    f"({weight_per_stage}); lower input/output_layer_equivalence or raise num_layers_per_stage"
                )
            if weight + point_weight > weight_per_stage:
                break
            names.extend(point_names)
            weight += point_weight
            next_point += 1
        stages.append(names)
    empty = [index for index, names in enumerate(stages) if not names]
    if empty or next_point < len(split_points):
        raise PipelinePlanError(
            f"num_layers_per_stage {num_layers_per_stage} leaves stage(s) {empty} empty or modules without a "
            "stage; choose a num_layers_per_stage that fills every stage"
        )
    return stages


def stage_indices_of_rank(pp_rank: int, pp_degree: int, num_stages: int, schedule_name: str) -> list[int]:
    """The virtual stages one pipeline rank runs: ``rank + k * pp`` (a loop over the ranks)."""
    per_rank = num_stages // pp_degree
    if not runs_several_stages_per_rank(schedule_name) and per_rank != 1:
        raise PipelinePlanError(
            f"schedule {schedule_class_name(schedule_name)} runs one stage per rank, but the plan has {num_stages} "
            f"stages for pipeline_parallel_degree {pp_degree}; use an interleaved schedule (Interleaved1F1B) or a "
            f"num_layers_per_stage giving {pp_degree} stages"
        )
    return [pp_rank + k * pp_degree for k in range(per_rank)]


def microbatch_misfit(schedule_name: str, num_microbatches: int, pp_degree: int) -> str | None:
    """Why torch's schedule refuses this many micro-batches (None if it takes them)."""
    name = schedule_class_name(schedule_name)
    if name == "1F1B" and num_microbatches < pp_degree:
        return (f"1F1B needs at least as many micro-batches as stages: {num_microbatches} micro-batches "
                f"(batch_size / microbatch_size) for {pp_degree} stages")
    if name == "Interleaved1F1B":
        rounds = max(1, num_microbatches // pp_degree)
        if num_microbatches % rounds:
            return (f"Interleaved1F1B needs a multiple of {rounds} micro-batches (its rounds of "
                    f"pipeline_parallel_degree {pp_degree}), got {num_microbatches}")
    return None
