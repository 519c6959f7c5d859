"""The steps of tools/gpu_check.sh, one subcommand each; every step writes WORK/results/<step>.json.

    python tools/gpu_check/steps.py STEP --work DIR [--out DIR] [--dry-run] [--time-limit SECONDS]

A step's record: {"id", "title", "status", "numbers", "notes", "error"}; status is "ok", "failed" or
"not possible here". A failure record is written before the step starts, so a step that is killed (its time
limit, a crash of the interpreter) still leaves one; tools/gpu_check/report.py adds wall times and log tails.
Each step keeps its subprocesses inside its time limit and kills their whole process group when it runs out.

This module imports only the standard library at the top: `install` must run before the project's own
dependencies can be imported, and the other steps import modalities (and torch) inside their functions.

`quickstart-reference` is not part of the check: it measures, on CPU, the loss curves that the quick start's GPU
run is compared with and writes tools/gpu_check/quickstart_cpu_reference.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
QUICKSTART = REPO / "configs" / "quickstart.yaml"
QUICKSTART_REFERENCE = HERE / "quickstart_cpu_reference.json"
OK, FAILED, NOT_POSSIBLE = "ok", "failed", "not possible here"

# Packages whose versions the report records (distribution names).
RECORDED_DISTRIBUTIONS = (
    "torch", "triton", "numpy", "transformers", "tokenizers", "safetensors", "sentencepiece", "pydantic",
    "pydantic-core", "typing-extensions", "annotated-types", "typing-inspection", "ruamel.yaml", "ruamel.yaml.clib",
    "networkx", "rich", "pyyaml",
)


class StepTimeout(Exception):
    pass


class Step:
    """What a step needs: its folders, mode, deadline and record."""

    current: Step | None = None  # the step of this process, whose record an uncaught error marks failed

    def __init__(self, args: argparse.Namespace, step_id: str, title: str):
        Step.current = self
        self.id, self.dry_run = step_id, args.dry_run
        self.work = Path(args.work)
        self.out = Path(args.out) if args.out else None
        self.deadline = time.monotonic() + args.time_limit
        self.record = {"id": step_id, "title": title, "status": FAILED, "numbers": {}, "notes": [],
                       "error": "the step did not finish (killed at its time limit, or the interpreter crashed)"}
        self.path = self.work / "results" / f"{step_id}.json"
        self.save()

    @property
    def device(self) -> str:
        return "cpu" if self.dry_run else "cuda"

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.record, indent=1, default=str))
        os.replace(tmp, self.path)

    def finish(self, status: str, error: str | None = None) -> None:
        self.record["status"], self.record["error"] = status, error
        self.save()

    def note(self, text: str) -> None:
        print(f"[{self.id}] {text}", flush=True)
        self.record["notes"].append(text)

    def run(self, cmd: list[str], *, env: dict | None = None, cwd: Path = REPO, reserve: float = 5.0) -> int:
        """Run a command with its output in this step's log; its process group is killed when the step's time
        runs out (``reserve`` seconds are kept for what follows)."""
        limit = self.remaining() - reserve
        if limit <= 1:
            raise StepTimeout(f"no time left for: {' '.join(map(str, cmd))}")
        print(f"$ {' '.join(map(str, cmd))}", flush=True)
        proc = subprocess.Popen(list(map(str, cmd)), cwd=cwd, env=env, start_new_session=True)
        try:
            return proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise StepTimeout(f"stopped after {limit:.0f} s (the step's time limit): {' '.join(map(str, cmd))}")


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def subprocess_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra)
    return env


def torchrun(*args) -> list[str]:
    """One rank through torchrun, as multi-GPU runs are launched (NCCL on CUDA, gloo on CPU)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
            "-m", "modalities", *map(str, args)]


def modalities_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "modalities", *map(str, args)]


def sets(values: dict) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def train_records(results: Path) -> list[dict]:
    """The train records of a results.jsonl, in step order (resume markers and evaluations left out)."""
    if not results.is_file():
        return []
    records = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return sorted((r for r in records if r.get("dataloader_tag") == "train"), key=lambda r: r["num_train_steps_done"])


