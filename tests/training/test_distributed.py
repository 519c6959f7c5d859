"""FSDP2 across processes: 2 ranks agree with 1 process on the same global batch; two torchrun "nodes" on
loopback train together."""

import json
import subprocess

import pytest

from tests.tolerances import approx_float32
from tests.training.conftest import (
    PLUGIN,
    REPO,
    TINY,
    free_port,
    read_results,
    run_in_process,
    subprocess_env,
    torchrun_cmd,
)

pytestmark = pytest.mark.slow  # multi-process runs: scheduled first (tests/conftest.py)


def _args(tmp_path, experiment_id, *extra):
    return ["train", str(TINY), "--plugin", PLUGIN, "--experiments-root", str(tmp_path), "--experiment-id",
            experiment_id, "--set", "settings.training_target.num_target_steps=4", *extra]


def test_two_ranks_match_one_process_on_the_same_global_batch(tmp_path, run_torchrun):
    two = run_torchrun(2, *_args(tmp_path, "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_in_process(1, *_args(tmp_path, "one", "--set", "settings.step_profile.local_train_micro_batch_size=8"))
    assert one.returncode == 0, one.stderr[-3000:]
    losses_two, losses_one = read_results(tmp_path / "two"), read_results(tmp_path / "one")
    assert sorted(losses_two) == [1, 2, 3, 4]
    for step in losses_one:
        assert losses_two[step] == approx_float32(losses_one[step]), (step, losses_two, losses_one)
    # both ranks wrote their shard and their data/RNG state into one checkpoint
    step_3 = tmp_path / "two" / "checkpoints" / "step_3"
    assert (step_3 / "rank_0.pt").is_file() and (step_3 / "rank_1.pt").is_file()
    # what was seen counts every rank: by hand, a step is 2 micro-batches x 8 samples (4 per rank x 2 ranks, or
    # 8 on one) x 16 tokens = 16 samples and 256 tokens
    for run in ("two", "one"):
        records = [json.loads(line) for line in (tmp_path / run / "results.jsonl").read_text().splitlines()]
        consumed = {r["num_train_steps_done"]: r["metrics"]["consumed tokens"] for r in records
                    if r.get("dataloader_tag") == "train"}
        assert consumed == {1: 256, 2: 512, 3: 768, 4: 1024}, run
        progress = json.loads((tmp_path / run / "checkpoints" / "step_3" / "training_progress.json").read_text())
        assert (progress["num_seen_samples"], progress["global_num_seen_tokens"]) == (48, 768), run
        assert progress["train_batches_consumed"] == 6, run  # micro-batches per rank


def test_two_nodes_on_loopback_train_together(tmp_path):
    port = free_port()
    env = subprocess_env(MODALITIES_EXPERIMENT_ID="nodes")
    args = _args(tmp_path, "nodes")
    procs = [
        subprocess.Popen(torchrun_cmd(1, *args, nnodes=2, port=port) + [], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    losses = read_results(tmp_path / "nodes")
    assert sorted(losses) == [1, 2, 3, 4]
    assert (tmp_path / "nodes" / "checkpoints" / "step_3" / "rank_1.pt").is_file()


def test_config_errors_are_reported_once_not_per_rank(tmp_path, run_torchrun):
    broken = tmp_path / "broken.yaml"
    broken.write_text(TINY.read_text().replace("variant_key: raw", "variant_key: rw", 1))
    result = run_torchrun(2, "train", str(broken), "--plugin", PLUGIN, "--experiments-root", str(tmp_path))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert output.count("unknown variant_key 'rw'") == 1, output[-3000:]
    assert not (tmp_path / "broken").exists()
