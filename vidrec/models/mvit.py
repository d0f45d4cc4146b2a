"""Multiscale Vision Transformers (MViT v1 B, MViTv2 S; Fan et al. 2021, Li et al. 2022): torchvision's.

::

    video (B, 3, T, H, W)
      │  conv_proj: 3×7×7 cube, stride 2×4×4                          (B, 96, T/2, H/4, W/4)
      │  flatten, class token, position encoding                       (B, 1 + T/2·H/4·W/4, 96)
    blocks: multiscale attention with pooled queries / keys / values; the token grid shrinks and the width
            grows stage by stage (96 → 768)                            (B, 1 + T/2·H/32·W/32, 768)
      │  norm, class token                                             (B, 768)   ← forward_features
      │  dropout → linear
    logits                                                             (B, num_classes)

The parameters and outputs are torchvision's (its ``head.1`` is the ``head`` here). The position
encoding (v1: absolute; v2: relative-position tables) is built for one clip size: ``num_frames`` ×
``image_size``² (default 16×224², the size of the Kinetics weights; ``model.num_frames`` /
``model.image_size`` build it for another, e.g. 8×64² from scratch, and then the Kinetics weights do
not fit). A clip of another size is refused with the settings to change.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from vidrec.errors import ConfigError
from vidrec.models.base import InputSpec, VideoClassifier
from vidrec.models.registry import PretrainedCfg, build_variant, register_model

MVIT_MEAN = (0.45, 0.45, 0.45)
MVIT_STD = (0.225, 0.225, 0.225)
_SPEC = InputSpec(num_frames=16, image_size=224, mean=MVIT_MEAN, std=MVIT_STD)


STAGE_STARTS = (1, 3, 14)  # the blocks that pool queries 1×2×2 (the token grid halves) and double the heads


def block_settings(*, v2: bool) -> list[Any]:
    """The 16 blocks of MViT-B v1 / MViTv2-S (as in the papers and torchvision's builders), by their rules.

    Stage ``k`` (0-3) has ``2**k`` heads and width ``96 * 2**k``; keys and values are pooled 1×s×s with
    ``s = 8 / 2**k`` (the same final grid in every stage). v1 widens in the block before a stage starts and
    pools queries only there; v2 widens in the first block of a stage and pools queries (3×3×3) everywhere.
    """
    from torchvision.models.video.mvit import MSBlockConfig

    stage = [sum(i >= s for s in STAGE_STARTS) for i in range(16)]  # 0, 1, 1, 2, ..., 2, 3, 3
    blocks: list[MSBlockConfig] = []
    for i, k in enumerate(stage):
        starts = i in STAGE_STARTS
        widen_at = k if v2 else stage[min(i + 1, 15)]
        kv = 8 // 2**k
        blocks.append(
            MSBlockConfig(
                num_heads=2**k,
                input_channels=blocks[-1].output_channels if blocks else 96,
                output_channels=96 * 2**widen_at,
                kernel_q=[3, 3, 3] if v2 or starts else [],
                kernel_kv=[3, 3, 3],
                stride_q=[1, 2, 2] if starts else ([1, 1, 1] if v2 else []),
                stride_kv=[1, kv, kv],
            )
        )
    return blocks


class MViT(VideoClassifier):
    """torchvision's MViT (v1 B or v2 S) with vidrec's interface."""

    def __init__(
        self,
        *,
        arch: Literal["mvit_v1_b", "mvit_v2_s"],
        num_classes: int,
        dropout: float = 0.5,
        drop_path: float = 0.2,
        num_frames: int = 16,
        image_size: int = 224,
    ) -> None:
        super().__init__()
        import torchvision.models.video as tvv

        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1) (got {dropout})")
        # conv_proj strides 2×4×4, then three stages halve the grid: 32 pixels and 2 frames per token at the end
        if num_frames < 2 or num_frames % 2 or image_size < 32 or image_size % 32:
            raise ConfigError(
                f"MViT takes an even model.num_frames and a model.image_size that is a multiple of 32 "
                f"(got {num_frames} and {image_size})"
            )
        v2 = arch == "mvit_v2_s"
        # torchvision's MViT class with its builders' settings; the builders fix the clip at 16×224²
        net = tvv.MViT(
            spatial_size=(image_size, image_size),
            temporal_size=num_frames,
            block_setting=block_settings(v2=v2),
            residual_pool=v2,
            residual_with_cls_embed=False,
            rel_pos_embed=v2,
            proj_after_attn=v2,
            stochastic_depth_prob=drop_path,
            num_classes=num_classes,
        )
        self.input_spec = InputSpec(num_frames=num_frames, image_size=image_size, mean=MVIT_MEAN, std=MVIT_STD)
        self.conv_proj, self.pos_encoding, self.blocks, self.norm = (
            net.conv_proj,
            net.pos_encoding,
            net.blocks,
            net.norm,
        )
        self.drop = nn.Dropout(dropout)
        self.head: nn.Linear = net.head[1]
        self.num_features = self.head.in_features
        self.num_classes = num_classes

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        t, h, w = video.shape[2:]
        spec = self.input_spec
        if (t, h, w) != (spec.num_frames, spec.image_size, spec.image_size):
            raise ConfigError(
                f"this MViT is built for {spec.num_frames}×{spec.image_size}² clips, got {t}×{h}×{w}: set "
                f"data.num_frames={spec.num_frames} data.image_size={spec.image_size}, or build the model for "
                f"the clips with model.num_frames={t} model.image_size={h}"
            )
        x = self.conv_proj(video)  # (B, 96, T/2, H/4, W/4)
        x = self.pos_encoding(x.flatten(2).transpose(1, 2))  # (B, 1 + N, 96), class token first
        thw = (self.pos_encoding.temporal_size, *self.pos_encoding.spatial_size)
        for block in self.blocks:
            x, thw = block(x, thw)  # the grid shrinks, the width grows
        return self.norm(x)[:, 0]  # (B, 768): the class token

    def no_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if n.startswith("pos_encoding.") or ".rel_pos_" in n}

    def remap_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """torchvision's ``head.1.*`` (after its dropout) is ``head.*`` here."""
        return {("head." + k[len("head.1.") :] if k.startswith("head.1.") else k): v for k, v in sd.items()}


def _k400(enum: str, top1: float) -> list[PretrainedCfg]:
    source = f"torchvision:{enum}.KINETICS400_V1"
    return [
        PretrainedCfg(
            "kinetics400",
            source,
            num_frames=16,
            image_size=224,
            mean=MVIT_MEAN,
            std=MVIT_STD,
            num_classes=400,
            dataset="Kinetics-400",
            top1=top1,
        )
    ]


@register_model("mvit_v1_b", input=_SPEC, pretrained=_k400("MViT_V1_B_Weights", 78.477))
def mvit_v1_b(**kwargs: Any) -> MViT:
    """MViT v1 B (16×4), torchvision's mvit_v1_b: 36.6M parameters at 400 classes."""
    return build_variant("mvit_v1_b", dict(arch="mvit_v1_b"), **kwargs)


@register_model("mvit_v2_s", input=_SPEC, pretrained=_k400("MViT_V2_S_Weights", 80.757))
def mvit_v2_s(**kwargs: Any) -> MViT:
    """MViTv2 S (16×4, relative positions, residual pooling), torchvision's mvit_v2_s: 34.5M at 400 classes."""
    return build_variant("mvit_v2_s", dict(arch="mvit_v2_s"), **kwargs)