def nvidia_smi_query(fields: str) -> list[str] | None:
    """One CSV line per GPU, or None where nvidia-smi is missing or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    done = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True, text=True,
                          timeout=30, check=False)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else None


def gpu_name() -> str | None:
    lines = nvidia_smi_query("name")
    return lines[0] if lines else None


# ----------------------------------------------------------------------------------------------------- install


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version_key(version: str) -> tuple:
    try:
        from packaging.version import Version

        return (Version(version),)
    except Exception:  # no packaging, or a version it cannot parse: compare the numeric parts
        return tuple(int(part) for part in re.findall(r"\d+", version))


def wheels_to_install(wheel_dir: Path) -> tuple[list[Path], dict]:
    """The wheels whose distribution this interpreter lacks or has in an older version, and for each wheel
    what was decided."""
    import importlib.metadata as metadata

    chosen, decisions = [], {}
    for wheel in sorted(wheel_dir.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        try:
            present = metadata.version(_normalized(name))
        except metadata.PackageNotFoundError:
            present = None
        if present is None or _version_key(present) < _version_key(version):
            chosen.append(wheel)
            decisions[name] = f"installed {version}" + (f" (over {present})" if present else " (missing)")
        else:
            decisions[name] = f"kept {present} (wheel {version})"
    return chosen, decisions


def step_install(args: argparse.Namespace) -> None:
    """Install the carried wheels the interpreter needs into --site (tools/gpu_check.sh puts it on PYTHONPATH)."""
    step = Step(args, "install", "Install the carried wheels (.whl) that the machine lacks")
    wheel_dir, site = REPO / ".whl", Path(args.site)
    if not wheel_dir.is_dir():
        step.note(f"no {wheel_dir.name}/ folder: nothing to install (run tools/gpu_wheels.sh where PyPI is reachable)")
        return step.finish(OK)
    chosen, decisions = wheels_to_install(wheel_dir)
    step.record["numbers"] = {"wheels": decisions, "site": str(site)}
    if chosen:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--disable-pip-version-check", "--upgrade", "--target", str(site), *chosen]
        if step.run(cmd) != 0:
            return step.finish(FAILED, "pip install of the carried wheels failed (see the log)")
    step.finish(OK)


# ------------------------------------------------------------------------------------------------- environment


def _versions() -> dict:
    import importlib.metadata as metadata

    versions = {}
    for name in RECORDED_DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
            versions[name] = f"{dist.version} ({Path(str(dist.locate_file(''))).as_posix()})"
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _torch_facts() -> dict:
    import torch

    facts = {"torch": torch.__version__, "cuda (torch built with)": torch.version.cuda,
             "cuda available": torch.cuda.is_available(), "nccl available": torch.distributed.is_nccl_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update({
            "cudnn": torch.backends.cudnn.version(),
            "nccl": _nccl_version(torch),
            "gpu count": torch.cuda.device_count(),
            "gpu": torch.cuda.get_device_name(0),
            "compute capability": f"{props.major}.{props.minor}",
            "gpu memory GiB": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
        })
    return facts


def _nccl_version(torch) -> str:
    version = torch.cuda.nccl.version()  # a tuple (major, minor, patch); an int in older torch
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


OPTIONAL_EXTRAS = {"pygls", "lsprotocol", "wandb", "matplotlib"}  # pyproject's extras: lsp, wandb, plot


def _import_every_module(optional_missing: set[str]) -> list[str]:
    """Import every module of the package: an API this torch lacks at import time shows here, by module.
    Modules needing an optional extra that is not installed go to `optional_missing`."""
    import importlib
    import pkgutil

    import modalities

    failures = []
    for info in pkgutil.walk_packages(modalities.__path__, "modalities."):
        if info.name.endswith("__main__"):  # runs the command line
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as error:
            # an optional extra the image lacks (pygls for `modalities lsp`, wandb, ...) is not a failure of
            # the package under this torch; anything of torch's or ours missing is
            root = (error.name or "").split(".")[0]
            if root in OPTIONAL_EXTRAS:
                optional_missing.add(f"{root} ({info.name})")
            else:
                failures.append(f"{info.name}: {type(error).__name__}: {error}")
        except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the check
            failures.append(f"{info.name}: {type(error).__name__}: {error}")
    return failures


def step_environment(args: argparse.Namespace) -> None:
    step = Step(args, "environment", "Versions, GPU and the package importing under this torch")
    numbers = step.record["numbers"]
    numbers["python"] = f"{sys.version.split()[0]} ({sys.executable})"
    numbers["versions"] = _versions()
    numbers.update(_torch_facts())
    driver = nvidia_smi_query("driver_version,name,memory.total,clocks.max.sm,power.limit")
    numbers["nvidia-smi"] = driver or "not available"
    from modalities.models.mfu.peaks import peak_flops_of_device_name

    name = numbers.get("gpu")
    numbers["peak bf16 FLOP/s of this GPU (modalities/models/mfu/peaks.py)"] = (
        peak_flops_of_device_name(name) if name else None)
    numbers["peak table entry for 'NVIDIA H200'"] = peak_flops_of_device_name("NVIDIA H200")
    numbers["C compiler (inductor, triton)"] = shutil.which("cc") or shutil.which("gcc")
    optional_missing: set[str] = set()
    failures = _import_every_module(optional_missing)
    numbers["modules failing to import"] = failures
    numbers["optional extras not installed"] = sorted(optional_missing)
    from modalities.registry import default_registry

    numbers["model/moe registered"] = ("model", "moe") in default_registry()
    step.save()
    validate = step.run(modalities_cmd("validate", QUICKSTART), env=subprocess_env())
    problems = ([f"{len(failures)} module(s) of the package failed to import"] if failures else []) + (
        [f"`modalities validate {QUICKSTART.relative_to(REPO)}` exited {validate}"] if validate else [])
    step.finish(FAILED if problems else OK, "; ".join(problems) or None)


# -------------------------------------------------------------------------------------------------- quick start


def losses_by_step(records: list[dict]) -> dict[int, float]:
    return {r["num_train_steps_done"]: r["losses"]["train loss last"] for r in records}


def _curve(reference: dict, name: str) -> dict[int, float]:
    return {int(step): loss for step, loss in reference["curves"][name].items()}


def _last5(curve: dict[int, float]) -> float:
    return statistics.fmean(curve[s] for s in sorted(curve)[-5:])


def steps_before_first_rise(curve: dict[int, float], last: int = 8) -> list[int]:
    """Steps 1..8 of a loss curve, cut before the first step whose loss is above the step before. The quick
    start's learning rate makes the loss spike once on some draws (step 8 on an H200 with the CUDA generator's
    weights, step 9 for seeds 1-3 on CPU); how high a spike goes is chaotic in the rounding (bf16 and fp32 from
    the same weights spiked at step 8 to 7.05 and 6.90 while steps 1-7 agreed within 0.003), so bf16 is judged
    against fp32 on the steady descent before it."""
    steps = []
    for step in range(1, last + 1):
        if step not in curve or (step > 1 and curve[step] > curve[step - 1]):
            break
        steps.append(step)
    return steps


def compare_quickstart(fp32: dict[int, float], bf16: dict[int, float], reference: dict) -> tuple[list[str], dict]:
    """The CUDA runs against the CPU reference: fp32 against the CPU's curves (other initial weights: the CUDA
    generator draws them), bf16 against fp32 (the same initial weights). Returns the problems and the numbers."""
    tol, cpu = reference["tolerance"], _curve(reference, "fp32_seed_42")
    if sorted(fp32) != sorted(cpu) or sorted(bf16) != sorted(cpu):
        return [f"steps logged (fp32 {sorted(fp32)}, bf16 {sorted(bf16)}) differ from the reference's"], {}
    numbers = {
        "fp32 first step - cpu": fp32[1] - cpu[1],
        "fp32 last-5 mean": _last5(fp32), "cpu last-5 mean range (seeds 42, 1-4)": tol["cuda_fp32_last_5_mean_range"],
        "bf16 - fp32 first step": bf16[1] - fp32[1],
        "bf16 - fp32 steps before the first rise, up to 8 (largest)":
            max((bf16[s] - fp32[s] for s in steps_before_first_rise(fp32)), key=abs),
        "steps compared before the first rise": steps_before_first_rise(fp32),
        "bf16 - fp32 last-5 mean": _last5(bf16) - _last5(fp32),
    }
    low, high = tol["cuda_fp32_last_5_mean_range"]
    checks = [
        (abs(numbers["fp32 first step - cpu"]) <= tol["cuda_fp32_first_step"], "fp32 first step vs cpu",
         tol["cuda_fp32_first_step"]),
        (low <= numbers["fp32 last-5 mean"] <= high, "fp32 last-5 mean vs the cpu range", [low, high]),
        (abs(numbers["bf16 - fp32 first step"]) <= tol["bf16_first_step"], "bf16 - fp32 first step",
         tol["bf16_first_step"]),
        (abs(numbers["bf16 - fp32 steps before the first rise, up to 8 (largest)"]) <= tol["bf16_steps_1_8"],
         "bf16 - fp32 steps before the first rise", tol["bf16_steps_1_8"]),
        (abs(numbers["bf16 - fp32 last-5 mean"]) <= tol["bf16_last_5_mean"], "bf16 - fp32 last-5 mean",
         tol["bf16_last_5_mean"]),
    ]
    numbers["tolerances"] = {name: bound for _, name, bound in checks}
    return [f"{name} outside {bound}" for ok, name, bound in checks if not ok], numbers


def compare_dry_run(fp32: dict[int, float], bf16: dict[int, float], reference: dict) -> tuple[list[str], dict]:
    """On CPU with the reference's seed both first-step losses are the reference's, to float32 rounding (the
    reference file is checked against the code on every dry run)."""
    numbers, problems = {}, []
    for name, curve in (("fp32", fp32), ("bf16", bf16)):
        expected = _curve(reference, f"{name}_seed_42")[1]
        numbers[f"{name} first step (cpu reference)"] = [curve.get(1), expected]
        if curve.get(1) is None or abs(curve[1] - expected) > 1e-4 * abs(expected):
            problems.append(f"{name} first-step loss {curve.get(1)} is not the reference's {expected} (rtol 1e-4)")
    return problems, numbers


def step_quickstart(args: argparse.Namespace) -> None:
    title = "Quick start on " + ("CPU, fp32 and bf16, 3 steps (dry run)" if args.dry_run else
                                 "CUDA, bf16 mixed precision (and fp32), against the CPU run")
    step = Step(args, "quickstart", title)
    base = {"device_mesh.config.device_type": step.device, "settings.intervals.training_log_interval_in_steps": 1}
    if args.dry_run:
        base["settings.training_target.num_target_steps"] = 3
    root, curves, numbers = step.work / "experiments", {}, step.record["numbers"]
    # bf16: parameters and activations in bf16; master weights, gradient reduction and optimizer state fp32
    for name, precision in (("bf16", "BF_16"), ("fp32", "FP_32")):
        overrides = {**base, "fsdp_model.config.mixed_precision_settings.param_dtype": precision}
        rc = step.run(modalities_cmd("train", QUICKSTART, "--experiments-root", root, "--experiment-id",
                                     f"quickstart_{name}", *sets(overrides)), env=subprocess_env(),
                      reserve=0.45 * step.remaining() if name == "bf16" else 5)
        records = train_records(root / f"quickstart_{name}" / "results.jsonl")
        curves[name] = losses_by_step(records)
        numbers[f"{name} losses"] = curves[name]
        if records:
            numbers[f"{name} tokens/s (last step)"] = records[-1]["throughput_metrics"].get("tokens/s")
        if rc != 0:
            return step.finish(FAILED, f"modalities train ({name}) exited {rc}")
    reference = json.loads(QUICKSTART_REFERENCE.read_text())
    compare = compare_dry_run if args.dry_run else compare_quickstart
    problems, numbers["comparison with the CPU run"] = compare(curves["fp32"], curves["bf16"], reference)
    step.finish(FAILED if problems else OK, "; ".join(problems) or None)


# ------------------------------------------------------------------------------------------- FSDP1 and warm start


NO_WANDB = "evaluation_subscriber={component_key: results_subscriber, variant_key: dummy, config: {}}"


def _fsdp1_overrides(work: Path, eval_set: Path) -> list[str]:
    from tests.compat.helpers import reference_training_overrides

    overrides = reference_training_overrides(work, eval_set, fsdp2=False)
    if importlib.util.find_spec("wandb") is None:  # the config logs to W&B offline; wandb is not installed here
        # (validate refuses a wandb subscriber without the package, whatever its mode): results go nowhere else
        overrides += ["--set", NO_WANDB]
    return overrides


def step_fsdp1(args: argparse.Namespace) -> None:
    """tests/compat/test_reference_training.py::test_fsdp1_config_trains_and_its_warm_start_continues_exactly,
    launched with torchrun on one rank (NCCL on CUDA; gloo in the dry run)."""
    from tests.compat.helpers import REFERENCE_TRAINING_CONFIGS, train_losses, write_small_eval_set

    backend = "gloo, CPU (dry run)" if args.dry_run else "NCCL, CUDA"
    step = Step(args, "fsdp1", f"Reference FSDP1 config and its warm start, torchrun 1 rank ({backend})")
    work = step.work / "fsdp1"
    work.mkdir(parents=True, exist_ok=True)
    overrides = _fsdp1_overrides(work, write_small_eval_set(work / "small.pbin"))
    if NO_WANDB in overrides:
        step.note("wandb is not installed: evaluation_subscriber is results_subscriber/dummy")
    env = subprocess_env(NCCL_DEBUG="VERSION")  # NCCL prints its version once: the log shows it was used
    config = REFERENCE_TRAINING_CONFIGS / "config_lorem_ipsum_long_fsdp1.yaml"
    rc = step.run(torchrun("run", "--config_file_path", config, "--experiments_root_path", work / "exp",
                           "--experiment_id", "full", *overrides), env=env, cwd=work, reserve=0.45 * step.remaining())
    numbers = step.record["numbers"]
    results = work / "exp" / "full" / "results.jsonl"
    full = train_losses(results) if results.is_file() else {}
    numbers["losses of the run"] = full
    if rc != 0 or sorted(full) != [1, 2, 3, 4, 5, 6]:
        return step.finish(FAILED, f"the FSDP1 run exited {rc} with train steps {sorted(full)} (expected 1-6)")
    checkpoints = work / "checkpoints"
    name = "seen_steps_4-seen_tokens_1024-target_steps_6-target_tokens_77824.bin"
    model, optimizer = checkpoints / f"eid_full-model-{name}", checkpoints / f"eid_full-optimizer-{name}"
    if not (model.is_file() and optimizer.is_file()):
        return step.finish(FAILED, f"the reference's FSDP1 checkpoint files of step 4 are missing in {checkpoints}")
    info = work / "info_step4.json"
    info.write_text(json.dumps({"model_checkpoint_path": str(model), "optimizer_checkpoint_path": str(optimizer)}))
    warm_config = REFERENCE_TRAINING_CONFIGS / "config_lorem_ipsum_long_fsdp1_warmstart.yaml"
    rc = step.run(torchrun("warmstart", "--config_file_path", warm_config, "--last_checkpoint_info_file_path", info,
                           "--experiments_root_path", work / "exp", "--experiment_id", "warm", *overrides),
                  env=env, cwd=work)
    results = work / "exp" / "warm" / "results.jsonl"
    warm = train_losses(results) if results.is_file() else {}
    numbers["losses of the warm start"] = warm
    if rc != 0 or sorted(warm) != [5, 6]:
        return step.finish(FAILED, f"the warm start exited {rc} with train steps {sorted(warm)} (expected 5, 6)")
    if not args.dry_run:
        numbers["NCCL in the log"] = _nccl_lines(step) or "no 'NCCL version' line"
    _judge_continuation(step, full, warm, args.dry_run)


def _nccl_lines(step: Step) -> list[str]:
    """The lines in which NCCL announced itself in this step's log (NCCL_DEBUG=VERSION): proof it was used."""
    log = step.work / "logs" / f"{step.id}.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    return sorted({line.strip() for line in text.splitlines() if "NCCL version" in line})


