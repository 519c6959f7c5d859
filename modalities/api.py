"""The library API: ``load_app_config_dict`` and ``Main``, as Modalities users know them."""

from __future__ import annotations

import os
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
    config_file_path: str | Path | Sequence[str | Path],
    experiment_id: str | None = None,
    additional_resolver_funs: dict[str, Callable[..., Any]] | None = None,
    *,
    overrides: Sequence[str] = (),
    experiments_root: str | Path | None = None,
    last_checkpoint_info: str | Path | None = None,
) -> AppConfigDict:
    """Load a YAML config, apply ``overrides`` (``dotted.path=value``) and resolve every ``${...}``.

    ``config_file_path`` may also be a list of files, merged left to right as ``extends:`` merges them (each
    file's own ``extends`` followed; see docs/config-format.md).

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
        config_path: str | Path | Sequence[str | Path] | None = None,
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
        given_one = isinstance(config_path, (str, Path))
        self.config_path = Path(config_path) if given_one else (document.config_path if document else None)
        self.experiments_root = Path(experiments_root) if experiments_root else Path("experiments")
        self.experiment_id = experiment_id
        self.registry = (registry or default_registry()).copy()
        self._compiled = None
        self._compiled_root: str | None = None
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

    def compile(self, root: str | None = None):
        """The compiled config. ``root="training"`` also checks it as a training run (what ``run`` needs)."""
        if self._compiled is None or self._compiled_root != root:
            from modalities.config.compiler import compile_document, document_from_dict

            self._compiled = compile_document(document_from_dict(self.config_dict), self.registry, root=root)
            self._compiled_root = root
        return self._compiled

    def validate(self, root: str | None = None) -> list[Diagnostic]:
        """Check the whole config without building anything (``root="training"``: as a training run). Raises
        ConfigError listing every error; returns the warnings."""
        compiled = self.compile(root)
        compiled.raise_for_errors()
        return compiled.diagnostics

    def build_components(self) -> dict[str, Any]:
        """Every top-level component, built, by name (validated first; nothing is trained)."""
        if self._components is None:
            from modalities.config.build import build_components

            self.validate(self._compiled_root)
            self._components = build_components(self.compile(self._compiled_root).validated)
        return self._components

    def run(self, resume_from: str | Path | None = None) -> dict:
        """Train as the config describes (under torchrun too); ``resume_from`` continues from a checkpoint
        folder (e.g. ``experiments/<id>/checkpoints/latest``) or is "auto". Returns the final training progress."""
        return train_compiled(
            self.compile(TRAINING_ROOT),
            experiment_id=self.experiment_id,
            experiments_root=self.experiments_root,
            resume_from=resume_from,
        )

    def write_schema(self, out_dir: str | Path) -> list[Path]:
        """Write the JSON Schemas for this Main's registry (custom components included)."""
        from modalities.schema.json_schema import write_schemas

        return write_schemas(self.registry, Path(out_dir))


TRAINING_ROOT = "training"
EXPERIMENT_ID_ENV = "MODALITIES_EXPERIMENT_ID"


class ExperimentIdError(ValueError):
    """No experiment id can be chosen for the run as it was asked for (the user's to fix)."""


def choose_experiment_id(experiment_id: str | None = None, resume_from: str | Path | None = None) -> str:
    """The experiment id a training run is compiled with, chosen before compiling so that every rank compiles the
    same config and writes into one folder: ``experiment_id``, else MODALITIES_EXPERIMENT_ID, else (resuming from
    a checkpoint) the id of the run that saved it, so the run continues in its folder, else rank 0's timestamp
    shared through torchrun's store. ``resume_from="auto"`` needs a fixed id (a rerun must find its
    checkpoints). Raises ExperimentIdError, or CheckpointError for a checkpoint that cannot be read."""
    chosen = experiment_id or os.environ.get(EXPERIMENT_ID_ENV)
    if resume_from == "auto" and not chosen:
        raise ExperimentIdError(
            "--resume auto needs a fixed experiment id, so that a rerun of the same command finds the run's "
            f"checkpoints: give --experiment-id NAME (under SLURM e.g. --experiment-id $SLURM_JOB_ID) or set "
            f"{EXPERIMENT_ID_ENV}"
        )
    if resume_from not in (None, "auto") and not chosen:
        chosen = _experiment_of_checkpoint(resume_from)
    return chosen or _shared_default_experiment_id()


def _experiment_of_checkpoint(checkpoint: str | Path) -> str | None:
    """The experiment a checkpoint was saved by (from its training_progress.json): one run, one folder, one
    results file."""
    from modalities.checkpointing.layout import read_progress, resolve_checkpoint

    experiment_id = read_progress(resolve_checkpoint(checkpoint)).get("experiment_id")
    return str(experiment_id) if experiment_id else None


