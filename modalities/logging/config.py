"""Configs of the progress and results subscribers (torch-free).

Each config class is defined in a module of its own under ``configs/`` and imported from there when first asked for:
``modalities.logging.config.X`` works for every class in CONFIG_CLASSES, and `modalities validate` defines only the
classes a config names (see registry/lazy.py). This module holds what they share.
"""

from __future__ import annotations

from modalities.registry.lazy import lazy_attributes

# class name -> the module that defines it
CONFIG_CLASSES = {
    "DummyProgressSubscriberConfig": "modalities.logging.configs.dummy_progress",
    "RichProgressSubscriberConfig": "modalities.logging.configs.rich_progress",
    "DummyResultSubscriberConfig": "modalities.logging.configs.dummy_results",
    "RichResultSubscriberConfig": "modalities.logging.configs.rich_results",
    "WandbMode": "modalities.logging.configs.wandb_results",
    "WandBEvaluationResultSubscriberConfig": "modalities.logging.configs.wandb_results",
    "TensorBoardResultSubscriberConfig": "modalities.logging.configs.tensorboard_results",
    "EvaluationResultToDiscSubscriberConfig": "modalities.logging.configs.results_to_disc",
}
__getattr__, __dir__ = lazy_attributes(__name__, CONFIG_CLASSES)
