"""Collectives for losses whose negatives are the global batch (MuLan/CLIP contrastive training).

`gather_with_grad(x)` concatenates every process's `x` (B_r, ...) in rank order into (sum B_r, ...), and its
backward returns to each process the gradient of its own slice summed over all processes. Every process then
computes the same global loss L from the gathered tensors, and after DDP averages the parameter gradients
(1/W of the sum over the W processes) each parameter's gradient is exactly dL/dtheta of one process
computing L on the whole global batch (tested in tests/nn/test_distributed_contrastive.py).

Outside a torch.distributed process group of 2 or more processes, every function here returns its input
unchanged, so single-process code pays nothing. Batches may differ in size between processes (the last
batch of an epoch); sizes are exchanged first.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Processes in the default process group (1 when torch.distributed is not initialised)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def _sizes(n: int, device: torch.device) -> list[int]:
    local = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(local) for _ in range(world_size())]
    dist.all_gather(sizes, local)
    return [int(s) for s in sizes]


def _gather(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    biggest = max(sizes)
    padded = x
    if x.shape[0] < biggest:
        padded = torch.cat([x, x.new_zeros((biggest - x.shape[0], *x.shape[1:]))])
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        sizes = _sizes(x.shape[0], x.device)
        ctx.sizes, ctx.rank = sizes, rank()
        return _gather(x, sizes)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every process's loss depends on this process's rows
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All processes' `x` concatenated along dim 0 (rank order), differentiable (see the module docstring)."""
    if world_size() < 2:
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """All processes' `x` concatenated along dim 0 (rank order), e.g. integer labels; no gradient."""
    if world_size() < 2:
        return x
    return _gather(x, _sizes(x.shape[0], x.device))


__all__ = ["gather_no_grad", "gather_with_grad", "rank", "world_size"]
