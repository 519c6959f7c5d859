"""The checks across the components of a training run, made by `validate` before anything is built.

Each check reads validated configs (never a built object, never torch) and at most a .pbin header, its info
file or a tokenizer's files, and reports a Finding at the field to change, naming the other place it disagrees with. A check
that lacks a value (one a component computes at build time, a component of one's own) says nothing: `validate`
must not cry wolf, and `train` still checks what it uses.

What is checked (docs/config-format.md, "The run contract"):
- the keys a batch travels under: dataset -> collator -> model -> loss;
- sequence lengths: data windows against the model's context and the MFU calculator's;
- vocabulary: the model's embedding against the ids the data file's token width implies and the tokenizer's;
  against the tokenizer that packed the data (the .pbin's info file), which a tokenizer in the config must be;
- the batch: the batch sampler against the step profile, the sampler's ranks against the device mesh;
- the data available for the target (error, or epochs when the loader repeats) and the target tokens;
- the intervals against the target, and the step profile against the target tokens (Modalities' consistency
  flags decide between warning and error);
- data files present and readable, with a header that fits;
- a mixture-of-experts run (contract_moe.py): the expert-parallel degree against the experts and the mesh, the
  loss against the model, a capacity that drops slots even when balanced, model/qwen_tp's divisibility;
- the learning-rate schedule: long enough for the run, and against the checkpoint a run continues from
  (training/schedule_contract.py).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modalities.registry.types import ComponentPlaceholder, Finding, NodeInfo

ERROR, WARNING = "error", "warning"


def _n(value: Any) -> int | None:
    """An int that is known now (not one a component computes when built)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Fields by which a wrapper names what it wraps, in the order they are followed.
# Fields through which a component wraps a model (pipelines: the parts they hold and the model they cut).
_WRAPPED = ("model", "wrapped_model", "pipeline", "model_parts", "whole_model")


