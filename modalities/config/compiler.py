"""The pipeline: load -> overrides -> resolve -> graph -> validate -> root (what the whole config is, e.g. a
training run, and its contract across components). Building is a separate, later step.

Every stage adds to one list of diagnostics, and a stage that can go on after errors does, so one run reports
every mistake in a file at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any

from modalities.config.compose import compose_files
from modalities.config.diagnostics import WARNING, ConfigError, Diagnostic, has_errors
from modalities.config.load import Document, Sources
from modalities.config.overrides import apply_overrides
from modalities.config.resolve import ResolvedDocument, ResolverContext, resolve_document
from modalities.registry import Registry, default_registry

if TYPE_CHECKING:
    # Imported where used: loading and resolving (what `load_app_config_dict` and the packer need) must not
    # wait for networkx (~0.1 s) and the validation stage.
    from modalities.config.graph import ComponentGraph
    from modalities.config.validate import ValidatedGraph, ValidatedRoot

# The top-level names a training run asks for (as in Modalities): such a component is "used" even when no
# other component references it.
DEFAULT_ENTRY_POINTS = frozenset(
    {
        "app_state",
        "device_mesh",
        "model",
        "wrapped_model",
        "optimizer",
        "lr_scheduler",
        "loss_fn",
        "train_dataloader",
        "eval_dataloaders",
        "checkpoint_saving",
        "checkpoint_loading",
        "gradient_clipper",
        "progress_subscriber",
        "evaluation_subscriber",
        "mfu_calculator",
        "tokenizer",
        "scheduled_pipeline",
        "profiler",
        "steppable_component",
        "text_inference_component",
    }
)


AUTO_ROOT = "auto"


_agreed_default_id: str | None = None


def default_experiment_id() -> str:
    """MODALITIES_EXPERIMENT_ID, else a timestamp. Under torchrun every rank gets rank 0's timestamp, agreed
    through the store torchrun's agent runs for the job, before anything is compiled (ranks that read the clock
    in different seconds would otherwise compile different configs)."""
    global _agreed_default_id
    if os.environ.get("MODALITIES_EXPERIMENT_ID"):
        return os.environ["MODALITIES_EXPERIMENT_ID"]
    if _agreed_default_id is None:
        proposed = time.strftime("%Y-%m-%d__%H-%M-%S")
        _agreed_default_id = _agree_under_torchrun(proposed) or proposed
    return _agreed_default_id


def _agree_under_torchrun(proposed: str) -> str | None:
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None  # one process; or a launcher without torchrun's store (then give the id explicitly)
    from datetime import timedelta

    from torch.distributed import TCPStore

    store = TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                     timeout=timedelta(seconds=600))
    key = f"modalities/experiment_id/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    if os.environ.get("RANK", "0") == "0":
        store.set(key, proposed)
    return store.get(key).decode()


@dataclass
class CompiledConfig:
    document: ResolvedDocument
    registry: Registry
    diagnostics: list[Diagnostic] = field(default_factory=list)
    graph: ComponentGraph | None = None
    validated: ValidatedGraph | None = None
    root: ValidatedRoot | None = None  # what the whole config is (a training run), when it is one

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    def raise_for_errors(self) -> None:
        if not self.ok:
            raise ConfigError(self.diagnostics)


def load_and_resolve(
    config_path: str | FilePath | Sequence[str | FilePath],
    *,
    overrides: Sequence[str] = (),
    experiment_id: str | None = None,
    experiments_root: str | FilePath | None = None,
    last_checkpoint_info: str | FilePath | None = None,
    sources: Sources | None = None,
) -> tuple[ResolvedDocument, list[Diagnostic]]:
    """Stages 1-2. ``config_path``: a file, or several merged left to right (each after the files it extends;
    see config/compose.py); ``sources``: a path's text to read instead of the file's (an editor's unsaved
    buffer). Raises ConfigError only if a file cannot be read, parsed or composed."""
    document = compose_files(config_path, sources=sources)
    return resolve(
        document,
        overrides=overrides,
        experiment_id=experiment_id,
        experiments_root=experiments_root,
        last_checkpoint_info=last_checkpoint_info,
    )


def resolve(
    document: Document,
    *,
    overrides: Sequence[str] = (),
    experiment_id: str | None = None,
    experiments_root: str | FilePath | None = None,
    last_checkpoint_info: str | FilePath | None = None,
) -> tuple[ResolvedDocument, list[Diagnostic]]:
    diagnostics = list(document.warnings) + apply_overrides(document, overrides)
    config_path = document.config_path
    root = FilePath(experiments_root) if experiments_root else FilePath("experiments")
    context = ResolverContext(
        config_path=config_path,
        experiments_root=root.resolve(),
        experiment_id=experiment_id or default_experiment_id(),
        last_checkpoint_info=FilePath(last_checkpoint_info) if last_checkpoint_info else None,
        folder_of=_folder_of_writer(document),
    )
    resolved, resolve_diagnostics = resolve_document(document, context)
    return resolved, diagnostics + resolve_diagnostics


def _folder_of_writer(document: Document):
    """path -> the folder of the file that wrote the value there (None for a --set value, or a document read
    from text): what ``${modalities_env:config_folder_path}`` is, so a base's paths stay relative to the base."""
    folders = {source.name: source.path.parent for source in document.files}
    if not folders:
        return None

    def folder_of(path) -> FilePath | None:
        span = document.source_map.value(path)
        return folders.get(span.file) if span is not None else None

    return folder_of


