"""The vocabulary shared by component configs and the compiler.

Config classes import from here (never from ``modalities.config``): a base class that forbids unknown
fields, and :data:`ComponentRef`, the annotation for a field that takes another component. This module is
torch-free and cheap to import, so ``modalities validate`` and ``modalities schema`` stay fast.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from contextvars import ContextVar
from typing import Annotated, Any, Iterator

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, WithJsonSchema
from pydantic_core import PydanticCustomError, core_schema

__all__ = [
    "ComponentConfig",
    "ComponentPlaceholder",
    "ComponentRef",
    "Field",
    "NonNegativeStrictInt",
    "PositiveStrictInt",
    "StrictBool",
    "StrictInt",
    "TorchDevice",
    "BUILD_PHASE",
    "VALIDATE_PHASE",
    "component_kinds_of",
    "empty_list",
    "warn_config",
    "note_config",
    "Finding",
    "NodeInfo",
]

VALIDATE_PHASE = "validate"
BUILD_PHASE = "build"

# The JSON-schema key under which a reference field names the component kinds it accepts. The schema
# generator replaces it with the real alternatives (every variant of those kinds, or a reference).
COMPONENT_KINDS_SCHEMA_KEY = "x-modalities-component-kinds"

PositiveStrictInt = Annotated[int, Field(strict=True, gt=0)]
NonNegativeStrictInt = Annotated[int, Field(strict=True, ge=0)]


def _check_torch_device(device: int | str) -> int | str:
    """What torch.device takes of the spellings a config may use, checked when validated (torch-free) rather than
    when the component is built: ``cpu``, ``cuda``, ``cuda:N`` (N as torch writes it: no sign, no leading zero)
    or the reference's GPU index N >= 0. The reference itself takes only ``cpu`` and N."""
    if isinstance(device, int):
        if device < 0:
            raise PydanticCustomError(
                "torch_device", "a GPU index must be 0 or more", {"hint": "write the GPU's index, e.g. 0, or cpu"}
            )
        return device
    kind, colon, index = device.partition(":")
    if device in ("cpu", "cuda") or (kind == "cuda" and colon and _is_device_index(index)):
        return device
    hint = "write cpu, cuda, cuda:N or a GPU index N (e.g. 0)" + ("; cpu takes no index" if kind == "cpu" else "")
    raise PydanticCustomError("torch_device", "not a device torch can use", {"hint": hint})


def _is_device_index(text: str) -> bool:
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))


# A device a component runs on (a string or the reference's GPU index), refused when validated if torch would
# refuse it when built; the schema states the same rule, so an editor marks it too.
TorchDevice = Annotated[
    StrictInt | str,
    AfterValidator(_check_torch_device),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^(cpu|cuda|cuda:(0|[1-9][0-9]*))$"}]}
    ),
]


def empty_list() -> list:
    """A field's ``default_factory`` for an empty list. Not ``list`` itself: pydantic reads a factory's signature
    when it builds a validator, and a builtin's signature is parsed from its text with tokenize, whose regular
    expressions are compiled at first use (about 1% of a quick start's whole `validate`)."""
    return []


_config_warnings: ContextVar[list | None] = ContextVar("modalities_config_warnings", default=None)


def warn_config(message: str, field: str | None = None) -> None:
    """From a config class's validator: a warning that ``modalities validate`` reports at the component (or at
    ``field`` of it), with the config's position. Outside validation (e.g. when building) it is dropped."""
    _collect(field, message, "warning")


def note_config(message: str, field: str | None = None) -> None:
    """Like :func:`warn_config`, for something the user should know but need not change (e.g. how a component is
    carried out)."""
    _collect(field, message, "note")


def _collect(field: str | None, message: str, severity: str) -> None:
    collected = _config_warnings.get()
    if collected is not None:
        collected.append((field, message, severity))


