"""Pipeline parallelism (pipeline/*, stages_generator/*, the pp dimension of the mesh) on CPU ranks with gloo:
every schedule, and pp with tensor or data parallelism, gives one process's losses, gradient norms, evaluation
and token counts; checkpoints move between pipeline and plain layouts; the stage plan is the reference's, cut by
hand here; validate refuses what the build would."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import torch

from tests.tolerances import approx_float32
from tests.training.conftest import REPO, run_in_process, subprocess_env, torchrun_cmd

pytestmark = pytest.mark.slow  # multi-process runs: scheduled first (tests/conftest.py)

PP_CONFIG = REPO / "tests" / "training" / "pp.yaml"
TP_CONFIG = REPO / "tests" / "training" / "tp.yaml"
# The same model on one process: tp.yaml without tensor parallelism, with pp.yaml's 6 untied layers.
ONE_PROCESS = ["--set", "device_mesh.config.tensor_parallel_degree=1", "--set", "model_raw.config.n_layer=6",
               "--set", "model_raw.config.use_weight_tying=false"]
STEPS = [
    "--set", "settings.training_target.num_target_steps=4",
    "--set", "settings.intervals.training_log_interval_in_steps=1",
    "--set", "settings.intervals.evaluation_interval_in_steps=4",
    "--set", "settings.intervals.checkpointing_interval_in_steps=2",
    # an explicit peak, so that MFU is computed on CPU and shows the FLOPs per token the run counts
    "--set", "mfu_calculator.config.peak_flops_per_device=1e12",
]


def _run(nproc: int, config, root, experiment_id: str, *extra: str):
    """Train on ``nproc`` ranks under torchrun (one rank: in this process, see run_in_process)."""
    args = ["train", str(config), "--experiments-root", str(root), "--experiment-id", experiment_id, *STEPS, *extra]
    if nproc == 1:
        done = run_in_process(1, *args)
    else:
        done = subprocess.run(torchrun_cmd(nproc, *args), cwd=REPO, env=subprocess_env(), capture_output=True,
                              text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    records = [json.loads(line) for line in (root / experiment_id / "results.jsonl").read_text().splitlines()]
    train = _run_records(root / experiment_id)
    evaluation = [r["losses"]["loss avg"] for r in records if r.get("dataloader_tag") == "test"]
    parameters = int(re.search(r"model .*?\(([\d,]+)\)", done.stdout).group(1).replace(",", ""))
    return {"train": train, "eval": evaluation, "parameters": parameters, "world": nproc, "stdout": done.stdout}


def _run_records(folder) -> dict:
    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return {r["num_train_steps_done"]: r for r in records if r.get("dataloader_tag") == "train"}


# session scope: under xdist's worksteal a worker may run a module's tests in several stretches, between
# which a module-scoped run would be thrown away and trained again
@pytest.fixture(scope="session")
def one_process(tmp_path_factory):
    root = tmp_path_factory.mktemp("pp_one")
    return _run(1, TP_CONFIG, root, "one", *ONE_PROCESS), root


def _flops_per_sample(run, step):
    """MFU x peak x world / samples per second: the model FLOPs per sample the run counted (the whole model's,
    whatever share of it a rank holds)."""
    throughput = run["train"][step]["throughput_metrics"]
    return throughput["mfu"] * 1e12 * run["world"] / throughput["samples/s"]


def _same_run(run, baseline, same_batches: bool = True):
    """``same_batches``: whether a step is one loader batch, as in the baseline (then its last micro-batch's loss
    is comparable too)."""
    assert sorted(run["train"]) == sorted(baseline["train"]) == [1, 2, 3, 4]
    for step, record in run["train"].items():
        expected = baseline["train"][step]
        for key in ("train loss avg", "train loss last") if same_batches else ("train loss avg",):
            assert record["losses"][key] == approx_float32(expected["losses"][key]), (step, key)
        # clipping at max_norm 1 is active from step 2 (norms 1.2 to 1.6): a norm of one stage's gradients only
        # would clip differently and part the losses
        assert record["metrics"]["grad norm last"] == pytest.approx(expected["metrics"]["grad norm last"], rel=1e-4)
        # by hand: 8 samples of 128 tokens a step, whatever the layout
        assert record["metrics"]["consumed tokens"] == expected["metrics"]["consumed tokens"] == 1024 * step
        assert _flops_per_sample(run, step) == pytest.approx(_flops_per_sample(baseline, step), rel=1e-6)
    assert run["eval"] == approx_float32(baseline["eval"])
    assert run["parameters"] == baseline["parameters"]  # summed over the stages: the whole model


# 2 accumulated loader batches of 4 make the same step of 8 samples as one batch of 8 (equal token counts)
ACCUMULATED = ("--set", "settings.step_profile.gradient_accumulation_steps=2",
               "--set", "settings.step_profile.local_train_micro_batch_size=4")


@pytest.fixture(scope="session")
def pp_2(tmp_path_factory):
    """pp.yaml as written (GPipe, 2 stages of 4 layer equivalents on 2 ranks): compared with one process, and the
    run whose checkpoint the resume test continues."""
    root = tmp_path_factory.mktemp("pp_2")
    return _run(2, PP_CONFIG, root, "pp2"), root


def test_pp_2_with_gpipe_trains_as_one_process(one_process, pp_2):
    _same_run(pp_2[0], one_process[0])


@pytest.mark.parametrize(
    ("schedule", "layers_per_stage", "extra"),
    [("1F1B", 4, ()), ("Interleaved1F1B", 2, ()), ("LoopedBFS", 2, ()),  # 2 stages, or 4 (GPipe: above)
     ("1F1B", 4, ACCUMULATED)],
)
def test_pp_2_trains_as_one_process(tmp_path, one_process, schedule, layers_per_stage, extra):
    run = _run(2, PP_CONFIG, tmp_path, "pp2", "--set", f"scheduled_pipeline.config.pp_schedule_name={schedule}",
               "--set", f"staged_pipeline.config.num_layers_per_stage={layers_per_stage}", *extra)
    _same_run(run, one_process[0], same_batches=not extra)


@pytest.mark.parametrize("loss_parallel", [False, True])  # the last stage's logits: full, or vocabulary shards
def test_pp_2_x_tp_2_trains_as_one_process(tmp_path, one_process, loss_parallel):
    run = _run(4, PP_CONFIG, tmp_path, "pp2tp2", "--set", "device_mesh.config.tensor_parallel_degree=2",
               "--set", f"device_mesh.config.enable_loss_parallel={str(loss_parallel).lower()}")
    _same_run(run, one_process[0])


def test_pp_2_x_dp_2_trains_as_one_process(tmp_path, one_process):
    # 4 samples per rank on 2 data-parallel ranks (2 micro-batches of 2 each): the same global batch of 8
    run = _run(4, PP_CONFIG, tmp_path, "pp2dp2", "--set", "settings.step_profile.local_train_micro_batch_size=4")
    _same_run(run, one_process[0])


def test_pp_2_x_cp_2_trains_as_one_process(tmp_path, one_process):
    """Each stage's sequences split over 2 cp ranks (ring attention in every stage; the learned positions of the
    tokens a rank holds): the same batch of 8 samples as one process."""
    shapes = ("shape_hook={component_key: model_debugging_hook, variant_key: print_forward_hook, config: {model: "
              "{instance_key: initialized_model, pass_type: BY_REFERENCE}, print_shape_only: true}}")
    debugging = ("settings.debugging={component_key: debugging, variant_key: settings, config: {forward_hooks: "
                 "[{instance_key: shape_hook, pass_type: BY_REFERENCE}]}}")
    run = _run(4, PP_CONFIG, tmp_path, "pp2cp2", "--set", "device_mesh.config.context_parallel_degree=2",
               "--set", shapes, "--set", debugging)
    _same_run(run, one_process[0])
    # every stage ran on its share: micro-batches of 2 samples of 128 / 2 = 64 tokens, both in the first stage's
    # attention and in the last stage's head
    for module in ("transformer.h.0.attn.q_attn", "transformer.lm_head"):
        seen = set(re.findall(rf"Path: {re.escape(module)}, Input shapes: \[\((\d+), (\d+), 128\)\]", run["stdout"]))
        assert seen == {("2", "64")}, (module, seen)


def test_a_run_resumes_across_pipeline_layouts(tmp_path, one_process, pp_2):
    (baseline, baseline_root), (_, pp_2_root) = one_process, pp_2
    saved_pp2 = pp_2_root / "pp2"
    # saved by a 2-stage pipeline, resumed on one process
    resumed = _run(1, TP_CONFIG, tmp_path, "resumed_one", *ONE_PROCESS,
                   "--resume", str(saved_pp2 / "checkpoints" / "step_2"))
    # saved by one process, resumed by an interleaved pipeline (4 stages on 2 ranks)
    interleaved = _run(2, PP_CONFIG, tmp_path, "resumed_pp2", "--resume",
                       str(baseline_root / "one" / "checkpoints" / "step_2"),
                       "--set", "scheduled_pipeline.config.pp_schedule_name=Interleaved1F1B",
                       "--set", "staged_pipeline.config.num_layers_per_stage=2")
    # saved by a pipeline, resumed by the same pipeline: the uninterrupted run's losses bit for bit
    same = _run(2, PP_CONFIG, tmp_path, "resumed_same", "--resume", str(saved_pp2 / "checkpoints" / "step_2"))
    saved = _run_records(saved_pp2)
    for step in (3, 4):
        assert same["train"][step]["losses"] == saved[step]["losses"]
    for run in (resumed, interleaved):
        assert sorted(run["train"]) == [3, 4]
        for step in (3, 4):
            expected = baseline["train"][step]["losses"]["train loss avg"]
            assert run["train"][step]["losses"]["train loss avg"] == approx_float32(expected)


# -- the stage plan, by hand -------------------------------------------------------------------------------------

EMBEDDINGS = ["transformer.wte", "transformer.wpe", "transformer.drop"]
HEAD = ["transformer.lm_head_norm", "transformer.lm_head"]


def test_the_reference_configs_are_cut_where_the_reference_cuts_them():
    from modalities.training.pipeline_plan import GPT2StagesGenerator

    # config_lorem_ipsum_long_fsdp2_pp_tp.yaml: 2 layers + 1 + 1 = 4 layer equivalents, 2 per stage
    assert GPT2StagesGenerator(2).get_stages(num_layers_per_stage=2, pp_dims=2) == [
        EMBEDDINGS + ["transformer.h.0"], ["transformer.h.1"] + HEAD]
    # config_lorem_ipsum_long_fsdp2_pp.yaml: 6 + 2 = 8 equivalents, 2 per stage: 4 stages
    assert GPT2StagesGenerator(6).get_stages(num_layers_per_stage=2, pp_dims=4) == [
        EMBEDDINGS + ["transformer.h.0"], ["transformer.h.1", "transformer.h.2"],
        ["transformer.h.3", "transformer.h.4"], ["transformer.h.5"] + HEAD]
    # a heavier head (3 equivalents): 5 + 1 + 3 = 9 over 3 stages of 3
    assert GPT2StagesGenerator(5, output_layer_equivalence=3).get_stages(num_layers_per_stage=3, pp_dims=3) == [
        EMBEDDINGS + ["transformer.h.0", "transformer.h.1"], ["transformer.h.2", "transformer.h.3", "transformer.h.4"],
        HEAD]


def test_a_plan_that_cannot_run_is_named():
    from modalities.training.pipeline_plan import (
        GPT2StagesGenerator,
        PipelinePlanError,
        microbatch_misfit,
        stage_indices_of_rank,
    )

    with pytest.raises(PipelinePlanError, match=r"^3 stages \(ceil of 8 layer equivalents / num_layers_per_stage 3\) "
                                                r"do not divide over pipeline_parallel_degree 2;"):
        GPT2StagesGenerator(6).get_stages(num_layers_per_stage=3, pp_dims=2)
    with pytest.raises(PipelinePlanError, match=r"transformer.lm_head_norm, transformer.lm_head weigh 3 layers, more "
                                                r"than a stage holds \(2\)"):
        GPT2StagesGenerator(3, output_layer_equivalence=3).get_stages(num_layers_per_stage=2, pp_dims=2)
    assert stage_indices_of_rank(1, 2, 4, "interleaved1f1b") == [1, 3]  # a loop: rank + k x pp
    assert stage_indices_of_rank(0, 2, 2, "GPipe") == [0]
    with pytest.raises(PipelinePlanError, match="GPipe runs one stage per rank, but the plan has 4 stages"):
        stage_indices_of_rank(0, 2, 4, "gpipe")
    with pytest.raises(PipelinePlanError, match="zero-bubble schedule"):
        stage_indices_of_rank(0, 2, 4, "ZBVZeroBubble")
    assert microbatch_misfit("1F1B", 1, 2) == ("1F1B needs at least as many micro-batches as stages: 1 micro-batches "
                                               "(batch_size / microbatch_size) for 2 stages")
    assert microbatch_misfit("1F1B", 2, 2) is None
    assert microbatch_misfit("Interleaved1F1B", 5, 2) == ("Interleaved1F1B needs a multiple of 2 micro-batches (its "
                                                          "rounds of pipeline_parallel_degree 2), got 5")
    assert microbatch_misfit("GPipe", 1, 4) is None


def test_stage_modules_keep_their_names_and_compute_the_whole_model_in_turn():
    from modalities.training.pipeline import stage_module
    from tests.models.helpers import build_gpt2

    whole = build_gpt2(n_layer=3, use_weight_tying=False)
    first = stage_module(whole, EMBEDDINGS + ["transformer.h.0"])
    second = stage_module(whole, ["transformer.h.1", "transformer.h.2"] + HEAD)
    names = [n for n, _ in whole.named_parameters()]
    first_names, second_names = [n for n, _ in first.named_parameters()], [n for n, _ in second.named_parameters()]
    assert first_names + second_names == names  # a partition, in order, under the whole model's names
    assert all(n.startswith(("transformer.wte", "transformer.wpe", "transformer.h.0.")) for n in first_names)
    tokens = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        assert torch.equal(second(first(tokens)), whole(tokens))
    assert first.pipeline_stage_modules == EMBEDDINGS + ["transformer.h.0"]


def test_optimizer_of_model_parts_steps_as_one_optimizer_over_all_parameters():
    from modalities.optim.optimizers import get_adam_w
    from modalities.optim.schedulers import get_onecycle_lr
    from modalities.training.pipeline import stage_module
    from tests.models.helpers import build_gpt2

    whole = build_gpt2(n_layer=2, use_weight_tying=False)
    parts = [stage_module(whole, EMBEDDINGS + ["transformer.h.0"]), stage_module(whole, ["transformer.h.1"] + HEAD)]
    settings = {"lr": 1e-2, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1, "weight_decay_groups_excluded": ["embedding"]}
    together, split = get_adam_w(wrapped_model=whole, **settings), get_adam_w(wrapped_model=parts, **settings)
    schedules = [get_onecycle_lr(optimizer=o, max_lr=1e-2, total_steps=5, pct_start=0.4) for o in (together, split)]
    tokens = torch.randint(0, 64, (2, 16))
    for _ in range(3):
        for model in (whole, parts):
            out = model(tokens) if not isinstance(model, list) else model[1](model[0](tokens))
            out.float().pow(2).mean().backward()
        for optimizer, schedule in zip((together, split), schedules):
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    after = dict(whole.named_parameters())
    for part in parts:
        for name, parameter in part.named_parameters():
            assert torch.allclose(parameter, after[name], atol=1e-6, rtol=0), name
    # the schedule reached every part's groups: the same rate as the single optimizer's
    assert {g["lr"] for g in split.param_groups} == {together.param_groups[0]["lr"]}
    # by hand: a block holds 16 tensors (2 norms, q/k/v/attention projection and 2 MLP layers, each with a bias);
    # part one: block 0 decayed, the 2 embeddings not; part two: block 1, the head norm (2) and head (1) decayed
    assert [len(g["params"]) for g in split.param_groups] == [16, 2, 19]


def test_app_state_of_model_parts_is_the_whole_models_state_by_name(tmp_path):
    from modalities.optim.optimizers import get_adam_w
    from modalities.training.app_state import AppState
    from modalities.training.pipeline import stage_module
    from tests.models.helpers import build_gpt2

    settings = {"lr": 1e-2, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.0, "weight_decay_groups_excluded": []}
    whole = build_gpt2(n_layer=2, use_weight_tying=False)
    keep = [EMBEDDINGS + ["transformer.h.0"], ["transformer.h.1"] + HEAD]
    parts = [stage_module(whole, names) for names in keep]
    state_whole = AppState(whole, get_adam_w(wrapped_model=whole, **settings))
    state_parts = AppState(parts, get_adam_w(wrapped_model=parts, **settings))
    tokens = torch.randint(0, 64, (2, 16))
    for app, forward in ((state_whole, whole), (state_parts, lambda t: parts[1](parts[0](t)))):
        forward(tokens).float().pow(2).mean().backward()
        app.optimizer.step()
    saved_whole, saved_parts = state_whole.state_dict(), state_parts.state_dict()
    assert set(saved_parts["model"]) == set(saved_whole["model"])
    assert set(saved_parts["optimizer"]) == set(saved_whole["optimizer"])
    # the whole model's state loads into fresh parts (a change of layout): weights and moments by name
    fresh = [stage_module(build_gpt2(n_layer=2, use_weight_tying=False, seed=7), names) for names in keep]
    loaded = AppState(fresh, get_adam_w(wrapped_model=fresh, **settings))
    loaded.load_state_dict(saved_whole)
    again = loaded.state_dict()
    for key, value in saved_whole["model"].items():
        assert torch.equal(again["model"][key], value), key
    for key, value in saved_whole["optimizer"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(again["optimizer"][key], value), key


# -- validate ----------------------------------------------------------------------------------------------------


def _line(text: str) -> int:
    return next(i for i, line in enumerate(PP_CONFIG.read_text().splitlines(), 1) if line.startswith(text))


def test_validate_refuses_what_the_pipeline_would_refuse(capsys):
    from modalities.cli.main import main

    assert main(["validate", str(PP_CONFIG)]) == 0
    capsys.readouterr()
    code = main(["validate", str(PP_CONFIG), "--set", "model_raw.config.use_weight_tying=true",
                 "--set", "staged_pipeline.config.num_layers_per_stage=3",
                 "--set", "scheduled_pipeline.config.pp_schedule_name=1F1B",
                 "--set", "scheduled_pipeline.config.microbatch_size=8"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1
    assert ("<--set>:1:35: error: model_raw.config.use_weight_tying: the embedding and the head it is tied to land "
            "on different pipeline stages; set use_weight_tying: false for pipeline parallelism") in text
    assert ("<--set>:1:45: error: staged_pipeline.config.num_layers_per_stage: 3 stages (ceil of 8 layer equivalents "
            "/ num_layers_per_stage 3) do not divide over pipeline_parallel_degree 2") in text
    assert ("<--set>:1:43: error: scheduled_pipeline.config.microbatch_size: 1F1B needs at least as many "
            "micro-batches as stages: 1 micro-batches (batch_size / microbatch_size) for 2 stages") in text
    assert "4 errors" not in text and "3 errors" in text


def test_validate_checks_a_selectors_kind_and_the_clipper(capsys):
    from modalities.cli.main import main

    code = main(["validate", str(PP_CONFIG), "--set", "initialized_model.config.selection_type=PP_STAGE"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1
    selector = _line("initialized_model:") + 1  # a component is placed at its first key
    assert (f"error: app_state.config.model: expected a 'model' component, but 'initialized_model' (pipeline/selector, "
            f"{PP_CONFIG}:{selector}:3) produces 'pipeline_stage'") in text
    code = main(["validate", str(PP_CONFIG), "--set", "gradient_clipper.config.device_mesh=null"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1
    assert (f"{PP_CONFIG}:{_line('gradient_clipper:') + 4}:5: error: gradient_clipper.config: with pipeline "
            "parallelism the gradient clipper needs the device_mesh") in text


def test_validate_checks_the_mesh_against_a_known_world_size(capsys, monkeypatch):
    from modalities.cli.main import main

    monkeypatch.setenv("WORLD_SIZE", "3")
    assert main(["validate", str(PP_CONFIG)]) == 1
    out = capsys.readouterr()
    assert "error: device_mesh.config.world_size: the world size 3 is not divisible by pipeline_parallel_degree 2" in out.out + out.err
    monkeypatch.setenv("WORLD_SIZE", "4")  # pp 2 x dp_shard 2
    assert main(["validate", str(PP_CONFIG), "--set", "settings.step_profile.local_train_micro_batch_size=4"]) == 0


@pytest.mark.parametrize("weight_init_type", ["plain", "scaled", "scaled_embed"])
def test_a_seeded_initializer_gives_each_stage_the_whole_models_weights(weight_init_type):
    """model_initialized on pipeline parts (meta device, as the reference's pp configs build them): each stage
    draws as its part of the whole model, so the weights equal a one-process init, and no two stages share
    random numbers (each used to start from the seed)."""
    from modalities.models.initialization.composed import composed_initializer, initialize_model
    from modalities.training.pipeline import stage_module
    from tests.models.helpers import build_gpt2

    initializer = composed_initializer("gpt2", weight_init_type, mean=0.0, std=0.02, num_layers=6, seed=5)
    whole = initialize_model(build_gpt2(n_layer=6, use_weight_tying=False), initializer)
    meta = build_gpt2(n_layer=6, use_weight_tying=False, use_meta_device=True)
    cuts = [EMBEDDINGS + ["transformer.h.0"], ["transformer.h.1", "transformer.h.2"],
            ["transformer.h.3", "transformer.h.4"], ["transformer.h.5"] + HEAD]
    # rank 1 of an interleaved schedule holds stages 1 and 3; rank 0 stages 0 and 2
    for rank_stages in ([cuts[0], cuts[2]], [cuts[1], cuts[3]]):
        parts = initialize_model([stage_module(meta, names) for names in rank_stages], initializer)
        expected = dict(whole.named_parameters())
        for part in parts:
            for name, parameter in part.named_parameters():
                assert torch.equal(parameter, expected[name]), name


def test_validate_wants_a_schedule_and_the_models_layer_count(capsys):
    from modalities.cli.main import main

    # a pipeline degree without pipeline components: nothing would run the stages
    assert main(["validate", str(TP_CONFIG), "--set", "device_mesh.config.tensor_parallel_degree=1",
                 "--set", "device_mesh.config.pipeline_parallel_degree=2"]) == 1
    out = capsys.readouterr()
    assert ("<--set>:1:45: error: device_mesh.config.pipeline_parallel_degree: pipeline_parallel_degree 2 needs the "
            "run's scheduled_pipeline (a pipeline/scheduled), which runs the model's stages") in out.out + out.err
    # a stages generator told another layer count than the model has
    assert main(["validate", str(PP_CONFIG),
                 "--set", "staged_pipeline.config.stages_generator.config.num_model_layers=4"]) == 1
    out = capsys.readouterr()
    assert ("error: staged_pipeline.config.stages_generator.config.num_model_layers: num_model_layers 4 is not the "
            f"n_layer 6 of model_raw at {PP_CONFIG}:{_line('model_raw:') + 1}:3") in out.out + out.err


def test_a_run_missing_a_component_it_names_is_reported_not_crashed(tmp_path, capsys):
    """Found by tools/fuzz_validate.py on pp.yaml (a misspelt key): the run-contract checks read the run's loss
    and clipper, which a config with errors may lack."""
    import yaml

    from modalities.cli.main import main

    config = yaml.safe_load(PP_CONFIG.read_text())
    for key in ("gradient_clipper", "loss_fn", "app_state", "train_dataloader"):
        broken = {(f"{k}lenght" if k == key else k): v for k, v in config.items()}
        path = tmp_path / f"without_{key}.yaml"
        path.write_text(yaml.safe_dump(broken, sort_keys=False))
        assert main(["validate", str(path)]) == 1
        out = capsys.readouterr()
        text = out.out + out.err
        assert "checks failed" not in text and "Error:" not in text and "Traceback" not in text
        assert key in text


def test_an_unseeded_initializer_gives_stages_distinct_draws_of_one_stream():
    """Without a seed every rank starts from the same generator state; each stage then draws its part of the whole
    model from that state (its own resets do not shift it), so stages never repeat each other's numbers: the
    parts equal the whole model initialized by name from the same state."""
    from modalities.models.initialization.composed import composed_initializer, initialize_model
    from modalities.training.pipeline import stage_module
    from tests.models.helpers import build_gpt2

    cuts = [EMBEDDINGS + ["transformer.h.0"], ["transformer.h.1", "transformer.h.2"],
            ["transformer.h.3", "transformer.h.4"], ["transformer.h.5"] + HEAD]
    whole = build_gpt2(n_layer=6, use_weight_tying=False)
    torch.manual_seed(11)
    composed_initializer("gpt2", "scaled", mean=0.0, std=0.02, num_layers=6).initialize_in_place(whole)
    expected = dict(whole.named_parameters())
    meta = build_gpt2(n_layer=6, use_weight_tying=False, use_meta_device=True)
    for rank_stages in ([cuts[0], cuts[2]], [cuts[1], cuts[3]]):  # an interleaved schedule's two ranks
        torch.manual_seed(11)  # what every rank's generator holds when the stages are initialized
        initializer = composed_initializer("gpt2", "scaled", mean=0.0, std=0.02, num_layers=6)
        parts = initialize_model([stage_module(meta, names) for names in rank_stages], initializer)
        for part in parts:
            for name, parameter in part.named_parameters():
                if name.endswith("weight") and "norm" not in name:
                    assert torch.equal(parameter, expected[name]), name