def _judge_continuation(step: Step, full: dict, warm: dict, dry_run: bool) -> None:
    # On CPU the continuation is exact (the test's 1e-5). On CUDA step 5 replays a deterministic forward on the
    # restored weights, but step 6 follows a backward whose atomics (embedding gradients) sum in varying order:
    # differences of float32 rounding, amplified by bf16 parameters, stay far below 1e-3, while a lost optimizer
    # state, data position or schedule moves the loss by 1e-2 or more.
    tolerance = 1e-5 if dry_run else 1e-3
    differences = {s: warm[s] - full[s] for s in (5, 6)}
    step.record["numbers"].update({"warm minus full (steps 5, 6)": differences, "tolerance (absolute)": tolerance})
    worst = max(abs(d) for d in differences.values())
    if worst > tolerance:
        return step.finish(FAILED, f"the warm start's losses differ from the run's by {worst:.2e} (> {tolerance})")
    step.finish(OK)


# ---------------------------------------------------------------------------------------------------------- MFU

MFU_WARMUP_STEPS = 10  # compilation, allocator growth and the first data loads; dry run: 1
DENSE_DRY_RUN = {  # a few seconds on CPU: the same components, tiny shapes, dynamo without inductor
    "model_raw.config.n_layer": 2, "model_raw.config.n_embd": 64, "model_raw.config.n_head_q": 4,
    "model_raw.config.n_head_kv": 2, "model_raw.config.ffn_hidden": 192, "model_raw.config.vocab_size": 512,
    "model_raw.config.enforce_swiglu_hidden_dim_multiple_of": 64,
    "settings.step_profile.sequence_length": 64, "settings.step_profile.local_train_micro_batch_size": 2,
    "settings.training_target.num_target_steps": 4, "device_mesh.config.device_type": "cpu",
    "train_dataloader.config.num_workers": 0, "train_dataloader.config.pin_memory": False,
    "compiled_model.config.backend": "eager",
}
MOE_DRY_RUN = {  # best guess of model/moe's fields (the reference's): check once model/moe lands
    "model_raw.config.num_layers": 2, "model_raw.config.d_model": 64, "model_raw.config.n_heads": 4,
    "model_raw.config.n_kv_heads": 2, "model_raw.config.d_ff": 64, "model_raw.config.moe_d_ff": 64,
    "model_raw.config.moe_num_experts": 4, "model_raw.config.moe_top_k": 2, "model_raw.config.vocab_size": 512,
    "settings.step_profile.sequence_length": 64, "settings.step_profile.local_train_micro_batch_size": 2,
    "settings.training_target.num_target_steps": 4, "device_mesh.config.device_type": "cpu",
    "train_dataloader.config.num_workers": 0, "train_dataloader.config.pin_memory": False,
}
# A fallback when the compiled dense run failed: out of memory -> recompute every block's activations;
# anything else (a compiler problem) -> the same run uncompiled.
ACTIVATION_CHECKPOINTING = {
    "ac_model": "{component_key: model, variant_key: activation_checkpointed, config: {model: {instance_key: "
                "model_raw, pass_type: BY_REFERENCE}, ac_variant: full_activation_checkpointing, "
                "layers_fqn: transformer.h}}",
    "compiled_model.config.model.instance_key": "ac_model",
}
UNCOMPILED = {"compiled_model.config.block_names": "[]"}


