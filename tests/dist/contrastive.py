"""Under torchrun: the retrieval loss of each process's half of a fixed batch, with DDP, against one
process on the whole batch. Rank 0 writes ``OUT.json``: both losses and the largest gradient difference.

``python -m torch.distributed.run --nproc_per_node 2 -m tests.dist.contrastive OUT.json``
"""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist


def batch(n: int = 6) -> dict:
    g = torch.Generator().manual_seed(1)
    words = ["red", "blue", "green", "cat", "dog", "left", "right", "up"]
    caps = [" ".join(words[(i * 3 + k) % len(words)] for k in range(3)) for i in range(n)]
    return {"video": torch.randn(n, 3, 4, 32, 32, generator=g), "caption": caps}  # (B, C, T, H, W)


def model() -> torch.nn.Module:
    from vidrec.models.registry import create_model

    torch.manual_seed(0)
    return create_model("clip_video_tiny", num_classes=0, num_frames=4, merge="2", num_prompts=2)


def grads(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in m.named_parameters() if p.grad is not None}


def main(out: str) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP

    from vidrec.engine.retrieval import retrieval_step

    full = batch()
    ref = model()  # one process on the whole batch, before the process group exists (nothing is gathered)
    ref_loss = retrieval_step(ref, full)
    ref_loss.backward()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    # uneven shares (4 + 2): the gather pads and cuts them
    cut = [0, 4, 6] if world == 2 else [round(len(full["caption"]) * r / world) for r in range(world + 1)]
    part = {"video": full["video"][cut[rank] : cut[rank + 1]], "caption": full["caption"][cut[rank] : cut[rank + 1]]}
    ddp = DDP(model())
    loss = retrieval_step(ddp, part)
    loss.backward()
    losses = [None] * world
    dist.all_gather_object(losses, loss.item())
    if rank == 0:
        g, r = grads(ddp.module), grads(ref)
        diff = max(float((g[k] - r[k]).abs().max()) for k in r)
        scale = max(float(v.abs().max()) for v in r.values())
        with open(out, "w") as f:
            json.dump({"losses": losses, "reference": float(ref_loss), "max_grad_diff": diff, "max_grad": scale,
                       "same_params": sorted(g) == sorted(r), "world": world}, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
