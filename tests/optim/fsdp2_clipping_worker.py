"""Run under torchrun with 2 CPU ranks by test_gradient_clipping.py (not a test module itself).

Shards a tiny model with FSDP2 ``fully_shard`` and checks, on every rank, that the clippers' norms and the
clipped gradients equal those of the unsharded model on the same batch, that AdamW built on the sharded
model steps like AdamW on the unsharded one, and that Muon orthogonalizes the whole of a sharded matrix.
Writes ``rank<N>.ok`` into the directory given as argument.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from modalities.optim.gradient_clipping import get_fsdp2_gradient_clipper, get_fsdp2_logging_only_gradient_clipper
from modalities.optim.muon import get_muon
from modalities.optim.optimizers import get_adam_w
from modalities.training.distributed import exit_process
from hand_muon import NS_TOLERANCE, newton_schulz_by_hand
from tiny_model import TinyLM, tiny_batch

TORCH_NORM = {"P1_NORM": 1.0, "P2_NORM": 2.0, "MAX_NORM": float("inf")}


def backward(model: torch.nn.Module) -> None:
    inputs, targets = tiny_batch()  # the same batch on every rank: FSDP's averaged grads equal the plain ones
    logits = model({"input_ids": inputs})["logits"]
    F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1)).backward()


def full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def main(out_dir: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("dp_shard",))
    reference = TinyLM(vocab_size=13, dim=8)  # 13 embedding rows: uneven shards
    model = copy.deepcopy(reference)
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    backward(model)
    backward(reference)
    assert all(isinstance(p.grad, DTensor) for p in model.parameters())

    for norm_name, norm_type in TORCH_NORM.items():
        norm = get_fsdp2_logging_only_gradient_clipper(model, norm_name, device_mesh=mesh).clip_gradients()
        expected = torch.nn.utils.get_total_norm([p.grad for p in reference.parameters()], norm_type=norm_type)
        assert not isinstance(norm, DTensor), type(norm)
        torch.testing.assert_close(norm, expected, msg=f"{norm_name} on rank {rank}")
    # The local shards alone give another norm, so an unreduced norm would have failed above.
    local = torch.nn.utils.get_total_norm([p.grad.to_local() for p in model.parameters()], norm_type=2.0)
    assert not torch.allclose(local, expected), "local shards carry the whole norm: the test proves nothing"

    expected = torch.nn.utils.clip_grad_norm_(reference.parameters(), max_norm=0.01)
    assert expected > 0.01
    norm = get_fsdp2_gradient_clipper(model, max_norm=0.01, norm_type="P2_NORM", device_mesh=mesh).clip_gradients()
    torch.testing.assert_close(norm, expected)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(full(p.grad), q.grad, msg=f"clipped grad of {name} on rank {rank}")

    fields = dict(lr=0.05, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.5,
                  weight_decay_groups_excluded=["embedding", "layernorm"])
    optimizer = get_adam_w(wrapped_model=model, **fields)
    reference_optimizer = get_adam_w(wrapped_model=reference, **fields)
    group_sizes = [len(g["params"]) for g in optimizer.param_groups]
    assert group_sizes == [len(g["params"]) for g in reference_optimizer.param_groups]
    optimizer.step()
    reference_optimizer.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(full(p.detach()), q.detach(), msg=f"{name} after AdamW on rank {rank}")

    check_muon_orthogonalizes_whole_sharded_matrices(rank)
    check_layouts_in_one_collective(rank)
    check_replicas_are_counted_once(rank)
    check_a_rank_without_gradients_takes_part(rank)
    check_meshes_not_spanning_the_ranks_keep_their_own_norms(rank)

    (out_dir / f"rank{rank}.ok").write_text("ok")
    dist.barrier()  # tear gloo down together: a rank leaving early can abort its peer's background thread
    dist.destroy_process_group()


def check_muon_orthogonalizes_whole_sharded_matrices(rank: int) -> None:
    """optimizer/muon on FSDP2 (each rank holds half the rows of a matrix, 13 embedding rows split unevenly):
    one step gives the update Newton-Schulz computes on the whole matrix (worked out by hand in float64; torch
    iterates in bfloat16) and AdamW's update elsewhere; the momentum stays sharded."""
    mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("dp_shard",))
    reference = TinyLM(vocab_size=13, dim=8)
    model = copy.deepcopy(reference)
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    fields = dict(lr=0.02, weight_decay=0.5, weight_decay_groups_excluded=["embedding", "layernorm"])
    optimizer, reference_optimizer = get_muon(wrapped_model=model, **fields), get_muon(wrapped_model=reference, **fields)
    backward(model)
    for p, q in zip(model.parameters(), reference.parameters()):
        q.grad = full(p.grad).clone()  # the very same gradient (FSDP's mean and a plain one round differently)
    before = {name: full(p.detach()).clone() for name, p in model.named_parameters()}
    optimizer.step()
    reference_optimizer.step()
    muon_names = {f"blocks.{i}.{layer}.weight" for i in range(2) for layer in ("attn", "mlp")}
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        if name not in muon_names:
            torch.testing.assert_close(full(p.detach()), q.detach(), msg=f"{name} after AdamW on rank {rank}")
            continue
        # first step: momentum (1 - m) g, Nesterov look-ahead g + m (buffer - g); an 8 x 8 matrix: lr scale 1
        grad = q.grad.double()
        update = newton_schulz_by_hand(grad + 0.95 * ((1 - 0.95) * grad - grad))
        expected = before[name].double() * (1 - 0.02 * 0.5) - 0.02 * update
        torch.testing.assert_close(full(p.detach()).double(), expected, rtol=0, atol=0.02 * NS_TOLERANCE,
                                   msg=f"{name} after Muon on rank {rank}")
        buffer = optimizer.state[p]["momentum_buffer"]
        assert isinstance(buffer, DTensor) and buffer.to_local().shape == (4, 8), (name, type(buffer))


