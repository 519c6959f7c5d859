from modalities.registry.registry import ComponentSpec

CATALOG: list[ComponentSpec] = []

# --- multimodal: CoCa (model, collator, losses) and LoRA --------------------------------------------------------
_COCA_CFG = "modalities.models.coca.config:"
_LORA_CFG = "modalities.models.lora.config:"

CATALOG += [
    ComponentSpec(
        component_key="model",
        variant_key="coca",
        config=_COCA_CFG + "CoCaConfig",
        builder="modalities.models.coca.model:CoCa",
        description="CoCa (Contrastive Captioners): ViT encoder, attentional pooling, unimodal + multimodal decoders.",
        interface="NNModel",
    ),
    ComponentSpec(
        component_key="model",
        variant_key="vision_transformer",
        config=_COCA_CFG + "VisionTransformerConfig",
        builder="modalities.models.coca.model:VisionTransformer",
        description="ViT image encoder (CoCa's), with an optional classification head.",
        interface="NNModel",
    ),
    ComponentSpec(
        component_key="collate_fn",
        variant_key="coca_collator",
        config=_COCA_CFG + "CoCaCollateFnConfig",
        builder="modalities.models.coca.collator:CoCaCollator",
        description="Stacks image/text samples; shifts the text into next-token input and target.",
        interface="CollateFn",
    ),
    ComponentSpec(
        component_key="loss",
        variant_key="coca_loss",
        config=_COCA_CFG + "CoCaLossConfig",
        builder="modalities.models.coca.loss:CoCaLoss",
        description="CoCa objective: weighted symmetric InfoNCE (image/text) plus captioning cross-entropy.",
        interface="Loss",
    ),
    ComponentSpec(
        component_key="loss",
        variant_key="nce_loss",
        config=_COCA_CFG + "NCELossConfig",
        builder="modalities.models.coca.loss:NCELoss",
        description="InfoNCE between two embeddings with a fixed temperature (Modalities' NCELoss).",
        interface="Loss",
    ),
    ComponentSpec(
        component_key="model",
        variant_key="lora",
        config=_LORA_CFG + "LoRAConfig",
        builder="modalities.models.lora.lora:build_lora_model",
        description="LoRA adapters on selected Linear layers of a model; the base weights are frozen.",
        interface="NNModel",
    ),
]