class _Checks:
    def __init__(self, view):
        self.view = view
        self.run = view.run
        self.findings: list[Finding] = []

    # -- helpers -----------------------------------------------------------------------------------------------

    def add(self, path: tuple, message: str, severity: str = ERROR, hint: str | None = None) -> None:
        self.findings.append(Finding(tuple(path), message, severity, hint))

    def node(self, ref: Any) -> NodeInfo | None:
        return self.view.node(ref) if isinstance(ref, ComponentPlaceholder) else None

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

    def chain(self, ref: Any, through: tuple[str, ...] = _WRAPPED) -> Iterator[NodeInfo]:
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

    def first_with(self, ref: Any, name: str, through: tuple[str, ...] = _WRAPPED) -> NodeInfo | None:
        return next((info for info in self.chain(ref, through) if self.field(info, name) is not None), None)

    # -- the parts of the run ----------------------------------------------------------------------------------

    def model(self) -> NodeInfo | None:
        app_state = self.node(getattr(self.run, "app_state", None))
        model_ref = getattr(app_state.config, "model", None) if app_state and app_state.config else None
        return self.first_with(model_ref, "sample_key") or self.first_with(model_ref, "vocab_size")

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

    # -- the checks --------------------------------------------------------------------------------------------

    def keys(self) -> None:
        model, loss = self.model(), self.node(self.run.loss_fn)
        for role, loader in self.loaders():
            collator = self.collator(loader)
            for dataset in self.datasets(loader):
                self.same(
                    dataset,
                    "sample_key",
                    collator,
                    "sample_key",
                    "the collator reads samples under '{b}', but the dataset ({a_at}) writes them under '{a}'",
                )
            if role == "train":
                self.same(
                    collator,
                    "sample_key",
                    model,
                    "sample_key",
                    "the model reads its input under '{b}', but the collator ({a_at}) puts it under '{a}'",
                )
                self.same(
                    collator,
                    "target_key",
                    loss,
                    "target_key",
                    "the loss reads targets under '{b}', but the collator ({a_at}) puts them under '{a}'",
                )
        self.same(
            model,
            "prediction_key",
            loss,
            "prediction_key",
            "the loss reads the model's output under '{b}', but the model ({a_at}) returns it under '{a}'",
        )

    def same(self, a: NodeInfo | None, a_name: str, b: NodeInfo | None, b_name: str, message: str) -> None:
        """Report at b's field when b's value differs from a's."""
        a_value, b_value = self.field(a, a_name), self.field(b, b_name)
        if not isinstance(a_value, str) or not isinstance(b_value, str) or a_value == b_value:
            return
        self.add(
            self.at(b, b_name),
            message.format(a=a_value, b=b_value, a_at=self.where(self.at(a, a_name))),
            hint=f"use the same key in both (usually ${{settings.referencing_keys.{b_name}}})",
        )

    def sequence_lengths(self) -> None:
        model = self.model()
        length_field = "max_seq_len" if self.field(model, "max_seq_len") is not None else "sequence_length"
        model_length = self.field(model, length_field)
        train_lengths = []
        for role, loader in self.loaders():
            for dataset in self.datasets(loader):
                length = self.field(dataset, "sequence_length")
                if not isinstance(length, int):
                    continue
                if role == "train":
                    train_lengths.append((dataset, length))
                if isinstance(model_length, int) and length > model_length:
                    self.add(
                        self.at(dataset, "sequence_length"),
                        f"samples of {length} input tokens are longer than the model's context of {model_length} "
                        f"({self.where(self.at(model, length_field))}); the model would fail on the first batch",
                        hint="use the same sequence_length for the data and the model",
                    )
        if not train_lengths:
            return
        dataset, length = train_lengths[0]
        profile_length = _n(self.run.settings.step_profile.sequence_length)
        if profile_length is not None and profile_length != length:
            self.add(
                ("settings", "step_profile", "sequence_length"),
                f"the step profile says {profile_length} tokens per sample, but the train data gives {length} "
                f"({self.where(self.at(dataset, 'sequence_length'))}); token counts and targets computed from the "
                "step profile are then wrong",
                WARNING,
            )
        mfu = self.node(self.run.mfu_calculator)
        mfu_length = self.field(mfu, "sequence_length")
        if isinstance(mfu_length, int) and mfu_length != length:
            self.add(
                self.at(mfu, "sequence_length"),
                f"MFU is computed for {mfu_length} tokens per sample, but the train data gives {length} "
                f"({self.where(self.at(dataset, 'sequence_length'))}); the logged MFU would be wrong",
                WARNING,
            )

    def vocabulary(self) -> None:
        model = self.model()
        vocab_size = self.field(model, "vocab_size")
        if not isinstance(vocab_size, int):
            return
        for _, loader in self.loaders():
            for dataset in self.datasets(loader):
                header = self.header(dataset)
                if header is not None and vocab_size < header.min_vocab_size:
                    self.add(
                        self.at(model, "vocab_size"),
                        f"vocab_size {vocab_size} cannot embed the data of {self.where(self.at(dataset, 'raw_data_path'))}: "
                        f"it holds {header.token_width}-byte tokens, written only for tokenizers of more than "
                        f"{header.min_vocab_size - 1} ids",
                        hint="set vocab_size to the tokenizer's size (special and added tokens included)",
                    )
                    return
        if self.packed_with(model, vocab_size):
            return
        for info in self.view.nodes():
            if info.component_key != "tokenizer":
                continue
            size = _hf_tokenizer_size(self.field(info, "pretrained_model_name_or_path"))
            if size is not None and vocab_size < size:
                self.add(
                    self.at(model, "vocab_size"),
                    f"vocab_size {vocab_size} is smaller than the {size} ids of the tokenizer at "
                    f"{self.where(self.at(info, 'pretrained_model_name_or_path'))}",
                    hint=f"set vocab_size to at least {size}",
                )
                return

    def packed_with(self, model: NodeInfo, vocab_size: int) -> bool:
        """Against the info file the packer writes beside a .pbin (data/pbin_info.py): the model must embed
        every id of the tokenizer that packed the data, and a tokenizer this config names must be that one.
        True when it reported something."""
        from modalities.data.errors import DataError
        from modalities.data.pbin_info import describe_tokenizer, read_info, same_tokenizer

        tokenizers = None  # the config's tokenizers' identities, hashed only once a data file names its packer
        for _, loader in self.loaders():
            for dataset in self.datasets(loader):
                path = self.field(dataset, "raw_data_path")
                if path is None or Path(path).suffix != ".pbin":
                    continue
                try:
                    packed = read_info(path)
                except DataError as e:
                    self.add(self.at(dataset, "raw_data_path"), str(e), WARNING)
                    continue
                packer = (packed or {}).get("tokenizer")
                if not packer:
                    continue
                data_at = self.where(self.at(dataset, "raw_data_path"))
                size = _n(packer.get("vocab_size"))
                if size is not None and vocab_size < size:
                    self.add(
                        self.at(model, "vocab_size"),
                        f"vocab_size {vocab_size} is smaller than the {size} ids of the {describe_tokenizer(packer)} "
                        f"that packed {data_at} (its .info.json)",
                        hint=f"set vocab_size to at least {size}",
                    )
                    return True
                if tokenizers is None:
                    tokenizers = [(info, _config_tokenizer_identity(info, self.field)) for info in self.view.nodes()
                                  if info.component_key == "tokenizer"]
                for info, identity in tokenizers:
                    if same_tokenizer(identity, packer) is False:
                        where = self.at(info, "pretrained_model_name_or_path" if info.variant_key ==
                                        "pretrained_hf_tokenizer" else "tokenizer_model_file")
                        self.add(
                            where,
                            f"this tokenizer is not the one that packed {data_at}: that was the "
                            f"{describe_tokenizer(packer)} (their files differ)",
                            hint="use the tokenizer the data was packed with, or pack the data again with this one",
                        )
                        return True
        return False

    def batch(self) -> None:
        settings = self.run.settings
        train = next((loader for role, loader in self.loaders() if role == "train"), None)
        if train is None:
            return
        batch_sampler = self.node(getattr(train.config, "batch_sampler", None))
        batch_size = self.field(batch_sampler, "batch_size")
        micro = _n(settings.step_profile.local_train_micro_batch_size)
        if isinstance(batch_size, int) and micro is not None and batch_size != micro:
            self.add(
                self.at(batch_sampler, "batch_size"),
                f"the train batch sampler makes batches of {batch_size} samples, but the step profile says {micro} "
                f"({self.where(('settings', 'step_profile', 'local_train_micro_batch_size'))}); targets and token "
                "counts computed from the step profile would be wrong",
                hint="use ${settings.step_profile.local_train_micro_batch_size} for both",
            )
        sampler = (
            self.node(getattr(batch_sampler.config, "sampler", None))
            if batch_sampler and batch_sampler.config
            else None
        )
        replicas = self.field(sampler, "num_replicas")
        world = self.world_size()
        tp = self.model_parallel_degree()
        if isinstance(replicas, int) and world is not None and replicas * tp != world[0]:
            readers = (f"{world[0] // tp} data-parallel ranks ({world[0]} / tensor x pipeline x context degree {tp})"
                       if tp > 1 else f"{world[0]}")
            self.add(
                self.at(sampler, "num_replicas"),
                f"the train sampler splits the data over {replicas} ranks, but the run has {readers} "
                f"({self.where(world[1])}); ranks would read the same or no samples",
                hint="use sampler/resumable_distributed_multi_dim_sampler, which reads the mesh, or the device mesh's "
                "data-parallel degree (number_conversion/parallel_degree)" if tp > 1 else
                "use the device mesh's data-parallel degree (number_conversion/parallel_degree) or "
                "${settings.cuda_env.world_size}",
            )

    def replicas_read_their_own_data(self) -> None:
        """A mesh-reading sampler keyed on dp_shard gives every replica (dp_replicate) the same samples."""
        mesh = self.node(self.run.device_mesh)
        replicate = _n(self.field(mesh, "data_parallel_replicate_degree")) or 1
        if replicate == 1:
            return
        for role, loader in self.loaders():
            batch_sampler = self.node(getattr(loader.config, "batch_sampler", None))
            sampler = self.node(getattr(batch_sampler.config, "sampler", None)) if batch_sampler and \
                batch_sampler.config else None
            if sampler is None or sampler.variant_key != "resumable_distributed_multi_dim_sampler":
                continue
            if self.field(sampler, "data_parallel_key") == "dp_shard":
                self.add(self.at(sampler, "data_parallel_key"),
                         f"the {role} sampler reads the dp_shard rank only, so the {replicate} replicas of "
                         f"{self.where(self.at(mesh, 'data_parallel_replicate_degree'))} would read the same samples",
                         hint="use data_parallel_key: dp (dp_replicate x dp_shard)")

    def model_parallel_degree(self) -> int:
        """Ranks of one data-parallel replica: they read the same batch (tensor x pipeline x context degree; a
        dimension the experts borrowed in the reference's older spelling is data-parallel)."""
        from modalities.training.contract_moe import borrowed_expert_dims

        mesh = self.node(self.run.device_mesh)
        borrowed = borrowed_expert_dims(self)
        degree = 1
        for name, dim in (("tensor_parallel_degree", "tp"), ("pipeline_parallel_degree", "pp"),
                          ("context_parallel_degree", "cp")):
            degree *= 1 if dim in borrowed else _n(self.field(mesh, name)) or 1
        return degree

    def world_size(self) -> tuple[int, tuple] | None:
        mesh = self.node(self.run.device_mesh)
        size = self.field(mesh, "world_size")
        if isinstance(size, int):
            return size, self.at(mesh, "world_size")
        env = self.run.settings.cuda_env
        if env is not None and _n(env.world_size) is not None:
            return env.world_size, ("settings", "cuda_env", "world_size")
        return None

    def data_amount(self) -> None:
        settings = self.run.settings
        train = next((loader for role, loader in self.loaders() if role == "train"), None)
        if train is None:
            return
        datasets = self.datasets(train)
        counts = [self.samples(d) for d in datasets]
        if not datasets or any(c is None for c in counts):
            return
        samples = sum(c[0] for c in counts)
        tokens = sum(c[1] for c in counts)
        batch_sampler = self.node(getattr(train.config, "batch_sampler", None))
        sampler = (
            self.node(getattr(batch_sampler.config, "sampler", None))
            if batch_sampler and batch_sampler.config
            else None
        )
        batch_size = self.field(batch_sampler, "batch_size")
        replicas = self.field(sampler, "num_replicas") or 1
        skip = self.field(sampler, "skip_num_global_samples") or 0
        if not isinstance(batch_size, int) or not isinstance(replicas, int):
            return
        per_rank_batches = max(samples - skip, 0) // replicas // batch_size
        steps = self.remaining_steps()
        accumulation = _n(settings.step_profile.gradient_accumulation_steps)
        if steps is None or accumulation is None or not isinstance(skip, int):
            return
        needed = steps * accumulation
        repeats = any(
            i.component_key == "data_loader" and i.variant_key == "repeating_data_loader"
            for i in self.chain(getattr(self.run, "train_dataloader", None), ("dataloader",))
        )
        where = ("settings", "training_target", "num_target_steps")
        if needed > per_rank_batches:
            epochs = needed / per_rank_batches if per_rank_batches else float("inf")
            if repeats:
                self.add(
                    where,
                    f"the target reads the train data {epochs:.2f} times ({needed} micro-batches per rank, "
                    f"{per_rank_batches} in one pass)",
                    WARNING,
                )
            else:
                self.add(
                    where,
                    f"the target needs {needed} micro-batches per rank, but the train data gives {per_rank_batches} "
                    f"({samples} samples{f' less {skip} skipped' if skip else ''}, over {replicas} rank(s), "
                    f"{batch_size} per batch): the run would stop when the data runs out",
                    hint="lower the target, add data, or repeat it (data_loader/repeating_data_loader)",
                )
        target_tokens = _n(settings.training_target.num_target_tokens)
        if target_tokens is not None and tokens < target_tokens:
            self.add(
                ("settings", "training_target", "num_target_tokens"),
                f"the train data holds {tokens} tokens, fewer than the target of {target_tokens}",
                self.severity("enforce_enough_tokens_in_dataset"),
            )

    def samples(self, dataset: NodeInfo) -> tuple[int, int] | None:
        """(samples, tokens) of a continuous packed dataset, from its header alone."""
        from modalities.data.pbin_header import num_continuous_samples

        if dataset.variant_key != "packed_mem_map_dataset_continuous":
            return None
        header, length = self.header(dataset), self.field(dataset, "sequence_length")
        if header is None or not isinstance(length, int):
            return None
        reuse = self.field(dataset, "reuse_last_target")
        samples = num_continuous_samples(header.num_tokens, length, True if reuse is None else reuse)
        return samples, header.num_tokens

    def header(self, dataset: NodeInfo):
        """The .pbin header of a dataset, or None (no .pbin, or unreadable: data_files() reports that)."""
        from modalities.data.errors import DataError
        from modalities.data.pbin_header import read_pbin_header

        path = self.field(dataset, "raw_data_path")
        if path is None or Path(path).suffix != ".pbin":
            return None
        try:
            return read_pbin_header(path)
        except DataError:
            return None

    def data_files(self) -> None:
        from modalities.data.errors import DataError
        from modalities.data.pbin_header import read_pbin_header

        for info in self.view.nodes():
            for name in ("raw_data_path", "dataset_path"):
                path = self.field(info, name)
                if path is None or Path(path).suffix != ".pbin":
                    continue
                try:
                    read_pbin_header(path)
                except DataError as e:
                    self.add(self.at(info, name), str(e))

    def remaining_steps(self) -> int | None:
        settings = self.run.settings
        target, seen = _n(settings.training_target.num_target_steps), _n(settings.training_progress.num_seen_steps)
        return target - seen if target is not None and seen is not None else None

    def severity(self, flag: str) -> str:
        enforcement = self.run.settings.consistency_enforcement
        return ERROR if enforcement is not None and getattr(enforcement, flag) else WARNING

    def intervals(self) -> None:
        settings = self.run.settings
        steps = self.remaining_steps()
        if steps is None or steps <= 0:
            return
        intervals = settings.intervals
        every = _n(intervals.checkpointing_interval_in_steps)
        if every is None:
            pass
        elif every > steps:
            self.add(
                ("settings", "intervals", "checkpointing_interval_in_steps"),
                f"a checkpoint every {every} steps, but the run takes {steps}: no checkpoint will be saved",
                self.severity("enforce_last_step_checkpointed"),
            )
        elif steps % every:
            self.add(
                ("settings", "intervals", "checkpointing_interval_in_steps"),
                f"the run's {steps} steps are not a multiple of {every}: the last step will not be checkpointed",
                self.severity("enforce_last_step_checkpointed"),
            )
        if isinstance(self.run.eval_dataloaders, list) and self.run.eval_dataloaders:
            every = _n(intervals.evaluation_interval_in_steps)
            if every is None:
                pass
            elif every > steps:
                self.add(
                    ("settings", "intervals", "evaluation_interval_in_steps"),
                    f"an evaluation every {every} steps, but the run takes {steps}: nothing will be evaluated",
                    self.severity("enforce_last_step_evaluated"),
                )
            elif steps % every:
                self.add(
                    ("settings", "intervals", "evaluation_interval_in_steps"),
                    f"the run's {steps} steps are not a multiple of {every}: the last step will not be evaluated",
                    self.severity("enforce_last_step_evaluated"),
                )
        every = _n(intervals.training_log_interval_in_steps)
        if every is not None and every > steps:
            self.add(
                ("settings", "intervals", "training_log_interval_in_steps"),
                f"a log line every {every} steps, but the run takes {steps}: only the last step is logged",
                WARNING,
            )

    def tokens_per_step(self) -> None:
        settings = self.run.settings
        profile, target, progress = settings.step_profile, settings.training_target, settings.training_progress
        dp = _n(profile.dp_degree)
        world = self.world_size()
        tp = self.model_parallel_degree()
        if dp is None:
            dp = world[0] // tp if world is not None else None
        factors = [
            _n(profile.local_train_micro_batch_size),
            _n(profile.sequence_length),
            _n(profile.gradient_accumulation_steps),
            dp,
        ]
        steps, target_tokens = self.remaining_steps(), _n(target.num_target_tokens)
        seen_tokens = _n(progress.global_num_seen_tokens)
        if None in factors or steps is None or steps <= 0 or target_tokens is None or seen_tokens is None:
            return
        per_step = factors[0] * factors[1] * factors[2] * factors[3]
        required = (target_tokens - seen_tokens) / steps
        if required != per_step:
            self.add(
                ("settings", "training_target", "num_target_tokens"),
                f"{target_tokens} target tokens over {steps} steps are {required:g} tokens a step, but a "
                f"step takes {per_step} (micro-batch x sequence length x accumulation x data-parallel degree)",
                self.severity("enforce_tokens_per_step_consistency"),
            )


    def schedule(self) -> None:
        """The learning-rate schedule alone and against the checkpoint the run continues from (see there)."""
        from modalities.training.schedule_contract import check_schedule

        check_schedule(self, getattr(self.view, "resume_from", None))

    def tensor_parallel(self) -> None:
        """What model/gpt2_tp refuses when it splits the model: a degree that does not divide the heads, the
        vocabulary or the MLP's hidden width; qk-norm; dp_replicate with tp."""
        from modalities.models.gpt2.config import swiglu_hidden_dim, tensor_parallel_misfits

        mesh = self.node(self.run.device_mesh)
        degree = _n(self.field(mesh, "tensor_parallel_degree"))
        if degree is None or degree == 1:
            return
        loss = self.node(getattr(self.run, "loss_fn", None))  # absent from a run with errors of its own
        if self.field(mesh, "enable_loss_parallel") is True and loss is not None and \
                (loss.component_key, loss.variant_key) != ("loss", "clm_cross_entropy_loss"):
            self.add(self.at(mesh, "enable_loss_parallel"),
                     f"loss parallelism computes a cross-entropy on vocabulary shards; the run's loss_fn "
                     f"({loss.component_key}/{loss.variant_key}) would get sharded logits",
                     hint="use loss/clm_cross_entropy_loss or set enable_loss_parallel: false")
        for info in self.view.nodes():
            if info.component_key != "model" or info.variant_key != "gpt2_tp" or info.config is None:
                continue
            model = self.node(getattr(info.config, "model", None))
            if model is None or model.config is None:
                continue
            replicate = _n(self.field(mesh, "data_parallel_replicate_degree"))
            if replicate is not None and replicate > 1:
                self.add(self.at(mesh, "data_parallel_replicate_degree"),
                         "model/gpt2_tp cannot be combined with data_parallel_replicate_degree > 1 (as in the "
                         "reference); use dp_shard for data parallelism with tensor parallelism")
            hidden = _n(self.field(model, "ffn_hidden"))
            if hidden is not None and self.field(model, "activation_type") == "swiglu":
                multiple = _n(self.field(model, "enforce_swiglu_hidden_dim_multiple_of")) or 1
                hidden = swiglu_hidden_dim(hidden, multiple)
            bad = tensor_parallel_misfits(degree, {
                "n_head_q": _n(self.field(model, "n_head_q")), "n_head_kv": _n(self.field(model, "n_head_kv")),
                "vocab_size": _n(self.field(model, "vocab_size")), "the MLP's hidden width": hidden})
            if bad:
                self.add(self.at(mesh, "tensor_parallel_degree"),
                         f"tensor_parallel_degree {degree} must divide {', '.join(bad)} of "
                         f"{self.where(model.path)}, which model/gpt2_tp splits across the tp ranks",
                         hint="choose a degree that divides them")
            attention = self.field(model, "attention_config")
            if getattr(attention, "qk_norm_config", None) is not None:
                self.add(self.at(model, "attention_config"),
                         "model/gpt2_tp does not support qk-norm yet (attention_config.qk_norm_config)")

    def mesh_fits_the_world(self) -> None:
        """The degrees must fill the world size, when it is known: set by the launcher (WORLD_SIZE, e.g.
        ``WORLD_SIZE=8 modalities validate``) or written into the mesh; 1 from the default is not a job's size."""
        mesh = self.node(self.run.device_mesh)
        world = self.world_size()
        if mesh is None or world is None or (world[0] == 1 and "WORLD_SIZE" not in os.environ):
            return
        names = ("pipeline_parallel_degree", "data_parallel_replicate_degree", "context_parallel_degree",
                 "tensor_parallel_degree")
        degrees = {name: _n(self.field(mesh, name)) or 1 for name in names}
        shard = _n(self.field(mesh, "data_parallel_shard_degree"))
        fixed = math.prod(degrees.values())
        product = " x ".join(f"{name} {value}" for name, value in degrees.items() if value > 1) or "1"
        if shard == -1 and world[0] % fixed:
            self.add(self.at(mesh, "world_size"),
                     f"the world size {world[0]} is not divisible by {product}",
                     hint="launch a multiple of that many processes or change the degrees")
        elif shard is not None and shard != -1 and shard * fixed != world[0]:
            self.add(self.at(mesh, "data_parallel_shard_degree"),
                     f"{product} x data_parallel_shard_degree {shard} is {shard * fixed} ranks, but the world size "
                     f"is {world[0]} ({self.where(world[1])})", hint="use -1 to fill in the shard degree")

    def pipeline_parallel(self) -> None:
        """What pipeline/staged, pipeline/scheduled and the loop refuse when they are built: a plan that does not
        cut the model into a multiple of pp stages, a schedule that cannot run them or these micro-batches, tied
        weights across stages, a loader batch the schedule does not split, a clipper blind to other stages."""
        from modalities.training.pipeline_plan import (
            GPT2StagesGenerator,
            PipelinePlanError,
            QwenStagesGenerator,
            microbatch_misfit,
            stage_indices_of_rank,
        )

        mesh = self.node(self.run.device_mesh)
        degree = _n(self.field(mesh, "pipeline_parallel_degree"))
        if degree is None or degree == 1:
            return
        if self.run.scheduled_pipeline is None:
            self.add(self.at(mesh, "pipeline_parallel_degree"),
                     f"pipeline_parallel_degree {degree} needs the run's scheduled_pipeline (a pipeline/scheduled), "
                     "which runs the model's stages", hint="see the pipeline section of docs/multi-node.md")
        clipper = self.node(getattr(self.run, "gradient_clipper", None))
        if clipper is not None and clipper.config is not None and "device_mesh" in type(clipper.config).model_fields \
                and getattr(clipper.config, "device_mesh", None) is None:
            self.add(clipper.path + ("config",), "with pipeline parallelism the gradient clipper needs the "
                     "device_mesh, so that its norm covers the gradients of every stage",
                     hint="add device_mesh: {instance_key: device_mesh, pass_type: BY_REFERENCE}")
        micro = _n(self.run.settings.step_profile.local_train_micro_batch_size)
        for info in self.view.nodes():
            if info.component_key != "pipeline" or info.config is None:
                continue
            if info.variant_key == "staged":
                generator = self.node(getattr(info.config, "stages_generator", None))
                layers = _n(self.field(generator, "num_model_layers"))
                per_stage = _n(self.field(info, "num_layers_per_stage"))
                schedule = self.field(info, "pp_schedule_name")
                if generator is None or None in (layers, per_stage) or not isinstance(schedule, str):
                    continue
                generator_class = QwenStagesGenerator if generator.variant_key == "qwen_stages_generator" else \
                    GPT2StagesGenerator
                plan = generator_class(layers, _n(self.field(generator, "input_layer_equivalence")) or 1,
                                       _n(self.field(generator, "output_layer_equivalence")) or 1)
                try:
                    stages = plan.get_stages(per_stage, degree)
                    stage_indices_of_rank(0, degree, len(stages), schedule)
                except PipelinePlanError as e:
                    self.add(self.at(info, "num_layers_per_stage"), str(e))
                moe = self.first_with(getattr(info.config, "whole_model", None), "num_layers")
                depth, tying = ("num_layers", "tie_embeddings") if moe is not None else ("n_layer", "use_weight_tying")
                model = moe or self.first_with(getattr(info.config, "whole_model", None), "n_layer")
                if model is not None and _n(self.field(model, depth)) not in (None, layers):
                    self.add(self.at(generator, "num_model_layers"),
                             f"num_model_layers {layers} is not the {depth} {self.field(model, depth)} of "
                             f"{self.where(model.path)}", hint=f"use ${{model_raw.config.{depth}}}")
                if model is not None and self.field(model, tying) is True:
                    self.add(self.at(model, tying),
                             "the embedding and the head it is tied to land on different pipeline stages; set "
                             f"{tying}: false for pipeline parallelism")
            elif info.variant_key == "scheduled":
                batch, size = _n(self.field(info, "batch_size")), _n(self.field(info, "microbatch_size"))
                schedule = self.field(info, "pp_schedule_name")
                if micro is not None and batch is not None and batch != micro:
                    self.add(self.at(info, "batch_size"),
                             f"batch_size {batch} is not the loader's batch of {micro} samples (local_train_micro_"
                             "batch_size); each loader batch is what the schedule splits into micro-batches",
                             hint="use ${settings.step_profile.local_train_micro_batch_size}")
                if batch and size and not batch % size and isinstance(schedule, str):
                    misfit = microbatch_misfit(schedule, batch // size, degree)
                    if misfit:
                        self.add(self.at(info, "microbatch_size"), misfit)

    def context_parallel(self) -> None:
        """What context parallelism needs: model/gpt2 with torch's attention (which ring attention replaces) under
        model/fsdp2_wrapped (which averages the gradients of the sequence's shares), and sequences the degree
        divides."""
        mesh = self.node(self.run.device_mesh)
        degree = _n(self.field(mesh, "context_parallel_degree"))
        if degree is None or degree == 1:
            return
        length = _n(self.run.settings.step_profile.sequence_length)
        if length is not None and length % degree:
            self.add(self.at(mesh, "context_parallel_degree"),
                     f"context_parallel_degree {degree} does not divide the sequence length {length} "
                     f"({self.where(('settings', 'step_profile', 'sequence_length'))}); every rank holds an equal "
                     "share of each sequence", hint=f"use a sequence length divisible by {2 * degree} (twice the "
                     "degree balances causal attention over the ranks)")
        app_state = self.node(getattr(self.run, "app_state", None))
        model_ref = getattr(app_state.config, "model", None) if app_state and app_state.config else None
        chain = list(self.chain(model_ref))
        if chain and not any((info.component_key, info.variant_key) == ("model", "fsdp2_wrapped") for info in chain):
            self.add(chain[0].path, "with context parallelism the model must be wrapped by model/fsdp2_wrapped, "
                     "which averages the gradients of the ranks sharing a sequence",
                     hint="wrap it in model/fsdp2_wrapped with the device_mesh")
        model = self.model()
        if model is None:
            return
        if (model.component_key, model.variant_key) != ("model", "gpt2"):
            self.add(model.path, f"context parallelism is built for model/gpt2, not {model.component_key}/"
                     f"{model.variant_key}: the model must take the positions of the tokens a rank holds")
        elif self.field(model, "attention_implementation") not in (None, "pytorch_flash"):
            self.add(self.at(model, "attention_implementation"),
                     f"context parallelism runs torch's ring attention in place of torch's scaled_dot_product_"
                     f"attention; attention_implementation {self.field(model, 'attention_implementation')} bypasses "
                     "it", hint="use attention_implementation: pytorch_flash")


def _config_tokenizer_identity(info: NodeInfo, field) -> dict | None:
    """The fingerprint (data/pbin_info.py) a built-in tokenizer component of this config would write, from its
    files; None for others or when its files are not here."""
    from modalities.data.pbin_info import files_digest

    try:
        if info.variant_key == "pretrained_hf_tokenizer":
            location = field(info, "pretrained_model_name_or_path")
            path = _local_tokenizer_path(location)
            if path is None:
                return None
            return {"kind": "huggingface", "fingerprint": files_digest(path)}
        if info.variant_key == "pretrained_sp_tokenizer":
            import hashlib

            location = field(info, "tokenizer_model_file")
            if not isinstance(location, (str, Path)) or not Path(location).is_file():
                return None
            return {"kind": "sentencepiece", "fingerprint": hashlib.sha256(Path(location).read_bytes()).hexdigest()}
    except OSError:
        return None
    return None


def _local_tokenizer_path(location: Any) -> Path | None:
    if not isinstance(location, (str, Path)):
        return None
    path = Path(location)
    if path.exists():
        return path
    from modalities.interop.hub import HubResolutionError, looks_like_repo_id, resolve_pretrained

    if not looks_like_repo_id(str(location)):
        return None
    try:
        return resolve_pretrained(location)
    except HubResolutionError:
        return None


def _hf_tokenizer_size(location: Any) -> int | None:
    """The number of ids of a Hugging Face tokenizer folder or tokenizer.json, read from the JSON alone."""
    if not isinstance(location, (str, Path)):
        return None
    path = Path(location)
    try:
        exists = path.exists()
    except OSError:  # a name the system cannot look up (too long, say): no tokenizer of ours
        return None
    if not exists:
        from modalities.interop.hub import HubResolutionError, looks_like_repo_id, resolve_pretrained

        if not looks_like_repo_id(str(location)):
            return None
        try:
            path = resolve_pretrained(location)  # a hub id in the local cache
        except HubResolutionError:
            return None
    path = path / "tokenizer.json" if path.is_dir() else path
    if path.suffix != ".json" or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        vocab = data["model"]["vocab"]
        ids = set(vocab.values()) if isinstance(vocab, dict) else set(range(len(vocab)))
        ids.update(token["id"] for token in data.get("added_tokens") or [])
        return max(ids) + 1 if ids else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_training_run(view) -> list[Finding]:
    """The training root's contract (see the module docstring); ``view`` is the compiler's RunView."""
    from modalities.training.contract_moe import check_mixture_of_experts
    from modalities.training.run import TrainingSettings

    if view.run is None or not isinstance(getattr(view.run, "settings", None), TrainingSettings):
        return []
    checks = _Checks(view)
    for check in (
        checks.data_files,
        checks.keys,
        checks.sequence_lengths,
        checks.vocabulary,
        checks.batch,
        checks.replicas_read_their_own_data,
        checks.data_amount,
        checks.intervals,
        checks.tokens_per_step,
        checks.schedule,
        checks.tensor_parallel,
        checks.mesh_fits_the_world,
        checks.pipeline_parallel,
        checks.context_parallel,
        lambda: check_mixture_of_experts(checks),
    ):
        check()
    return checks.findings
