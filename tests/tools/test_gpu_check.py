"""tools/gpu_check.sh: its dry run on CPU end to end (so the script is known to work before a GPU is lent), and
the arithmetic its report rests on, against numbers worked out by hand or another implementation."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "gpu_check.sh"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"gpu_check_{name}", REPO / "tools" / "gpu_check" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def steps():
    return _load("steps")


@pytest.fixture(scope="module")
def report():
    return _load("report")


@pytest.mark.slow
def test_the_dry_run_runs_every_step_and_writes_the_report(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "GPU_CHECK_PYTHON": sys.executable}
    env.pop("OUT", None)
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=3600, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    # what comes back from a device run: few files, none deeper than the report folder
    assert sorted(p.name for p in out.rglob("*")) == ["logs.txt", "nvidia-smi.txt", "report.json", "report.md"]
    document = json.loads((out / "report.json").read_text())
    statuses = {step["id"]: step["status"] for step in document["steps"]}
    moe_registered = document["environment"]["model/moe registered"]
    assert statuses == {"install": "ok", "environment": "ok", "quickstart": "ok", "fsdp1": "ok", "mfu_dense": "ok",
                        "mfu_moe": "ok" if moe_registered else "not possible here", "cp_tp": "not possible here"}
    by_id = {step["id"]: step for step in document["steps"]}
    assert document["mode"] == "dry run (CPU, tiny sizes)" and document["counts"]["failed"] == 0
    assert all(step["wall_s"] > 0 and step["time_limit_s"] > 0 for step in document["steps"])
    assert by_id["environment"]["numbers"]["modules failing to import"] == []
    assert by_id["environment"]["numbers"]["peak table entry for 'NVIDIA H200'"] == 989e12
    fsdp1 = by_id["fsdp1"]["numbers"]
    assert sorted(fsdp1["losses of the run"]) == ["1", "2", "3", "4", "5", "6"]
    assert sorted(fsdp1["losses of the warm start"]) == ["5", "6"]
    dense = by_id["mfu_dense"]["numbers"]
    assert [row["step"] for row in dense["per step"]] == [1, 2, 3, 4]
    assert dense["tokens per step"] == 2 * 64 and dense["steady steps"] == "2-4"
    if not moe_registered:
        assert by_id["mfu_moe"]["error"] == "model/moe is not registered in this checkout"
    # every step's log is in logs.txt under its header; stdout ends with the summary
    logs = (out / "logs.txt").read_text()
    assert all(f"== step {step_id}: exit " in logs for step_id in statuses)
    assert "| mfu_dense | ok |" in done.stdout[-12000:] and "| cp_tp | not possible here |" in done.stdout[-12000:]
    assert "| quickstart | ok |" in (out / "report.md").read_text()


def test_matmul_parameters_of_the_dense_check_model_by_hand(steps):
    shape = {"n_layer": 16, "n_embd": 2048, "n_head_q": 16, "n_head_kv": 4, "ffn_hidden": 12288,
             "vocab_size": 32768}
    # per layer: q and output 2 x 2048^2 = 8,388,608; k and v 2 x 2048 x 512 = 2,097,152 (4 heads of 128);
    # SwiGLU 3 x 2048 x 8192 = 50,331,648 (8192 = 2/3 of 12288): 60,817,408; x 16 = 973,078,528;
    # the output projection 32768 x 2048 = 67,108,864
    assert steps.dense_matmul_parameters(shape) == 1_040_187_392


def test_matmul_parameters_agree_with_the_mfu_calculators_count_of_a_built_model(steps):
    from modalities.models.gpt2.config import GPT2LLMConfig
    from modalities.models.gpt2.model import build_gpt2_model
    from modalities.models.mfu.gpt2_mfu import matmul_parameter_count

    norm = {"norm_type": "pytorch_rms_norm", "config": {"normalized_shape": 32}}
    config = GPT2LLMConfig.model_validate({
        "sample_key": "input_ids", "prediction_key": "logits", "poe_type": "NOPE", "sequence_length": 16,
        "vocab_size": 96, "n_layer": 3, "n_head_q": 4, "n_head_kv": 2, "n_embd": 32, "ffn_hidden": 96,
        "enforce_swiglu_hidden_dim_multiple_of": 16, "dropout": 0.0, "bias": False,
        "attention_config": {"qkv_transforms": []}, "attention_implementation": "manual",
        "activation_type": "swiglu", "use_weight_tying": False, "attention_norm_config": norm,
        "ffn_norm_config": norm, "lm_head_norm_config": norm})
    model = build_gpt2_model(**{name: getattr(config, name) for name in type(config).model_fields})
    norms = (2 * 3 + 1) * 32  # the calculator counts the RMSNorm scales too: two per block and the final one
    shape = {"n_layer": 3, "n_embd": 32, "n_head_q": 4, "n_head_kv": 2, "ffn_hidden": 96, "vocab_size": 96,
             "enforce_swiglu_hidden_dim_multiple_of": 16}
    assert steps.dense_matmul_parameters(shape) == matmul_parameter_count(model) - norms


def test_active_parameters_of_the_moe_check_model_by_hand(steps):
    shape = {"num_layers": 16, "d_model": 2048, "n_heads": 16, "n_kv_heads": 4, "moe_d_ff": 4096,
             "moe_num_experts": 8, "moe_top_k": 2, "vocab_size": 32768}
    # per layer: attention 10,485,760 (as the dense model), router 2048 x 8 = 16,384, two experts of
    # 3 x 2048 x 4096 = 50,331,648: 60,833,792; x 16 = 973,340,672; + the output projection 67,108,864
    assert steps.moe_active_matmul_parameters(shape) == 1_040_449_536


def _record(step: int, tokens_per_s: float, mfu=None, memory=100.0) -> dict:
    return {"num_train_steps_done": step, "losses": {"train loss last": 1.0},
            "throughput_metrics": {"tokens/s": tokens_per_s, "mfu": mfu, "peak memory MB": memory}}


def test_steady_state_leaves_out_the_warm_up_and_times_tokens_over_time(steps):
    records = [_record(1, 10.0, memory=500.0), _record(2, 100.0), _record(3, 200.0), _record(4, 400.0)]
    numbers = steps.steady_state(records, warmup=1, flops_per_token=3.0, peak=1200.0)
    assert numbers["steady steps"] == "2-4"
    assert numbers["tokens/s (median)"] == 200.0
    # equal tokens per step: 3 steps in 1/100 + 1/200 + 1/400 = 7/400 s
    assert numbers["tokens/s (all steady steps)"] == pytest.approx(3 * 400 / 7, rel=1e-12)
    assert numbers["tokens/s (min, max)"] == [100.0, 400.0]
    assert numbers["MFU (median tokens/s, this script's FLOP count)"] == pytest.approx(200 * 3 / 1200)
    assert numbers["MFU (median of the framework's mfu_calculator)"] is None  # no peak on CPU
    assert numbers["peak memory MB"] == 500.0  # the warm-up steps count for memory
    assert "problem" in steps.steady_state(records[:1], warmup=1, flops_per_token=3.0, peak=None)


def _reference(steps_) -> dict:
    curve = {str(s): 8.0 - 0.1 * s for s in range(1, 31)}
    return {"curves": {"fp32_seed_42": curve, "bf16_seed_42": curve},
            "tolerance": {"cuda_fp32_first_step": 0.05, "cuda_fp32_last_5_mean_range": [4.0, 6.0],
                          "bf16_first_step": 0.01, "bf16_steps_1_8": 0.05, "bf16_last_5_mean": 0.1}}


def test_the_quick_start_comparison_at_and_past_each_tolerance(steps):
    reference = _reference(steps)
    cpu = {s: 8.0 - 0.1 * s for s in range(1, 31)}  # last-5 mean: 8 - 0.1 x 28 = 5.2
    assert steps.compare_quickstart(dict(cpu), dict(cpu), reference)[0] == []
    fp32 = {**cpu, 1: cpu[1] + 0.05}
    assert steps.compare_quickstart(fp32, dict(fp32), reference)[0] == []  # at the bound: passes
    fp32 = {**cpu, 1: cpu[1] + 0.06}
    assert steps.compare_quickstart(fp32, dict(fp32), reference)[0] == ["fp32 first step vs cpu outside 0.05"]
    shifted = {s: v + 1.0 for s, v in cpu.items() if s > 25} | {s: v for s, v in cpu.items() if s <= 25}
    assert steps.compare_quickstart(shifted, dict(shifted), reference)[0] == [
        "fp32 last-5 mean vs the cpu range outside [4.0, 6.0]"]  # 6.2
    bf16 = {**cpu, 8: cpu[8] - 0.06}
    problems, numbers = steps.compare_quickstart(dict(cpu), bf16, reference)
    assert problems == ["bf16 - fp32 steps before the first rise outside 0.05"]
    assert numbers["bf16 - fp32 steps before the first rise, up to 8 (largest)"] == pytest.approx(-0.06)
    # a spike (the loss rising at step 8, as on the H200) ends the window: its height may differ, step 7 may not
    spiking = {**cpu, 8: cpu[7] + 1.0}
    assert steps.compare_quickstart(spiking, {**spiking, 8: spiking[8] + 0.2}, reference)[0] == []
    assert steps.compare_quickstart(spiking, {**spiking, 7: spiking[7] + 0.06}, reference)[0] == [
        "bf16 - fp32 steps before the first rise outside 0.05"]
    bf16 = {s: v + (0.11 if s > 25 else 0.0) for s, v in cpu.items()}
    assert steps.compare_quickstart(dict(cpu), bf16, reference)[0] == ["bf16 - fp32 last-5 mean outside 0.1"]
    assert steps.compare_quickstart({1: 7.9}, dict(cpu), reference)[0][0].startswith("steps logged")


@pytest.mark.parametrize(
    ("curve", "expected"),
    [({1: 5.0}, [1]),  # one step
     ({s: 9.0 - s for s in range(1, 31)}, [1, 2, 3, 4, 5, 6, 7, 8]),  # steady: cut at 8
     ({1: 7.0, 2: 7.5, 3: 6.0}, [1]),  # rises at once
     ({1: 7.0, 2: 6.0, 3: 6.0, 4: 5.0}, [1, 2, 3, 4]),  # level is not a rise
     ({1: 7.0, 2: 6.0, 3: 5.0, 4: 5.5, 5: 4.0}, [1, 2, 3]),  # the first rise ends it, later descent aside
     ({1: 7.0, 2: 6.0, 4: 5.0}, [1, 2])],  # a step missing ends it
)
def test_the_steady_steps_before_the_loss_first_rises(steps, curve, expected):
    assert steps.steps_before_first_rise(curve) == expected


def test_wheels_are_installed_only_where_missing_or_older(steps, tmp_path):
    import importlib.metadata

    installed = importlib.metadata.version("pytest")
    for name in ("pytest-0.1-py3-none-any.whl", "no_such_distribution_xyz-1.0-py3-none-any.whl",
                 "typing_extensions-999.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")
    chosen, decisions = steps.wheels_to_install(tmp_path)
    assert [p.name for p in chosen] == ["no_such_distribution_xyz-1.0-py3-none-any.whl",
                                        "typing_extensions-999.0-py3-none-any.whl"]
    assert decisions["pytest"] == f"kept {installed} (wheel 0.1)"
    assert decisions["no_such_distribution_xyz"] == "installed 1.0 (missing)"
    assert decisions["typing_extensions"].startswith("installed 999.0 (over ")


def test_the_report_marks_a_step_killed_at_its_limit_and_one_that_left_no_record(report, tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "logs").mkdir()
    (tmp_path / "steps.tsv").write_text("quickstart\t124\t100.2\t100\nfsdp1\t1\t3.0\t120\ncp_tp\t0\t0.5\t20\n")
    running = {"id": "quickstart", "title": "Quick start", "status": "failed", "numbers": {"bf16 losses": {}},
               "notes": [], "error": "the step did not finish"}
    (tmp_path / "results" / "quickstart.json").write_text(json.dumps(running))
    (tmp_path / "results" / "cp_tp.json").write_text(json.dumps(
        {"id": "cp_tp", "title": "cp", "status": "not possible here", "numbers": {}, "notes": [], "error": "one GPU"}))
    (tmp_path / "logs" / "quickstart.log").write_text("\n".join(f"line {i}" for i in range(100)))
    steps = {s["id"]: s for s in report.read_steps(tmp_path)}
    assert steps["quickstart"]["status"] == "failed"
    assert steps["quickstart"]["error"] == "timed out: stopped at its limit of 100 s"
    assert steps["quickstart"]["log_tail"].splitlines() == [f"line {i}" for i in range(60, 100)]
    assert steps["fsdp1"]["status"] == "failed" and "left no record (exit code 1)" in steps["fsdp1"]["error"]
    assert steps["fsdp1"]["log_tail"] == "(no log)"
    assert steps["cp_tp"]["status"] == "not possible here" and "log_tail" not in steps["cp_tp"]
