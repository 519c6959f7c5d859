"""The run contract: `validate` knows what `train` checks. Each cross-component check is tested with the message
and the position it gives (each passed `validate` before), and the property: whenever `validate` says ok, `train`
gets past everything it checks before building."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modalities.cli.main import main
from tests.config.mutations import FAMILIES, Case, compile_case, make_case
from tests.training.conftest import REPO, TINY

QUICKSTART = REPO / "configs" / "quickstart.yaml"


def _validate(capsys, *flags: str, config: Path = QUICKSTART) -> tuple[int, str]:
    args = ["validate", str(config)]
    for flag in flags:
        args += ["--set", flag]
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _line_of(text: str, config: Path = QUICKSTART) -> int:
    return next(i for i, line in enumerate(config.read_text().splitlines(), 1) if line.strip().startswith(text))


def test_a_scalar_where_the_run_needs_a_component(capsys):
    code, out = _validate(capsys, "gradient_clipper=.nan")
    assert code == 1
    assert "<--set>:1:18: error: gradient_clipper: expected a 'gradient_clipper' component" in out


def test_a_misspelled_settings_field_is_named_with_did_you_mean(capsys):
    code, out = _validate(capsys, "settings.step_profile.sequence_lenght=64")
    assert code == 1
    assert "error: settings.step_profile.sequence_lenght: unknown field 'sequence_lenght' for StepProfile" in out
    assert "did you mean 'sequence_length'?" in out


@pytest.mark.parametrize("value", ["1e20", "-1", "2.5"])
def test_progress_counts_must_be_whole_non_negative_numbers(capsys, value):
    code, out = _validate(capsys, f"settings.training_progress.num_seen_steps={value}")
    assert code == 1 and "settings.training_progress.num_seen_steps:" in out


def test_a_missing_part_of_the_run_is_named_at_the_top_of_the_file(tmp_path, capsys):
    text = QUICKSTART.read_text()
    start = text.index("\ngradient_clipper:")
    end = text.index("\n", text.index("\n  config:", start) + 1)
    rest = text[end:]
    config = tmp_path / "cfg.yaml"
    config.write_text(text[:start] + rest[rest.index("\n", rest.index("max_norm")) :])
    code, out = _validate(capsys, config=config)
    assert code == 1
    assert f"{config}:1:1: error: a training run needs the top-level key 'gradient_clipper'" in out


def test_the_model_context_shorter_than_the_samples(capsys):
    code, out = _validate(capsys, "model_raw.config.sequence_length=64")
    assert code == 1
    line = _line_of("raw_data_path: ${settings.paths.train_dataset_path}") + 1  # train_dataset's sequence_length
    assert (
        f"quickstart.yaml:{line}:22: error: train_dataset.config.sequence_length: samples of 128 input tokens are "
        "longer than the model's context of 64 (model_raw.config.sequence_length at <--set>:1:34)"
    ) in out
    assert out.count("longer than the model's context") == 1  # the dataset both loaders share: said once


def test_a_vocabulary_the_data_file_rules_out(capsys):
    code, out = _validate(capsys, "model_raw.config.vocab_size=200")
    assert code == 1
    assert (
        "<--set>:1:29: error: model_raw.config.vocab_size: vocab_size 200 cannot embed the data of "
        "train_dataset.config.raw_data_path"
    ) in out
    assert "it holds 2-byte tokens, written only for tokenizers of more than 256 ids" in out


def test_a_vocabulary_smaller_than_the_tokenizers(tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text(
        QUICKSTART.read_text()
        + f"""
tokenizer:
  component_key: tokenizer
  variant_key: pretrained_hf_tokenizer
  config: {{pretrained_model_name_or_path: {REPO / "data" / "sample" / "tokenizer"}}}
