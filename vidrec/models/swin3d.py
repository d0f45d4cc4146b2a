"""Video Swin Transformer (Liu et al. 2022): torchvision's ``swin3d_t`` / ``_s`` / ``_b``.

::

    video (B, 3, T, H, W)
      │  patch_embed: 2×4×4 patches                                   (B, T/2, H/4, W/4, C)      C = 96 / 96 / 128
    features: 4 stages of shifted-window attention (8×7×7 windows), patch merging 2× between stages
      │                                                               (B, T/2, H/32, W/32, 8C)
      │  norm, global average pool                                    (B, 8C)   ← forward_features
      │  dropout (0 by default, as torchvision) → linear
    logits                                                            (B, num_classes)

Parameters and outputs are torchvision's (same module names; the head is ``head`` there too). Windows are
padded, so any clip size works; the Kinetics weights were trained on 32×224² clips (16×224² is the default
input here, like the other transformers).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from vidrec.errors import ConfigError
from vidrec.models.base import IMAGENET_MEAN, IMAGENET_STD, InputSpec, VideoClassifier
from vidrec.models.registry import PretrainedCfg, build_variant, register_model

_SPEC = InputSpec(num_frames=16, image_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
_TV_DROP_PATH = 0.1  # what torchvision's swin3d_t / _s / _b builders set


class Swin3D(VideoClassifier):
    """torchvision's Video Swin (T / S / B) with vidrec's interface."""

    input_spec = _SPEC

    def __init__(
        self,
        *,
        arch: Literal["swin3d_t", "swin3d_s", "swin3d_b"],
        num_classes: int,
        dropout: float = 0.0,
        drop_path: float = 0.1,  # stochastic depth of the last block (linear from 0), torchvision's 0.1
    ) -> None:
        super().__init__()
        import torchvision.models.video as tvv
        from torchvision.ops import StochasticDepth

        if not 0.0 <= dropout < 1.0 or not 0.0 <= drop_path < 1.0:
            raise ConfigError(f"model.dropout and model.drop_path must be in [0, 1) (got {dropout}, {drop_path})")
        net = getattr(tvv, arch)(num_classes=num_classes)  # torchvision's builders fix stochastic depth at 0.1 ...
        for m in net.modules():
            if isinstance(m, StochasticDepth):
                m.p = m.p / _TV_DROP_PATH * drop_path  # ... so its linear schedule is rescaled here
        self.patch_embed, self.pos_drop, self.features, self.norm = (
            net.patch_embed,
            net.pos_drop,
            net.features,
            net.norm,
        )
        self.drop = nn.Dropout(dropout)
        self.head: nn.Linear = net.head
        self.num_features = self.head.in_features
        self.num_classes = num_classes

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        x = self.pos_drop(self.patch_embed(video))  # (B, T/2, H/4, W/4, C)
        x = self.norm(self.features(x))  # (B, T/2, H/32, W/32, 8C)
        return x.mean(dim=(1, 2, 3))  # (B, 8C): global average pool

    def no_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if "relative_position_bias_table" in n}


def _k400(enum: str, top1: float, member: str = "KINETICS400_V1", tag: str = "kinetics400") -> PretrainedCfg:
    return PretrainedCfg(
        tag,
        f"torchvision:{enum}.{member}",
        num_frames=32,
        image_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        num_classes=400,
        dataset="Kinetics-400",
        top1=top1,
    )


@register_model("swin3d_t", input=_SPEC, pretrained=[_k400("Swin3D_T_Weights", 77.715)])
def swin3d_t(**kwargs: Any) -> Swin3D:
    """Video Swin-T, torchvision's swin3d_t: 28.2M parameters at 400 classes."""
    return build_variant("swin3d_t", dict(arch="swin3d_t"), **kwargs)


@register_model("swin3d_s", input=_SPEC, pretrained=[_k400("Swin3D_S_Weights", 79.521)])
def swin3d_s(**kwargs: Any) -> Swin3D:
    """Video Swin-S, torchvision's swin3d_s: 49.8M parameters at 400 classes."""
    return build_variant("swin3d_s", dict(arch="swin3d_s"), **kwargs)


@register_model(
    "swin3d_b",
    input=_SPEC,
    pretrained=[
        _k400("Swin3D_B_Weights", 79.427),
        _k400("Swin3D_B_Weights", 81.643, "KINETICS400_IMAGENET22K_V1", "kinetics400_in22k"),
    ],
)
def swin3d_b(**kwargs: Any) -> Swin3D:
    """Video Swin-B, torchvision's swin3d_b: 88.0M parameters at 400 classes (K400 or ImageNet-22k → K400)."""
    return build_variant("swin3d_b", dict(arch="swin3d_b"), **kwargs)
