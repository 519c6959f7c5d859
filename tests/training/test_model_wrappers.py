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
        ("full_activation_checkpointing", 1, [True, True, True, True]),
        ("selective_layer_activation_checkpointing", 2, [True, False, True, False]),
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
    with pytest.raises(TrainingSetupError, match="is a Linear, not an nn.ModuleList"):
        get_activation_checkpointed_model(_tiny_lm(), layers_fqn="head")


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
