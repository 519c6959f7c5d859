"""The reference's import path of its ``Pydantic...Type`` annotations (see modalities/registry/reference_types.py)."""

from modalities.registry.reference_types import *  # noqa: F401,F403
from modalities.registry.reference_types import __all__  # noqa: F401
