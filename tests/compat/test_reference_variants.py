"""Variants the reference has and we added: each built from YAML as a user would, checked against what it must do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.compat.helpers import build

TINY_GPT2 = """
  component_key: model
  variant_key: gpt2
  config:
    sample_key: input_ids
    prediction_key: logits
    poe_type: ABSOLUTE
    sequence_length: 32
    vocab_size: 64
    n_layer: 1
    n_head_q: 2
    n_head_kv: 2
    n_embd: 16
    ffn_hidden: 32
    dropout: 0.0
    bias: true
    attention_config: {qkv_transforms: []}
    attention_implementation: manual
    activation_type: gelu
    attention_norm_config: {norm_type: layer_norm, config: {normalized_shape: 16}}
    ffn_norm_config: {norm_type: layer_norm, config: {normalized_shape: 16}}
    lm_head_norm_config: {norm_type: layer_norm, config: {normalized_shape: 16}}
    use_weight_tying: false
    seed: 3
"""


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- number conversions from checkpoint paths ------------------------------------------------------------------


def test_counts_from_reference_checkpoint_names(tmp_path):
    name = "eid_2025-seen_steps_48-seen_tokens_393216-target_steps_95-target_tokens_778240"
    config = _write(tmp_path, f"""
path: {tmp_path / name}
seen: {{component_key: number_conversion, variant_key: num_seen_steps_from_checkpoint_path, config: {{checkpoint_path: "${{path}}"}}}}
last: {{component_key: number_conversion, variant_key: last_step_from_checkpoint_path, config: {{checkpoint_path: "${{path}}"}}}}
tokens: {{component_key: number_conversion, variant_key: global_num_seen_tokens_from_checkpoint_path, config: {{checkpoint_path: "${{path}}"}}}}
target_tokens: {{component_key: number_conversion, variant_key: global_num_target_tokens_from_checkpoint_path, config: {{checkpoint_path: "${{path}}"}}}}
target_steps: {{component_key: number_conversion, variant_key: num_target_steps_from_checkpoint_path, config: {{checkpoint_path: "${{path}}"}}}}
""")
    built = build(config)
    # 778240 target tokens / (393216 tokens / 48 steps) = 95 steps, as the name says
    assert (built["seen"], built["last"], built["tokens"], built["target_tokens"], built["target_steps"]) == (
        48, 47, 393216, 778240, 95
    )


def test_counts_from_our_checkpoint_folders(tmp_path):
    folder = tmp_path / "checkpoints" / "step_6"
    folder.mkdir(parents=True)
    (folder / "training_progress.json").write_text(json.dumps(
        {"num_seen_steps": 6, "global_num_seen_tokens": 3072, "num_target_tokens": 10240}))
    (tmp_path / "checkpoints" / "latest").symlink_to("step_6")
    from modalities.conversion import number_conversion as nc

    latest = str(tmp_path / "checkpoints" / "latest")
    assert nc.num_seen_steps_from_checkpoint_path(latest) == 6
    assert nc.last_step_from_checkpoint_path(str(folder)) == 5
    assert nc.num_target_steps_from_checkpoint_path(latest) == 20  # 10240 / (3072 / 6)
    with pytest.raises(ValueError, match="step_7: neither its name"):
        nc.num_seen_steps_from_checkpoint_path(str(tmp_path / "step_7"))


# --- results_subscriber/to_disc, sampler/sequential_sampler ---------------------------------------------------------


def test_to_disc_subscriber_writes_every_result_as_a_json_line(tmp_path):
    from modalities.batch import EvaluationResultBatch
    from modalities.logging.broker import Message, MessageType

    built = build(_write(tmp_path, f"""
results:
  component_key: results_subscriber
  variant_key: to_disc
  config: {{output_file_path: {tmp_path}/out/results.jsonl}}