""".replace("${modalities_env:config_folder_path}", str(QUICKSTART.parent))
    )
    code, out = _validate(capsys, "model_raw.config.vocab_size=2000", config=config)
    assert code == 1
    # The sample tokenizer has 2048 ids (2045 in its vocabulary, 3 added tokens).
    assert "model_raw.config.vocab_size: vocab_size 2000 is smaller than the 2048 ids of the tokenizer" in out


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("loss_fn.config.target_key=targets", "the loss reads targets under 'targets', but the collator"),
        # (the quickstart's model takes its prediction_key from the loss's, so the model's is the one to change)
        ("model_raw.config.prediction_key=out", "the loss reads the model's output under 'logits', but the model"),
        ("model_raw.config.sample_key=ids", "the model reads its input under 'ids', but the collator"),
        ("collate_fn.config.sample_key=ids", "the collator reads samples under 'ids', but the dataset"),
    ],
)
def test_the_keys_a_batch_travels_under(capsys, flag, message):
    code, out = _validate(capsys, flag)
    assert code == 1 and message in out, out


def test_the_batch_sampler_against_the_step_profile(capsys):
    code, out = _validate(capsys, "train_dataloader.config.batch_sampler.config.batch_size=3")
    assert code == 1
    assert "the train batch sampler makes batches of 3 samples, but the step profile says 8" in out


def test_a_target_beyond_the_data(capsys):
    code, out = _validate(capsys, "settings.training_target.num_target_steps=1000")
    assert code == 1
    # data/sample/corpus.pbin: 77,989 tokens, 609 windows of 129 sharing a token; 8 per batch: 76 batches.
    assert (
        "settings.training_target.num_target_steps: the target needs 1000 micro-batches per rank, but the train "
        "data gives 76 (609 samples, over 1 rank(s), 8 per batch)"
    ) in out


def test_intervals_longer_than_the_run_are_warnings(capsys):
    code, out = _validate(capsys, "settings.intervals.checkpointing_interval_in_steps=100")
    assert code == 0
    assert (
        "warning: settings.intervals.checkpointing_interval_in_steps: a checkpoint every 100 steps, but the run "
        "takes 30: no checkpoint will be saved" in out
    )


def test_consistency_flags_turn_warnings_into_errors(capsys):
    flags = (
        "settings.intervals.checkpointing_interval_in_steps=7",
        "settings.consistency_enforcement={enforce_last_step_checkpointed: true, "
        "enforce_tokens_per_step_consistency: false, enforce_last_step_evaluated: false, "
        "enforce_enough_tokens_in_dataset: false}",
    )
    code, out = _validate(capsys, *flags)
    assert code == 1
    assert (
        "error: settings.intervals.checkpointing_interval_in_steps: the run's 30 steps are not a multiple of 7" in out
    )
    code, out = _validate(capsys, flags[0])
    assert code == 0 and "warning: settings.intervals.checkpointing_interval_in_steps" in out


def test_a_missing_data_file_is_named_at_its_field(capsys):
    code, out = _validate(capsys, "settings.paths.train_dataset_path=/no/such/corpus.pbin")
    assert code == 1
    line = _line_of("raw_data_path: ${settings.paths.train_dataset_path}")
    assert (
        f"quickstart.yaml:{line}:20: error: train_dataset.config.raw_data_path: /no/such/corpus.pbin: packed data "
        "file not found"
    ) in out


def test_a_damaged_data_file_header(tmp_path, capsys):
    broken = tmp_path / "broken.pbin"
    broken.write_bytes((REPO / "data" / "sample" / "corpus.pbin").read_bytes()[:5000])
    code, out = _validate(capsys, f"settings.paths.train_dataset_path={broken}")
    assert code == 1 and "truncated .pbin file: the header announces" in out


def test_train_reports_what_validate_reports(tmp_path, capsys):
    code = main(
        ["train", str(QUICKSTART), "--experiments-root", str(tmp_path), "--set", "model_raw.config.sequence_length=64"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "longer than the model's context of 64" in err
    assert not any(tmp_path.iterdir())  # stopped before building or claiming anything


# --- the property: validate ok => train gets to building --------------------------------------------------------

EXAMPLE = REPO / "examples" / "library_usage" / "config_lorem_ipsum.yaml"
TRAINING_BASES = [QUICKSTART, REPO / "configs" / "instruction_tuning" / "train.yaml", TINY, EXAMPLE]


def _registry():
    """The stand-ins of the test configs and the example's own collate_fn, as its main.py registers it."""
    import importlib.util

    from tests.training.conftest import standins_registry

    registry = standins_registry()
    spec = importlib.util.spec_from_file_location("library_usage_example", REPO / "examples" / "library_usage" / "main.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)  # defines the classes; main() runs only as a script
    registry.register(component_key="collate_fn", variant_key="custom_gpt_2_llm_collator",
                      custom_component=example.CustomGPT2LLMCollateFn, custom_config=example.CustomGPT2LLMCollateFnConfig)
    return registry


def _check_validate_implies_train(case: Case, registry) -> bool:
    """True when validate said ok as a training run (and train then got to building); False when validate refused
    it, or said ok as components only (which it says is not a run `train` takes)."""
    from modalities.api import plan_training
    from modalities.config.diagnostics import ConfigError, has_errors

    try:
        validated = compile_case(case, "auto", registry)
    except ConfigError:
        return False
    if has_errors(validated.diagnostics) or validated.root is None:
        return False
    compiled = compile_case(case, "training", registry)  # what `modalities train` compiles
    assert not has_errors(compiled.diagnostics), [d.message for d in compiled.diagnostics]
    assert plan_training(compiled) == "cpu"
    return True


_REGISTRY = []


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FAMILIES), st.integers(0, 10**9), st.sampled_from(TRAINING_BASES))
def test_validate_ok_means_train_gets_to_building(family, seed, base):
    if not _REGISTRY:
        _REGISTRY.append(_registry())
    _check_validate_implies_train(make_case(family, seed, base), _REGISTRY[0])