@contextmanager
def collecting_config_warnings() -> Iterator[list[tuple[str | None, str, str]]]:
    """The (field, message, severity) that validators pass to :func:`warn_config` or :func:`note_config`."""
    collected: list[tuple[str | None, str, str]] = []
    token = _config_warnings.set(collected)
    try:
        yield collected
    finally:
        _config_warnings.reset(token)


@dataclass
class Finding:
    """A problem a root's contract check found (see RootSpec), at ``path`` of the config (the compiler gives it
    the position). The check composes the message; ``run_view.where(path)`` names another place in it."""

    path: tuple
    message: str
    severity: str = "error"  # or "warning"
    hint: str | None = None


@dataclass
class NodeInfo:
    """A component node as a contract check sees it: where it is, what it is, and its validated config (None
    when some of its values are computed by other components at build time)."""

    path: tuple
    component_key: str
    variant_key: str
    config: BaseModel | None


class ComponentConfig(BaseModel):
    """Base for built-in component configs: unknown fields are errors, never silently ignored.

    ``defer_build``: a class's validator is made when it is first used, not when its module is imported, so
    `modalities validate` pays only for the components a config names (an area's config module defines many)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=True, defer_build=True)


class ComponentPlaceholder:
    """Stands in for another component while configs are validated, before anything is built.

    It knows the kind the component produces (e.g. ``"optimizer"`` or ``"int"``), so a reference field can
    check that it got the right kind of component without building it.
    """

    __slots__ = ("node_id", "kind", "label")

    def __init__(self, node_id: tuple, kind: str, label: str):
        self.node_id = node_id
        self.kind = kind
        self.label = label

    def __repr__(self) -> str:
        return f"<component {self.label}>"


class _ComponentKinds:
    """Annotation metadata: the field takes a component of one of ``kinds`` ("any" accepts every kind)."""

    def __init__(self, kinds: tuple[str, ...]):
        self.kinds = kinds

    def __get_pydantic_core_schema__(self, source_type: Any, handler: Any) -> core_schema.CoreSchema:
        kinds = self.kinds

        def check(value: Any, info: core_schema.ValidationInfo) -> Any:
            phase = (info.context or {}).get("phase", BUILD_PHASE) if isinstance(info.context, dict) else BUILD_PHASE
            if isinstance(value, ComponentPlaceholder):
                if "any" in kinds or value.kind in kinds:
                    return value
                raise PydanticCustomError(
                    "component_kind",
                    "expected {expected}, but {label} produces '{actual}'",
                    {"expected": _describe_kinds(kinds), "label": value.label, "actual": value.kind},
                )
            if phase == VALIDATE_PHASE:
                raise PydanticCustomError(
                    "component_expected",
                    "expected {expected}: a component node (component_key, variant_key, config) or a reference "
                    "(instance_key, pass_type: BY_REFERENCE)",
                    {"expected": _describe_kinds(kinds)},
                )
            return value  # build phase: the built object of a node whose kind validation already checked

        return core_schema.with_info_plain_validator_function(check)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict:
        return {COMPONENT_KINDS_SCHEMA_KEY: list(self.kinds)}


def _describe_kinds(kinds: tuple[str, ...]) -> str:
    if "any" in kinds:
        return "a component"
    return " or ".join(f"a '{k}' component" for k in kinds)


class _ComponentRefFactory:
    """``ComponentRef["optimizer"]`` or ``ComponentRef["sampler", "batch_sampler"]``."""

    def __getitem__(self, kinds: str | tuple[str, ...]) -> Any:
        if isinstance(kinds, str):
            kinds = (kinds,)
        return Annotated[Any, _ComponentKinds(tuple(kinds))]


ComponentRef = _ComponentRefFactory()


def component_kinds_of(annotation_metadata: list[Any]) -> tuple[str, ...] | None:
    """The kinds a field accepts, read from its pydantic metadata (None if it is not a reference field)."""
    for item in annotation_metadata:
        if isinstance(item, _ComponentKinds):
            return item.kinds
    return None
