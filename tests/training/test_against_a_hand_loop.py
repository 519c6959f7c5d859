"""The training loop against one written here in plain torch: the quick start's model, data and hyperparameters
for 3 steps of 2 accumulated micro-batches, every logged number (loss, gradient norm, learning rate, tokens)
and the final weights compared with what the hand loop computes.

The framework only provides the starting point (the initial weights, which its seeded init draws) and the
batches in its sampler's order; everything the loop does with them is written out below: backward on each
micro-batch's loss divided by the accumulation count, the L2 norm of all gradients clipped to 1, AdamW with
weight decay on the linear weights only, torch's OneCycleLR (momentum not cycled) stepping once per optimizer
step, tokens counted as steps x micro-batches x batch size x sequence length. Logged as the reference logs
them: "train loss avg" the mean over the interval's micro-batches, "train loss last" the last micro-batch's,
"lr mean" the lr after the scheduler stepped.
"""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
import torch.nn.functional as F

from modalities.cli.main import main
from tests.training.conftest import REPO

QUICKSTART = REPO / "configs" / "quickstart.yaml"
STEPS, ACCUMULATION, BATCH, SEQUENCE = 3, 2, 8, 128
OVERRIDES = [
    f"settings.training_target.num_target_steps={STEPS}",
    f"settings.step_profile.gradient_accumulation_steps={ACCUMULATION}",
    "settings.intervals.training_log_interval_in_steps=1",
    f"settings.intervals.evaluation_interval_in_steps={STEPS}",
    f"settings.intervals.checkpointing_interval_in_steps={STEPS}",
    "lr_scheduler.config.pct_start=0.5",  # warm-up ends at step 0.5 of 0..2: one step at the initial lr
]


def _start(tmp_path):
    """The initial weights (as a plain GPT2LLM) and the batches, from the framework's own components."""
    from torch.distributed.tensor import DTensor

    from modalities import Main
    from modalities.models.gpt2.model import GPT2LLM

    parts = Main(config_path=QUICKSTART, overrides=OVERRIDES, experiments_root=tmp_path / "build",
                 experiment_id="start").build_components()
    sharded = parts["initialized_model"]
    state = {name: (t.full_tensor() if isinstance(t, DTensor) else t).detach().clone()
             for name, t in sharded.state_dict().items()}
    fields = dict(Main(config_path=QUICKSTART, overrides=OVERRIDES).config_dict["model_raw"]["config"])
    fields.pop("use_meta_device")
    model = GPT2LLM(**fields)
    model.load_state_dict(state)
    batches = []
    for batch in parts["train_dataloader"]:
        batches.append((batch.samples["input_ids"].clone(), batch.targets["target_ids"].clone()))
        if len(batches) == STEPS * ACCUMULATION:
            break
    return model, batches


