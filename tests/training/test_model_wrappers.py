"""Model wrappers: activation checkpointing (full, every n-th block) and per-block torch.compile."""

import copy

import pytest
import torch
from torch import nn

from modalities.training.config import ActivationCheckpointingParams
from modalities.training.distributed import TrainingSetupError
from modalities.training.model_wrappers import find_blocks, get_activation_checkpointed_model, get_compiled_model
from tests.training.standins import TinyBlock, TinyLM


def _tiny_lm(n_layer: int = 4) -> TinyLM:
    return TinyLM(vocab_size=32, n_embd=16, n_layer=n_layer, sample_key="x", prediction_key="logits", seed=0)


def _loss_and_grads(model: nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    logits = model({"x": tokens[:, :-1]})["logits"]
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
    loss.backward()
    # a checkpoint wrapper inserts `_checkpoint_wrapped_module.` into the names
    grads = {n.replace("_checkpoint_wrapped_module.", ""): p.grad.clone() for n, p in model.named_parameters()}
    return loss.detach(), grads


def _count_block_forwards(model: nn.Module) -> list[int]:
    """Forward calls per block (a checkpointed block runs forward again in backward)."""
    counts = []
    for index, block in enumerate(b for b in model.modules() if isinstance(b, TinyBlock)):
        counts.append(0)

        def counting_forward(x, block=block, index=index):
            counts[index] += 1
            return TinyBlock.forward(block, x)

        block.forward = counting_forward
    return counts


@pytest.mark.parametrize(
    "variant, ac_freq, recomputed",
    [
        ("full_activation_checkpointing", None, [True, True, True, True]),
        # every ac_freq-th block counting from 1, as the reference: blocks 1 and 3 (0-based) for ac_freq 2
        ("selective_layer_activation_checkpointing", 2, [False, True, False, True]),
        ("selective_layer_activation_checkpointing", 3, [False, False, True, False]),
    ],
)
def test_activation_checkpointing_recomputes_chosen_blocks_with_same_loss_and_grads(variant, ac_freq, recomputed):
    tokens = torch.randint(0, 32, (4, 9), generator=torch.Generator().manual_seed(1))
    reference = _tiny_lm()
    checkpointed = get_activation_checkpointed_model(
        copy.deepcopy(reference),
        layers_fqn="h",
        ac_variant=variant,
        ac_fun_params=ActivationCheckpointingParams(ac_freq=ac_freq),
    )
    forwards = _count_block_forwards(checkpointed)
    loss, grads = _loss_and_grads(checkpointed, tokens)
    assert forwards == [2 if r else 1 for r in recomputed]

    expected_loss, expected_grads = _loss_and_grads(reference, tokens)
    assert torch.allclose(loss, expected_loss, atol=1e-6)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        assert torch.allclose(grad, expected_grads[name], atol=1e-6), name
    # the state dict keeps its names, so checkpoints load with or without activation checkpointing
    assert {k.replace("_checkpoint_wrapped_module.", "") for k in checkpointed.state_dict()} == set(
        reference.state_dict()
    )
    # FSDP still finds the wrapped blocks by their class name
    assert len(find_blocks(checkpointed, ["TinyBlock"])) == 4


def test_activation_checkpointing_names_a_wrong_layers_fqn():
    with pytest.raises(TrainingSetupError, match="layers_fqn 'transformer.h' names no submodule of TinyLM"):
        get_activation_checkpointed_model(_tiny_lm(), layers_fqn="transformer.h")
    with pytest.raises(TrainingSetupError, match="is a Linear, not an nn.ModuleDict or nn.ModuleList"):
        get_activation_checkpointed_model(_tiny_lm(), layers_fqn="head")


def test_selective_layer_checkpointing_of_gpt2_wraps_the_reference_blocks():
    from tests.models.helpers import build_gpt2

    model = build_gpt2(n_layer=4)
    get_activation_checkpointed_model(
        model,
        layers_fqn="transformer.h",
        ac_variant="selective_layer_activation_checkpointing",
        ac_fun_params=ActivationCheckpointingParams(ac_freq=2),
    )
    wrapped = sorted(
        name for name, module in model.named_modules() if type(module).__name__ == "CheckpointWrapper"
    )
    assert wrapped == ["transformer.h.1", "transformer.h.3"]


def test_selective_op_checkpointing_keeps_every_other_matmul_and_gives_the_same_gradients():
    from torch.utils.checkpoint import CheckpointPolicy

    from modalities.training.model_wrappers import _selective_op_context

    tokens = torch.randint(0, 32, (4, 9), generator=torch.Generator().manual_seed(1))
    reference = _tiny_lm()
    params = ActivationCheckpointingParams(save_ops_keys=["ops.aten.mm.default"])
    checkpointed = get_activation_checkpointed_model(
        copy.deepcopy(reference), layers_fqn="h", ac_variant="selective_op_activation_checkpointing", ac_fun_params=params
    )
    forwards = _count_block_forwards(checkpointed)
    loss, grads = _loss_and_grads(checkpointed, tokens)
    assert forwards == [2, 2, 2, 2]  # every block is recomputed in part
    expected_loss, expected_grads = _loss_and_grads(reference, tokens)
    assert torch.allclose(loss, expected_loss, atol=1e-6)
    for name, grad in grads.items():
        assert torch.allclose(grad, expected_grads[name], atol=1e-6), name

    # The policy itself: mm outputs 1, 3, 5 are kept, 2, 4 recomputed; other ops always recomputed.
    forward_ctx, _ = _selective_op_context(["ops.aten.mm.default"])()
    policy = forward_ctx.policy_fn

    class Ctx:
        is_recompute = False

    decisions = [policy(Ctx(), torch.ops.aten.mm.default) for _ in range(5)]
    assert decisions == [CheckpointPolicy.MUST_SAVE, CheckpointPolicy.PREFER_RECOMPUTE] * 2 + [
        CheckpointPolicy.MUST_SAVE
    ]
    assert policy(Ctx(), torch.ops.aten.add.Tensor) == CheckpointPolicy.PREFER_RECOMPUTE


@pytest.mark.parametrize(
    "variant, params, message",
    [
        ("selective_layer_activation_checkpointing", {}, "needs ac_fun_params.ac_freq"),
        ("selective_op_activation_checkpointing", {}, "needs ac_fun_params.save_ops_keys"),
        ("selective_op_activation_checkpointing", {"save_ops_keys": ["ops.aten.relu.default"]}, "Input should be"),
    ],
)
def test_activation_checkpointing_config_names_what_its_variant_needs(variant, params, message):
    from pydantic import ValidationError

    from modalities.training.config import ActivationCheckpointedModelConfig

    with pytest.raises(ValidationError, match=message):
        ActivationCheckpointedModelConfig.model_validate(
            {"model": None, "layers_fqn": "transformer.h", "ac_variant": variant, "ac_fun_params": params}
        )


def test_compiled_model_with_no_block_names_is_the_model_unchanged():
    model = _tiny_lm()
    assert get_compiled_model(model, block_names=[]) is model
    assert all(m._compiled_call_impl is None for m in model.modules())


def test_compiled_model_compiles_each_block_in_place_and_computes_the_same():
    tokens = torch.randint(0, 32, (4, 9), generator=torch.Generator().manual_seed(2))
    reference = _tiny_lm(n_layer=2)
    compiled = get_compiled_model(copy.deepcopy(reference), block_names=["TinyBlock"], backend="aot_eager")
    blocks = find_blocks(compiled, ["TinyBlock"])
    assert all(block._compiled_call_impl is not None for block in blocks)
    assert compiled._compiled_call_impl is None  # only the blocks, so FSDP can shard around them
    assert list(compiled.state_dict()) == list(reference.state_dict())
    torch._dynamo.reset()
    loss, grads = _loss_and_grads(compiled, tokens)
    expected_loss, expected_grads = _loss_and_grads(reference, tokens)
    assert torch.allclose(loss, expected_loss, atol=1e-5)
    for name, grad in grads.items():
        assert torch.allclose(grad, expected_grads[name], atol=1e-5), name


def test_compiled_model_names_unknown_block_classes():
    with pytest.raises(TrainingSetupError, match=r"block_names \['GPT2Block'\] match no module of TinyLM.*TinyBlock"):
        get_compiled_model(_tiny_lm(), block_names=["GPT2Block"])
