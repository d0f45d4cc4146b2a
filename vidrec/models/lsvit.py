"""LS-ViT (seed 001): a timm ViT per frame with short-term (SMIF) and long-term (LMI) motion modules.

::

    video (B, C, T, H, W)
      │  fold time into batch                                  (B*T, C, H, W)
    patch_embed (timm ViT, patch 16)                           (B*T, L, D)   L = (H/16)·(W/16)
      │  unfold                                                (B, T, L, D)
    SMIF: m_t = mean of (x_s − x_{s−1}) over a window of
          `smif_window` frames centred on t; x_t + α·W m_t      (B, T, L, D)  α learnable
      │  fold                                                  (B*T, L, D)
    cls token + position embedding → ViT blocks → norm        (B*T, 1+L, D)
      │  class token per frame                                 (B, T, D)
    LMI: temporal position embedding, self-attention across
         frames + MLP (pre-norm residual)                      (B, T, D)
      │  mean over time                                        (B, D)        ← forward_features
      │  dropout → linear
    logits                                                     (B, num_classes)

Frame differences of patch embeddings are patch embeddings of pixel differences (the patch
projection is linear), so SMIF feeds the ViT the short-term motion of every patch from its first
block on; LMI relates the per-frame summaries across the whole clip. ImageNet ViT weights from timm
(``vit_base_patch16_224`` and friends) load into the ViT part; SMIF and LMI start from scratch,
and the position embedding is resampled when the image size differs (at load time for the
weights, at run time for clips of another size).
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.errors import ConfigError
from vidrec.models.base import InputSpec, VideoClassifier
from vidrec.models.registry import PretrainedCfg, build_variant, register_model

VIT_MEAN = (0.5, 0.5, 0.5)  # timm's augreg ViT weights are normalised to [-1, 1]
VIT_STD = (0.5, 0.5, 0.5)


class SMIF(nn.Module):
    """Short-term motion-informed features: windowed frame differences fused by a learnable α."""

    def __init__(self, dim: int, window: int = 5, alpha: float = 0.5) -> None:
        super().__init__()
        if window < 1:
            raise ConfigError(f"model.smif_window must be >= 1 (got {window})")
        self.window = window
        self.proj = nn.Linear(dim, dim)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def motion(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, L, D)`` → mean frame difference in a window centred on each frame, same shape."""
        b, t, n, d = x.shape  # n: tokens per frame
        diff = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)  # (B, T, L, D); first frame: 0
        if self.window == 1 or t == 1:
            return diff
        seq = diff.permute(0, 2, 3, 1).reshape(b, n * d, t)  # (B, L*D, T)
        left, right = (self.window - 1) // 2, self.window // 2
        summed = F.avg_pool1d(F.pad(seq, (left, right)), self.window, stride=1) * self.window  # (B, L*D, T)
        count = F.avg_pool1d(
            F.pad(torch.ones(1, 1, t, device=x.device, dtype=x.dtype), (left, right)), self.window, stride=1
        )
        mean = summed / (count * self.window)  # frames outside the clip do not count
        return mean.reshape(b, n, d, t).permute(0, 3, 1, 2)  # (B, T, L, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * self.proj(self.motion(x))  # (B, T, L, D)


class LMI(nn.Module):
    """Long-term motion interaction: pre-norm self-attention and MLP across the frames of a clip."""

    def __init__(
        self, dim: int, num_heads: int, max_frames: int = 64, mlp_ratio: float = 2.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.time_embed = nn.Parameter(torch.zeros(1, max_frames, dim))
        nn.init.trunc_normal_(self.time_embed, std=0.02)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t > self.time_embed.shape[1]:
            raise ConfigError(
                f"LS-ViT: clips of {t} frames exceed max_frames={self.time_embed.shape[1]}; raise model.max_frames"
            )
        x = x + self.time_embed[:, :t]  # (B, T, D)
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]  # (B, T, D)
        return x + self.mlp(self.norm2(x))  # (B, T, D)