"""))
    subscriber = built["results"]
    for step, loss in ((1, torch.tensor(2.5)), (2, 1.25)):
        subscriber.consume_message(Message(MessageType.RESULT, EvaluationResultBatch("train", step, losses={"loss": loss})))
    subscriber.consume_message(Message(MessageType.PROGRESS, None))
    subscriber.close()
    lines = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [(r["num_train_steps_done"], r["losses"]["loss"]) for r in lines] == [(1, 2.5), (2, 1.25)]


def test_sequential_sampler_yields_every_index_in_order(tmp_path):
    built = build(_write(tmp_path, """
dataset: {component_key: dataset, variant_key: dummy_dataset, config: {num_samples: 5, sample_definition: [{sample_key: x, sample_shape: [2], sample_type: int}]}}
sampler: {component_key: sampler, variant_key: sequential_sampler, config: {data_source: {instance_key: dataset, pass_type: BY_REFERENCE}}}
"""))
    assert list(built["sampler"]) == [0, 1, 2, 3, 4]


# --- profiling ---------------------------------------------------------------------------------------------------------


def test_random_batch_generator_makes_batches_of_the_asked_shape_and_range(tmp_path):
    built = build(_write(tmp_path, """
ints: {component_key: dataset_batch_generator, variant_key: random, config: {dims: {batch: 3, seq: 5}, data_type: int64, min_val: 4, max_val: 9}}
floats: {component_key: dataset_batch_generator, variant_key: random, config: {dims: {batch: 2, seq: 4, hidden: 8}, data_type: float32, min_val: -1, max_val: 1}}
"""))
    batch = built["ints"].get_dataset_batch()
    ids = batch.samples["input_ids"]
    assert ids.shape == (3, 5) and ids.dtype == torch.int64 and ids.min() >= 4 and ids.max() < 9
    assert batch.targets["target_ids"].shape == (3, 5)
    values = built["floats"].get_dataset_batch().samples["input_ids"]
    assert values.shape == (2, 4, 8) and values.dtype == torch.float32 and -1 <= values.min() and values.max() <= 1


def _profiling_config(tmp_path: Path, activities: str) -> Path:
    return _write(tmp_path, f"""
model:
{TINY_GPT2}
batches: {{component_key: dataset_batch_generator, variant_key: random, config: {{dims: {{b: 2, t: 8}}, data_type: int64, min_val: 0, max_val: 64}}}}
loss_fn: {{component_key: loss, variant_key: clm_cross_entropy_loss, config: {{target_key: target_ids, prediction_key: logits}}}}
optimizer:
  component_key: optimizer
  variant_key: adam_w
  config: {{lr: 0.01, betas: [0.9, 0.95], eps: 1.0e-8, weight_decay: 0.0, weight_decay_groups_excluded: [], wrapped_model: {{instance_key: model, pass_type: BY_REFERENCE}}}}
steppable_component:
  component_key: steppable_component
  variant_key: forward_pass
  config:
    model: {{instance_key: model, pass_type: BY_REFERENCE}}
    dataset_batch_generator: {{instance_key: batches, pass_type: BY_REFERENCE}}
    loss_fn: {{instance_key: loss_fn, pass_type: BY_REFERENCE}}
    optimizer: {{instance_key: optimizer, pass_type: BY_REFERENCE}}
profiler:
  component_key: steppable_profiler
  variant_key: combined
  config:
    profilers:
      - component_key: steppable_profiler
        variant_key: kernel_tracing
        config: {{num_wait_steps: 1, num_warmup_steps: 1, num_active_steps: 2, profiler_activities: {activities}, profile_memory: false,
                  record_shapes: true, with_flops: false, with_stack: false, with_modules: false, tracked_ranks: [0], output_folder_path: {tmp_path}/traces}}
      - component_key: steppable_profiler
        variant_key: memory_tracing
        config: {{memory_snapshot_folder_path: {tmp_path}/memory, num_wait_steps: 0, num_warmup_steps: 0, num_active_steps: 3, tracked_ranks: [0]}}
