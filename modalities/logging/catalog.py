"""Progress and results subscribers of the training message broker."""

from modalities.registry.registry import ComponentSpec

_CFG = "modalities.logging.config:"
_SUB = "modalities.logging.subscribers:"

CATALOG = [
    ComponentSpec(
        "progress_subscriber",
        "dummy",
        _CFG + "DummyProgressSubscriberConfig",
        _SUB + "DummySubscriber",
        description="Shows no progress.",
        interface="MessageSubscriber",
    ),
    ComponentSpec(
        "progress_subscriber",
        "rich",
        _CFG + "RichProgressSubscriberConfig",
        _SUB + "RichProgressSubscriber",
        description="Live progress bar with step, loss and tokens/s.",
        interface="MessageSubscriber",
    ),
    ComponentSpec(
        "results_subscriber",
        "dummy",
        _CFG + "DummyResultSubscriberConfig",
        _SUB + "DummySubscriber",
        description="Shows no results (the JSONL results file is always written).",
        interface="MessageSubscriber",
    ),
    ComponentSpec(
        "results_subscriber",
        "rich",
        _CFG + "RichResultSubscriberConfig",
        _SUB + "RichResultSubscriber",
        description="Prints training and evaluation results as tables.",
        interface="MessageSubscriber",
    ),
    ComponentSpec(
        "results_subscriber",
        "to_disc",
        _CFG + "EvaluationResultToDiscSubscriberConfig",
        _SUB + "ResultsToDiscSubscriber",
        description="Appends every result as one JSON line to a file.",
        interface="MessageSubscriber",
    ),
    ComponentSpec(
        "results_subscriber",
        "wandb",
        _CFG + "WandBEvaluationResultSubscriberConfig",
        _SUB + "WandBResultSubscriber",
        description="Logs results and the resolved config to Weights & Biases, offline by default.",
        interface="MessageSubscriber",
        requires=(("wandb", "wandb"),),
    ),
    ComponentSpec(
        "results_subscriber",
        "tensorboard",
        _CFG + "TensorBoardResultSubscriberConfig",
        _SUB + "TensorBoardResultSubscriber",
        description="Writes losses, lr, grad norm, throughput and MFU, and the config, as TensorBoard events.",
        interface="MessageSubscriber",
        requires=(("tensorboard", "tensorboard"),),
    ),
]
