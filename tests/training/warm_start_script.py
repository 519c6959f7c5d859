"""Several trainings of tests/training/tiny.yaml in one torchrun launch (one process group, kept between them),
for tests/training/test_warm_start_schedule.py:

    warm_start_script.py EXPERIMENTS_ROOT

For each schedule kind: a first run of 6 steps (checkpoints at 3 and 6), then warm starts through app_state/dcp
from its step-3 checkpoint with the target raised to 9 and lowered to 5; and one warm start that cannot be
honoured (a OneCycleLR of a fixed 6 steps asked for 9), whose errors are written to EXPERIMENTS_ROOT/refused.json.
"""

import json
import sys
from pathlib import Path

import torch.distributed as dist

import modalities.training.distributed as distributed
import tests.training.standins_plugin  # noqa: F401  (registers the stand-in components)
from modalities import Main, load_app_config_dict
from modalities.config.diagnostics import ConfigError
from tests.training.conftest import TINY

_OPTIMIZER = "optimizer: {instance_key: optimizer, pass_type: BY_REFERENCE}"
SCHEDULERS = {
    "onecycle": f"{{component_key: scheduler, variant_key: onecycle_lr, config: {{{_OPTIMIZER}, max_lr: 0.02, "
                "total_steps: '${settings.training_target.num_target_steps}'}}",
    "cosine": f"{{component_key: scheduler, variant_key: cosine_annealing_lr, config: {{{_OPTIMIZER}, eta_min: 0.001, "
              "t_max: '${settings.training_target.num_target_steps}'}}",
    "linear_warmup_cosine": f"{{component_key: scheduler, variant_key: linear_warmup_cosine_annealing_lr, config: "
                            f"{{{_OPTIMIZER}, warmup_steps: 2, initial_lr: 0.001, final_lr: 0.0005, "
                            "total_steps: '${settings.training_target.num_target_steps}'}}",
    "onecycle_fixed_6": f"{{component_key: scheduler, variant_key: onecycle_lr, config: {{{_OPTIMIZER}, max_lr: 0.02, "
                        "total_steps: 6}}",
}
RAW = ("{component_key: app_state, variant_key: raw, config: {model: {instance_key: model, pass_type: BY_REFERENCE}, "
       "optimizer: {instance_key: optimizer, pass_type: BY_REFERENCE}, lr_scheduler: {instance_key: lr_scheduler, "
       "pass_type: BY_REFERENCE}}}")


def train(root: Path, experiment_id: str, overrides: list[str]) -> None:
    config = load_app_config_dict(TINY, experiment_id, overrides=overrides, experiments_root=root)
    Main(config, experiments_root=root, experiment_id=experiment_id).run()


def warm_start(checkpoint: Path, kind: str, target: int) -> list[str]:
    return [f"lr_scheduler={SCHEDULERS[kind]}", f"app_state_raw={RAW}",
            f"app_state={{component_key: app_state, variant_key: dcp, config: {{raw_app_state: {{instance_key: "
            f"app_state_raw, pass_type: BY_REFERENCE}}, checkpoint_dir_path: {checkpoint}}}}}",
            "settings.training_progress.num_seen_steps=3", "settings.training_progress.last_step=2",
            f"settings.training_target.num_target_steps={target}"]


def main(root: Path) -> None:
    for kind in ("onecycle", "cosine", "linear_warmup_cosine"):
        train(root, f"{kind}-first", [f"lr_scheduler={SCHEDULERS[kind]}", "settings.training_target.num_target_steps=6"])
        checkpoint = root / f"{kind}-first" / "checkpoints" / "step_3"
        for target in (9, 5):
            train(root, f"{kind}-to-{target}", warm_start(checkpoint, kind, target))
    try:
        train(root, "refused", warm_start(root / "onecycle-first" / "checkpoints" / "step_3", "onecycle_fixed_6", 9))
        refused = []
    except ConfigError as e:
        refused = [{"path": ".".join(map(str, d.path)), "message": d.message} for d in e.errors]
    if dist.get_rank() == 0:
        (root / "refused.json").write_text(json.dumps(refused))


if __name__ == "__main__":
    distributed.destroy_process_group = lambda: None  # one process group for every run of this launch
    main(Path(sys.argv[1]))
    dist.barrier()
    distributed.exit_process(0)  # as the modalities command ends: see exit_process for the gloo abort it avoids
