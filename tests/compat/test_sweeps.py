"""The reference's sweep tools: `modalities benchmark prepare_sweep_configs` writes the reference's folders and
files (hashes and texts from its SweepGenerator), `list_remaining_runs` finds the runs not done, and a failed run
leaves the error log that it reads."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from modalities.cli.main import main
from tests.compat.helpers import REFERENCE_CONFIGS, expected

SCALING_UP = REFERENCE_CONFIGS / "tutorials" / "scaling_up" / "configs"
QUICKSTART = Path(__file__).parents[2] / "configs" / "quickstart.yaml"


@pytest.mark.parametrize("name", ["sweep_config.yaml", "sweep_8B_fsdp2.yaml"])
def test_prepared_configs_are_the_references(tmp_path, name):
    want = expected("sweeps.json")[name]
    assert main(["benchmark", "prepare_sweep_configs", "--sweep_config_path", str(SCALING_UP / name),
                 "--output_dir", str(tmp_path), "--world_sizes", "1,2"]) == 0
    (root,) = tmp_path.iterdir()
    assert root.name.endswith("_" + want["sweep_hash"])
    files = sorted(root.rglob(name))
    assert sorted(f"{f.parent.parent.name}/{f.parent.name.split('_')[0]}" for f in files) == want["configs"]
    for f in files:
        assert hashlib.md5(f.read_bytes()).hexdigest() == want["text_md5"][f.parent.name.split("_")[0]], f
    assert not list(root.rglob("*.tmp"))


def test_combinations_of_nested_blocks(tmp_path):
    template = tmp_path / "t.yaml"
    template.write_text("sweep:\n  lr: [0.1, 0.2]\n  model: {n_layer: [1, 2, 3], n_head: 4}\nother: ${sweep.lr}\n")
    assert main(["benchmark", "prepare_sweep_configs", "--sweep_config_path", str(template),
                 "--output_dir", str(tmp_path / "out"), "--world_sizes", "4"]) == 0
    import yaml

    written = [yaml.safe_load(p.read_text()) for p in (tmp_path / "out").rglob("t.yaml")]
    assert sorted((c["sweep"]["lr"], c["sweep"]["model"]["n_layer"]) for c in written) == [
        (0.1, 1), (0.1, 2), (0.1, 3), (0.2, 1), (0.2, 2), (0.2, 3)
    ]
    assert all(c["sweep"]["model"]["n_head"] == 4 and c["other"] == "${sweep.lr}" for c in written)
    assert {p.parent.parent.name for p in (tmp_path / "out").rglob("t.yaml")} == {"4"}


def test_a_template_without_sweep_block_and_bad_world_sizes(tmp_path, capsys):
    template = tmp_path / "t.yaml"
    template.write_text("settings: {a: 1}\n")
    args = ["benchmark", "prepare_sweep_configs", "--sweep_config_path", str(template), "--output_dir", str(tmp_path)]
    assert main(args) == 1
    assert "has no top-level `sweep` block" in capsys.readouterr().err
    assert main([*args, "--world_sizes", "2, 4x"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err


def test_validating_a_template_warns_at_its_sweep_block(capsys):
    main(["validate", str(SCALING_UP / "sweep_config.yaml")])
    err = capsys.readouterr().err
    assert "sweep_config.yaml:1:1" in err and "this file is a sweep template" in err
    assert "modalities benchmark prepare_sweep_configs" in err


def _run_folder(root: Path, world_size: int, combination: str, stamp: str) -> Path:
    folder = root / str(world_size) / f"{combination}_{stamp}"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("sweep: {}\n")
    return folder


def _remaining(tmp_path, root, *extra) -> list[str]:
    listing = tmp_path / "remaining.txt"
    assert main(["benchmark", "list_remaining_runs", "--exp_root", str(root), "--file_list_path", str(listing),
                 "--expected_steps", "3", *extra]) == 0
    return sorted(str(Path(line).relative_to(root.resolve())) for line in listing.read_text().splitlines())


def test_remaining_runs(tmp_path):
    root = tmp_path / "sweep"
    done = _run_folder(root, 2, "aaaa", "2026-01-01__00-00-00")
    (done / "evaluation_results.jsonl").write_text("{}\n{}\n{}\n")
    partial = _run_folder(root, 2, "bbbb", "2026-01-01__00-00-00")
    (partial / "evaluation_results.jsonl").write_text("{}\n{}\n")  # stopped after 2 of 3 steps
    oom = _run_folder(root, 2, "cccc", "2026-01-01__00-00-00")
    (oom / "error_logs_host_0.log").write_text(json.dumps({"error": {"type": "OutOfMemoryError"}}))
    old = _run_folder(root, 4, "dddd", "2026-01-01__00-00-00")
    (old / "evaluation_results.jsonl").write_text("{}\n{}\n{}\n")
    _run_folder(root, 4, "dddd", "2026-02-01__00-00-00")  # a newer rerun of the same combination, not done

    assert _remaining(tmp_path, root) == [
        "2/bbbb_2026-01-01__00-00-00/config.yaml",
        "2/cccc_2026-01-01__00-00-00/config.yaml",
        "4/dddd_2026-02-01__00-00-00/config.yaml",
    ]
    assert _remaining(tmp_path, root, "--skip_exception_types", "OutOfMemoryError,ValueError") == [
        "2/bbbb_2026-01-01__00-00-00/config.yaml",
        "4/dddd_2026-02-01__00-00-00/config.yaml",
    ]
    assert _remaining(tmp_path, root, "--world_size", "4") == ["4/dddd_2026-02-01__00-00-00/config.yaml"]

    moved = _remaining(tmp_path, root, "--world_size", "2", "--create_new_folders_if_partially_done")
    assert [path.split("/")[1].split("_")[0] for path in moved] == ["bbbb", "cccc"]
    assert all(not path.split("/")[1].endswith("_2026-01-01__00-00-00") for path in moved)  # fresh folders
    for path in moved:
        assert (root / path).read_text() == "sweep: {}\n"
    # The copies are now the newest of their combinations: the listing names them, not the old folders.
    assert _remaining(tmp_path, root, "--world_size", "2") == moved


def test_none_run_yet_lists_every_config_without_copies(tmp_path):
    root = tmp_path / "sweep"
    _run_folder(root, 2, "aaaa", "2026-01-01__00-00-00")
    _run_folder(root, 2, "bbbb", "2026-01-01__00-00-00")
    assert len(_remaining(tmp_path, root, "--create_new_folders_if_partially_done")) == 2
    assert len(list(root.rglob("config.yaml"))) == 2


def test_a_folder_not_written_by_prepare_is_named(tmp_path, capsys):
    root = tmp_path / "sweep"
    (root / "2" / "not-a-run").mkdir(parents=True)
    (root / "2" / "not-a-run" / "config.yaml").write_text("a: 1\n")
    assert main(["benchmark", "list_remaining_runs", "--exp_root", str(root), "--file_list_path",
                 str(tmp_path / "l.txt"), "--expected_steps", "3"]) == 1
    err = capsys.readouterr().err
    assert "not-a-run" in err and "<hash>_YYYY-MM-DD__HH-MM-SS" in err


def test_a_failed_run_writes_the_error_log_list_remaining_runs_reads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setenv("RANK", "0")  # only rank 0 prints a config report
    run = _run_folder(tmp_path / "sweep", 2, "aaaa", "2026-01-01__00-00-00")
    code = main(["run", "--config_file_path", str(QUICKSTART), "--experiments_root_path", str(tmp_path),
                 "--error_log_folder", str(run), "--set", "loss_fn.variant_key=clm_cross_entropy_los"])
    assert code == 1
    assert "clm_cross_entropy_los" in capsys.readouterr().err
    (log,) = run.glob("error_logs_*_3.log")
    record = json.loads(log.read_text())
    assert record["error"]["type"] == "ConfigError" and "clm_cross_entropy_los" in record["error"]["error"]
    assert record["environment"]["local_rank"] == 3 and record["environment"]["hostname"] == os.uname().nodename
    assert record["error"]["stacktrace"]
    assert _remaining(tmp_path, tmp_path / "sweep") == ["2/aaaa_2026-01-01__00-00-00/config.yaml"]
    assert _remaining(tmp_path, tmp_path / "sweep", "--skip_exception_types", "ConfigError") == []