def _hand_loop(model, batches):
    decayed, not_decayed = [], []
    for name, parameter in model.named_parameters():  # the tied head/embedding weight is named by its embedding
        is_linear = (".attn." in name or ".mlp." in name or ".lm_head." in name) and ".wte." not in name
        (decayed if is_linear else not_decayed).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": 0.1}, {"params": not_decayed, "weight_decay": 0.0}],
        lr=3e-3, betas=(0.9, 0.95), eps=1e-8,
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=STEPS, pct_start=0.5, anneal_strategy="cos", div_factor=10,
        final_div_factor=10, cycle_momentum=False,  # the reference's (and our) default: beta1 stays 0.9
    )
    logged = []
    for step in range(STEPS):
        lr = optimizer.param_groups[0]["lr"]
        losses = []
        for inputs, targets in batches[step * ACCUMULATION : (step + 1) * ACCUMULATION]:
            logits = model(inputs)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            (loss / ACCUMULATION).backward()
            losses.append(loss.item())
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
        logged.append({"loss": sum(losses) / ACCUMULATION, "last_micro_batch_loss": losses[-1], "grad_norm": norm,
                       "lr_used": lr, "lr_next": optimizer.param_groups[0]["lr"],
                       "tokens": (step + 1) * ACCUMULATION * BATCH * SEQUENCE})
    return logged


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("hand")
    flags = [flag for override in OVERRIDES for flag in ("--set", override)]
    assert main(["train", str(QUICKSTART), "--experiments-root", str(tmp_path), "--experiment-id", "run", *flags]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    framework = [r for r in records if r.get("dataloader_tag") == "train"]
    model, batches = _start(tmp_path)
    torch.manual_seed(0)
    return framework, _hand_loop(model, batches), model, tmp_path / "run"


def test_every_logged_number_is_the_hand_loops(both):
    framework, hand, _, _ = both
    assert [r["num_train_steps_done"] for r in framework] == [1, 2, 3]
    for record, expected in zip(framework, hand):
        # as the reference logs them: the interval's mean over micro-batches (one step here), the last
        # micro-batch's loss, the gradient norm before clipping, the lr after the scheduler stepped
        assert record["losses"]["train loss avg"] == pytest.approx(expected["loss"], rel=1e-5)
        assert record["losses"]["train loss last"] == pytest.approx(expected["last_micro_batch_loss"], rel=1e-5)
        assert record["metrics"]["grad norm last"] == pytest.approx(expected["grad_norm"], rel=1e-4)
        assert record["metrics"]["grad norm avg"] == pytest.approx(expected["grad_norm"], rel=1e-4)
        assert record["metrics"]["lr mean"] == pytest.approx(expected["lr_next"], rel=1e-9)
        assert record["metrics"]["consumed tokens"] == expected["tokens"]
    # a step's mean and its last micro-batch differ, so the two loss figures are told apart above
    assert all(abs(e["loss"] - e["last_micro_batch_loss"]) > 1e-4 for e in hand)
    # the schedule by hand: OneCycle, 3 steps, warm-up over the first half step: step 1 runs at
    # max_lr / div_factor = 3e-4, then cosine annealing from 3e-3 to 3e-3 / (10 * 10) over steps 0.5..2
    low, peak, floor = 3e-4, 3e-3, 3e-5
    annealed = [floor + (peak - floor) * (1 + math.cos(math.pi * (s - 0.5) / 1.5)) / 2 for s in (1, 2)]
    assert [e["lr_used"] for e in hand] == pytest.approx([low, *annealed], rel=1e-12)


def test_the_final_weights_are_the_hand_loops(both):
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict_from_keys

    _, _, model, folder = both
    saved = _load_state_dict_from_keys(keys={"app.model"}, checkpoint_id=str(folder / "checkpoints" / f"step_{STEPS}"))
    weights = saved["app"]["model"]
    expected = model.state_dict()
    assert set(weights) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-4, atol=1e-6, msg=name)