def config_value(config: Path, dotted: str, overrides: dict):
    """A value of the YAML file as written (literals only), or its override."""
    import yaml

    if dotted in overrides:
        return yaml.safe_load(str(overrides[dotted]))
    node = yaml.safe_load(config.read_text())
    for key in dotted.split("."):
        node = node[key]
    return node


def write_synthetic_data(path: Path, num_tokens: int, vocab_size: int) -> Path:
    """Uniform random token ids as one document: the packed format the data loader reads, no download."""
    import numpy as np

    from modalities.data.pbin import PackedFileWriter

    width = 1 if vocab_size <= 2**8 else 2 if vocab_size <= 2**16 else 4
    tokens = np.random.default_rng(0).integers(0, vocab_size, num_tokens, dtype=np.int64)
    writer = PackedFileWriter(path, width, overwrite=True)
    writer.write_tokens(tokens, [num_tokens])
    writer.close()
    return path


def dense_matmul_parameters(c: dict) -> int:
    """Parameters in matrix multiplies per token of a model/gpt2 (no biases; the output projection counted,
    the input embedding not): q and output projections d x d, k and v d x kv, SwiGLU 3 d x hidden."""
    from modalities.models.gpt2.config import swiglu_hidden_dim

    d, kv = c["n_embd"], c["n_embd"] // c["n_head_q"] * c["n_head_kv"]
    hidden = swiglu_hidden_dim(c["ffn_hidden"], c.get("enforce_swiglu_hidden_dim_multiple_of", 256))
    return c["n_layer"] * (2 * d * d + 2 * d * kv + 3 * d * hidden) + c["vocab_size"] * d


