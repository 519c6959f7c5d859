"""Config of ``collate_fn/gpt_2_llm_collator`` (torch-free)."""

from modalities.registry.types import ComponentConfig, Field


class GPT2LLMCollateFnConfig(ComponentConfig):
    """Stacks token samples; inputs are tokens[:, :-1] and targets tokens[:, 1:]."""

    sample_key: str = Field(description="Key of the token ids in each sample, and of the inputs in the batch.")
    target_key: str = Field(description="Key of the targets in the batch (e.g. `target_ids`).")