def collectives_of(call):
    """(result of ``call``, the number of collectives it issued)."""
    from torch.distributed.tensor.debug import CommDebugMode

    with CommDebugMode() as comm:
        result = call()
    return result, comm.get_total_counts()


def check_layouts_in_one_collective(rank: int) -> None:
    """Gradients of three layouts on a 1-D mesh (rows sharded, columns sharded, replicated, as tensor-parallel
    weights and norms are): the norm over the full gradients, in one collective."""
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("tp",))
    full_grads = [torch.arange(12.0).reshape(4, 3) - 5, torch.arange(8.0).reshape(2, 4) / 3, torch.tensor([3.0, -4.0])]
    layouts = [[Shard(0)], [Shard(1)], [Replicate()]]
    params = []
    for grad, placements in zip(full_grads, layouts):
        param = torch.nn.Parameter(distribute_tensor(torch.zeros_like(grad), mesh, placements))
        param.grad = distribute_tensor(grad.clone(), mesh, placements)  # a replica may share the full tensor
        params.append(param)
    model = torch.nn.ParameterList(params)
    flat = torch.cat([g.flatten() for g in full_grads])
    # worked out by hand: |flat|_1 = 36 + 28/3 + 7, |flat|_2^2 = 146 + 140/9 + 25, max |x| = 6
    expected = {"P1_NORM": 36 + 28 / 3 + 7, "P2_NORM": (146 + 140 / 9 + 25) ** 0.5, "MAX_NORM": 6.0}
    for norm_name, value in expected.items():
        assert abs(torch.linalg.vector_norm(flat, ord=TORCH_NORM[norm_name]).item() - value) < 1e-5
        clipper = get_fsdp2_logging_only_gradient_clipper(model, norm_name, device_mesh=mesh)
        norm, count = collectives_of(clipper.clip_gradients)
        assert abs(norm.item() - value) < 1e-5, (norm_name, norm.item(), value, rank)
        assert count == 1, f"{norm_name}: {count} collectives for three layouts on rank {rank}"
    clipper = get_fsdp2_gradient_clipper(model, max_norm=1.0, norm_type="P2_NORM", device_mesh=mesh)
    clipper.clip_gradients()
    scale = 1.0 / (expected["P2_NORM"] + 1e-6)
    for param, grad in zip(params, full_grads):
        torch.testing.assert_close(param.grad.full_tensor(), grad * scale)


