"""Inference components."""

from modalities.registry.registry import ComponentSpec

CATALOG = [
    ComponentSpec(
        "inference_component",
        "text",
        "modalities.inference.config:TextInferenceComponentConfig",
        "modalities.inference.text:TextInferenceComponent",
        description="Generates text from a prompt template, greedily or by sampling, until EOD or the context is full.",
        interface="TextInferenceComponent (run(), generate(prompt))",
    ),
]