""")


def test_profile_command_steps_the_component_under_the_profilers(tmp_path):
    config = _profiling_config(tmp_path, "[CPU, CUDA]")
    run = subprocess.run([sys.executable, "-m", "modalities", "profile", "distributed", "--config_file_path", str(config),
                          "--experiment_root_path", str(tmp_path / "exp")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "profiled 4 steps" in run.stdout  # the longest profiler: 1 wait + 1 warm-up + 2 active
    trace = json.loads((tmp_path / "traces" / "profiler_trace_ranks_1_rank_0.json").read_text())
    assert any(event.get("name") == "aten::mm" for event in trace["traceEvents"])  # the forward's matmuls
    assert "aten::mm" in (tmp_path / "traces" / "profiler_summary_ranks_1_rank_0.txt").read_text()
    if not torch.cuda.is_available():
        assert "no CUDA device here" in run.stderr and "has no GPU, so it does nothing" in run.stderr
        assert not (tmp_path / "memory").exists()


def test_forward_pass_step_trains_and_untracked_ranks_do_not_profile(tmp_path):
    from modalities.profiling.profilers import SteppableNoProfiler, kernel_tracing

    built = build(_profiling_config(tmp_path, "[CPU]"))
    model = built["model"]
    before = model.transformer.lm_head.weight.detach().clone()
    built["steppable_component"].step()
    assert not torch.equal(before, model.transformer.lm_head.weight)  # backward and an optimizer step ran
    untracked = kernel_tracing(2, 1, 3, ["CPU"], False, False, False, False, False, str(tmp_path), tracked_ranks=[1])
    assert isinstance(untracked, SteppableNoProfiler) and len(untracked) == 6


# --- debugging ---------------------------------------------------------------------------------------------------------


def test_nan_hook_raises_at_the_first_nan_and_print_hook_prints_shapes(tmp_path, capsys):
    built = build(_write(tmp_path, f"""
model:
{TINY_GPT2}
nan_hooks: {{component_key: model_debugging_hook, variant_key: nan_hook, config: {{model: {{instance_key: model, pass_type: BY_REFERENCE}}, raise_exception: true}}}}
print_hooks: {{component_key: model_debugging_hook, variant_key: print_forward_hook, config: {{model: {{instance_key: model, pass_type: BY_REFERENCE}}, print_shape_only: true}}}}
debugging: {{component_key: debugging, variant_key: settings, config: {{forward_hooks: [{{instance_key: nan_hooks, pass_type: BY_REFERENCE}}, {{instance_key: print_hooks, pass_type: BY_REFERENCE}}]}}}}
"""))
    model = built["model"]
    model({"input_ids": torch.zeros(1, 4, dtype=torch.long)})
    printed = capsys.readouterr().out
    assert "Path: transformer.h.0.attn.q_attn, Input shapes: [(1, 4, 16)], Output shapes: [(1, 4, 16)]" in printed
    with torch.no_grad():
        model.transformer.h["0"].attn.c_proj.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN in the output of Linear 'transformer.h.0.attn.c_proj'"):
        model({"input_ids": torch.zeros(1, 4, dtype=torch.long)})
    built["debugging"].remove_hooks()
    model({"input_ids": torch.zeros(1, 4, dtype=torch.long)})  # the hooks are gone: no exception


def test_debugging_enriched_model_writes_statistics_per_module(tmp_path):
    built = build(_write(tmp_path, f"""
raw:
{TINY_GPT2}
model: {{component_key: model, variant_key: debugging_enriched, config: {{model: {{instance_key: raw, pass_type: BY_REFERENCE}}, logging_dir_path: {tmp_path}/stats, log_interval_steps: 2}}}}
"""))
    model = built["model"]
    for _ in range(3):
        model({"input_ids": torch.ones(2, 4, dtype=torch.long)})["logits"].sum().backward()
    records = [json.loads(line) for line in (tmp_path / "stats" / "tensor_stats_rank_0.jsonl").read_text().splitlines()]
    head = [r for r in records if r["tensor_tag"] == "transformer.lm_head" and r["hook_type"] == "forward_output"]
    assert [r["counter"] for r in head] == [0, 2]  # every second call
    assert head[0]["global_shape"] == [2, 4, 64] and head[0]["nan_count"] == 0
    weights = [r for r in records if r["tensor_tag"] == "transformer.lm_head.weight"]
    assert weights and weights[0]["hook_type"] == "forward_weights" and weights[0]["local_shape"] == [64, 16]
    assert any(r["hook_type"] == "backward_output" for r in records)


# --- text generation -----------------------------------------------------------------------------------------------


def test_greedy_generation_follows_the_argmax_and_stops_at_eod(tmp_path):
    sample = Path(__file__).resolve().parents[2] / "data" / "sample" / "tokenizer"
    config = _write(tmp_path, f"""
