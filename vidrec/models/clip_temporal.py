"""What :class:`~vidrec.models.video_clip.VideoCLIP` adds to per-frame CLIP: temporal token merging (TempMe's
clips of neighbouring frames, reduced by ToMe's :func:`bipartite_soft_matching`, on a :func:`parse_schedule`
schedule), temporal prompts (STOP, :class:`TemporalPrompts`) and the fusion head over clips
(:class:`TemporalFusion`: meanP or seqTransf)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.errors import ConfigError


# --------------------------------------------------------------------------------------------
# token merging (TempMe: clips of neighbouring frames, ToMe's bipartite soft matching)


def parse_schedule(value: str | int | Sequence[int] | None) -> tuple[int, ...]:
    """``"2-2-2"`` / ``[2, 2, 2]`` / ``"off"`` → ``(2, 2, 2)`` / ``()``."""
    if value is None or value == "" or (isinstance(value, str) and value.lower() in ("off", "none", "0")):
        return ()
    if isinstance(value, int):
        return (value,)
    if isinstance(value, str):
        try:
            return tuple(int(p) for p in value.replace(",", "-").split("-") if p.strip())
        except ValueError:
            raise ConfigError(f"merge schedule {value!r}: expected numbers joined by '-', e.g. 2-2-2") from None
    return tuple(int(v) for v in value)


def default_merge_layers(num_layers: int, stages: int) -> tuple[int, ...]:
    """TempMe's 6-8-10 for a 12-layer ViT; for other depths every second layer from the middle,
    squeezed into the last layers when the tower is too shallow."""
    if stages == 0:
        return ()
    layers = [num_layers // 2 + 2 * i for i in range(stages)]
    if layers[-1] >= num_layers:
        layers = list(range(max(1, num_layers - stages), num_layers))
    if len(layers) != stages or layers[0] < 1:
        raise ConfigError(f"model.merge_frames: {stages} merge stages do not fit a {num_layers}-layer vision tower")
    return tuple(layers)


def bipartite_soft_matching(
    x: torch.Tensor, size: torch.Tensor, metric: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge ``r`` tokens of ``x`` (S, N, D): alternate tokens form sets A and B, each A token is
    matched to its most similar B token (cosine of ``metric``), the ``r`` best pairs are merged
    (size-weighted average). Returns ``(x, size, metric)`` with N - r tokens."""
    if r <= 0:
        return x, size, metric
    a, b = metric[:, ::2], metric[:, 1::2]
    r = min(r, a.shape[1])
    scores = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).transpose(1, 2)  # (S, Na, Nb)
    node_max, node_idx = scores.max(dim=-1)
    edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]  # (S, Na, 1)
    unm_idx, src_idx = edge_idx[:, r:], edge_idx[:, :r]
    dst_idx = node_idx[..., None].gather(1, src_idx)  # (S, r, 1)

    def merge(t: torch.Tensor) -> torch.Tensor:
        c = t.shape[-1]
        src, dst = t[:, ::2], t[:, 1::2]
        unm = src.gather(1, unm_idx.expand(-1, -1, c))
        moved = src.gather(1, src_idx.expand(-1, -1, c))
        dst = dst.scatter_reduce(1, dst_idx.expand(-1, -1, c), moved, reduce="sum")
        return torch.cat([unm, dst], dim=1)

    new_size = merge(size)
    x = merge(x * size) / new_size
    metric = merge(metric * size) / new_size
    return x, new_size, metric


# --------------------------------------------------------------------------------------------
# temporal prompts (STOP) and fusion heads


class TemporalPrompts(nn.Module):
    """``K`` prompt tokens per frame: a learned base plus a term driven by the frame's change.

    The change of frame t is the mean absolute difference of its patch tokens to frame t-1
    (frame 0 uses frame 1's); a bottleneck MLP maps it to K×D. The MLP's output layer starts at
    zero, so at initialisation the prompts are the base tokens and training learns the dynamics.
    """

    def __init__(self, dim: int, num_prompts: int, *, bottleneck: int = 64) -> None:
        super().__init__()
        self.num_prompts = num_prompts
        self.base = nn.Parameter(torch.randn(num_prompts, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, num_prompts * dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        b, t, _, d = patches.shape  # (B, T, P, D)
        if t > 1:
            diff = (patches[:, 1:] - patches[:, :-1]).abs().mean(dim=2)  # (B, T-1, D)
            diff = torch.cat([diff[:, :1], diff], dim=1)  # (B, T, D)
        else:
            diff = torch.zeros(b, t, d, dtype=patches.dtype, device=patches.device)
        dyn = self.up(F.gelu(self.down(self.norm(diff)))).view(b, t, self.num_prompts, d)  # (B, T, K, D)
        return self.base + dyn


class TemporalFusion(nn.Module):
    """Fuse clip embeddings over time: ``meanP`` (mean) or ``seqTransf`` (CLIP4Clip-style
    temporal transformer with position embeddings and a residual). The transformer's output
    projections start at zero, so an untrained ``seqTransf`` equals ``meanP``."""

    def __init__(self, dim: int, kind: str = "meanP", *, num_layers: int = 2, max_positions: int = 64) -> None:
        super().__init__()
        if kind not in ("meanP", "seqTransf"):
            raise ConfigError(f"model.fusion: {kind!r} is not a fusion head; use meanP or seqTransf")
        self.kind = kind
        if kind == "seqTransf":
            self.pos = nn.Embedding(max_positions, dim)
            nn.init.normal_(self.pos.weight, std=0.01)
            layer = nn.TransformerEncoderLayer(
                dim, max(1, dim // 64), dim * 4, dropout=0.0, batch_first=True, norm_first=True
            )
            self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
            for blk in self.transformer.layers:
                nn.init.zeros_(blk.self_attn.out_proj.weight)
                nn.init.zeros_(blk.self_attn.out_proj.bias)
                nn.init.zeros_(blk.linear2.weight)
                nn.init.zeros_(blk.linear2.bias)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, T', E), ``positions`` (T',) frame positions → (sequence (B, T', E), pooled (B, E))."""
        if self.kind == "seqTransf":
            pos = self.pos(positions.clamp(max=self.pos.num_embeddings - 1))  # (T', E)
            # Pre-norm blocks keep a residual stream: the output is x + pos + (what the blocks add);
            # dropping pos keeps the untrained head (zero output projections) equal to meanP.
            x = self.transformer(x + pos) - pos  # (B, T', E)
        return x, x.mean(dim=1)
