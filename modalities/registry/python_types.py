"""Config classes that type a dependency by a Python class, as the reference's configs (and users') do.

``model: nn.Module`` or ``optimizer: torch.optim.Optimizer`` in a pydantic config means "an object of this
class", which only the built object can satisfy. Before anything is built, ``validate`` checks such a field
against the *kind* of component it receives instead: well-known interfaces map to kinds (an ``nn.Module`` is a
model or a norm layer, an ``Optimizer`` an optimizer, ...); any other class accepts a component of any kind and
is checked with ``isinstance`` when the object is built (by the original config class).

The validation twin of a class is a pydantic subclass whose Python-class annotations are replaced by
``ComponentRef[...]`` annotations; the class's own validators still run.
"""

from __future__ import annotations

import sys
import types
import typing
from enum import Enum
from functools import lru_cache
from typing import Annotated, Any, Union

from pydantic import BaseModel, create_model

from modalities.registry.types import ComponentRef, component_kinds_of

# Modules whose classes pydantic validates itself (values, not components).
_VALUE_MODULES = {"builtins", "pathlib", "datetime", "decimal", "uuid", "ipaddress", "re", "typing", "collections",
                  "collections.abc", "fractions"}

# (module, class name) of an interface -> the kinds of component that produce such objects; checked in order.
_KNOWN_INTERFACES: list[tuple[str, str, tuple[str, ...]]] = [
    ("torch.utils.data.sampler", "BatchSampler", ("batch_sampler",)),
    ("torch.utils.data.sampler", "Sampler", ("sampler", "batch_sampler")),
    ("torch.utils.data.dataloader", "DataLoader", ("data_loader",)),
    ("torch.utils.data.dataset", "Dataset", ("dataset",)),
    ("torch.optim.lr_scheduler", "LRScheduler", ("scheduler",)),
    ("torch.optim.optimizer", "Optimizer", ("optimizer",)),
    ("torch.distributed.device_mesh", "DeviceMesh", ("device_mesh",)),
    ("torch.nn.modules.module", "Module", ("model", "layer_norm")),
    ("modalities.data.tokenizers", "TokenizerWrapper", ("tokenizer",)),
    ("modalities.data.loaders", "LLMDataLoader", ("data_loader",)),
    ("modalities.training.app_state", "AppState", ("app_state",)),
]


def is_python_class_annotation(annotation: Any) -> bool:
    """A class pydantic can only check with isinstance (not a value type, not a pydantic model or enum)."""
    return (
        isinstance(annotation, type)
        and annotation.__module__.split(".")[0] not in ("pydantic", "pydantic_core")
        and annotation.__module__ not in _VALUE_MODULES
        and not issubclass(annotation, (BaseModel, Enum))
    )


def kinds_of_class(cls: type) -> tuple[str, ...]:
    """The component kinds whose objects can be instances of ``cls``; ("any",) if no interface is known."""
    for module_name, class_name, kinds in _KNOWN_INTERFACES:
        module = sys.modules.get(module_name)  # an interface the config's module has not imported cannot be it
        interface = getattr(module, class_name, None) if module is not None else None
        if isinstance(interface, type) and issubclass(cls, interface):
            return kinds
    return ("any",)


def _replace(annotation: Any) -> tuple[Any, bool]:
    """The annotation with Python classes turned into component references; whether anything changed."""
    if component_kinds_of(getattr(annotation, "__metadata__", ())) is not None:
        return annotation, False  # already a ComponentRef
    if is_python_class_annotation(annotation):
        return ComponentRef[kinds_of_class(annotation)], True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        inner, changed = _replace(args[0])
        return (Annotated[(inner, *annotation.__metadata__)] if changed else annotation), changed
    if origin in (Union, types.UnionType) and args:
        replaced = [_replace(a) for a in args]
        if any(changed for _, changed in replaced):
            return Union[tuple(a for a, _ in replaced)], True
        return annotation, False
    if origin in (list, tuple, set, frozenset, dict) and args:
        replaced = [_replace(a) for a in args]
        if any(changed for _, changed in replaced):
            new_args = tuple(a for a, _ in replaced)
            return (origin[new_args] if origin is not tuple else tuple[new_args]), True
    return annotation, False


@lru_cache(maxsize=None)
def validation_twin(config_class: type[BaseModel]) -> type[BaseModel]:
    """``config_class`` itself if it types no field by a Python class; else its validation twin."""
    overrides: dict[str, Any] = {}
    for name, info in config_class.model_fields.items():
        annotation, changed = _replace(info.annotation)
        if changed:
            copy = info._copy() if hasattr(info, "_copy") else info
            copy.annotation = annotation
            overrides[name] = (annotation, copy)
    if not overrides:
        return config_class
    return create_model(config_class.__name__, __base__=config_class, __module__=config_class.__module__, **overrides)
