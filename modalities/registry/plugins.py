"""Ways into the registry from outside the package: ``--plugin MODULE`` and ``modalities.plugins`` entry points.

A plugin module registers its components when imported (``modalities.registry.register_component``). An entry
point may instead name a function, which is called with the registry.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from importlib.metadata import entry_points

from modalities.registry.registry import Registry, RegistryError

ENTRY_POINT_GROUP = "modalities.plugins"


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
