"""Config of ``inference_component/text`` (torch-free)."""

from __future__ import annotations

from pydantic import field_validator

from modalities.registry.types import ComponentConfig, ComponentRef, Field, PositiveStrictInt, StrictInt


class TextInferenceComponentConfig(ComponentConfig):
    """Generates text from a prompt with a model and its tokenizer (``modalities generate_text``)."""

    model: ComponentRef["model"] = Field(description="The model (usually a checkpointed one).")
    tokenizer: ComponentRef["tokenizer"] = Field(description="The tokenizer the model was trained with.")
    prompt_template: str = Field(
        description="The prompt; `{name}` placeholders are asked for (or given with --prompt-var name=value)."
    )
    sequence_length: PositiveStrictInt = Field(description="Longest context: generation stops when it is full.")
    temperature: float | None = Field(
        default=1.0, ge=0.0, description="Sampling temperature; 0 picks the most likely token (greedy)."
    )
    eod_token: str | None = Field(default="<eod>", description="Generation stops at this token.")
    device: StrictInt | str = Field(description="`cpu`, `cuda`, `cuda:N`, or a GPU index N.")

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: int | str) -> int | str:
        if isinstance(device, int):
            if device < 0:
                raise ValueError(f"a GPU index must be >= 0, got {device}")
            return device
        if device.partition(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu, cuda, cuda:N or a GPU index N, got {device!r}")
        return device
