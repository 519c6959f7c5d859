"""What a run-contract check reads and how it reports: ``RunParts`` finds the run's parts (the model behind its
wrappers, the loaders, their datasets, samplers and collators, the mesh) among the validated configs, and
``finding`` makes what a check returns.

A check reads validated configs (never a built object, never torch) and at most a .pbin header, its info file
or a tokenizer's files. A value it does not know now (one a component computes at build time, a component of
one's own) makes it say nothing: `validate` must not cry wolf, and `train` still checks what it uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modalities.registry.types import ComponentPlaceholder, Finding, NodeInfo

ERROR, WARNING = "error", "warning"

# Fields through which a component wraps a model (pipelines: the parts they hold and the model they cut), in
# the order they are followed.
WRAPPING_FIELDS = ("model", "wrapped_model", "pipeline", "model_parts", "whole_model")


def known_int(value: Any) -> int | None:
    """An int that is known now (not one a component computes when built)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def finding(path: tuple, message: str, severity: str = ERROR, hint: str | None = None) -> Finding:
    return Finding(tuple(path), message, severity, hint)


class RunParts:
    """The training run's parts as the compiler validated them (``view``: its RunView), read-only."""

    def __init__(self, view):
        self.view = view
        self.run = view.run

    # -- nodes and their fields ----------------------------------------------------------------------------------

    def node(self, ref: Any) -> NodeInfo | None:
        return self.view.node(ref) if isinstance(ref, ComponentPlaceholder) else None

    def nodes(self) -> list[NodeInfo]:
        return self.view.nodes()

    def where(self, path: tuple) -> str:
        return self.view.where(path)

    def field(self, info: NodeInfo | None, name: str) -> Any:
        """A plain validated value of a node's config (None when unknown or a component)."""
        if info is None or info.config is None:
            return None
        value = getattr(info.config, name, None)
        return None if isinstance(value, ComponentPlaceholder) else value

    def at(self, info: NodeInfo, name: str) -> tuple:
        return info.path + ("config", name)

    def chain(self, ref: Any, through: tuple[str, ...] = WRAPPING_FIELDS) -> Iterator[NodeInfo]:
        """The node ``ref`` names, then what it wraps, and so on."""
        seen = set()
        info = self.node(ref)
        while info is not None and info.path not in seen:
            seen.add(info.path)
            yield info
            inner = None
            for name in through:
                value = getattr(info.config, name, None) if info.config is not None else None
                if isinstance(value, ComponentPlaceholder):
                    inner = value
                    break
            info = self.node(inner)

    def first_with(self, ref: Any, name: str, through: tuple[str, ...] = WRAPPING_FIELDS) -> NodeInfo | None:
        return next((info for info in self.chain(ref, through) if self.field(info, name) is not None), None)

    # -- the parts of the run ------------------------------------------------------------------------------------

    def model_ref(self) -> Any:
        """The app state's model (the outermost wrapper)."""
        app_state = self.node(getattr(self.run, "app_state", None))
        return getattr(app_state.config, "model", None) if app_state and app_state.config else None

    def model(self) -> NodeInfo | None:
        """The model behind the wrappers: the first that names its keys or its vocabulary."""
        model_ref = self.model_ref()
        return self.first_with(model_ref, "sample_key") or self.first_with(model_ref, "vocab_size")

    def mesh(self) -> NodeInfo | None:
        return self.node(self.run.device_mesh)

    def loaders(self) -> list[tuple[str, NodeInfo]]:
        """(role, the loader that holds dataset/batch_sampler/collate_fn): train first, then each eval loader."""
        found = []
        evals = self.run.eval_dataloaders if isinstance(self.run.eval_dataloaders, list) else []
        for role, ref in [("train", getattr(self.run, "train_dataloader", None))] + [("eval", r) for r in evals]:
            loader = next(
                (i for i in self.chain(ref, ("dataloader",)) if i.config is not None and hasattr(i.config, "dataset")),
                None,
            )
            if loader is not None:
                found.append((role, loader))
        return found

    def train_loader(self) -> NodeInfo | None:
        return next((loader for role, loader in self.loaders() if role == "train"), None)

    def datasets(self, loader: NodeInfo) -> list[NodeInfo]:
        """The datasets a loader reads (the members of a combined dataset)."""
        top = self.node(getattr(loader.config, "dataset", None))
        if top is None:
            return []
        members = getattr(top.config, "datasets", None) if top.config is not None else None
        if isinstance(members, list):
            return [m for m in (self.node(r) for r in members) if m is not None]
        return [top]

    def collator(self, loader: NodeInfo) -> NodeInfo | None:
        return self.first_with(getattr(loader.config, "collate_fn", None), "sample_key", ("wrapped_collate_fn",))

    def batch_sampler(self, loader: NodeInfo) -> NodeInfo | None:
        return self.node(getattr(loader.config, "batch_sampler", None))

    def sampler(self, batch_sampler: NodeInfo | None) -> NodeInfo | None:
        return self.node(getattr(batch_sampler.config, "sampler", None)) if batch_sampler and batch_sampler.config \
            else None

    def header(self, dataset: NodeInfo):
        """The .pbin header of a dataset, or None (no .pbin, or unreadable: the data-files check reports that)."""
        from modalities.data.errors import DataError
        from modalities.data.pbin_header import read_pbin_header

        path = self.field(dataset, "raw_data_path")
        if path is None or Path(path).suffix != ".pbin":
            return None
        try:
            return read_pbin_header(path)
        except DataError:
            return None

    # -- numbers of the run --------------------------------------------------------------------------------------

    def world_size(self) -> tuple[int, tuple] | None:
        """(the world size, the field it is written in), when it is known."""
        mesh = self.mesh()
        size = self.field(mesh, "world_size")
        if isinstance(size, int):
            return size, self.at(mesh, "world_size")
        env = self.run.settings.cuda_env
        if env is not None and known_int(env.world_size) is not None:
            return env.world_size, ("settings", "cuda_env", "world_size")
        return None

    def borrowed_expert_dims(self) -> set[str]:
        """Mesh dimensions model/ep_wrapped splits the experts over in the reference's older spelling
        (ep_mesh_dim_name): their ranks are data-parallel ranks, not model-parallel ones."""
        return {name for info in self.nodes() if (info.component_key, info.variant_key) == ("model", "ep_wrapped")
                and (name := self.field(info, "ep_mesh_dim_name")) not in (None, "ep")}

    def model_parallel_degree(self) -> int:
        """Ranks of one data-parallel replica: they read the same batch (tensor x pipeline x context degree; a
        dimension the experts borrowed in the reference's older spelling is data-parallel)."""
        mesh = self.mesh()
        borrowed = self.borrowed_expert_dims()
        degree = 1
        for name, dim in (("tensor_parallel_degree", "tp"), ("pipeline_parallel_degree", "pp"),
                          ("context_parallel_degree", "cp")):
            degree *= 1 if dim in borrowed else known_int(self.field(mesh, name)) or 1
        return degree

    def remaining_steps(self) -> int | None:
        settings = self.run.settings
        target = known_int(settings.training_target.num_target_steps)
        seen = known_int(settings.training_progress.num_seen_steps)
        return target - seen if target is not None and seen is not None else None

    def severity(self, flag: str) -> str:
        """Error when Modalities' consistency flag is written out true, else warning."""
        enforcement = self.run.settings.consistency_enforcement
        return ERROR if enforcement is not None and getattr(enforcement, flag) else WARNING
