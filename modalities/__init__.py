"""modalities: a schema-first config compiler and FSDP2 training framework for PyTorch foundation models."""

from modalities.api import AppConfigDict, Main, load_app_config_dict
from modalities.config.diagnostics import ConfigError
from modalities.registry import register_component

__all__ = ["AppConfigDict", "ConfigError", "Main", "load_app_config_dict", "register_component"]
__version__ = "0.1.0"
