"""A plugin with a bug in code the check runs (its spec's package check raises): for the crash-proof test of
`modalities lsp`."""

from modalities.registry import default_registry
from modalities.registry.registry import ComponentSpec
from modalities.registry.types import ComponentConfig

BUG = "a bug in the exploding plugin's package check"


class ExplodingConfig(ComponentConfig):
    size: int = 1


class ExplodingSpec(ComponentSpec):
    def missing_packages(self):
        raise RuntimeError(BUG)


default_registry().add(
    ExplodingSpec(component_key="exploding", variant_key="default", config=ExplodingConfig, builder=dict)
)
