import json
import re

import yaml

from .conftest import run_cli

GOOD = """
settings:
  seq: 4
steps:
  component_key: number_conversion
  variant_key: num_samples_from_num_tokens
  config: {num_tokens: 100, sequence_length: "${settings.seq}"}
"""

FIVE_MISTAKES = """
a:
  component_key: number_conversion
  variant_key: num_samples_from_num_token
b:
  component_key: number_conversion
  variant_key: num_samples_from_num_tokens
  config: {num_tokens: 1.5, sequence_lenght: 2}
c:
  component_key: number_conversion
  variant_key: num_tokens_from_num_steps
  config:
    num_steps: {instance_key: bb, pass_type: BY_REFERENCE}
    dp_degree: ${settings.dp}
    local_micro_batch_size: 1
    sequence_length: 1
    gradient_accumulation_steps: 1
settings: {}
"""


def test_validate_ok_prints_summary_and_build_order(write_config):
    result = run_cli("validate", str(write_config(GOOD)))
    assert result.returncode == 0, result.stderr
    assert "ok (as components" in result.stdout and "1 components (1 top-level)" in result.stdout
    assert "build order: steps" in result.stdout


def test_validate_reports_every_error_with_position_and_caret(write_config):
    path = write_config(FIVE_MISTAKES)
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    err = result.stderr
    for where in (":4:16: error: a.variant_key", ":8:24: error: b.config.num_tokens", ":8:29: error: b.config.sequence_lenght",
                  ":13:31: error: c.config.num_steps.instance_key", ":14:16: error: c.config.dp_degree"):
        assert f"{path}{where}" in err, err
    assert "^~~" in err and "did you mean 'sequence_length'" in err
    assert "5 errors" in err


def test_validate_json_format(write_config):
    path = write_config(FIVE_MISTAKES)
    result = run_cli("validate", "--format", "json", str(path))
    assert result.returncode == 1
    items = json.loads(result.stdout)
    errors = [i for i in items if i["severity"] == "error"]
    assert len(errors) == 5
    assert {"file", "line", "column", "path", "message", "hint", "code"} <= set(errors[0])
    assert errors[0]["file"] == str(path)


def test_validate_set_and_print_resolved(write_config):
    path = write_config(GOOD)
    result = run_cli("validate", str(path), "--set", "settings.seq=5", "--print-resolved")
    assert result.returncode == 0, result.stderr
    # stdout is the resolved YAML and nothing else (it can be piped into a file); the report goes to stderr
    assert yaml.safe_load(result.stdout) == {
        "settings": {"seq": 5},
        "steps": {"component_key": "number_conversion", "variant_key": "num_samples_from_num_tokens",
                  "config": {"num_tokens": 100, "sequence_length": 5}},
    }
    assert list(yaml.safe_load(result.stdout)) == ["settings", "steps"]  # the file's order
    assert "ok (as components" in result.stderr
    bad = run_cli("validate", str(path), "--set", "steps.config.sequence_length=[1]")
    assert bad.returncode == 1 and "<--set>" in bad.stderr


def test_validate_bad_file_and_bad_yaml(write_config, tmp_path):
    missing = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "not found" in missing.stderr and "Traceback" not in missing.stderr
    broken = run_cli("validate", str(write_config("a: [1,\n")))
    assert broken.returncode == 1 and "invalid YAML" in broken.stderr and "Traceback" not in broken.stderr


def test_components_table_and_detail():
    listing = run_cli("components")
    assert listing.returncode == 0 and "num_steps_from_num_tokens" in listing.stdout
    detail = run_cli("components", "number_conversion/num_steps_from_num_tokens")
    assert detail.returncode == 0
    # the types as the docs write them (constraints included)
    for text in ("dp_degree", "gradient_accumulation_steps", "required", "int (> 0)", "Tokens per sample"):
        assert text in detail.stdout
    unknown = run_cli("components", "number_conversion/num_steps_from_num_tokns")
    assert unknown.returncode == 1 and "did you mean" in unknown.stderr


def test_module_entry_and_help():
    result = run_cli("--help")
    assert result.returncode == 0 and "validate" in result.stdout and "components" in result.stdout


def test_validate_quiet_prints_only_errors(write_config):
    ok = run_cli("validate", "-q", str(write_config(GOOD)))
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    path = write_config(FIVE_MISTAKES)
    bad = run_cli("validate", "--quiet", str(path))
    assert bad.returncode == 1 and bad.stdout == ""
    assert f"{path}:4:16: error: a.variant_key" in bad.stderr and "5 errors" in bad.stderr


def test_version():
    from modalities import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"modalities {__version__}"


def test_components_wraps_long_names_instead_of_cutting_them():
    result = run_cli("components", "model/gpt2", env={"COLUMNS": "60"})
    assert result.returncode == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= 60
    assert "…" not in result.stdout
    for name in ("enforce_swiglu_hidden_dim_multiple_of", "attention_implementation", "use_weight_tying"):
        assert re.search(rf"^{name}  ", result.stdout, re.M)  # narrow: one field a line, the name whole
    wide = run_cli("components", "model/gpt2", env={"COLUMNS": "200"})
    assert re.search(r"^│ enforce_swiglu_hidden_dim_multiple_of +│ int \(> 0\)", wide.stdout, re.M)
    for columns in ("60", "80", "200"):
        listing = run_cli("components", env={"COLUMNS": columns})
        assert max(len(line) for line in listing.stdout.splitlines()) <= int(columns)
        assert "number_conversion/num_steps_from_num_tokens" in listing.stdout and "…" not in listing.stdout
    wandb = run_cli("components", "results_subscriber/wandb")
    assert "pip install 'modalities[wandb]'" in wandb.stdout
