"""Config of ``inference_component/text`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, ComponentRef, Field, PositiveStrictInt, TorchDevice


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
    device: TorchDevice = Field(description="`cpu`, `cuda`, `cuda:N`, or a GPU index N.")
