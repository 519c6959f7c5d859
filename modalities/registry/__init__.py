"""The registry where the compiler and the components meet."""

from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel

from modalities.registry.registry import ComponentSpec, DuplicateComponentError, Registry, RegistryError, RootSpec

__all__ = [
    "ComponentSpec",
    "DuplicateComponentError",
    "Registry",
    "RegistryError",
    "RootSpec",
    "default_registry",
    "register_component",
]

_default: Registry | None = None
_loading = False


def default_registry() -> Registry:
    """The process-wide registry: built-ins, then installed ``modalities.plugins`` entry points."""
    global _default, _loading
    if _default is None:
        from modalities.registry.builtins import builtin_roots, builtin_specs
        from modalities.registry.plugins import load_entry_point_plugins

        _default = Registry(builtin_specs(), builtin_roots())
        _loading = True
        try:
            load_entry_point_plugins(_default)
        finally:
            _loading = False
    return _default


def register_component(
    *,
    component_key: str,
    variant_key: str,
    custom_component: Callable[..., Any],
    custom_config: type[BaseModel],
    replace: bool = False,
    produces: str | None = None,
    description: str | None = None,
) -> ComponentSpec:
    """Register a component in the process-wide registry (what ``--plugin`` modules call at import)."""
    return default_registry().register(
        component_key=component_key,
        variant_key=variant_key,
        custom_component=custom_component,
        custom_config=custom_config,
        replace=replace,
        produces=produces,
        description=description,
        origin="plugin",
    )
