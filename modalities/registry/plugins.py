"""Ways into the registry from outside the package: ``--plugin MODULE`` and ``modalities.plugins`` entry points.

A plugin module registers its components when imported (``modalities.registry.register_component``). An entry
point may instead name a function, which is called with the registry.
"""

from __future__ import annotations

import importlib
import sys
import traceback

from modalities.registry.registry import Registry, RegistryError

ENTRY_POINT_GROUP = "modalities.plugins"
PYDANTIC_PLUGIN_GROUP = "pydantic"  # pydantic.plugin._loader's group


class PluginError(RegistryError):
    pass


def import_plugin_module(module_name: str) -> None:
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise PluginError(
                f"plugin module '{module_name}' was not found: check the name and that its package is installed "
                f"in this environment ({sys.executable}) or on PYTHONPATH"
            ) from e
        raise PluginError(f"plugin module '{module_name}' failed to import: {e}") from e
    except RegistryError:
        raise
    except Exception as e:
        tb = traceback.extract_tb(e.__traceback__)[-1]
        raise PluginError(
            f"plugin module '{module_name}' raised {type(e).__name__} while importing "
            f"({tb.filename}:{tb.lineno}): {e}"
        ) from e


def load_entry_point_plugins(registry: Registry) -> list[str]:
    from modalities.registry.entry_point_files import declared_groups

    declared = declared_groups([ENTRY_POINT_GROUP, PYDANTIC_PLUGIN_GROUP])
    if declared is not None and PYDANTIC_PLUGIN_GROUP not in declared:
        _no_pydantic_plugins()
    if declared is not None and ENTRY_POINT_GROUP not in declared:
        return []
    from importlib.metadata import entry_points

    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as e:
            raise PluginError(f"entry point '{ep.name} = {ep.value}' in group {ENTRY_POINT_GROUP} failed: {e}") from e
        if callable(obj) and not isinstance(obj, type(sys)):
            obj(registry)
        loaded.append(ep.value)
    return loaded


def _no_pydantic_plugins() -> None:
    """Tell pydantic that no pydantic plugin is installed (none declares its entry-point group), so the first
    validator it builds does not read every distribution's entry points again to find that out: what its own
    search would have found, put in its cache. Only while the search has not run yet."""
    from pydantic.plugin import _loader

    if getattr(_loader, "_plugins", {}) is None:
        _loader._plugins = {}