def moe_active_matmul_parameters(c: dict) -> int:
    """The same for a Qwen-style MoE: attention, the router and top_k of the experts (SwiGLU, 3 d x moe_d_ff)."""
    d, kv = c["d_model"], c["d_model"] // c["n_heads"] * c["n_kv_heads"]
    experts = c["moe_top_k"] * 3 * d * c["moe_d_ff"]
    return c["num_layers"] * (2 * d * d + 2 * d * kv + d * c["moe_num_experts"] + experts) + c["vocab_size"] * d


def steady_state(records: list[dict], warmup: int, flops_per_token: float, peak: float | None) -> dict:
    steady = [r for r in records if r["num_train_steps_done"] > warmup]
    rates = [r["throughput_metrics"]["tokens/s"] for r in steady]
    if not rates:
        return {"problem": f"no step after the {warmup} warm-up steps"}
    median = statistics.median(rates)
    harmonic = len(rates) / sum(1 / r for r in rates)  # total tokens / total time of the steady steps
    framework_mfu = [r["throughput_metrics"].get("mfu") for r in steady]
    return {
        "steady steps": f"{steady[0]['num_train_steps_done']}-{steady[-1]['num_train_steps_done']}",
        "tokens/s (median)": median, "tokens/s (all steady steps)": harmonic,
        "tokens/s (min, max)": [min(rates), max(rates)],
        "model FLOPs per token": flops_per_token,
        "MFU (median tokens/s, this script's FLOP count)": median * flops_per_token / peak if peak else None,
        "MFU (median of the framework's mfu_calculator)": (
            statistics.median(framework_mfu) if None not in framework_mfu else None),
        "peak memory MB": max(r["throughput_metrics"].get("peak memory MB") or 0 for r in records),
    }