def test_every_shipped_training_config_validates_and_gets_to_building():
    registry = _registry()
    for base in TRAINING_BASES:
        assert _check_validate_implies_train(Case("as shipped", 0, base, base.read_text()), registry), base


def test_the_property_is_exercised_by_configs_that_validate():
    # Half of the plausible edits leave a config valid: the implication above is tested on real cases.
    registry = _registry()
    ok = sum(
        _check_validate_implies_train(make_case("plausible", seed, base), registry)
        for seed in range(20)
        for base in TRAINING_BASES
    )
    assert ok >= 15


def _packed_sample(tmp_path) -> Path:
    """The sample corpus packed here, so the .pbin has its info file (the shipped one has none)."""
    from modalities.data.packing import pack_encoded_data
    from modalities.data.tokenizers import PreTrainedHFTokenizer

    sample = REPO / "data" / "sample"
    tokenizer = PreTrainedHFTokenizer(str(sample / "tokenizer"))
    return pack_encoded_data(sample / "corpus.jsonl", tokenizer, "<|endoftext|>", dst_path=tmp_path / "corpus.pbin",
                             index_path=sample / "corpus.idx").dst_path


def _with_tokenizer(tmp_path, folder: Path) -> Path:
    config = tmp_path / "cfg.yaml"
    config.write_text(
        QUICKSTART.read_text().replace("${modalities_env:config_folder_path}", str(QUICKSTART.parent))
        + f"""
tokenizer:
  component_key: tokenizer
  variant_key: pretrained_hf_tokenizer
  config:
    pretrained_model_name_or_path: {folder}
"""
    )
    return config


def test_a_vocabulary_smaller_than_the_tokenizer_that_packed_the_data(tmp_path, capsys):
    packed = _packed_sample(tmp_path)
    code, out = _validate(capsys, f"settings.paths.train_dataset_path={packed}", "model_raw.config.vocab_size=2000")
    assert code == 1
    assert (
        "<--set>:1:29: error: model_raw.config.vocab_size: vocab_size 2000 is smaller than the 2048 ids of the "
        f"huggingface tokenizer {REPO / 'data' / 'sample' / 'tokenizer'} (2,048 ids, EOD '<|endoftext|>' = 0) that "
        f"packed train_dataset.config.raw_data_path at {QUICKSTART}:{_line_of('raw_data_path:')}:20 (its .info.json)"
    ) in out
    assert "hint: set vocab_size to at least 2048" in out
    # without the info file, the data file alone (2-byte tokens) cannot tell
    (tmp_path / "corpus.pbin.info.json").unlink()
    code, _ = _validate(capsys, f"settings.paths.train_dataset_path={packed}", "model_raw.config.vocab_size=2000")
    assert code == 0


