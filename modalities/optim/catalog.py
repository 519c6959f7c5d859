from modalities.registry.registry import ComponentSpec

_CFG = "modalities.optim.config:"
_SCHED = "modalities.optim.schedulers:"
_CLIP = "modalities.optim.gradient_clipping:"


def _row(key: str, variant: str, config: str, builder: str, description: str, interface: str) -> ComponentSpec:
    return ComponentSpec(
        component_key=key,
        variant_key=variant,
        config=_CFG + config,
        builder=builder,
        description=description,
        interface=interface,
    )


def _scheduler(variant: str, config: str, builder: str, description: str) -> ComponentSpec:
    return _row("scheduler", variant, config, _SCHED + builder, description, "torch.optim.lr_scheduler.LRScheduler")


def _clipper(variant: str, config: str, builder: str, description: str) -> ComponentSpec:
    interface = "modalities.optim.gradient_clipping:GradientClipper"
    return _row("gradient_clipper", variant, config, _CLIP + builder, description, interface)


CATALOG = [
    _row(
        "loss",
        "clm_cross_entropy_loss",
        "CLMCrossEntropyLossConfig",
        "modalities.optim.loss:CLMCrossEntropyLoss",
        "Mean token cross-entropy of logits [B, T, V] against targets [B, T].",
        "Callable[[InferenceResultBatch], Tensor]",
    ),
    _row(
        "optimizer",
        "adam",
        "AdamOptimizerConfig",
        "modalities.optim.optimizers:get_adam",
        "Adam with weight-decay groups chosen by parameter name.",
        "torch.optim.Optimizer",
    ),
    _row(
        "optimizer",
        "adam_w",
        "AdamWOptimizerConfig",
        "modalities.optim.optimizers:get_adam_w",
        "AdamW with weight-decay groups chosen by parameter name.",
        "torch.optim.Optimizer",
    ),
    _row(
        "optimizer",
        "muon",
        "MuonOptimizerConfig",
        "modalities.optim.muon:get_muon",
        "Muon (torch.optim.Muon) for hidden-layer matrices, AdamW for embeddings, output head, norms and biases.",
        "torch.optim.Optimizer",
    ),
    _row(
        "optimizer",
        "ep_adam_w",
        "EPAdamWOptimizerConfig",
        "modalities.optim.optimizers:get_ep_adam_w",
        "AdamW for expert-parallel models (groups split by mesh as well as by weight decay).",
        "torch.optim.Optimizer",
    ),
    _scheduler("dummy_lr", "DummyLRSchedulerConfig", "DummyLRScheduler", "Keeps the learning rate unchanged."),
    _scheduler("step_lr", "StepLRSchedulerConfig", "get_step_lr", "torch StepLR: decay by gamma every step_size."),
    _scheduler(
        "constant_lr", "ConstantLRSchedulerConfig", "get_constant_lr", "torch ConstantLR: a factor until total_iters."
    ),
    _scheduler("linear_lr", "LinearLRSchedulerConfig", "get_linear_lr", "torch LinearLR: a linearly changing factor."),
    _scheduler("onecycle_lr", "OneCycleLRSchedulerConfig", "get_onecycle_lr", "torch OneCycleLR: the 1cycle policy."),
    _scheduler(
        "cosine_annealing_lr",
        "CosineAnnealingLRSchedulerConfig",
        "get_cosine_annealing_lr",
        "torch CosineAnnealingLR: a half cosine from the lr to eta_min.",
    ),
    _scheduler(
        "linear_warmup_cosine_annealing_lr",
        "LinearWarmupCosineAnnealingLRSchedulerConfig",
        "LinearWarmupCosineAnnealingLR",
        "Linear warmup to the lr, then a half cosine to final_lr.",
    ),
    _clipper("fsdp", "FSDPGradientClipperConfig", "FSDPGradientClipper", "Clip gradients to a maximum total norm."),
    _clipper(
        "fsdp_logging_only",
        "FSDPLoggingOnlyGradientClipperConfig",
        "FSDPLoggingOnlyGradientClipper",
        "Return the total gradient norm without clipping.",
    ),
    _clipper(
        "fsdp2",
        "FSDP2GradientClipperConfig",
        "get_fsdp2_gradient_clipper",
        "Clip FSDP2 (DTensor-sharded) gradients to a maximum total norm.",
    ),
    _clipper(
        "fsdp2_logging_only",
        "FSDP2LoggingOnlyGradientClipperConfig",
        "get_fsdp2_logging_only_gradient_clipper",
        "Return the total norm of FSDP2 (DTensor-sharded) gradients without clipping.",
    ),
    _clipper("fsdp1", "FSDPGradientClipperConfig", "FSDPGradientClipper", "The reference's FSDP1 spelling of fsdp."),
    _clipper(
        "fsdp1_logging_only",
        "FSDPLoggingOnlyGradientClipperConfig",
        "FSDPLoggingOnlyGradientClipper",
        "The reference's FSDP1 spelling of fsdp_logging_only.",
    ),
    _clipper(
        "ep",
        "EPGradientClipperConfig",
        "get_ep_gradient_clipper",
        "Clip the gradients of an expert-parallel model (experts and the rest on their own meshes) by total norm.",
    ),
    _clipper("dummy", "DummyGradientClipperConfig", "DummyGradientClipper", "No clipping; returns -1 as the norm."),
]