def _mfu_run_setup(step: Step, config: Path, model: str, overrides: dict) -> None:
    """Overrides for the mode and the synthetic data the run reads."""
    if step.dry_run:
        overrides.update(DENSE_DRY_RUN if model == "dense" else MOE_DRY_RUN)
    def value(key: str):
        return config_value(config, key, overrides)

    steps = value("settings.training_target.num_target_steps")
    batch = value("settings.step_profile.local_train_micro_batch_size")
    seq, vocab = value("settings.step_profile.sequence_length"), value("model_raw.config.vocab_size")
    data = step.work / "data" / f"synthetic_{model}.pbin"
    write_synthetic_data(data, (steps + 2) * batch * (seq + 1), vocab)
    overrides["settings.paths.train_dataset_path"] = data
    step.record["numbers"].update({"steps": steps, "micro-batch": batch, "sequence length": seq,
                                   "tokens per step": batch * seq, "vocabulary": vocab})


def step_mfu(args: argparse.Namespace) -> None:
    model = args.model
    config = HERE / f"{model}_mfu.yaml"
    suffix = ", fallback after the compiled run failed" if args.fallback else ""
    title = {"dense": "MFU: ~1B Llama-shaped model/gpt2, FSDP2 + torch.compile + bf16",
             "moe": "MFU: model/moe of about the dense model's active size, FSDP2 + bf16"}[model] + suffix
    step = Step(args, f"mfu_{model}" + ("_fallback" if args.fallback else ""), title)
    if model == "moe":
        from modalities.registry import default_registry

        if ("model", "moe") not in default_registry():
            step.note(f"{config.relative_to(REPO)} is a best guess from the reference's MoE config")
            return step.finish(NOT_POSSIBLE, "model/moe is not registered in this checkout")
    overrides: dict = {}
    if args.fallback:
        failed_log = (step.work / "logs" / "mfu_dense.log")
        oom = failed_log.is_file() and "out of memory" in failed_log.read_text(errors="replace").lower()
        overrides.update(ACTIVATION_CHECKPOINTING if oom else UNCOMPILED)
        step.note("full activation checkpointing (the compiled run ran out of memory)" if oom
                  else "uncompiled (the compiled run failed for another reason than memory)")
    _mfu_run_setup(step, config, model, overrides)
    step.record["numbers"]["overrides"] = {k: str(v) for k, v in overrides.items()}
    root = step.work / "experiments"
    rc = step.run(torchrun("train", config, "--experiments-root", root, "--experiment-id", step.id,
                           *sets(overrides)), env=subprocess_env())
    _judge_mfu(step, config, model, overrides, train_records(root / step.id / "results.jsonl"), rc)


