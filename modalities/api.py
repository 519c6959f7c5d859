"""The library API: ``load_app_config_dict`` and ``Main``, as Modalities users know them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from pydantic import BaseModel

from modalities.config.diagnostics import ConfigError, Diagnostic, has_errors
from modalities.config.resolve import ResolvedDocument, register_resolver
from modalities.registry import Registry, default_registry
from modalities.registry.registry import ComponentSpec


class AppConfigDict(dict):
    """A resolved config: a plain dict, with the source positions of its values kept in ``document``."""

    document: ResolvedDocument | None = None


def load_app_config_dict(
    config_file_path: str | Path,
    experiment_id: str | None = None,
    additional_resolver_funs: dict[str, Callable[..., Any]] | None = None,
    *,
    overrides: Sequence[str] = (),
    experiments_root: str | Path | None = None,
    last_checkpoint_info: str | Path | None = None,
) -> AppConfigDict:
    """Load a YAML config, apply ``overrides`` (``dotted.path=value``) and resolve every ``${...}``.

    ``additional_resolver_funs`` maps resolver names to functions of the argument string, as in Modalities.
    Raises ConfigError (every error, each with file:line:col) if the file cannot be loaded or resolved.
    """
    from modalities.config.compiler import load_and_resolve

    for name, fn in (additional_resolver_funs or {}).items():
        register_resolver(name, lambda arg, ctx, fn=fn: fn(arg), replace=True)
    document, diagnostics = load_and_resolve(
        config_file_path,
        overrides=overrides,
        experiment_id=experiment_id,
        experiments_root=experiments_root,
        last_checkpoint_info=last_checkpoint_info,
    )
    if has_errors(diagnostics):
        raise ConfigError(diagnostics)
    config = AppConfigDict(document.values)
    config.document = document
    return config


class Main:
    """Compile a config and build (``build_components``) or train (``run``) from it.

    The registry is this object's own copy of the process-wide one, so ``add_custom_component`` affects only
    this Main (and what ``write_schema`` writes for it).
    """

    def __init__(
        self,
        config_dict: dict | None = None,
        *,
        config_path: str | Path | None = None,
        registry: Registry | None = None,
        experiments_root: str | Path | None = None,
        experiment_id: str | None = None,
        overrides: Sequence[str] = (),
    ):
        if config_dict is None and config_path is None:
            raise ValueError("Main needs config_dict (from load_app_config_dict) or config_path")
        if config_dict is None:
            config_dict = load_app_config_dict(
                config_path, experiment_id, overrides=overrides, experiments_root=experiments_root
            )
        self.config_dict = config_dict
        document = getattr(config_dict, "document", None)
        self.config_path = Path(config_path) if config_path else (document.config_path if document else None)
        self.experiments_root = Path(experiments_root) if experiments_root else Path("experiments")
        self.experiment_id = experiment_id
        self.registry = (registry or default_registry()).copy()
        self._compiled = None
        self._components: dict[str, Any] | None = None

    def add_custom_component(
        self,
        component_key: str,
        variant_key: str,
        custom_component: Callable[..., Any],
        custom_config: type[BaseModel],
        *,
        replace: bool = False,
        produces: str | None = None,
    ) -> ComponentSpec:
        self._compiled = None
        return self.registry.register(
            component_key=component_key,
            variant_key=variant_key,
            custom_component=custom_component,
            custom_config=custom_config,
            replace=replace,
            produces=produces,
        )

    def forget_compilation(self) -> None:
        """Compile and build again on next use (after ``config_dict`` was changed in place)."""
        self._compiled = None
        self._components = None

    def compile(self):
        if self._compiled is None:
            from modalities.config.compiler import compile_document, document_from_dict

            self._compiled = compile_document(document_from_dict(self.config_dict), self.registry)
        return self._compiled

    def validate(self) -> list[Diagnostic]:
        """Check the whole config without building anything. Raises ConfigError listing every error;
        returns the warnings."""
        compiled = self.compile()
        compiled.raise_for_errors()
        return compiled.diagnostics

    def build_components(self) -> dict[str, Any]:
        """Every top-level component, built, by name (validated first; nothing is trained)."""
        if self._components is None:
            from modalities.config.build import build_components

            self.validate()
            self._components = build_components(self.compile().validated)
        return self._components

    def run(self, resume_from: str | Path | None = None) -> dict:
        """Train as the config describes (under torchrun too); ``resume_from`` continues from a checkpoint
        folder (e.g. ``experiments/<id>/checkpoints/latest``). Returns the final training progress."""
        from modalities.training.entry import run_training

        return run_training(self, resume_from=resume_from)

    def write_schema(self, out_dir: str | Path) -> list[Path]:
        """Write the JSON Schemas for this Main's registry (custom components included)."""
        from modalities.schema.json_schema import write_schemas

        return write_schemas(self.registry, Path(out_dir))
