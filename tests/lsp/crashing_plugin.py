"""A plugin with a bug in code the check runs (its spec's package check raises), and a config class that prints:
for the crash-proof tests of `modalities lsp`."""

from modalities.registry import default_registry
from modalities.registry.registry import ComponentSpec
from modalities.registry.types import ComponentConfig

BUG = "a bug in the exploding plugin's package check"


class ExplodingConfig(ComponentConfig):
    size: int = 1


class ChattyConfig(ComponentConfig):
    """A config class that prints while it is validated: the server's stdout must carry the protocol only."""

    size: int = 1

    def model_post_init(self, context):
        print("chatty config validated")


class ExplodingSpec(ComponentSpec):
    def missing_packages(self):
        raise RuntimeError(BUG)


default_registry().add(
    ExplodingSpec(component_key="exploding", variant_key="default", config=ExplodingConfig, builder=dict)
)
default_registry().add(ComponentSpec(component_key="chatty", variant_key="default", config=ChattyConfig, builder=dict))
