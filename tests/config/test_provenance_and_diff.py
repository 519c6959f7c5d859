"""What a run is, visible: `validate --print-resolved --provenance` (each value's origin) and `modalities diff`
(what differs between two resolved configs, or a config and a checkpoint's), and the graph's settings and
interpolation edges."""

from __future__ import annotations

from pathlib import Path

import yaml

from modalities.cli.main import main
from tests.config.conftest import provenance_comments

CONFIG = """settings:
  steps: 10
  model: {width: 8}
  paths: {root: /data}
loss:
  component_key: loss
  variant_key: clm_cross_entropy_loss
  config:
    target_key: targets
    prediction_key: ${settings.paths.root}/logits
other:
  component_key: number_conversion
  variant_key: num_samples_from_num_tokens
  config:
    num_tokens: ${settings.steps}
    sequence_length: 4
"""


def _write(tmp_path: Path, text: str = CONFIG, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _provenance(tmp_path, capsys, *flags) -> dict[str, str]:
    """dotted path of each printed value -> its comment."""
    path = _write(tmp_path)
    args = ["validate", str(path), "--print-resolved", "--provenance"]
    for flag in flags:
        args += ["--set", flag]
    assert main(args) == 0
    out = capsys.readouterr().out
    printed = out[out.index("settings:"):]
    comments = provenance_comments(printed)
    # The printed YAML, comments aside, is the resolved config.
    assert yaml.safe_load(printed)["other"]["config"]["num_tokens"] == (20 if flags else 10)
    return comments


def test_each_value_names_where_it_came_from(tmp_path, capsys):
    comments = _provenance(tmp_path, capsys)
    assert comments["settings.steps"] == "c.yaml:2".replace("c.yaml", str(tmp_path / "c.yaml"))
    assert comments["loss.config.target_key"] == f"{tmp_path / 'c.yaml'}:9"
    assert comments["other.config.num_tokens"] == f"${{settings.steps}} <- {tmp_path / 'c.yaml'}:2"
    assert comments["loss.config.prediction_key"] == f"${{settings.paths.root}} <- {tmp_path / 'c.yaml'}:4"
    # Fields the config classes fill in: clm_cross_entropy_loss's ignore_index and weight.
    assert comments["loss.config.ignore_index"] == "default"
    assert comments["loss.config.weight"] == "default"


def test_a_set_value_and_what_it_reaches(tmp_path, capsys):
    comments = _provenance(tmp_path, capsys, "settings.steps=20")
    assert comments["settings.steps"] == "<--set>"
    assert comments["other.config.num_tokens"] == "${settings.steps} <- <--set>"


def _diff(capsys, *args) -> tuple[int, list[str]]:
    code = main(["diff", *map(str, args)])
    return code, capsys.readouterr().out.splitlines()


def test_diff_of_a_set_flag_shows_every_value_it_reaches(tmp_path, capsys):
    path = _write(tmp_path)
    code, lines = _diff(capsys, path, path, "--set", "settings.steps=20")
    assert code == 1
    assert lines == [
        f"settings.steps: 10 ({path}:2) -> 20 (<--set>)",
        f"other.config.num_tokens: 10 (${{settings.steps}} <- {path}:2) -> 20 (${{settings.steps}} <- <--set>)",
    ]


def test_diff_of_two_files(tmp_path, capsys):
    old = _write(tmp_path, name="old.yaml")
    new = _write(tmp_path, CONFIG.replace("width: 8", "width: 16").replace("    sequence_length: 4\n", "")
                 + "extra:\n  component_key: loss\n  variant_key: clm_cross_entropy_loss\n"
                 "  config: {target_key: t, prediction_key: p}\n", name="new.yaml")
    code, lines = _diff(capsys, old, new)
    assert code == 1
    assert f"settings.model.width: 8 ({old}:3) -> 16 ({new}:3)" in lines
    assert f"- other.config.sequence_length: 4 ({old}:16)" in lines
    assert any(line.startswith("+ extra: {") and line.endswith(f"({new}:16)") for line in lines), lines
    assert len(lines) == 3


def test_equal_configs_and_an_unreadable_side(tmp_path, capsys):
    path = _write(tmp_path)
    code, lines = _diff(capsys, path, path)
    assert code == 0 and lines == [f"{path} and {path} resolve to the same config"]
    broken = _write(tmp_path, "a: [\n", name="broken.yaml")
    assert main(["diff", str(path), str(broken)]) == 2
    assert "invalid YAML" in capsys.readouterr().err


def test_diff_against_a_checkpoint_of_the_run(tmp_path, capsys):
    from tests.training.conftest import TINY, train_in_process

    assert train_in_process(tmp_path, "run", "--set", "settings.training_target.num_target_steps=3") == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "step_3"
    capsys.readouterr()
    # The saved config is the resolved config of that run: against its own file with the same --set, only
    # where the files are differs (hidden by default).
    code, lines = _diff(capsys, checkpoint, TINY, "--set", "settings.training_target.num_target_steps=3",
                        "--experiments-root", tmp_path)
    assert (code, lines) == (0, [f"{checkpoint} and {TINY} resolve to the same config"])
    code, lines = _diff(capsys, checkpoint, TINY, "--experiments-root", tmp_path)
    assert code == 1 and any(line.startswith("settings.training_target.num_target_steps: 3 (") for line in lines)


def test_the_graph_draws_settings_references_and_interpolations(tmp_path, capsys):
    from tests.training.conftest import REPO

    assert main(["graph", str(REPO / "configs" / "quickstart.yaml"), "-o", "-"]) == 0
    dot = capsys.readouterr().out
    # step_profile.dp_degree is a reference made in settings: an edge from a settings node to dp_degree.
    ids = {label.split("</b>")[0].split("<b>")[-1]: node for node, label in
           (line.strip().split(" [label=", 1) for line in dot.splitlines() if "[label=<<b>" in line)}
    assert f'{ids["settings"]} -> {ids["dp_degree"]} [label="step_profile.dp_degree", style=dashed' in dot
    # mfu_calculator reads model_raw's n_layer and n_embd through ${...}: a dotted edge between the two
    # components, labelled with the fields, the expressions in its tooltip (--all-edges: in the label).
    edge = f'{ids["mfu_calculator"]} -> {ids["model_raw"]} [label="n_layer\\nn_embd", style=dotted'
    assert edge in dot
    assert 'quickstart.yaml:324\\nconfig.n_layer = ${model_raw.config.n_layer}\\n' in dot
    assert main(["graph", str(REPO / "configs" / "quickstart.yaml"), "-o", "-", "--all-edges"]) == 0
    assert (f'{ids["mfu_calculator"]} -> {ids["model_raw"]} [label="config.n_layer = ${{model_raw.config.n_layer}}'
            in capsys.readouterr().out)
