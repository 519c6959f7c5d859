"""A ``--plugin`` module: registers the toy components in the process-wide registry when imported."""

from modalities.registry import default_registry
from tests.schema.plugins.toy_configs import register

register(default_registry())