def test_a_tokenizer_other_than_the_one_that_packed_the_data(tmp_path, capsys):
    import json
    import shutil

    packed = _packed_sample(tmp_path)
    same, other = tmp_path / "same", tmp_path / "other"
    shutil.copytree(REPO / "data" / "sample" / "tokenizer", same)
    shutil.copytree(REPO / "data" / "sample" / "tokenizer", other)
    data = json.loads((other / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    a, b = (next(t for t, i in vocab.items() if i == wanted) for wanted in (300, 301))
    vocab[a], vocab[b] = 301, 300  # two ids swapped: the same size, other tokens
    (other / "tokenizer.json").write_text(json.dumps(data))

    config = _with_tokenizer(tmp_path, other)
    code, out = _validate(capsys, f"settings.paths.train_dataset_path={packed}", config=config)
    assert code == 1
    line = len(config.read_text().splitlines())  # the tokenizer's path is the last line
    assert (
        f"cfg.yaml:{line}:36: error: tokenizer.config.pretrained_model_name_or_path: this tokenizer is not the one "
        f"that packed train_dataset.config.raw_data_path at {config}:{_line_of('raw_data_path:', config)}:20: that "
        f"was the huggingface tokenizer {REPO / 'data' / 'sample' / 'tokenizer'} (2,048 ids"
    ) in out
    assert "hint: use the tokenizer the data was packed with, or pack the data again with this one" in out
    # a copy of the very tokenizer, in another folder, is the same tokenizer
    code, out = _validate(capsys, f"settings.paths.train_dataset_path={packed}", config=_with_tokenizer(tmp_path, same))
    assert code == 0, out


@pytest.mark.parametrize(
    ("flag", "column", "message"),
    [
        ("device_mesh.config.enable_loss_parallel=true", 41, "enable_loss_parallel needs tensor_parallel_degree > 1"),
    ],
)
def test_a_mesh_the_run_would_refuse_is_refused_by_validate(capsys, flag, column, message):
    code, out = _validate(capsys, flag)
    assert code == 1
    assert f"<--set>:1:{column}: error: {flag.split('=')[0]}: Value error, {message}" in out


def test_the_docs_contract_table_is_the_registered_checks():
    """docs/config-format.md's table is ``contract_table()`` of CHECKS, row for row (regenerate it from there)."""
    from modalities.training.contract import contract_table

    docs = (REPO / "docs" / "config-format.md").read_text()
    start = docs.index("| group | check | finding |")
    end = docs.index("\n\n", start)
    assert docs[start:end + 1] == contract_table(), f"replace the table with:\n{contract_table()}"


def test_every_check_function_is_registered_once_in_its_group():
    import inspect

    from modalities.training.contract import CHECKS, batch_and_mesh, data, model, moe, schedule, target

    registered = [entry.check for entry in CHECKS]
    assert len(set(registered)) == len(registered)
    assert len({entry.name for entry in CHECKS}) == len(CHECKS)
    groups = [entry.group for entry in CHECKS]
    assert list(dict.fromkeys(groups)) == ["data", "model", "batch and mesh", "target and intervals", "schedule",
                                           "moe"]
    assert groups == sorted(groups, key=groups.index)  # each group's checks together, in the order they run
    defined = [
        function
        for module in (data, model, batch_and_mesh, target, schedule, moe)
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module.__name__ and not name.startswith("_")
        and "Iterator[Finding]" in str(inspect.signature(function).return_annotation)
    ]
    assert sorted(f.__qualname__ for f in defined) == sorted(f.__qualname__ for f in registered)