def _is_sweep_template(sweep: Any) -> bool:
    """A top-level `sweep` block that still lists alternatives (an expanded config holds single values)."""
    if isinstance(sweep, dict):
        return any(_is_sweep_template(value) or isinstance(value, list) for value in sweep.values())
    return False


def compile_document(
    document: ResolvedDocument,
    registry: Registry | None = None,
    *,
    diagnostics: Iterable[Diagnostic] = (),
    entry_points: Iterable[str] = DEFAULT_ENTRY_POINTS,
    root: str | None = AUTO_ROOT,
    resume_from: str | FilePath | None = None,
) -> CompiledConfig:
    """Stages 3-5 on a resolved document. ``root``: what the whole config must be ("training"), AUTO_ROOT (the
    registry's root whose marker keys the config has, e.g. app_state for a training run), or None.
    ``resume_from``: the checkpoint (or "auto") the run will continue from, which its contract checks against."""
    from modalities.config.graph import build_component_graph
    from modalities.config.validate import validate_graph, validate_root

    registry = registry if registry is not None else default_registry()
    compiled = CompiledConfig(document=document, registry=registry, diagnostics=list(diagnostics))
    if _is_sweep_template(document.values.get("sweep")):
        compiled.diagnostics.append(
            Diagnostic(
                "this file is a sweep template: each `${sweep...}` stands for one of the values listed under `sweep`",
                span=document.source_map.key(("sweep",)),
                path=("sweep",),
                severity=WARNING,
                hint="expand it with `modalities benchmark prepare_sweep_configs --sweep_config_path FILE --output_dir "
                "DIR` and validate or train the configs it writes",
                code="sweep-template",
            )
        )
    compiled.graph, graph_diagnostics = build_component_graph(document, entry_points)
    compiled.diagnostics += _explain_deleted_references(document, graph_diagnostics)
    compiled.validated, validation_diagnostics = validate_graph(compiled.graph, registry)
    compiled.diagnostics += validation_diagnostics
    spec = _root_spec(registry, root, document.values)
    if spec is not None:
        compiled.root, root_diagnostics = validate_root(
            compiled.graph, compiled.validated, registry, spec, run_contract=not has_errors(compiled.diagnostics),
            resume_from=resume_from,
        )
        compiled.diagnostics += root_diagnostics
    return compiled


def _explain_deleted_references(document: ResolvedDocument, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """A reference to a component that a file of a composed config deleted (`!delete`) says where it was
    deleted: the reference itself may stand in another file (the base), which the deleting file must override."""
    deleted = {path: span for source in document.files for path, span in source.deleted.items()}
    if not deleted:
        return diagnostics
    from modalities.config.spans import get_at, path_part

    for diagnostic in diagnostics:
        if diagnostic.code != "unknown-reference":
            continue
        try:
            key = get_at(document.values, diagnostic.path)
        except (KeyError, IndexError, TypeError):
            continue
        parts = tuple(path_part(p) for p in str(key).split("."))
        if parts in deleted:
            diagnostic.hint = (
                f"'{key}' is deleted at {deleted[parts]} (`!delete`): change or delete this reference too (in that "
                "file or one merged after it)"
            )
    return diagnostics


def _root_spec(registry: Registry, root: str | None, values: Any):
    if root is None:
        return None
    if root == AUTO_ROOT:
        return registry.root_for(values) if isinstance(values, dict) else None
    if root not in registry.roots:
        raise ValueError(f"unknown root {root!r}; known: {', '.join(registry.roots) or 'none'}")
    return registry.roots[root]


def compile_file(
    config_path: str | FilePath | Sequence[str | FilePath],
    registry: Registry | None = None,
    *,
    overrides: Sequence[str] = (),
    experiment_id: str | None = None,
    experiments_root: str | FilePath | None = None,
    entry_points: Iterable[str] = DEFAULT_ENTRY_POINTS,
    last_checkpoint_info: str | FilePath | None = None,
    root: str | None = AUTO_ROOT,
    sources: Sources | None = None,
    resume_from: str | FilePath | None = None,
) -> CompiledConfig:
    """Stages 1-5 on a file, or on several merged left to right (``extends`` followed; ``sources``: a path's
    text to read instead of the file's, e.g. an editor's unsaved buffer). Raises ConfigError if a file cannot
    be read, parsed or composed (each error positioned in its own file); every later error is collected in the
    result's diagnostics. ``resume_from``: see compile_document."""
    document, diagnostics = load_and_resolve(
        config_path,
        overrides=overrides,
        experiment_id=experiment_id,
        experiments_root=experiments_root,
        last_checkpoint_info=last_checkpoint_info,
        sources=sources,
    )
    return compile_document(
        document, registry, diagnostics=diagnostics, entry_points=entry_points, root=root, resume_from=resume_from
    )


def document_from_dict(values: dict[str, Any]) -> ResolvedDocument:
    """A document for a config given as a dict (positions unknown unless it came from load_app_config_dict)."""
    source = getattr(values, "document", None)
    if isinstance(source, ResolvedDocument):
        return ResolvedDocument(
            values=dict(values),
            source_map=source.source_map,
            config_path=source.config_path,
            unresolved_paths=source.unresolved_paths,
            provenance=source.provenance,
            files=source.files,
        )
    return ResolvedDocument(values=dict(values))
