"""The run contract: the checks across the components of a training run, made by `validate` before anything
is built (and so by `train` before it builds).

Each check is a small function of the run's parts (parts.py: the validated configs, never a built object, never
torch) that returns its findings, each at the field to change and naming the other place it disagrees with.
``CHECKS`` registers them, grouped by what they check, in the order they run; docs/config-format.md's table
"The run contract" is ``contract_table()`` of it (tests/training/test_run_contract.py holds the two together).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from modalities.registry.types import Finding
from modalities.training.contract import batch_and_mesh, data, model, moe, schedule, target
from modalities.training.contract.parts import RunParts


@dataclass(frozen=True)
class ContractCheck:
    group: str  # what it checks: data, model, batch and mesh, target and intervals, schedule, moe
    name: str  # the check, as the docs' table names it
    finds: str  # what it reports (markdown, for the docs' table)
    check: Callable[[RunParts], Iterable[Finding]]


CHECKS: tuple[ContractCheck, ...] = (
    ContractCheck("data", "data files", "error: a `.pbin` that is missing, truncated or has an impossible header",
                  data.data_files),
    ContractCheck("data", "the keys a batch travels under",
                  "error: the collator reads a `sample_key` the dataset does not write; the model, the loss read keys "
                  "the collator or the model do not produce", data.batch_keys),
    ContractCheck("model", "sequence lengths",
                  "error: samples longer than the model's `sequence_length`; warning: the step profile's or the MFU "
                  "calculator's length differs from the data's", model.sequence_lengths),
    ContractCheck("model", "vocabulary",
                  "error: a `vocab_size` below what the data file's token width implies (a 2-byte `.pbin` comes from "
                  "a tokenizer of more than 256 ids), below the size of the tokenizer that packed a `.pbin` (its info "
                  "file) or of a Hugging Face tokenizer in the config; a `tokenizer` component that is not the one "
                  "that packed the data", model.vocabulary),
    ContractCheck("batch and mesh", "the batch",
                  "error: the train batch sampler's `batch_size` differs from `local_train_micro_batch_size`; the "
                  "train sampler's `num_replicas` differs from the device mesh's (or `cuda_env`'s) world size over "
                  "the tensor x pipeline x context degree", batch_and_mesh.batch),
    ContractCheck("batch and mesh", "replicas",
                  "error: with `data_parallel_replicate_degree > 1`, a mesh-reading sampler keyed on `dp_shard` (the "
                  "replicas would read the same samples; `data_parallel_key: dp` numbers dp_replicate x dp_shard)",
                  batch_and_mesh.replicas_read_their_own_data),
    ContractCheck("batch and mesh", "tensor parallelism",
                  "error: a `tensor_parallel_degree` that does not divide the heads, the vocabulary or the MLP's "
                  "hidden width of the model `model/gpt2_tp` splits, qk-norm under it, or "
                  "`data_parallel_replicate_degree > 1` with it; loss parallelism with a loss other than "
                  "`clm_cross_entropy_loss`", batch_and_mesh.tensor_parallel),
    ContractCheck("batch and mesh", "the mesh and the world",
                  "error: degrees that do not fill the world size, when it is known (WORLD_SIZE set, as under "
                  "torchrun, or written into the mesh)", batch_and_mesh.mesh_fits_the_world),
    ContractCheck("batch and mesh", "pipeline parallelism",
                  "error: pp > 1 without `scheduled_pipeline`; a stage plan that does not give a multiple of pp "
                  "stages, or several stages per rank for GPipe/1F1B; 1F1B with fewer micro-batches than stages, "
                  "Interleaved1F1B with a partial round; `batch_size` other than the loader's; `num_model_layers` "
                  "other than the model's `n_layer`; tied embeddings; a gradient clipper without the mesh",
                  batch_and_mesh.pipeline_parallel),
    ContractCheck("batch and mesh", "context parallelism",
                  "error: a `context_parallel_degree` that does not divide the sequence length; a model other than "
                  "`model/gpt2` or `model/moe`, a model/gpt2 attention other than `pytorch_flash`, a model/moe with "
                  "expert parallelism; a model not wrapped by `model/fsdp2_wrapped`", batch_and_mesh.context_parallel),
    ContractCheck("target and intervals", "data for the target",
                  "error: the target needs more micro-batches per rank than the train data gives (warning with the "
                  "number of epochs when the loader repeats); the data holds fewer tokens than `num_target_tokens`",
                  target.data_for_the_target),
    ContractCheck("target and intervals", "intervals",
                  "a checkpoint or evaluation interval longer than the run (nothing saved or evaluated), or one the "
                  "run's steps are not a multiple of (the last step is not saved or evaluated); warning: a log "
                  "interval longer than the run", target.intervals),
    ContractCheck("target and intervals", "tokens per step",
                  "`num_target_tokens` is not the target steps times micro-batch x sequence length x accumulation x "
                  "data-parallel degree", target.tokens_per_step),
    ContractCheck("schedule", "the learning-rate schedule",
                  "error: a OneCycleLR schedule shorter than the run, a scheduler built (`last_epoch`) past the step "
                  "the run starts from; warning: nothing left to train, each value that differs from the checkpoint "
                  "the run continues from (the run follows the config), a checkpoint whose schedule stood at "
                  "another step", schedule.learning_rate_schedule),
    ContractCheck("moe", "the loss of a mixture of experts",
                  "error: `loss/moe_cross_entropy` whose model is not a `model/moe`; warning: a `model/moe` trained "
                  "with `clm_cross_entropy_loss` (its load-balancing and z losses left out)", moe.moe_loss),
    ContractCheck("moe", "expert parallelism",
                  "error: an expert-parallel degree that does not divide the experts or the data-parallel shard "
                  "degree, `ep_mesh_dim_name: tp` beside tensor parallelism, a borrowed dimension's ranks reading "
                  "the same samples, expert parallelism without `model/fsdp2_wrapped`; a `tensor_parallel_degree` "
                  "that does not divide `model/qwen_tp`'s heads or vocabulary", moe.expert_parallelism),
    ContractCheck("moe", "capacity",
                  "warning: a `moe_capacity_factor` that drops slots even when the router is perfectly balanced",
                  moe.expert_capacity),
    ContractCheck("moe", "experts split by a wrapper",
                  "warning: `expert_parallel_degree > 1` without a `model/ep_wrapped` (every rank holds every expert)",
                  moe.experts_split_by_a_wrapper),
)


def check_training_run(view) -> list[Finding]:
    """The training root's contract; ``view`` is the compiler's RunView. The findings of every check of
    ``CHECKS``, in its order."""
    from modalities.training.run import TrainingSettings

    if view.run is None or not isinstance(getattr(view.run, "settings", None), TrainingSettings):
        return []
    parts = RunParts(view)
    return [found for entry in CHECKS for found in entry.check(parts)]


def contract_table() -> str:
    """``CHECKS`` as docs/config-format.md shows it: a markdown table of group, check and findings."""
    rows = ["| group | check | finding |", "|---|---|---|"]
    rows += [f"| {entry.group} | {entry.name} | {entry.finds} |" for entry in CHECKS]
    return "\n".join(rows) + "\n"