def check_replicas_are_counted_once(rank: int) -> None:
    """HSDP, 2 replicas x 1 shard: every gradient is a copy on both ranks, so the norm is one copy's, not
    sqrt(2) times it; in one collective."""
    mesh = init_device_mesh("cpu", (2, 1), mesh_dim_names=("dp_replicate", "dp_shard"))
    reference = TinyLM(vocab_size=13, dim=8)
    model = copy.deepcopy(reference)
    fully_shard(model, mesh=mesh)
    backward(model)
    backward(reference)
    for norm_name, norm_type in TORCH_NORM.items():
        expected = torch.nn.utils.get_total_norm([p.grad for p in reference.parameters()], norm_type=norm_type)
        clipper = get_fsdp2_logging_only_gradient_clipper(model, norm_name, device_mesh=mesh)
        norm, count = collectives_of(clipper.clip_gradients)
        torch.testing.assert_close(norm, expected, msg=f"HSDP {norm_name} on rank {rank}")
        assert count == 1, f"HSDP {norm_name}: {count} collectives on rank {rank}"


def check_a_rank_without_gradients_takes_part(rank: int) -> None:
    """A rank holding no gradient (a pipeline stage whose parameters got none) still meets the others in the
    one all-reduce, with 0: the total is the other rank's shards' norm, and nobody waits forever."""
    from torch.distributed.tensor import Shard, distribute_tensor

    from modalities.optim.gradient_clipping import total_gradient_norm

    mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("dp_shard",))
    full_grad = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    param = torch.nn.Parameter(distribute_tensor(torch.zeros_like(full_grad), mesh, [Shard(0)]))
    grad = distribute_tensor(full_grad.clone(), mesh, [Shard(0)])  # a collective: made on both ranks
    param.grad = grad if rank == 0 else None
    # rank 0 holds rows 0-1: 1 + 4 + 9 + 16 = 30
    norm, count = collectives_of(lambda: total_gradient_norm(iter([param]), 2.0))
    assert abs(norm.item() - 30**0.5) < 1e-6, (norm.item(), rank)
    assert count == 1, (count, rank)


def check_meshes_not_spanning_the_ranks_keep_their_own_norms(rank: int) -> None:
    """Gradients on a one-rank mesh each (a layout the single all-reduce does not fit): every rank's norm is its
    own gradients', combined over their layouts, and nothing is summed across ranks."""
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    from modalities.optim.gradient_clipping import total_gradient_norm

    own = init_device_mesh("cpu", (2, 1), mesh_dim_names=("ranks", "own"))["own"]
    grads = [torch.tensor([3.0, 4.0]) * (rank + 1), torch.tensor([[12.0]]) * (rank + 1)]
    params = []
    for grad, placements in zip(grads, [[Shard(0)], [Replicate()]]):
        param = torch.nn.Parameter(distribute_tensor(torch.zeros_like(grad), own, placements))
        param.grad = distribute_tensor(grad.clone(), own, placements)
        params.append(param)
    # by hand: sqrt(9 + 16 + 144) = 13 on rank 0, 26 on rank 1; the max norm 12 and 24
    assert abs(total_gradient_norm(params, 2.0).item() - 13 * (rank + 1)) < 1e-5
    assert abs(total_gradient_norm(params, float("inf")).item() - 12 * (rank + 1)) < 1e-5


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    exit_process(0)  # finalization can abort while gloo threads release their last tensors: see exit_process