DENSE_SHAPE = ("n_layer", "n_embd", "n_head_q", "n_head_kv", "ffn_hidden", "vocab_size",
               "enforce_swiglu_hidden_dim_multiple_of")
MOE_SHAPE = ("num_layers", "d_model", "n_heads", "n_kv_heads", "moe_d_ff", "moe_num_experts", "moe_top_k", "vocab_size")


def model_flops_per_token(config: Path, model: str, overrides: dict, sequence_length: int) -> tuple[dict, int, int]:
    """The model's shape as configured, its matmul parameters per token (MoE: active) and 6 N + 12 L T d."""
    shape = {}
    for key in DENSE_SHAPE if model == "dense" else MOE_SHAPE:
        try:
            shape[key] = config_value(config, f"model_raw.config.{key}", overrides)
        except KeyError:  # a field the file leaves at its default
            shape[key] = 256 if key == "enforce_swiglu_hidden_dim_multiple_of" else None
    if model == "dense":
        matmul, layers, width = dense_matmul_parameters(shape), shape["n_layer"], shape["n_embd"]
    else:
        matmul, layers, width = moe_active_matmul_parameters(shape), shape["num_layers"], shape["d_model"]
    return shape, matmul, 6 * matmul + 12 * layers * sequence_length * width


def _judge_mfu(step: Step, config: Path, model: str, overrides: dict, records: list[dict], rc: int) -> None:
    from modalities.models.mfu.peaks import peak_flops_of_device_name

    numbers = step.record["numbers"]
    shape, matmul, flops_per_token = model_flops_per_token(config, model, overrides, numbers["sequence length"])
    name = None if step.dry_run else gpu_name()
    peak = peak_flops_of_device_name(name) if name else None
    warmup = 1 if step.dry_run else MFU_WARMUP_STEPS
    numbers.update({"model": shape, "matmul parameters per token" + (" (active)" if model == "moe" else ""): matmul,
                    "gpu": name, "peak bf16 FLOP/s": peak, "warm-up steps excluded": warmup,
                    "per step": [_per_step(r) for r in records]})
    if rc != 0 or len(records) != numbers["steps"]:
        return step.finish(FAILED, f"the training run exited {rc} after {len(records)} of {numbers['steps']} steps")
    numbers.update(steady_state(records, warmup, flops_per_token, peak))
    first = records[0]["throughput_metrics"].get("tokens/s")
    numbers["first step s (compilation included)"] = numbers["tokens per step"] / first if first else None
    if model == "moe":
        step.note("the framework's mfu_calculator/gpt2 counts every expert; this script counts the active ones")
    step.finish(OK)


def _per_step(record: dict) -> dict:
    throughput = record["throughput_metrics"]
    return {"step": record["num_train_steps_done"], "loss": record["losses"]["train loss last"],
            "tokens/s": throughput.get("tokens/s"), "mfu": throughput.get("mfu"),
            "peak memory MB": throughput.get("peak memory MB")}


# ----------------------------------------------------------------------------------------- context and tensor


def step_parallelism(args: argparse.Namespace) -> None:
    step = Step(args, "cp_tp", "Context parallelism and tensor parallelism")
    gpus = nvidia_smi_query("name")
    step.record["numbers"]["gpus on this machine"] = len(gpus) if gpus else 0
    step.note("context parallelism (device_mesh context_parallel_degree) splits every sequence over cp ranks and "
              "tensor parallelism (tensor_parallel_degree, model/gpt2_tp) splits every block's weights over tp "
              "ranks: both need at least 2 ranks with a GPU each, and NCCL refuses two ranks on one GPU")
    step.note("their numerics are tested on CPU ranks (gloo): tests/training/test_context_parallel.py, "
              "tests/training/test_tensor_parallel.py; on >= 2 GPUs measure them with tools/bench/"
              "bench_train_overhead.py --device cuda --dtype bf16 --model-size 1B --ranks 8 --tp 2 (or --cp 2)")
    step.finish(NOT_POSSIBLE, "one GPU: context and tensor parallelism need at least two")


# ---------------------------------------------------------------------------------------- CPU reference losses


def step_quickstart_reference(args: argparse.Namespace) -> None:
    """Measure the quick start's loss curves on CPU and write QUICKSTART_REFERENCE (not part of the check):
    fp32 and bf16 parameters, each with the config's seed (42) and seeds 1-4."""
    root = Path(args.work) / "reference"
    curves = {}
    for seed in (42, 1, 2, 3, 4):
        for name, precision in (("fp32", "FP_32"), ("bf16", "BF_16")):
            run = f"{name}_seed_{seed}"
            overrides = {"settings.intervals.training_log_interval_in_steps": 1, "model_raw.config.seed": seed,
                         "fsdp_model.config.mixed_precision_settings.param_dtype": precision}
            cmd = modalities_cmd("train", QUICKSTART, "--experiments-root", root, "--experiment-id", run,
                                 *sets(overrides))
            print("$", " ".join(map(str, cmd)), flush=True)
            subprocess.run(cmd, check=True, env=subprocess_env(), cwd=REPO)
            curves[run] = losses_by_step(train_records(root / run / "results.jsonl"))
    QUICKSTART_REFERENCE.write_text(json.dumps(reference_document(curves), indent=1) + "\n")
    print(f"wrote {QUICKSTART_REFERENCE}")


