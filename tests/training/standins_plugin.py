"""The `--plugin` module of the training tests: importing it registers the stand-in components process-wide.

Kept apart from `standins.py` so that tests importing those classes directly leave the registry untouched.
"""

from modalities.registry import register_component
from tests.training.standins import STANDINS

for key, variant, builder, config in STANDINS:
    register_component(component_key=key, variant_key=variant, custom_component=builder, custom_config=config, replace=True)
