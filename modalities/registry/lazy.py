"""Module attributes imported when first asked for (PEP 562 ``__getattr__``).

An area's ``config.py`` gives every config class of the area under one name (``modalities.optim.config.
AdamWOptimizerConfig``, which the catalogues and users import), but each class is defined in a module of its
own under the area's ``configs/``: creating a pydantic class costs about as much as building its validator
later, so a module defining all of an area's classes made `modalities validate` pay for every class of every
area a config touches. With this, validating a config defines only the classes it names (and what those use).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(module_name: str, homes: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the module ``module_name``: an attribute named in ``homes`` (name ->
    the module that defines it) is imported from there on first access and kept in the module."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[module_name], name, value)  # the next access is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[module_name]), *homes})

    return __getattr__, __dir__
