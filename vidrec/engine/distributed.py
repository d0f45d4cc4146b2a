"""The few collectives vidrec needs beyond what 🤗 accelerate does for it.

accelerate runs DDP, shards the loaders and gathers metrics; a contrastive loss also needs the
*negatives* of every process, with gradients flowing back to the process that made them
(OpenCLIP's ``gather_with_grad``). :func:`all_gather_with_grad` does that on every backend
(gloo on CPUs, NCCL on GPUs), for batches of unequal size too.

Everything here is a no-op in a single process, so library code calls it unconditionally.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.distributed as dist

from vidrec.errors import VidrecError


def world_size() -> int:
    """Processes in the default group (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def launched_rank() -> int:
    """This process's rank as the launcher set it (``RANK``), before any process group exists."""
    return int(os.environ.get("RANK", "0") or 0)


def check_launch() -> None:
    """Refuse the one launch that silently runs a single process: ``accelerate launch --cpu
    --num_processes N`` starts several CPU processes only through ``mpirun``; without it, it starts
    one (with ``MASTER_PORT`` set and no ``WORLD_SIZE``), which would train alone while the user
    believes N processes share the work."""
    env = os.environ
    if env.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_PORT" in env and "WORLD_SIZE" not in env:
        raise VidrecError(
            "accelerate launch --cpu with several processes started only one (accelerate needs mpirun for that). "
            "For N CPU processes use: accelerate launch --multi_gpu --num_processes N -m vidrec train ... "
            "--set train.device=cpu, or torchrun --nproc_per_node N -m vidrec train ..."
        )


@contextmanager
def main_process_first(*, cpu: bool) -> Iterator[bool]:
    """Run the block on rank 0 first and on the other processes after it (they see what it wrote:
    a finished checkpoint swap, a generated dataset); yields whether this is rank 0.

    Under a launcher this starts accelerate's process group early (``cpu``: gloo, as the trainer's
    accelerator will); in one process it is a plain block.
    """
    state = launch_state(cpu=cpu)
    if state is None:
        yield True
        return
    with state.main_process_first():
        yield state.is_main_process


def launch_state(*, cpu: bool) -> Any:
    """accelerate's ``PartialState`` (process group, rank, this process's device) under a launcher that
    started several processes; None in a single process."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=cpu)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather ``x`` (rows padded to ``max_rows``); the backward pass sends every process the sum of
    the gradients all processes computed for its rows (a reduce-scatter, built from one all-reduce so
    that it runs on gloo as well as on NCCL)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, max_rows: int) -> torch.Tensor:
        n = x.shape[0]
        ctx.rows = n
        ctx.max_rows = max_rows
        padded = x.new_zeros((max_rows, *x.shape[1:]))
        padded[:n] = x
        out = [torch.empty_like(padded) for _ in range(dist.get_world_size())]
        dist.all_gather(out, padded.contiguous())
        return torch.stack(out)  # (W, max_rows, ...)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every process's gradient for every process's rows
        return grad[dist.get_rank(), : ctx.rows], None


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``x`` (n_r, ...) of every process concatenated in rank order: (sum n_r, ...).

    This process's rows keep their autograd graph, and the gradients that other processes compute
    for them (where they serve as negatives) are added in the backward pass, so a loss computed on
    the gathered batch by every process, with DDP averaging the parameter gradients, gives exactly the
    gradients of one process on the concatenated batch. Processes may hold different row counts.
    """
    w = world_size()
    if w == 1:
        return x
    counts = torch.tensor([x.shape[0]], device=x.device)
    all_counts = [torch.empty_like(counts) for _ in range(w)]
    dist.all_gather(all_counts, counts)
    sizes = [int(c) for c in all_counts]
    stacked = _GatherWithGrad.apply(x, max(sizes))  # (W, max_rows, ...)
    return torch.cat([stacked[r, :n] for r, n in enumerate(sizes)])
