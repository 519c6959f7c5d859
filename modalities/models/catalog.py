"""Model components: architectures, norms, weight initialization and the MFU calculator.

One row per component. Other areas (CoCa, LoRA) add their rows to this list too.
"""

from modalities.registry.registry import ComponentSpec

CATALOG = [
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