def test_the_last_step_is_logged_even_off_the_interval(tmp_path):
    from tests.training.conftest import train_in_process

    # 6 steps logged every 4: at step 4, and at step 6 (the end) with the mean of steps 5 and 6
    started = time.perf_counter()
    assert train_in_process(tmp_path, "interval", "--set", "settings.intervals.training_log_interval_in_steps=4") == 0
    whole_run = time.perf_counter() - started
    records = [json.loads(line) for line in (tmp_path / "interval" / "results.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("dataloader_tag") == "train"]
    assert [r["num_train_steps_done"] for r in train] == [4, 6]
    assert [r["metrics"]["consumed tokens"] for r in train] == [4 * 128, 6 * 128]  # 2 micro-batches x 4 x 16 tokens
    # the interval's rates share its clock: samples of 16 tokens, counted afresh in each interval
    for record, interval_tokens in zip(train, (4 * 128, 2 * 128)):
        rates = record["throughput_metrics"]
        assert rates["tokens/s"] == pytest.approx(rates["samples/s"] * 16, rel=1e-12)
        # an interval lasts no longer than the whole run, so its rate is at least its tokens over the run's time
        # (a bound that holds however loaded the machine is)
        assert rates["tokens/s"] >= interval_tokens / whole_run


def test_the_evaluation_loss_weighs_each_batch_by_its_samples():
    from modalities.batch import DatasetBatch
    from modalities.training.gym import Evaluator

    class Broker:
        def __init__(self):
            self.results = []

        def publish_progress(self, *args, **kwargs):
            pass

        def publish_result(self, result):
            self.results.append(result)

    class MeanOfTargets(torch.nn.Module):  # the loss of a batch is the mean of its targets: known by hand
        def forward(self, samples):
            return {"logits": samples["input_ids"].float()}

    def loss_fn(batch):
        return batch.targets["target_ids"].float().mean()

    batches = [
        DatasetBatch(samples={"input_ids": torch.zeros(3, 4)}, targets={"target_ids": torch.full((3, 4), 1.0)}),
        DatasetBatch(samples={"input_ids": torch.zeros(1, 4)}, targets={"target_ids": torch.full((1, 4), 5.0)}),
    ]

    class Loader(list):
        dataloader_tag = "val"

    broker = Broker()
    model = MeanOfTargets()
    (result,) = Evaluator(model, loss_fn, torch.device("cpu"), broker).evaluate([Loader(batches)], 7)
    # 3 samples at loss 1 and 1 sample at loss 5: (3 * 1 + 1 * 5) / 4 = 2, not the mean of the batches' 3
    assert result.losses["loss avg"] == pytest.approx(2.0)
    assert (result.dataloader_tag, result.num_train_steps_done) == ("val", 7)
    assert broker.results == [result]
    assert model.training  # back in training mode afterwards


def test_evaluation_counts_the_samples_of_ranks_sharing_a_batch_once(monkeypatch):
    """Tensor-parallel peers compute the same batch's loss (count weight 1/2 with 2 peers); a pipeline stage
    before the last has no loss (weight 0, nothing counted): tokens/s counts each sample once."""
    from modalities.batch import DatasetBatch
    from modalities.training import gym

    clock = iter([10.0, 14.0])  # the evaluation takes 4 s
    monkeypatch.setattr(gym.time, "perf_counter", lambda: next(clock))

    class Broker:
        def publish_progress(self, *args, **kwargs):
            pass

        def publish_result(self, result):
            pass

    batches = [DatasetBatch(samples={"input_ids": torch.zeros(2, 8)}, targets={"target_ids": torch.full((2, 8), 3.0)})
               for _ in range(2)]
    class NoOutput(torch.nn.Module):  # the loss reads the targets only
        def forward(self, samples):
            return {}

    model = NoOutput()
    evaluator = gym.Evaluator(model, lambda b: b.targets["target_ids"].mean(), torch.device("cpu"), Broker(),
                              count_weight=0.5)
    (result,) = evaluator.evaluate([batches], 1)
    # by hand: 2 batches x 2 samples x 8 tokens = 32 tokens, counted half (the peer counts the other half), in 4 s
    assert result.throughput_metrics["tokens/s"] == pytest.approx(4.0)
    assert result.losses["loss avg"] == pytest.approx(3.0)

    class Stage:  # a pipeline stage before the last: no loss on this rank
        def run(self, batch, accumulation_steps, train):
            assert (accumulation_steps, train) == (1, False)
            return None

    clock = iter([10.0, 14.0])
    monkeypatch.setattr(gym.time, "perf_counter", lambda: next(clock))
    evaluator = gym.Evaluator([model], None, torch.device("cpu"), Broker(), pipelined_step=Stage(), count_weight=0.0)
    (result,) = evaluator.evaluate([batches], 1)
    assert result.throughput_metrics["tokens/s"] == 0.0
    assert result.losses["loss avg"] != result.losses["loss avg"]  # NaN: no samples here (other ranks hold them)
