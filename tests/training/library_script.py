"""Trains tests/training/tiny.yaml through the library API (Main.run) under torchrun.

    library_script.py EXPERIMENTS_ROOT ID_PREFIX NUM_TARGET_STEPS [RESUME_FROM]

ID_PREFIX "-": no experiment id (the default, rank 0's timestamp for every rank); "=NAME": every rank passes NAME;
otherwise every rank passes its own id, ID_PREFIX-rank<r>, which the run must refuse.
"""

import os
import sys

import tests.training.standins_plugin  # noqa: F401  (registers the stand-in components)
from modalities import Main, load_app_config_dict
from modalities.training.distributed import exit_process
from tests.training.conftest import TINY

root, prefix, steps = sys.argv[1], sys.argv[2], sys.argv[3]
resume_from = sys.argv[4] if len(sys.argv) > 4 else None
config = load_app_config_dict(
    TINY,
    None if prefix == "-" else prefix[1:] if prefix.startswith("=") else f"{prefix}-rank{os.environ['RANK']}",
    overrides=[f"settings.training_target.num_target_steps={steps}"],
    experiments_root=root,
)
Main(config, experiments_root=root).run(resume_from=resume_from)
exit_process(0)  # as the modalities command ends: see exit_process for the gloo abort it avoids
