"""The component registry: (component_key, variant_key) -> config class, builder and the kind it produces.

Built-in entries name their config class and builder as ``"module:attr"`` strings and are imported only when
a node of that variant is validated or built; that keeps ``validate`` free of torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from pydantic import BaseModel


class RegistryError(Exception):
    pass


class DuplicateComponentError(RegistryError):
    pass


def import_object(target: str) -> Any:
    """Import ``"package.module:attr.sub"``."""
    module_name, _, attr_path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attr_path.split(".")):
        obj = getattr(obj, part)
    return obj


@dataclass
class ComponentSpec:
    component_key: str
    variant_key: str
    config: str | type[BaseModel]
    builder: str | Callable[..., Any]
    produces: str = ""
    description: str = ""
    interface: str = ""
    origin: str = "builtin"
    # Optional packages the builder imports, as (module, pip extra): validate reports a missing one at the
    # component, with the install command, instead of the build failing later.
    requires: tuple[tuple[str, str], ...] = ()
    # A component whose kind is chosen by one of its fields (pipeline/selector: selection_type MODEL_PART gives a
    # model): (field, {value: kind}). ``produces`` stays the kind when the field holds no listed value.
    produces_by: tuple[str, dict[str, str]] | None = None
    _config_class: type[BaseModel] | None = field(default=None, repr=False, compare=False)
    _builder: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.produces:
            self.produces = self.component_key

    @property
    def name(self) -> str:
        return f"{self.component_key}/{self.variant_key}"

    def kinds_produced(self) -> set[str]:
        return {self.produces, *(self.produces_by[1].values() if self.produces_by else ())}

    def kind_for(self, config: Any) -> str:
        """The kind a node with this (raw) config produces."""
        if self.produces_by is None or not isinstance(config, dict):
            return self.produces
        field_name, kinds = self.produces_by
        value = config.get(field_name)
        return kinds.get(value, self.produces) if isinstance(value, str) else self.produces

    def config_class(self) -> type[BaseModel]:
        if self._config_class is None:
            cls = import_object(self.config) if isinstance(self.config, str) else self.config
            if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
                raise RegistryError(f"{self.name}: config {self.config!r} is not a pydantic BaseModel class")
            self._config_class = cls
        return self._config_class

    def builder_callable(self) -> Callable[..., Any]:
        if self._builder is None:
            self._builder = import_object(self.builder) if isinstance(self.builder, str) else self.builder
        return self._builder

    def missing_packages(self) -> list[tuple[str, str]]:
        """The required (module, extra) pairs that are not installed here."""
        from importlib.util import find_spec

        return [(module, extra) for module, extra in self.requires if find_spec(module) is None]

    @property
    def config_name(self) -> str:
        if isinstance(self.config, str):
            return self.config.rpartition(":")[2]
        return self.config.__name__

    @property
    def config_location(self) -> str:
        if isinstance(self.config, str):
            return self.config
        return f"{self.config.__module__}:{self.config.__qualname__}"

    @property
    def builder_location(self) -> str:
        if isinstance(self.builder, str):
            return self.builder
        return f"{getattr(self.builder, '__module__', '?')}:{getattr(self.builder, '__qualname__', repr(self.builder))}"


@dataclass
class RootSpec:
    """What a whole config of one kind must be (e.g. ``training``): its top level is validated against
    ``config`` (a pydantic class whose component fields are ComponentRef-typed), and ``contract`` (a function
    of a run view, see registry/types.py) checks the components against each other. A config is taken to be of
    this kind when it has one of the ``markers`` at the top level, or two of the ``weak_markers``."""

    name: str
    config: str | type[BaseModel]
    contract: str | Callable[..., Any] | None = None
    markers: tuple[str, ...] = ()  # one of these at the top level makes a config of this kind
    weak_markers: tuple[str, ...] = ()  # ... and so do two of these
    description: str = ""

    def config_class(self) -> type[BaseModel]:
        return import_object(self.config) if isinstance(self.config, str) else self.config

    def contract_callable(self) -> Callable[..., Any] | None:
        if self.contract is None:
            return None
        return import_object(self.contract) if isinstance(self.contract, str) else self.contract


class Registry:
    def __init__(self, specs: Iterable[ComponentSpec] = (), roots: Iterable[RootSpec] = ()):
        self._specs: dict[tuple[str, str], ComponentSpec] = {}
        self.roots: dict[str, RootSpec] = {}
        for spec in specs:
            self.add(spec)
        for root in roots:
            self.add_root(root)

    def add_root(self, root: RootSpec) -> RootSpec:
        self.roots[root.name] = root
        return root

    def root_for(self, top_level_keys: Iterable[str]) -> RootSpec | None:
        """The root whose markers the config's top level has, if any."""
        keys = set(top_level_keys)
        return next(
            (r for r in self.roots.values() if keys & set(r.markers) or len(keys & set(r.weak_markers)) >= 2), None
        )

    def add(self, spec: ComponentSpec, *, replace: bool = False) -> ComponentSpec:
        key = (spec.component_key, spec.variant_key)
        if key in self._specs and not replace:
            existing = self._specs[key]
            raise DuplicateComponentError(
                f"component {spec.name} is already registered (by {existing.origin}: {existing.config_location}); "
                "pass replace=True to replace it on purpose"
            )
        self._specs[key] = spec
        return spec

    def register(
        self,
        *,
        component_key: str,
        variant_key: str,
        custom_component: Callable[..., Any],
        custom_config: type[BaseModel],
        replace: bool = False,
        produces: str | None = None,
        description: str | None = None,
        origin: str = "custom",
    ) -> ComponentSpec:
        for label, value in (("component_key", component_key), ("variant_key", variant_key)):
            if not isinstance(value, str) or not value:
                raise RegistryError(f"{label} must be a non-empty string, got {value!r}")
        if not callable(custom_component):
            raise RegistryError(f"{component_key}/{variant_key}: custom_component must be callable")
        if not (isinstance(custom_config, type) and issubclass(custom_config, BaseModel)):
            raise RegistryError(f"{component_key}/{variant_key}: custom_config must be a pydantic BaseModel class")
        doc = description if description is not None else (custom_component.__doc__ or "").strip().split("\n")[0]
        spec = ComponentSpec(
            component_key=component_key,
            variant_key=variant_key,
            config=custom_config,
            builder=custom_component,
            produces=produces or component_key,
            description=doc,
            origin=origin,
        )
        return self.add(spec, replace=replace)

    def get(self, component_key: str, variant_key: str) -> ComponentSpec | None:
        return self._specs.get((component_key, variant_key))

    def component_keys(self) -> list[str]:
        return sorted({k for k, _ in self._specs})

    def variants(self, component_key: str) -> list[str]:
        return sorted(v for k, v in self._specs if k == component_key)

    def kinds(self) -> list[str]:
        return sorted({kind for s in self._specs.values() for kind in s.kinds_produced()})

    def specs_producing(self, kinds: Iterable[str]) -> list[ComponentSpec]:
        kinds = set(kinds)
        return [s for s in self if "any" in kinds or s.kinds_produced() & kinds]

    def __iter__(self) -> Iterator[ComponentSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: (s.component_key, s.variant_key)))

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._specs

    def copy(self) -> "Registry":
        new = Registry()
        new._specs = dict(self._specs)
        new.roots = dict(self.roots)
        return new