class LSViT(VideoClassifier):
    """ViT backbone per frame + SMIF before the blocks + LMI across frames + mean pool + head."""

    def __init__(
        self,
        *,
        num_classes: int,
        image_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        smif_window: int = 5,
        lmi_heads: int | None = None,
        max_frames: int = 64,
        dropout: float = 0.1,
        drop_path: float = 0.0,
        mean: tuple[float, float, float] = VIT_MEAN,
        std: tuple[float, float, float] = VIT_STD,
        num_frames: int = 16,
    ) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        if image_size % patch_size:
            raise ConfigError(f"model.image_size ({image_size}) must be a multiple of model.patch_size ({patch_size})")
        # image_size sets the position-embedding grid (that of the pretrained weights); clips of another
        # size (a multiple of patch_size) are accepted, the grid is resampled on the fly.
        if embed_dim % num_heads:
            raise ConfigError(f"model.embed_dim ({embed_dim}) must be divisible by model.num_heads ({num_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1) (got {dropout})")
        self.vit = VisionTransformer(
            img_size=image_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            num_classes=0,
            drop_path_rate=drop_path,
            dynamic_img_size=True,  # any clip size (a multiple of the patch): position grid resampled
        )
        self.smif = SMIF(embed_dim, smif_window)
        self.lmi = LMI(embed_dim, lmi_heads or num_heads, max_frames=max_frames)
        self.norm = nn.LayerNorm(embed_dim)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, num_classes)
        self.num_features = embed_dim
        self.num_classes = num_classes
        self.image_size = image_size
        self.input_spec = InputSpec(num_frames=num_frames, image_size=image_size, mean=mean, std=std)

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = video.shape
        vit = self.vit
        patch = self.vit.patch_embed.patch_size[0]
        if h % patch or w % patch:
            raise ConfigError(
                f"LS-ViT: clip size {h}x{w} is not a multiple of the patch size {patch}; set data.image_size"
            )
        x = vit.patch_embed(video.transpose(1, 2).reshape(b * t, c, h, w))  # (B*T, h', w', D)
        grid = x.shape[1:3]
        x = self.smif(x.reshape(b, t, -1, x.shape[-1]))  # (B, T, L, D), L = h'·w'
        x = x.reshape(b * t, *grid, x.shape[-1])  # (B*T, h', w', D)
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(x)))  # (B*T, 1+L, D), position grid resampled to h'×w'
        x = vit.norm(vit.blocks(x))  # (B*T, 1+L, D)
        x = x[:, 0].reshape(b, t, -1)  # class token per frame: (B, T, D)
        x = self.lmi(x)  # (B, T, D)
        return self.norm(x.mean(dim=1))  # (B, D)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """The (ImageNet-initialised) ViT; SMIF, LMI and the head train from the start."""
        return self.vit.parameters()

    def no_weight_decay(self) -> set[str]:
        return {"vit.pos_embed", "vit.cls_token", "lmi.time_embed", "smif.alpha"}

    def remap_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A timm ViT checkpoint → ``vit.*`` (its ``head.*`` is reported, not loaded); pos_embed resampled."""
        if any(k.startswith(("vit.", "smif.", "lmi.")) for k in sd):
            return sd
        from timm.layers import resample_abs_pos_embed

        out: dict[str, torch.Tensor] = {}
        for key, value in sd.items():
            pos = self.vit.pos_embed
            if key == "pos_embed" and pos is not None and value.shape != pos.shape:
                grid = self.vit.patch_embed.grid_size
                value = resample_abs_pos_embed(value, new_size=list(grid), num_prefix_tokens=1)
            out[f"vit.{key}"] = value
        return out


_BASE = InputSpec(num_frames=16, image_size=224, mean=VIT_MEAN, std=VIT_STD)
_TINY = InputSpec(num_frames=8, image_size=112, mean=VIT_MEAN, std=VIT_STD)


def _timm_vit(name: str) -> PretrainedCfg:
    """timm's ImageNet-21k → 1k ViT weights for the per-frame ViT (SMIF and LMI start from scratch)."""
    return PretrainedCfg(
        "imagenet21k_ft_1k",
        f"timm:{name}",
        image_size=224,
        mean=VIT_MEAN,
        std=VIT_STD,
        num_classes=1000,
        dataset="ImageNet-1k",
        part="vit",
    )


@register_model("lsvit", input=_BASE, pretrained=[_timm_vit("vit_base_patch16_224.augreg2_in21k_ft_in1k")])
def lsvit(**kwargs: Any) -> LSViT:
    """LS-ViT (seed 001): ViT-B/16 per frame, SMIF short-term and LMI long-term motion modules."""
    return build_variant("lsvit", dict(drop_path=0.1, num_frames=_BASE.num_frames), **kwargs)


@register_model("lsvit_tiny", input=_TINY, pretrained=[_timm_vit("vit_tiny_patch16_224.augreg_in21k_ft_in1k")])
def lsvit_tiny(**kwargs: Any) -> LSViT:
    """LS-ViT on ViT-Ti/16 (192 wide, 3 heads): the CPU-sized member of the family."""
    model_args = dict(image_size=112, embed_dim=192, num_heads=3, num_frames=_TINY.num_frames)
    return build_variant("lsvit_tiny", model_args, **kwargs)