def _shared_default_experiment_id() -> str:
    """Rank 0's default experiment id, for every rank (see default_experiment_id): only torchrun's store can
    share it, so another multi-process launcher must be given the id."""
    from modalities.config.compiler import default_experiment_id

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        raise ExperimentIdError(
            "the ranks need one experiment id and this launcher provides no torchrun store to agree on one: give "
            f"--experiment-id NAME or set {EXPERIMENT_ID_ENV}"
        )
    return default_experiment_id()


def train_compiled(
    compiled,
    *,
    experiment_id: str | None = None,
    experiments_root: str | Path = "experiments",
    resume_from: str | Path | None = None,
) -> dict:
    """Train a config compiled as a training run (``root="training"``): start the process group on the device
    the config names, claim the experiment folder, build, and hand the built, typed run to the executor
    (training/entry.py). Raises ConfigError (with positions) for errors found before or while building."""
    from modalities.config.build import build_components
    from modalities.config.dump import dump_yaml, schema_modeline
    from modalities.training.distributed import destroy_process_group, ensure_process_group
    from modalities.training.entry import claim_experiment, run_training
    from modalities.training.signals import StopSignals

    device_type = plan_training(compiled)
    ensure_process_group(device_type)
    claim = None
    try:
        with StopSignals() as stop_signals:
            settings = compiled.document.values.get("settings") or {}
            experiment_id = str(experiment_id or settings.get("experiment_id") or "experiment")
            _check_ranks_agree(experiment_id)
            claim = claim_experiment(Path(experiments_root), experiment_id, resume_from)
            if claim is not None:  # rank 0
                _save_config_sources(claim.folder, compiled.document)
            run = _built_run(compiled, build_components(compiled.validated))
            return run_training(
                run,
                device_type=device_type,
                experiment_id=experiment_id,
                experiments_root=experiments_root,
                config_text=dump_yaml(compiled.document.values, schema_modeline(compiled.document.config_path)),
                config_values=compiled.document.values,
                resume_from=resume_from,
                stop_signals=stop_signals,
            )
    finally:
        if claim is not None:
            claim.release()
        destroy_process_group()


def _save_config_sources(folder: Path, document) -> None:
    """Beside the resolved config, the files it was composed from as they were read, so the run can be
    composed again and diffed later (training/experiment.py)."""
    from modalities.training.experiment import save_config_sources

    sources = getattr(document, "files", None) or []
    if sources:
        from modalities.config.spans import OVERRIDE_FILE

        flags = {span.text: None for span in document.source_map.keys.values() if span.file == OVERRIDE_FILE}
        save_config_sources(
            folder,
            [(source.location, source.text) for source in sources],
            given=[source.location for source in sources if source.given],
            flags=list(flags),
        )


def plan_training(compiled) -> str:
    """Everything `train` checks before it starts the process group and builds, on a config compiled with
    root="training": the config's errors (the same as `validate`'s) and that its device exists here. Returns
    the device type."""
    from modalities.training.distributed import check_device_available

    compiled.raise_for_errors()
    if compiled.root is None or compiled.root.spec.name != TRAINING_ROOT:
        raise ValueError("train_compiled needs a config compiled with root='training'")
    device_type = _device_type(compiled)
    check_device_available(device_type)
    return device_type


def _device_type(compiled) -> str:
    """The device the run's device mesh names (validated, not read from the file), else CUDA if present."""
    mesh = getattr(compiled.root.config, "device_mesh", None)
    node = compiled.validated.nodes.get(getattr(mesh, "node_id", None)) if mesh is not None else None
    config = (node.config or node.partial) if node is not None else None
    device_type = getattr(config, "device_type", None)
    if isinstance(device_type, str):
        return device_type
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_ranks_agree(experiment_id: str) -> None:
    import torch.distributed as dist

    from modalities.training.distributed import TrainingSetupError

    if dist.get_world_size() == 1:
        return
    ids: list = [None] * dist.get_world_size()
    dist.all_gather_object(ids, experiment_id)
    if len(set(ids)) > 1:
        raise TrainingSetupError(
            f"the ranks compiled the config with different experiment ids ({', '.join(sorted(set(map(str, ids))))}); "
            "give one: --experiment-id NAME, Main(..., experiment_id=NAME) or MODALITIES_EXPERIMENT_ID"
        )


def _built_run(compiled, built: dict):
    """The training root with built objects in its component fields and its settings as built (numbers that
    components computed included), validated; a computed value that does not fit is a positioned error."""
    from pydantic import ValidationError

    from modalities.registry.types import BUILD_PHASE

    cls = compiled.root.spec.config_class()
    try:
        return cls.model_validate(built, context={"phase": BUILD_PHASE})
    except ValidationError as e:
        source_map = compiled.document.source_map
        raise ConfigError(
            [
                Diagnostic(
                    f"{error['msg']} (got {error.get('input')!r}, as computed when built)",
                    span=source_map.value(tuple(error["loc"])),
                    path=tuple(error["loc"]),
                    code="build",
                )
                for error in e.errors(include_url=False)
            ]
        ) from None
