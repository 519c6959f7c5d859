"""The table of built-in components.

Each area of the package keeps its rows in a torch-free ``catalog.py`` (a list named ``CATALOG`` of
:class:`ComponentSpec` whose config and builder are ``"module:attr"`` strings). Reading the catalogues imports
no config class and no torch.
"""

from __future__ import annotations

import importlib

from modalities.registry.registry import ComponentSpec, RootSpec

CATALOG_MODULES = (
    "modalities.conversion.catalog",
    "modalities.models.catalog",
    "modalities.optim.catalog",
    "modalities.data.catalog",
    "modalities.training.catalog",
    "modalities.logging.catalog",
    "modalities.checkpointing.catalog",
    "modalities.inference.catalog",
    "modalities.profiling.catalog",
)


def builtin_specs() -> list[ComponentSpec]:
    specs: list[ComponentSpec] = []
    for module_name in CATALOG_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:  # an area that has no components yet
                continue
            raise
        specs.extend(module.CATALOG)
    return specs


def builtin_roots() -> list[RootSpec]:
    roots: list[RootSpec] = []
    for module_name in CATALOG_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                continue
            raise
        roots.extend(getattr(module, "ROOTS", ()))
    return roots
