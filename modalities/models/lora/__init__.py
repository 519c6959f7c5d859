"""LoRA adapters on the Linear layers of a model."""
