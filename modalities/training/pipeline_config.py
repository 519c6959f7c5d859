"""Configs of `pipeline/*` and `stages_generator/*` (torch-free), with the reference's field names."""

from __future__ import annotations

from enum import Enum

from pydantic import AliasChoices, field_validator, model_validator

from modalities.registry.types import ComponentConfig, ComponentRef, Field, NonNegativeStrictInt, PositiveStrictInt
from modalities.training.config import PrecisionEnum
from modalities.training.pipeline_plan import PipelinePlanError, schedule_class_name

_SCHEDULE = (
    "torch's schedule (any case): GPipe or 1F1B (one stage per rank), Interleaved1F1B or LoopedBFS (several)."
)


def _known_schedule(name: str) -> str:
    try:
        schedule_class_name(name)
    except PipelinePlanError as e:
        raise ValueError(str(e)) from None
    return name


class GPT2StagesGeneratorConfig(ComponentConfig):
    """Where model/gpt2 may be cut: after the embeddings, between blocks, before the head."""

    num_model_layers: PositiveStrictInt = Field(description="The model's n_layer.")
    input_layer_equivalence: PositiveStrictInt = Field(
        default=1, description="What the embeddings weigh, in blocks, when stages are filled."
    )
    output_layer_equivalence: PositiveStrictInt = Field(
        default=1, description="What the head (norm and projection) weighs, in blocks."
    )


class QwenStagesGeneratorConfig(GPT2StagesGeneratorConfig):
    """Where model/moe may be cut: after the token embedding, between blocks, before the final norm and head."""

    num_model_layers: PositiveStrictInt = Field(description="The model's num_layers.")


class StagedPipelineConfig(ComponentConfig):
    """This rank's stages of a model cut by layer count (pruned copies that keep their parameter names)."""

    whole_model: ComponentRef["model"] = Field(description="The model to cut (best on the meta device).")
    stages_generator: ComponentRef["stages_generator"] = Field(description="Where the model may be cut.")
    device_mesh: ComponentRef["device_mesh"] = Field(description="The mesh; its `pp` dimension holds the stages.")
    local_rank: NonNegativeStrictInt = Field(description="This process's GPU on its node (`LOCAL_RANK`).")
    pp_schedule_name: str = Field(description=_SCHEDULE)
    num_layers_per_stage: PositiveStrictInt = Field(
        description="Blocks (layer equivalents) per virtual stage: the model is cut into "
        "ceil((layers + input + output equivalence) / this) stages, a multiple of pipeline_parallel_degree."
    )
    static_io_microbatch_size: PositiveStrictInt | None = Field(
        default=None, description="With the other static_io fields: the stages' input and output shapes are given "
        "(micro-batch size), so no stage runs a shape-inference forward before the first step (the reference's "
        "fields, which it needs for expert with pipeline parallelism)."
    )
    static_io_sequence_length: PositiveStrictInt | None = Field(default=None, description="Tokens per sample.")
    static_io_hidden_dim: PositiveStrictInt | None = Field(
        default=None, description="Width of the hidden states passed between stages (the model's d_model)."
    )
    static_io_vocab_size: PositiveStrictInt | None = Field(
        default=None, description="Width of the last stage's output (the vocabulary)."
    )
    static_io_dtype: PrecisionEnum | None = Field(
        default=None, description="Dtype of the hidden states (the mixed-precision param_dtype)."
    )

    _schedule = field_validator("pp_schedule_name")(_known_schedule)

    @model_validator(mode="after")
    def _static_io_all_or_none(self) -> "StagedPipelineConfig":
        given = [name for name in STATIC_IO_FIELDS if getattr(self, name) is not None]
        if given and len(given) != len(STATIC_IO_FIELDS):
            missing = [name for name in STATIC_IO_FIELDS if name not in given]
            raise ValueError(f"give all static_io fields or none: {', '.join(missing)} missing")
        return self


STATIC_IO_FIELDS = ("static_io_microbatch_size", "static_io_sequence_length", "static_io_hidden_dim",
                    "static_io_vocab_size", "static_io_dtype")


class ScheduledPipelineConfig(ComponentConfig):
    """A pipeline with its schedule: each loader batch runs as batch_size / microbatch_size micro-batches."""

    loss_fn: ComponentRef["loss"] = Field(description="The loss, computed on the last stage per micro-batch.")
    pp_schedule_name: str = Field(description=_SCHEDULE)
    batch_size: PositiveStrictInt = Field(description="Samples of a loader batch (local_train_micro_batch_size).")
    microbatch_size: PositiveStrictInt = Field(description="Samples of one pipeline micro-batch.")
    pp_degree: int = Field(ge=2, description="The mesh's pipeline_parallel_degree.")
    pipeline: ComponentRef["pipeline"] = Field(description="The pipeline to schedule (pipeline/builder).")

    _schedule = field_validator("pp_schedule_name")(_known_schedule)

    @model_validator(mode="after")
    def _whole_microbatches(self) -> "ScheduledPipelineConfig":
        if self.batch_size % self.microbatch_size:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of microbatch_size {self.microbatch_size}; "
                "every micro-batch must be full"
            )
        return self


class PipelineSelectionType(str, Enum):
    MODEL_PART = "MODEL_PART"
    PP_STAGE = "PP_STAGE"
    PP_SCHEDULE = "PP_SCHEDULE"


class PipelineSelectorConfig(ComponentConfig):
    """One piece of a pipeline: its model parts (a model), its stages or its schedule."""

    pipeline: ComponentRef["pipeline"] = Field(description="The pipeline to take from.")
    selection_type: PipelineSelectionType = Field(
        description="MODEL_PART (this rank's model parts, used as the model), PP_STAGE or PP_SCHEDULE."
    )


class PipelineBuilderConfig(ComponentConfig):
    """A pipeline from its stages and the model parts as wrapped (the same modules, parallelized in place)."""

    pp_stages: ComponentRef["pipeline_stage"] | list[ComponentRef["pipeline_stage"]] = Field(
        validation_alias=AliasChoices("pp_stages", "pp_stage"),
        description="The stages (pipeline/selector with PP_STAGE); `pp_stage` is the reference's older name.",
    )
    model_parts: ComponentRef["model"] | list[ComponentRef["model"]] = Field(
        validation_alias=AliasChoices("model_parts", "model_part"),
        description="The stages' modules as wrapped (tensor parallel, FSDP2); `model_part` is the older name.",
    )
    pp_schedule: ComponentRef["pipeline_schedule"] | None = Field(
        default=None, description="Must be left out: pipeline/scheduled gives the pipeline its schedule."
    )

    @field_validator("pp_schedule")
    @classmethod
    def _scheduled_separately(cls, schedule):
        if schedule is not None:
            raise ValueError("leave pp_schedule out and schedule the built pipeline with pipeline/scheduled, which "
                             "also sets up its loss and micro-batches")
        return schedule
