"""Model components: architectures, norms, weight initialization and the MFU calculator.

One row per component. Other areas (CoCa, LoRA) add their rows to this list too.
"""

from modalities.registry.registry import ComponentSpec

CATALOG: list[ComponentSpec] = [
    ComponentSpec(
        component_key="model",
        variant_key="gpt2",
        config="modalities.models.gpt2.config:GPT2LLMConfig",
        builder="modalities.models.gpt2.model:build_gpt2_model",
        description="GPT-2-style decoder: GQA, RoPE, SwiGLU, choice of norms and attention kernels.",
        interface="NNModel",
    ),
    ComponentSpec(
        component_key="model",
        variant_key="gpt2_tp",
        config="modalities.models.gpt2.config:GPT2ModelTPConfig",
        builder="modalities.models.gpt2.tensor_parallel:tensor_parallelize_gpt2",
        description="model/gpt2 split over the mesh's tp dimension: heads and MLP units per rank, sequence-parallel "
        "norms; wrap it with fsdp2_wrapped for data parallelism.",
        interface="NNModel",
    ),
    ComponentSpec(
        component_key="model",
        variant_key="gpt2_cp",
        config="modalities.models.gpt2.config:GPT2ModelCPConfig",
        builder="modalities.models.gpt2.context_parallel:context_parallelize_gpt2",
        description="model/gpt2 trained with its sequences split over the mesh's cp dimension (ring attention); "
        "wrap it with fsdp2_wrapped.",
        interface="NNModel",
    ),
    ComponentSpec(
        component_key="model",
        variant_key="moe",
        config="modalities.models.moe.config:MoEModelConfig",
        builder="modalities.models.moe.model:build_moe_model",
        description="Qwen3-MoE-style decoder (the reference's): GQA with q/k RMSNorm and RoPE, top-k routed SwiGLU "
        "experts run as one grouped matmul, capacity per expert, load-balancing and z losses.",
        interface="NNModel",
    ),
    ComponentSpec(
        component_key="model",
        variant_key="qwen_tp",
        config="modalities.models.moe.config:QwenTPModelConfig",
        builder="modalities.models.moe.tensor_parallel:tensor_parallelize_qwen",
        description="model/moe split over the mesh's tp dimension: attention heads and vocabulary per rank; the "
        "experts stay whole (split them with ep_wrapped).",
        interface="NNModel",
    ),
    ComponentSpec(
        component_key="loss",
        variant_key="moe_cross_entropy",
        config="modalities.models.moe.config:MoECrossEntropyLossConfig",
        builder="modalities.models.moe.loss:MoECrossEntropyLoss",
        description="Mean token cross-entropy plus the MoE blocks' auxiliary (load-balancing, z) losses.",
        interface="Loss",
    ),
    ComponentSpec(
        component_key="model",
        variant_key="huggingface_pretrained_model",
        config="modalities.models.huggingface.config:HuggingFacePretrainedModelConfig",
        builder="modalities.models.huggingface.model:HuggingFacePretrainedModel",
        description="A transformers causal LM from a local folder, behind the dict interface.",
        interface="NNModel",
    ),
    ComponentSpec(
        component_key="model",
        variant_key="model_initialized",
        config="modalities.models.initialization.config:WeightInitializedModelConfig",
        builder="modalities.models.initialization.composed:initialize_model",
        description="A model with its weights initialized in place (meta-device models materialized first).",
        interface="NNModel",
    ),
    ComponentSpec(
        component_key="model_initialization",
        variant_key="composed",
        config="modalities.models.initialization.config:ComposedModelInitializationConfig",
        builder="modalities.models.initialization.composed:composed_initializer",
        description="Normal init by parameter name: plain, scaled residual projections, scaled embeddings.",
        interface="ModelInitializer (initialize_in_place(model))",
    ),
    ComponentSpec(
        component_key="model_initialization",
        variant_key="gpt2_llama3_like",
        config="modalities.models.initialization.config:Llama3InitializerConfig",
        builder="modalities.models.initialization.llama3_like:Llama3Initializer",
        description="Llama 3's initialization (torchtitan's) for a Llama-shaped GPT-2: truncated normals, depth-scaled.",
        interface="ModelInitializer (initialize_in_place(model))",
    ),
    ComponentSpec(
        component_key="layer_norm",
        variant_key="layer_norm",
        config="modalities.models.norms.config:LayerNormConfig",
        builder="modalities.models.norms.layer_norms:layer_norm",
        description="torch.nn.LayerNorm.",
        interface="nn.Module",
    ),
    ComponentSpec(
        component_key="layer_norm",
        variant_key="rms_norm",
        config="modalities.models.norms.config:RMSLayerNormConfig",
        builder="modalities.models.norms.layer_norms:rms_norm",
        description="RMS norm computed in float32, with optional bias.",
        interface="nn.Module",
    ),
    ComponentSpec(
        component_key="layer_norm",
        variant_key="pytorch_rms_norm",
        config="modalities.models.norms.config:PytorchRMSLayerNormConfig",
        builder="modalities.models.norms.layer_norms:pytorch_rms_norm",
        description="torch.nn.RMSNorm.",
        interface="nn.Module",
    ),
    ComponentSpec(
        component_key="mfu_calculator",
        variant_key="gpt2",
        config="modalities.models.mfu.config:GPT2MFUCalculatorConfig",
        builder="modalities.models.mfu.gpt2_mfu:GPT2MFUCalculator",
        description="Model FLOPs utilization: (6N + 12LTd) x tokens/s over the devices' bf16 peak.",
        interface="MFUCalculator (compute(num_samples_per_second), throughput(...))",
    ),
]

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
