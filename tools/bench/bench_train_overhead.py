"""Framework overhead of modalities training: tokens/s of ``Main.run()`` against a hand-written PyTorch loop.

Both train the same GPT-2 (model/gpt2) on the same in-memory token batches with AdamW (decay on matrices only),
gradient clipping at norm 1.0, one host sync per step (the loop reads the loss, as a loop that logs does;
modalities checks it for NaN), in one process, alternating repetitions in the same run. A step's time is taken
when it ends (after the optimizer step; on CUDA after a synchronize), the first --warmup steps are excluded.

modalities runs in two forms: with the model as built (`model/gpt2`; the loop, clipper, logging and broker
are the difference; CPU only), and with FSDP2 (`model/fsdp2_wrapped`, one rank), as a training config normally
has it.

    python tools/bench/bench_train_overhead.py                                  # CPU, a small GPT-2
    python tools/bench/bench_train_overhead.py --device cuda --dtype bf16 --compile --model-size 124M

On CUDA the MFU of each side is printed too (model FLOPs per token 6 N + 12 L T d, dense bf16 peak).

Tensor, pipeline and context parallelism (--tp, --pp, --cp) are measured on --ranks ranks (each run launched with torchrun)
against FSDP2 over the same ranks with the same global batch, in the same run (the baseline of a layout is plain
data parallelism, not a hand loop):

    python tools/bench/bench_train_overhead.py --ranks 8 --device cuda --dtype bf16 --model-size 1B \
        --tp 2 --pp 2 --pp-schedule Interleaved1F1B
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch
import torch.nn.functional as F
from pydantic import BaseModel

from modalities import Main
from modalities.batch import DatasetBatch
from modalities.logging.broker import ExperimentStatus, MessageType

MODEL_SIZES = {  # n_layer, n_embd, n_head, vocab_size, sequence_length, micro-batch size
    "tiny": (4, 256, 4, 2048, 128, 8),
    "124M": (12, 768, 12, 50304, 1024, 8),
    "1B": (18, 2048, 16, 50304, 2048, 4),
}
DTYPES = {"fp32": ("FP_32", torch.float32), "bf16": ("BF_16", torch.bfloat16)}
LR, BETAS, EPS, WEIGHT_DECAY, MAX_NORM = 1e-4, (0.9, 0.95), 1e-8, 0.1, 1.0


class TokenBatches:
    """The same pre-made batches, cycled, for both loops (data loading is not what is measured)."""

    def __init__(self, num_batches: int, batch_size: int, sequence_length: int, vocab_size: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, vocab_size, (num_batches, batch_size, sequence_length + 1), generator=g)
        self.batches = [
            DatasetBatch(samples={"input_ids": t[:, :-1].contiguous()}, targets={"target_ids": t[:, 1:].contiguous()})
            for t in tokens
        ]
        self.dataloader_tag = "train"

    def __iter__(self):
        while True:
            yield from self.batches


class TokenBatchesConfig(BaseModel):
    num_batches: int
    batch_size: int
    sequence_length: int
    vocab_size: int


class StepTimer:
    """A progress subscriber that notes the time each training step ends."""

    instances: ClassVar[list[StepTimer]] = []

    def __init__(self, synchronize: bool):
        self.synchronize = synchronize
        self.step_end_times: list[float] = []
        StepTimer.instances.append(self)

    def consume_message(self, message) -> None:
        if message.message_type is MessageType.PROGRESS and message.payload.experiment_status is ExperimentStatus.TRAIN:
            if self.synchronize:
                torch.cuda.synchronize()
            self.step_end_times.append(time.perf_counter())

    def close(self) -> None:
        pass


class StepTimerConfig(BaseModel):
    synchronize: bool


def gpt2_config(args) -> dict:
    n_layer, n_embd, n_head, vocab, seq, _ = MODEL_SIZES[args.model_size]
    norm = {"norm_type": "layer_norm", "config": {"normalized_shape": n_embd, "eps": 1e-5}}
    return {
        "component_key": "model",
        "variant_key": "gpt2",
        "config": {
            "sample_key": "input_ids",
            "prediction_key": "logits",
            "poe_type": "ABSOLUTE",
            "sequence_length": seq,
            "vocab_size": vocab,
            "n_layer": n_layer,
            "n_head_q": n_head,
            "n_head_kv": n_head,
            "n_embd": n_embd,
            "ffn_hidden": 4 * n_embd,
            "dropout": 0.0,
            "bias": True,
            "attention_config": {"qkv_transforms": []},
            "attention_implementation": "pytorch_flash",
            "activation_type": "gelu",
            "use_weight_tying": True,
            "use_meta_device": False,
            "attention_norm_config": norm,
            "ffn_norm_config": norm,
            "lm_head_norm_config": norm,
        },
    }


def ref(name: str) -> dict:
    return {"instance_key": name, "pass_type": "BY_REFERENCE"}


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_batch_size(args, layout: tuple[int, int, int]) -> int:
    """Samples per rank and step: the global batch (the size's micro-batch x world size) over the layout's
    data-parallel ranks, so every layout trains the same global batch."""
    *_, batch_size = MODEL_SIZES[args.model_size]
    tp, pp, cp = layout
    return batch_size * tp * pp * cp


def training_config(args, fsdp: bool, experiments_root: Path, experiment_id: str,
                    layout: tuple[int, int, int] = (1, 1, 1)) -> dict:
    *_, seq, _ = MODEL_SIZES[args.model_size]
    batch_size = local_batch_size(args, layout)
    tp, pp, cp = layout
    steps = args.warmup + args.steps
    config = {
        "settings": {
            "experiment_id": experiment_id,
            "referencing_keys": {"sample_key": "input_ids", "target_key": "target_ids", "prediction_key": "logits"},
            "step_profile": {
                "gradient_accumulation_steps": 1,
                "local_train_micro_batch_size": batch_size,
                "sequence_length": seq,
            },
            "intervals": {
                "training_log_interval_in_steps": 10,
                "checkpointing_interval_in_steps": 10 * steps,
                "evaluation_interval_in_steps": 10 * steps,
            },
            "training_target": {"num_target_steps": steps},
        },
        "device_mesh": {
            "component_key": "device_mesh",
            "variant_key": "default",
            "config": {"device_type": args.device, "world_size": world_size(), "tensor_parallel_degree": tp,
                       "pipeline_parallel_degree": pp, "context_parallel_degree": cp},
        },
        "model_raw": gpt2_config(args),
        "optimizer": {
            "component_key": "optimizer",
            "variant_key": "adam_w",
            "config": {
                "lr": LR,
                "betas": list(BETAS),
                "eps": EPS,
                "weight_decay": WEIGHT_DECAY,
                "weight_decay_groups_excluded": ["embedding", "layernorm"],
                "wrapped_model": ref("model"),
            },
        },
        "app_state": {
            "component_key": "app_state",
            "variant_key": "raw",
            "config": {"model": ref("model"), "optimizer": ref("optimizer")},
        },
        "loss_fn": {
            "component_key": "loss",
            "variant_key": "clm_cross_entropy_loss",
            "config": {"target_key": "target_ids", "prediction_key": "logits"},
        },
        "gradient_clipper": {
            "component_key": "gradient_clipper",
            "variant_key": "fsdp2",
            "config": {"wrapped_model": ref("model"), "norm_type": "P2_NORM", "max_norm": MAX_NORM,
                       "device_mesh": ref("device_mesh")},
        },
        "train_dataloader": {
            "component_key": "data_loader",
            "variant_key": "bench_token_batches",
            "config": {
                "num_batches": 8,
                "batch_size": batch_size,
                "sequence_length": seq,
                "vocab_size": MODEL_SIZES[args.model_size][3],
            },
        },
        "eval_dataloaders": [],
        "checkpoint_saving": {
            "component_key": "checkpoint_saving",
            "variant_key": "default",
            "config": {
                "checkpoint_saving_strategy": {
                    "component_key": "checkpoint_saving_strategy",
                    "variant_key": "save_k_most_recent_checkpoints_strategy",
                    "config": {"k": 0},
                },
                "checkpoint_saving_execution": {
                    "component_key": "checkpoint_saving_execution",
                    "variant_key": "dcp",
                    "config": {
                        "checkpoint_path": str(experiments_root),
                        "global_rank": int(os.environ.get("RANK", "0")),
                        "experiment_id": experiment_id,
                    },
                },
            },
        },
        "progress_subscriber": {
            "component_key": "progress_subscriber",
            "variant_key": "bench_step_timer",
            "config": {"synchronize": args.device == "cuda"},
        },
        "evaluation_subscriber": {"component_key": "results_subscriber", "variant_key": "dummy", "config": {}},
    }
    block_model = "model_raw"
    if args.compile:
        config["compiled_model"] = {
            "component_key": "model",
            "variant_key": "compiled",
            "config": {"model": ref("model_raw"), "block_names": ["GPT2Block"]},
        }
        block_model = "compiled_model"
    initialized = {
        "component_key": "model",
        "variant_key": "model_initialized",
        "config": {
            "model": ref(block_model),
            "model_initializer": {
                "component_key": "model_initialization",
                "variant_key": "composed",
                "config": {"model_type": "gpt2", "weight_init_type": "plain", "mean": 0.0, "std": 0.02},
            },
        },
    }
    if pp > 1 or args.pp > 1:
        config["model_raw"]["config"]["use_weight_tying"] = False  # every layout trains the pipeline's model
    if pp > 1:
        config["staged_pipeline"] = {
            "component_key": "pipeline",
            "variant_key": "staged",
            "config": {
                "whole_model": ref("model_raw"),
                "stages_generator": {"component_key": "stages_generator", "variant_key": "gpt2_stages_generator",
                                     "config": {"num_model_layers": MODEL_SIZES[args.model_size][0]}},
                "device_mesh": ref("device_mesh"),
                "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
                "pp_schedule_name": args.pp_schedule,
                "num_layers_per_stage": args.layers_per_stage,
            },
        }
        config["model_part"] = {"component_key": "pipeline", "variant_key": "selector",
                                "config": {"pipeline": ref("staged_pipeline"), "selection_type": "MODEL_PART"}}
        block_model = "model_part"
    if tp > 1:
        config["tp_model"] = {"component_key": "model", "variant_key": "gpt2_tp",
                              "config": {"model": ref(block_model), "device_mesh": ref("device_mesh")}}
        block_model = "tp_model"
    if fsdp:
        # As training configs do it: built on the meta device, sharded (which places it on the mesh's device),
        # then materialized and initialized.
        config["model_raw"]["config"]["use_meta_device"] = True
        dtype = DTYPES[args.dtype][0]
        config["fsdp_model"] = {
            "component_key": "model",
            "variant_key": "fsdp2_wrapped",
            "config": {
                "model": ref(block_model),
                "device_mesh": ref("device_mesh"),
                "block_names": ["GPT2Block"],
                "mixed_precision_settings": {"param_dtype": dtype, "reduce_dtype": dtype},
            },
        }
        initialized["config"]["model"] = ref("fsdp_model")
    if pp > 1:
        config["scheduled_pipeline"] = {
            "component_key": "pipeline",
            "variant_key": "scheduled",
            "config": {
                "loss_fn": ref("loss_fn"),
                "pp_schedule_name": args.pp_schedule,
                "batch_size": batch_size,
                "microbatch_size": max(1, batch_size // (args.microbatches_per_stage * pp)),
                "pp_degree": pp,
                "pipeline": {
                    "component_key": "pipeline",
                    "variant_key": "builder",
                    "config": {
                        "pp_stages": {"component_key": "pipeline", "variant_key": "selector",
                                      "config": {"pipeline": ref("staged_pipeline"), "selection_type": "PP_STAGE"}},
                        "model_parts": ref("fsdp_model"),
                    },
                },
            },
        }
        initialized["config"]["model"] = {"component_key": "pipeline", "variant_key": "selector",
                                          "config": {"pipeline": ref("scheduled_pipeline"),
                                                     "selection_type": "MODEL_PART"}}
    config["model"] = initialized
    return config


def new_main(config: dict, experiments_root: Path, experiment_id: str) -> Main:
    main = Main(config_dict=config, experiments_root=experiments_root, experiment_id=experiment_id)
    main.add_custom_component("data_loader", "bench_token_batches", TokenBatches, TokenBatchesConfig)
    main.add_custom_component("progress_subscriber", "bench_step_timer", StepTimer, StepTimerConfig)
    return main


def tokens_per_second(step_end_times: list[float], warmup: int, tokens_per_step: int) -> float:
    timed = step_end_times[warmup - 1 :]  # the end of the last warm-up step starts the clock
    return (len(timed) - 1) * tokens_per_step / (timed[-1] - timed[0])


def run_modalities(args, fsdp: bool, experiments_root: Path, repetition: int,
                   layout: tuple[int, int, int] = (1, 1, 1)) -> float:
    """Global tokens/s (all data-parallel ranks) of one run."""
    experiment_id = f"{'fsdp' if fsdp else 'plain'}_tp{layout[0]}_pp{layout[1]}_cp{layout[2]}_{repetition}"
    StepTimer.instances.clear()
    config = training_config(args, fsdp, experiments_root, experiment_id, layout)
    new_main(config, experiments_root, experiment_id).run()
    (timer,) = StepTimer.instances
    *_, seq, _ = MODEL_SIZES[args.model_size]
    data_parallel = world_size() // (layout[0] * layout[1] * layout[2])
    return tokens_per_second(timer.step_end_times, args.warmup, seq * local_batch_size(args, layout) * data_parallel)


def run_hand_written(args, experiments_root: Path) -> float:
    """The baseline: the loop one writes by hand around the same model and batches."""
    config = training_config(args, fsdp=False, experiments_root=experiments_root, experiment_id="hand")
    device = torch.device(args.device)
    with device:  # the model's parameters are created and initialized on the device
        model = new_main({"model_raw": config["model_raw"]}, experiments_root, "hand").build_components()["model_raw"]
    batches = iter(
        new_main({"train_dataloader": config["train_dataloader"]}, experiments_root, "hand").build_components()[
            "train_dataloader"
        ]
    )
    if args.compile:
        for block in model.transformer.h.values():
            block.compile()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR,
        betas=BETAS,
        eps=EPS,
    )
    autocast = torch.autocast(device.type, dtype=DTYPES[args.dtype][1], enabled=args.dtype != "fp32")
    step_end_times = []
    model.train()
    for _ in range(args.warmup + args.steps):
        batch = next(batches).to(device, non_blocking=True)
        with autocast:
            logits = model(batch.samples)["logits"]
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch.targets["target_ids"].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
        if not torch.isfinite(loss):
            raise RuntimeError("the loss is not finite")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_end_times.append(time.perf_counter())
    *_, seq, batch_size = MODEL_SIZES[args.model_size]
    return tokens_per_second(step_end_times, args.warmup, seq * batch_size)


def mfu(tokens_per_s: float, args, world: int = 1) -> float | None:
    """MFU of a global token rate over the peaks of ``world`` devices."""
    from modalities.models.mfu.gpt2_mfu import peak_flops_of_device_name

    if args.device != "cuda":
        return None
    n_layer, n_embd, _, vocab, seq, _ = MODEL_SIZES[args.model_size]
    matmul_params = n_layer * 12 * n_embd**2 + vocab * n_embd  # blocks + the output projection
    peak = peak_flops_of_device_name(torch.cuda.get_device_name())
    return tokens_per_s * (6 * matmul_params + 12 * n_layer * seq * n_embd) / (peak * world) if peak else None


def run_layout_worker(args) -> None:
    """One run of one layout, as a torchrun worker; rank 0 writes its tokens/s to --worker-result."""
    layout = tuple(int(x) for x in args.worker_layout.split(","))
    root = Path(args.worker_result).parent
    tokens = run_modalities(args, True, root, args.worker_repetition, layout)  # type: ignore[arg-type]
    if os.environ.get("RANK", "0") == "0":
        Path(args.worker_result).write_text(str(tokens))


def run_layouts(args) -> None:
    """The --tp/--pp/--cp layout against FSDP2 over every rank (same global batch), alternating; each run is its
    own torchrun launch of --ranks ranks (a process group is started once per process)."""
    import subprocess

    layout = (args.tp, args.pp, args.cp)
    parts = [f"tp {args.tp}" if args.tp > 1 else "", f"pp {args.pp} ({args.pp_schedule})" if args.pp > 1 else "",
             f"cp {args.cp}" if args.cp > 1 else ""]
    names = {(1, 1, 1): f"FSDP2 over {args.ranks} ranks", layout: " x ".join(part for part in parts if part)}
    results: dict[tuple[int, int, int], list[float]] = {key: [] for key in names}
    passed = list(sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        for repetition in range(args.repeats):
            order = [(1, 1, 1), layout] if repetition % 2 == 0 else [layout, (1, 1, 1)]
            for key in order:
                result = Path(tmp) / f"tp{key[0]}_pp{key[1]}_cp{key[2]}_{repetition}.txt"
                command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={args.ranks}", __file__, *passed,
                           "--worker-layout", ",".join(map(str, key)), "--worker-result", str(result),
                           "--worker-repetition", str(repetition)]
                subprocess.run(command, check=True)
                results[key].append(float(result.read_text()))
                print(f"  repetition {repetition + 1}: {names[key]}: {results[key][-1]:,.0f} tokens/s", flush=True)
    baseline = statistics.median(results[(1, 1, 1)])
    print(f"{'':36} {'tokens/s (median)':>18} {'ratio':>7} {'MFU':>6}")
    for key, values in results.items():
        median = statistics.median(values)
        value = mfu(median, args, world=args.ranks)
        print(f"{names[key]:36} {median:18,.0f} {median / baseline:7.3f} {f'{value:.1%}' if value else 'n/a':>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile each GPT2Block (model/compiled)")
    parser.add_argument("--model-size", choices=list(MODEL_SIZES), default="tiny")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per repetition")
    parser.add_argument("--warmup", type=int, default=5, help="steps before the clock starts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tp", type=int, default=1, help="tensor_parallel_degree of the measured layout (torchrun)")
    parser.add_argument("--pp", type=int, default=1, help="pipeline_parallel_degree of the measured layout (torchrun)")
    parser.add_argument("--cp", type=int, default=1, help="context_parallel_degree of the measured layout (torchrun)")
    parser.add_argument("--pp-schedule", default="1F1B", help="GPipe, 1F1B, Interleaved1F1B or LoopedBFS")
    parser.add_argument("--layers-per-stage", type=int, default=None,
                        help="num_layers_per_stage (default: the layers and ends over --pp stages)")
    parser.add_argument("--microbatches-per-stage", type=int, default=2,
                        help="pipeline micro-batches per stage and step (the bubble shrinks as it grows)")
    parser.add_argument("--ranks", type=int, default=None,
                        help="ranks for --tp/--pp/--cp (default: tp x pp x cp); each run is launched with torchrun")
    parser.add_argument("--worker-layout", help=argparse.SUPPRESS)
    parser.add_argument("--worker-result", help=argparse.SUPPRESS)
    parser.add_argument("--worker-repetition", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ranks is None:
        args.ranks = args.tp * args.pp * args.cp
    if args.device == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    if args.layers_per_stage is None:
        n_layer = MODEL_SIZES[args.model_size][0]
        args.layers_per_stage = -(-(n_layer + 2) // args.pp)
    if args.worker_layout:
        run_layout_worker(args)
        return
    if args.tp > 1 or args.pp > 1 or args.cp > 1:
        print(f"GPT-2 {args.model_size}, {args.ranks} ranks on {args.device} {args.dtype}; {args.warmup} warm-up "
              f"+ {args.steps} timed steps, {args.repeats} repetitions", flush=True)
        run_layouts(args)
        return

    n_layer, n_embd, _, vocab, seq, batch_size = MODEL_SIZES[args.model_size]
    print(
        f"GPT-2 {args.model_size} ({n_layer} layers, d={n_embd}, vocab {vocab}), batch {batch_size} x {seq} tokens, "
        f"{args.device} {args.dtype}{' compiled' if args.compile else ''}, {torch.get_num_threads()} threads; "
        f"{args.warmup} warm-up + {args.steps} timed steps, {args.repeats} repetitions"
    )
    results: dict[str, list[float]] = {"hand-written loop": [], "modalities": [], "modalities + FSDP2 (1 rank)": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for repetition in range(args.repeats):
            runs = [
                ("hand-written loop", lambda: run_hand_written(args, root)),
                ("modalities", lambda r=repetition: run_modalities(args, False, root, r)),
                ("modalities + FSDP2 (1 rank)", lambda r=repetition: run_modalities(args, True, root, r)),
            ]
            if args.device == "cuda":
                runs.pop(1)  # only fully_shard moves a model to the GPU: a config without FSDP trains on the CPU
            if repetition % 2:
                runs.reverse()  # alternate the order so drift in machine load hits every side alike
            for name, run in runs:
                results[name].append(run())
                print(f"  repetition {repetition + 1}: {name}: {results[name][-1]:,.0f} tokens/s", flush=True)

    baseline = statistics.median(results["hand-written loop"])
    print(f"{'':28} {'tokens/s (median)':>18} {'ratio':>7} {'MFU':>6}")
    for name, values in results.items():
        if not values:
            continue
        median = statistics.median(values)
        value = mfu(median, args)
        print(f"{name:28} {median:18,.0f} {median / baseline:7.3f} {f'{value:.1%}' if value else 'n/a':>6}")


if __name__ == "__main__":
    main()