def reference_document(curves: dict[str, dict[int, float]]) -> dict:
    """The reference file: the curves, what was measured from them, and the tolerances that follow."""
    import platform

    import torch

    seeds = sorted({int(name.rsplit("_", 1)[1]) for name in curves})
    fp32 = {s: curves[f"fp32_seed_{s}"] for s in seeds}
    bf16 = {s: curves[f"bf16_seed_{s}"] for s in seeds}
    last5 = [_last5(fp32[s]) for s in seeds]
    span = max(last5) - min(last5)
    measured = {
        "fp32 first step, largest difference of seeds 1-4 from seed 42":
            max(abs(fp32[s][1] - fp32[42][1]) for s in seeds),
        "fp32 last-5 mean per seed": dict(zip(map(str, seeds), last5)),
        "bf16 - fp32 first step, largest over seeds": max(abs(bf16[s][1] - fp32[s][1]) for s in seeds),
        "bf16 - fp32 steps before the first rise (up to 8), largest over seeds":
            max(abs(bf16[s][i] - fp32[s][i]) for s in seeds for i in steps_before_first_rise(fp32[s])),
        "bf16 - fp32 last-5 mean, largest over seeds": max(abs(_last5(bf16[s]) - _last5(fp32[s])) for s in seeds),
    }
    m = list(measured.values())
    return {
        "what": "configs/quickstart.yaml on CPU: train loss per step ('train loss last', log interval 1), "
                "parameters in fp32 and in bf16 (fsdp_model mixed_precision_settings.param_dtype), seeds 42 (the "
                "config's) and 1-4 (model_raw.config.seed)",
        "measured_on": {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                        "torch": torch.__version__,
                        "command": "python tools/gpu_check/steps.py quickstart-reference --work /tmp/qsref"},
        "measured": measured,
        "tolerance": {
            "cuda_fp32_first_step": round(2 * m[0], 4),
            "cuda_fp32_last_5_mean_range": [round(min(last5) - span, 3), round(max(last5) + span, 3)],
            "bf16_first_step": max(0.01, round(2 * m[2], 4)),
            "bf16_steps_1_8": max(0.05, round(2 * m[3], 4)),
            "bf16_last_5_mean": max(0.1, round(2 * m[4], 4)),
            "why": "The CUDA fp32 run draws its initial weights from the CUDA generator, not the CPU's: it is "
                   "another draw, like another seed. So its first-step loss may differ from the CPU run's by twice "
                   "the largest difference seeds 1-4 make, and its mean loss over the last 5 steps must lie in the "
                   "span of the 5 seeds' means widened by that span on each side (the quick start's learning rate "
                   "makes the loss spike at step 9 on some draws, which is where the seeds part; 5 draws do not "
                   "bound where a sixth lands). This catches a run that does not learn or learns from the future, "
                   "not subtle errors: those the bf16 comparison, from equal weights, is for. The CUDA "
                   "bf16 run starts from the same weights as the CUDA fp32 run: their difference is bf16's alone, "
                   "allowed twice the largest difference bf16 made on CPU over the 5 seeds, and at least 0.01 "
                   "(first step) / 0.05 (steps before the loss first rises, up to 8) / 0.1 (last-5 mean), because CUDA's bf16 kernels (cuBLAS, "
                   "flash attention) round differently from the CPU's.",
        },
        "curves": {name: {str(step): loss for step, loss in curve.items()} for name, curve in curves.items()},
    }


STEPS = {
    "install": step_install, "environment": step_environment, "quickstart": step_quickstart, "fsdp1": step_fsdp1,
    "mfu": step_mfu, "cp_tp": step_parallelism, "quickstart-reference": step_quickstart_reference,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=list(STEPS))
    parser.add_argument("--work", required=True, help="scratch folder: results/, logs/, experiments, data")
    parser.add_argument("--out", help="the report folder")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds this step may take")
    parser.add_argument("--model", choices=["dense", "moe"], default="dense", help="mfu: which model")
    parser.add_argument("--fallback", action="store_true", help="mfu: the run after a failed compiled run")
    parser.add_argument("--site", default="/tmp/gpu_check_site", help="install: the folder wheels go into")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    try:
        STEPS[args.step](args)
    except Exception as error:  # noqa: BLE001 - recorded (numbers kept), so the steps after this one still run
        if not isinstance(error, StepTimeout):
            traceback.print_exc()
        if Step.current is None:
            raise
        Step.current.finish(FAILED, f"{type(error).__name__}: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
