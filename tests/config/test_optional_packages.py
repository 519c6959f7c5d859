"""A component that needs an optional package (wandb, tensorboard) is reported by validate, at its variant_key,
with the install command, when the package is missing: not as an ImportError while building."""

import importlib.util

from modalities.config.compiler import compile_file
from modalities.registry import default_registry

CONFIG = """\
settings: {{x: 1}}
logger:
  component_key: results_subscriber
  variant_key: {variant}
  config: {config}
"""


def _compile(write_config, monkeypatch, variant: str, config: str, missing: str):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    return compile_file(write_config(CONFIG.format(variant=variant, config=config)), default_registry())


def test_missing_wandb_is_an_error_at_the_variant_with_the_extra_to_install(write_config, monkeypatch):
    compiled = _compile(write_config, monkeypatch, "wandb", "{global_rank: 0, project: p, experiment_id: e}", "wandb")
    (error,) = [d for d in compiled.diagnostics if d.code == "missing-package"]
    assert error.message == "results_subscriber/wandb needs the Python package 'wandb', which is not installed here"
    assert error.hint.startswith("pip install 'modalities[wandb]'")
    assert (error.span.line, error.span.col) == (4, 16)  # the variant_key's value (1-based)


def test_missing_tensorboard_is_reported_and_other_errors_still_are(write_config, monkeypatch):
    compiled = _compile(write_config, monkeypatch, "tensorboard", "{flush_secs: 0}", "tensorboard")
    codes = sorted(d.code for d in compiled.diagnostics)
    assert "missing-package" in codes
    assert any("flush_secs" in ".".join(map(str, d.path)) for d in compiled.diagnostics if d.code != "missing-package")
    hints = [d.hint for d in compiled.diagnostics if d.code == "missing-package"]
    assert hints and hints[0].startswith("pip install 'modalities[tensorboard]'")


def test_installed_packages_give_no_error(write_config, monkeypatch):
    compiled = _compile(write_config, monkeypatch, "tensorboard", "{}", "a_package_nobody_asked_for")
    assert [d for d in compiled.diagnostics if d.severity == "error"] == []