model:
{TINY_GPT2.replace("vocab_size: 64", "vocab_size: 2048")}
tokenizer: {{component_key: tokenizer, variant_key: pretrained_hf_tokenizer, config: {{pretrained_model_name_or_path: {sample}}}}}
text_inference_component:
  component_key: inference_component
  variant_key: text
  config:
    model: {{instance_key: model, pass_type: BY_REFERENCE}}
    tokenizer: {{instance_key: tokenizer, pass_type: BY_REFERENCE}}
    prompt_template: "The {{subject}} said"
    sequence_length: 20
    temperature: 0
    eod_token: <|endoftext|>
    device: cpu
""")
    built = build(config)
    component, model, tokenizer = built["text_inference_component"], built["model"], built["tokenizer"]
    prompt = component.prompt({"subject": "miller"})
    generated = component.generate(prompt)
    context = tokenizer.tokenize(prompt)
    expected = []
    with torch.no_grad():
        while len(context) < 20:  # the hand-written greedy loop
            token = int(model({"input_ids": torch.tensor([context])})["logits"][0, -1].argmax())
            if tokenizer.decode([token]) == "<|endoftext|>":
                break
            expected.append(token)
            context.append(token)
    assert generated == expected and len(generated) > 0
    run = subprocess.run([sys.executable, "-m", "modalities", "generate_text", "--config_file_path", str(config),
                          "--prompt-var", "subject=miller", "--max-new-tokens", "3"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == prompt + tokenizer.decode(expected[:3]) + "\n"


# --- a layer norm block of only normalized_shape ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "eps", "has_bias"),
    [
        # The reference validates {normalized_shape} as its PytorchRMSLayerNormConfig (first in its union), whose
        # eps is 1e-5; naming bias or elementwise_affine makes it a LayerNormConfig, eps 1e-6.
        ("{normalized_shape: 16}", 1e-5, True),
        ("{normalized_shape: 16, bias: false}", 1e-6, False),
        ("{normalized_shape: 16, eps: 0.001}", 1e-3, True),
    ],
)
def test_layer_norm_eps_as_the_reference_reads_it(tmp_path, block, eps, has_bias):
    text = "model:" + TINY_GPT2.replace("lm_head_norm_config: {norm_type: layer_norm, config: {normalized_shape: 16}}",
                                        f"lm_head_norm_config: {{norm_type: layer_norm, config: {block}}}")
    model = build(_write(tmp_path, text))["model"]
    norm = model.transformer.lm_head_norm
    assert isinstance(norm, torch.nn.LayerNorm)
    assert norm.eps == eps and (norm.bias is not None) == has_bias


# --- model/compiled with no block names -------------------------------------------------------------------------


def test_compiled_with_no_block_names_is_the_model_itself_and_validate_warns(tmp_path, capsys):
    from modalities.cli.main import main

    text = "model:" + TINY_GPT2 + """
compiled_model:
  component_key: model
  variant_key: compiled
  config:
    model: {instance_key: model, pass_type: BY_REFERENCE}
    block_names: []
"""
    path = _write(tmp_path, text)
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    line = text.splitlines().index("    block_names: []") + 1
    assert f"c.yaml:{line}:18: warning: compiled_model.config.block_names: model/compiled" in err
    assert "block_names is empty: the model is not compiled" in err
    components = build(path)
    assert components["compiled_model"] is components["model"]
