"""Seeing a run: the start banner and end summary, timestamps in results.jsonl, TensorBoard event files (read
back with tensorboard's own reader), W&B with the resolved config, and `modalities plot` from a real run."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from modalities.logging.broker import Message, MessageType, RunInfo
from modalities.logging.formatting import human
from modalities.training.report import count_parameters, format_banner
from tests.training.conftest import TINY, train_in_process

TENSORBOARD = "evaluation_subscriber={component_key: results_subscriber, variant_key: tensorboard, config: {}}"
# tiny.yaml's model: wte 32x16, two 16x16 linears with bias, head 16x32 with bias
TINY_PARAMETERS = 32 * 16 + 2 * (16 * 16 + 16) + (16 * 32 + 32)


def _info(**changes) -> RunInfo:
    values = dict(
        experiment_id="e1", experiment_folder=Path("experiments/e1"), config={"settings": {"x": 1}},
        config_text="settings:\n  x: 1\n", world_size=4, device="cuda", mesh="dp_replicate=2 x dp_shard=2",
        num_parameters=124_439_808, num_parameters_per_rank=(31_109_952, 31_109_952), samples_per_step=64,
        tokens_per_step=65_536, sequence_length=1024, micro_batch_size=8, gradient_accumulation_steps=2,
        dp_degree=4, num_seen_steps=0, num_seen_tokens=0, num_target_steps=1000, num_target_tokens=65_536_000,
        dataset_samples=16_000, resumed_from=None,
    )
    values.update(changes)
    return RunInfo(**values)


def test_banner_states_size_step_target_and_epochs():
    banner = format_banner(_info())
    assert "experiments/e1/" in banner
    assert "4 on cuda, mesh dp_replicate=2 x dp_shard=2" in banner
    assert "124.4M parameters (124,439,808); 31.1M on each rank" in banner
    # 8 per micro-batch x 2 accumulated x 4 data-parallel = 64 samples of 1024 tokens
    assert "65,536 tokens = 64 samples x 1,024 tokens (micro-batch 8 x 2 accumulated x 4 data-parallel)" in banner
    assert "1,000 steps, 65,536,000 tokens" in banner
    assert "16,000 samples of 1,024 tokens: the target is 4 epochs" in banner  # 1000 x 64 / 16000
    assert "from the beginning (step 0)" in banner

    resumed = format_banner(_info(num_seen_steps=500, num_seen_tokens=32_768_000, resumed_from="ck/step_500",
                                  num_parameters_per_rank=(31_000_000, 31_200_000), dataset_samples=None))
    assert "resuming after step 500 (32,768,000 tokens) from ck/step_500" in resumed
    assert "31M to 31.2M per rank" in resumed
    assert "epoch" not in resumed  # no dataset size known: no epochs claimed


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0"), (999, "999"), (1000, "1K"), (1234, "1.23K"), (675_328, "675.3K"), (1_600_000, "1.6M"), (7e9, "7B")],
)
def test_human_counts(count, text):
    assert human(count) == text


def test_tied_weights_count_once():
    import torch

    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10, bias=False))
    model[1].weight = model[0].weight
    assert count_parameters(model) == (40, 40)


def test_a_run_tells_where_it_writes_and_how_it_ended(tmp_path, capsys):
    config = tmp_path / "configs" / "tiny.yaml"
    config.parent.mkdir()
    config.write_text("# yaml-language-server: $schema=../schemas/modalities.schema.json\n" + TINY.read_text())
    assert train_in_process(tmp_path, "obs", "--set", TENSORBOARD, config=config) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "obs"
    assert f"{folder}/ (config.yaml, results.jsonl)" in out
    assert f"{TINY_PARAMETERS:,} parameters" not in out  # shown as a human count and exactly:
    assert f"({TINY_PARAMETERS:,})" in out
    # 4 samples x 2 accumulated x 1 rank = 8 samples of 16 tokens per step; 6 steps
    assert "128 tokens = 8 samples x 16 tokens" in out
    assert "6 steps, 768 tokens" in out
    assert "256 samples of 16 tokens: the target is 0.188 epochs" in out  # 6 x 8 / 256
    assert re.search(r"finished +6 steps, 768 tokens, in \d", out)
    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    step_6 = next(r for r in records if r.get("dataloader_tag") == "train" and r["num_train_steps_done"] == 6)
    assert f"train {step_6['losses']['train loss avg']:.4f} (step 6" in out  # the log interval's mean
    assert str(folder / "checkpoints" / "step_6") in out
    assert out.index("modalities train\n") < out.index("modalities train: done")

    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    elapsed = [r["elapsed_s"] for r in records]
    assert len(records) == 6 + 2 and elapsed == sorted(elapsed) and elapsed[0] >= 0  # 6 train + 2 eval results
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r["time"]) for r in records)

    # The saved config keeps the editor modeline (its schema path made absolute, as the copy lives elsewhere)
    # and the file's key order (settings first, then the components as written).
    saved = (folder / "config.yaml").read_text()
    schema = (tmp_path / "schemas" / "modalities.schema.json").resolve()
    assert saved.splitlines()[0] == f"# yaml-language-server: $schema={schema}"
    assert (folder / "checkpoints" / "step_6" / "config.yaml").read_text() == saved
    top_keys = re.findall(r"^([a-z_]+):", saved, re.M)
    assert top_keys[:4] == ["settings", "device_mesh", "model_raw", "model"]


def _scalars(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], list[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    scalars = {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}
    texts = []
    for tag in accumulator.Tags()["tensors"]:
        for event in accumulator.Tensors(tag):
            texts += [v.decode() for v in event.tensor_proto.string_val]
    return scalars, texts


def test_tensorboard_events_hold_the_results_and_the_config(tmp_path):
    assert train_in_process(tmp_path, "tb", "--set", TENSORBOARD) == 0
    folder = tmp_path / "tb"
    scalars, texts = _scalars(folder / "tensorboard")
    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    train = [r for r in records if r["dataloader_tag"] == "train"]
    for name, group in (("train loss avg", "losses"), ("lr mean", "metrics"), ("grad norm avg", "metrics"),
                        ("tokens/s", "throughput_metrics")):
        expected = [(r["num_train_steps_done"], r[group][name]) for r in train]
        got = scalars[f"train/{name}"]
        assert [step for step, _ in got] == [step for step, _ in expected] == [1, 2, 3, 4, 5, 6]
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6)  # events store float32
    assert [step for step, _ in scalars["test/loss avg"]] == [3, 6]
    assert "train/mfu" not in scalars  # None on CPU: left out, not logged as 0
    assert any("experiment_id: tb" in text and text.startswith("```yaml") for text in texts)


def test_a_resumed_run_replaces_the_steps_after_its_checkpoint_in_tensorboard(tmp_path):
    assert train_in_process(tmp_path, "tbr", "--set", TENSORBOARD) == 0
    first, _ = _scalars(tmp_path / "tbr" / "tensorboard")
    checkpoint = tmp_path / "tbr" / "checkpoints" / "step_3"
    assert train_in_process(tmp_path, "tbr", "--set", TENSORBOARD, "--resume", str(checkpoint)) == 0
    again, _ = _scalars(tmp_path / "tbr" / "tensorboard")
    steps = [step for step, _ in again["train/train loss avg"]]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 4-6 of the first attempt purged, not shown twice
    # resume is exact: the second attempt's steps 4-6 have the first attempt's losses
    assert again["train/train loss avg"] == first["train/train loss avg"]


def test_wandb_gets_the_resolved_config_and_writes_into_the_experiment_folder(tmp_path, monkeypatch):
    from modalities.batch import EvaluationResultBatch
    from modalities.logging.subscribers import WandBResultSubscriber

    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    folder = tmp_path / "experiments" / "wb-1"
    config = {"settings": {"distinctive_setting_name": 0.125}, "model": {"variant_key": "gpt2"}}
    subscriber = WandBResultSubscriber(global_rank=0, project="p", experiment_id="wb-1", mode="OFFLINE")
    subscriber.consume_message(Message(MessageType.RUN_START, _info(experiment_folder=folder, config=config)))
    assert subscriber.run.config.as_dict()["settings"] == {"distinctive_setting_name": 0.125}
    subscriber.consume_message(
        Message(MessageType.RESULT, EvaluationResultBatch(dataloader_tag="train", num_train_steps_done=1,
                                                          losses={"train loss avg": 2.5}))
    )
    subscriber.close()
    (run_file,) = (folder / "wandb").glob("offline-run-*-wb-1/run-wb-1.wandb")
    # W&B's service process may still be flushing the record after finish(); wait for it, generously.
    deadline = time.monotonic() + 120
    while b"distinctive_setting_name" not in run_file.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b"distinctive_setting_name" in run_file.read_bytes()  # the config went into the run's record
    assert not (tmp_path / "wandb_storage").exists()


def test_plot_draws_the_runs_results(tmp_path):
    from modalities.logging.curves import read_results as read_curves
    from modalities.logging.plot import draw_runs, plot_runs

    assert train_in_process(tmp_path, "p1") == 0
    assert train_in_process(tmp_path, "p2", "--set", "optimizer.config.lr=0.001") == 0
    runs = [read_curves(tmp_path / "p1"), read_curves(tmp_path / "p2")]

    # What the loss panel must show, read here straight from the file.
    expected = {}
    for name in ("p1", "p2"):
        records = [json.loads(line) for line in (tmp_path / name / "results.jsonl").read_text().splitlines()]
        expected[name] = (
            [(r["num_train_steps_done"], r["losses"]["train loss avg"]) for r in records if r["dataloader_tag"] == "train"],
            [(r["num_train_steps_done"], r["losses"]["loss avg"]) for r in records if r["dataloader_tag"] == "test"],
        )
    fig = draw_runs(runs)
    loss_ax = fig.axes[0]
    lines = {line.get_label(): [float(v) for point in line.get_xydata() for v in point] for line in loss_ax.lines}
    flat = {name: [[float(v) for point in series for v in point] for series in pair] for name, pair in expected.items()}
    assert lines == {
        "p1: train": flat["p1"][0], "p1: test (eval)": flat["p1"][1],
        "p2: train": flat["p2"][0], "p2: test (eval)": flat["p2"][1],
    }
    assert loss_ax.get_yscale() == "linear"  # the tiny runs' losses stay within a factor of two
    assert {ax.get_title() for ax in fig.axes} >= {"loss", "learning rate", "throughput", "gradient norm"}
    lr_ax = next(ax for ax in fig.axes if ax.get_title() == "learning rate")
    assert lr_ax.lines[0].get_ydata()[0] == pytest.approx(0.01) and lr_ax.lines[1].get_ydata()[0] == pytest.approx(0.001)
    assert "optimizer steps" in [ax.get_xlabel() for ax in fig.axes]
    top = [child for child in loss_ax.get_children() if type(child).__name__ == "SecondaryAxis"]
    assert len(top) == 1 and top[0].get_xlabel() == "tokens seen (all ranks)"  # both runs take 128 tokens a step

    tokens_fig = draw_runs(runs[:1], x_axis="tokens")
    xs = [x for x, _ in tokens_fig.axes[0].lines[0].get_xydata()]
    assert xs == [128.0 * step for step, _ in expected["p1"][0]]

    out = plot_runs(runs, tmp_path / "curves.svg")
    svg = out.read_text()
    assert "p1: train" in svg and "p2: test (eval)" in svg
    from modalities.cli.main import main

    assert main(["plot", str(tmp_path / "p1"), str(tmp_path / "p2"), "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".tmp-*"))


def _line(tag: str, step: int, loss: float, **extra) -> str:
    key = "train loss avg" if tag == "train" else "loss avg"
    return json.dumps({"dataloader_tag": tag, "num_train_steps_done": step, "losses": {key: loss},
                       "metrics": {"consumed tokens": 100 * step}, "throughput_metrics": {"mfu": None}, **extra})


def test_results_reader_follows_resume_and_restart_events_and_skips_cut_lines(tmp_path):
    from modalities.logging.curves import read_results as read_curves

    folder = tmp_path / "exp-a"
    folder.mkdir()
    lines = [
        _line("train", 1, 9.0),  # an attempt without a checkpoint, then restarted:
        json.dumps({"event": "restart", "num_train_steps_done": 0, "checkpoint": None}),
        _line("train", 1, 8.0), _line("train", 2, 7.0), _line("val", 2, 7.5), _line("train", 3, 6.0),
        _line("train", 4, 5.0), _line("val", 4, 5.5),
        json.dumps({"event": "resume", "num_train_steps_done": 2, "checkpoint": "ck/step_2"}),
        _line("train", 3, 6.5), _line("train", 4, 5.25),
        '{"dataloader_tag": "train", "num_train_st',  # killed mid-write
    ]
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    curves = read_curves(folder)
    assert curves.name == "exp-a" and curves.train_tag == "train"
    loss = curves.train["train loss avg"]
    assert list(zip(loss.steps, loss.values)) == [(1, 8.0), (2, 7.0), (3, 6.5), (4, 5.25)]
    val = curves.evals["val"]["loss avg"]
    assert list(zip(val.steps, val.values)) == [(2, 7.5)]  # step 4's eval came from the attempt that was cut
    assert "mfu" not in curves.train  # None values are not points
    assert curves.tokens_per_step() == 100
    assert curves.skipped == [f"{folder / 'results.jsonl'}:12: not a JSON line (cut off?), skipped"]


def test_loss_axis_turns_logarithmic_when_the_loss_spans_more_than_a_factor_two(tmp_path):
    from modalities.logging.curves import read_results as read_curves
    from modalities.logging.curves import wants_log_scale
    from modalities.logging.plot import draw_runs

    assert wants_log_scale([10.8, 6.0, 5.3]) and not wants_log_scale([6.0, 3.1])
    assert not wants_log_scale([4.0, 0.0, 1.0])  # a zero cannot go on a log axis
    assert not wants_log_scale([float("nan"), 3.0])
    steep, flat = tmp_path / "steep", tmp_path / "flat"
    for folder, losses in ((steep, [10.0, 6.0, 4.0]), (flat, [4.0, 3.5, 3.0])):
        folder.mkdir()
        (folder / "results.jsonl").write_text("".join(_line("train", i + 1, v) + "\n" for i, v in enumerate(losses)))
    assert draw_runs([read_curves(steep)]).axes[0].get_yscale() == "log"
    assert draw_runs([read_curves(flat)]).axes[0].get_yscale() == "linear"


def test_plot_command_names_what_is_wrong(tmp_path, capsys):
    from modalities.cli.main import main

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["plot", str(empty), "-o", str(tmp_path / "x.png")]) == 2
    assert f"{empty}: no results.jsonl in this folder" in capsys.readouterr().err
    (empty / "results.jsonl").write_text(json.dumps({"event": "restart", "num_train_steps_done": 0}) + "\n")
    assert main(["plot", str(empty), "-o", str(tmp_path / "x.png")]) == 2
    assert "holds no results yet" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing"), "-o", str(tmp_path / "x.png")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["plot", str(empty), "-o", str(tmp_path / "x.jpg")]) == 2
    assert "must end in .png, .svg, .pdf" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_progress_bar_starts_at_the_resumed_step_and_counts_eval_batches():
    import io

    from rich.console import Console

    from modalities.logging.broker import ExperimentStatus, ProgressUpdate
    from modalities.logging.subscribers import RichProgressSubscriber

    bar = RichProgressSubscriber(global_rank=0, num_target_steps=8, num_seen_steps=0)
    try:
        bar.consume_message(Message(MessageType.RUN_START, _info(num_seen_steps=4, num_target_steps=8)))
        bar.consume_message(Message(MessageType.PROGRESS, ProgressUpdate(5, ExperimentStatus.TRAIN, "train")))
        for done in (0, 1, 2, 3):
            bar.consume_message(Message(MessageType.PROGRESS, ProgressUpdate(5, ExperimentStatus.EVALUATION, "val", done, 5)))
        train, val = bar.progress.tasks
        assert (train.completed, train.total) == (5, 8)
        assert (val.description, val.completed, val.total) == ("eval val", 3, 5)
        # the next evaluation starts its bar afresh
        bar.consume_message(Message(MessageType.PROGRESS, ProgressUpdate(8, ExperimentStatus.EVALUATION, "val", 0, 5)))
        assert [(t.description, t.completed) for t in bar.progress.tasks] == [("train", 5), ("eval val", 0)]
        screen = Console(file=io.StringIO(), width=160)
        screen.print(bar.progress.get_renderable())
        text = screen.file.getvalue()
        assert "5/8" in text and "ETA" in text and "0/5" in text
    finally:
        bar.close()


def test_library_warnings_the_user_cannot_act_on_go_to_the_debug_log(caplog):
    """Filtered where they arise, kept at debug level; any other warning is shown, or raised under -W error, as
    without the filter."""
    import logging
    import warnings

    from modalities.logging.library_warnings import DTENSOR_RANDOM_ON_CPU, library_warnings_to_debug_log

    with warnings.catch_warnings(record=True) as shown, caplog.at_level(logging.DEBUG, logger=LIBRARY_WARNINGS_LOG):
        warnings.simplefilter("error")  # even where warnings are errors, the filtered one is only logged
        warnings.filterwarnings("always", message="something to act on")
        with library_warnings_to_debug_log(DTENSOR_RANDOM_ON_CPU):
            warnings.warn(DTENSOR_RANDOM_ON_CPU, UserWarning, stacklevel=1)
            warnings.warn("something to act on", UserWarning, stacklevel=1)
        with pytest.raises(UserWarning, match="another one"), library_warnings_to_debug_log(DTENSOR_RANDOM_ON_CPU):
            warnings.warn("another one", UserWarning, stacklevel=1)
        with pytest.raises(DeprecationWarning), library_warnings_to_debug_log(DTENSOR_RANDOM_ON_CPU):
            warnings.warn(DTENSOR_RANDOM_ON_CPU, DeprecationWarning, stacklevel=1)  # another category: not ours
    assert [str(w.message) for w in shown] == ["something to act on"]
    logged = [r for r in caplog.records if r.name == LIBRARY_WARNINGS_LOG]
    assert [(r.levelno, r.getMessage().endswith(f"UserWarning: {DTENSOR_RANDOM_ON_CPU}")) for r in logged] == [
        (logging.DEBUG, True)
    ]


LIBRARY_WARNINGS_LOG = "modalities.logging.library_warnings"
