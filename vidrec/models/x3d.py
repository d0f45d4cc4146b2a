"""X3D (Feichtenhofer 2020) XS / S / M, as PySlowFast and PyTorchVideo define them, on torch blocks.

The three variants are one network (width ×2, depth ×2.2, bottleneck ×2.25, 3.79M parameters at 400
classes, like PyTorchVideo's model zoo); they differ in the clip they are fed: XS 4×160², S 13×160², M 16×224²::

    video (B, 3, T, H, W)
      │  stem: 1×3×3 conv (spatial stride 2), depthwise 5×1×1 conv, BN, ReLU          (B, 24, T, H/2, W/2)
    layer1..4: [3, 5, 11, 7] blocks: 1×1×1 → depthwise 3×3×3 (spatial stride 2 in the first) → BN
               → squeeze-excitation (every other block) → swish → 1×1×1; widths 24, 48, 96, 192
      │                                                                          (B, 192, T, H/32, W/32)
      │  conv5: 1×1×1 to 432, BN, ReLU; global average pool; fc1: linear to 2048, ReLU   (B, 2048) ← forward_features
      │  dropout 0.5 → linear
    logits                                                                       (B, num_classes)

PyTorchVideo's checkpoints (``X3D_XS.pyth`` ...) load with ``model.weights=PATH`` (``remap_state_dict``
renames ``blocks.N.res_blocks.M.branch2...`` and reshapes the 1×1×1 ``post_conv`` into ``fc1``).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn

from vidrec.errors import ConfigError
from vidrec.models.base import InputSpec, VideoClassifier
from vidrec.models.registry import PretrainedCfg, build_variant, register_model
from vidrec.models.slowfast import PTV_MEAN, PTV_STD, PTV_ZOO, _init_weights, conv_norm

WIDTHS = (24, 48, 96, 192)  # stage outputs (stem: 24): X3D's 12 × width factor 2, doubled per stage
BASE_DEPTHS = (1, 2, 5, 3)  # × depth factor, rounded up


def round_width(width: float, multiplier: float, *, divisor: int = 8, min_width: int = 8) -> int:
    """``width × multiplier`` to the nearest multiple of ``divisor`` (at least ``min_width``), never 10 % below."""
    target = width * multiplier
    out = max(min_width, int(target + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * target else out


class SqueezeExcite3d(nn.Module):
    """Channel gates from the clip-wide average: ``x · σ(fc2(relu(fc1(mean(x)))))``."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv3d(channels, hidden, 1)
        self.fc2 = nn.Conv3d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3, 4), keepdim=True)  # (B, C, 1, 1, 1)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class X3DBlock(nn.Module):
    """1×1×1 expand → depthwise 3×3×3 → BN (→ SE) → swish → 1×1×1 project; identity or projected shortcut."""

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, *, stride: int, se_ratio: float) -> None:
        super().__init__()
        self.conv_a, self.norm_a = conv_norm(dim_in, dim_inner, (1, 1, 1))
        self.conv_b, self.norm_b = conv_norm(dim_inner, dim_inner, (3, 3, 3), (1, stride, stride), groups=dim_inner)
        self.se = SqueezeExcite3d(dim_inner, round_width(dim_inner, se_ratio)) if se_ratio > 0 else None
        self.conv_c, self.norm_c = conv_norm(dim_inner, dim_out, (1, 1, 1))
        # As PyTorchVideo: a strided shortcut is a convolution; it gets a BN only when the width changes.
        self.proj_conv = (
            nn.Conv3d(dim_in, dim_out, 1, (1, stride, stride), bias=False) if dim_in != dim_out or stride > 1 else None
        )
        self.proj_norm = nn.BatchNorm3d(dim_out) if dim_in != dim_out else None
        self.act, self.swish = nn.ReLU(inplace=True), nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm_a(self.conv_a(x)))
        y = self.norm_b(self.conv_b(y))
        if self.se is not None:
            y = self.se(y)
        y = self.norm_c(self.conv_c(self.swish(y)))
        shortcut = x
        if self.proj_conv is not None:
            shortcut = self.proj_conv(x)
            if self.proj_norm is not None:
                shortcut = self.proj_norm(shortcut)
        return self.act(y + shortcut)


class X3DStem(nn.Module):
    """Spatial 1×3×3 convolution (stride 2), then a depthwise temporal 5×1×1 one, BN, ReLU."""

    def __init__(self, dim_out: int) -> None:
        super().__init__()
        self.conv_s = nn.Conv3d(3, dim_out, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False)
        self.conv_t = nn.Conv3d(dim_out, dim_out, (5, 1, 1), 1, (2, 0, 0), groups=dim_out, bias=False)
        self.norm = nn.BatchNorm3d(dim_out)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv_t(self.conv_s(x))))


class X3D(VideoClassifier):
    """X3D: a mobile-style 3D ResNet expanded in depth and width (variants XS / S / M share it)."""

    def __init__(
        self,
        *,
        num_classes: int,
        depth_factor: float = 2.2,  # X3D-XS/S/M; X3D-L is 5.0
        bottleneck_factor: float = 2.25,
        se_ratio: float = 0.0625,
        head_dim: int = 2048,
        dropout: float = 0.5,
        num_frames: int = 16,  # the clip it expects (XS 4, S 13, M 16): input, not architecture
        image_size: int = 224,
    ) -> None:
        super().__init__()
        if depth_factor <= 0 or bottleneck_factor <= 0 or not 0.0 <= dropout < 1.0:
            raise ConfigError(
                f"X3D: depth_factor and bottleneck_factor must be > 0, dropout in [0, 1) "
                f"(got {depth_factor}, {bottleneck_factor}, {dropout})"
            )
        self.stem = X3DStem(WIDTHS[0])
        dim_in = WIDTHS[0]
        stages = []
        for width, base in zip(WIDTHS, BASE_DEPTHS):
            inner = int(bottleneck_factor * width)
            blocks = [
                X3DBlock(
                    dim_in if i == 0 else width,
                    inner,
                    width,
                    stride=2 if i == 0 else 1,
                    se_ratio=se_ratio if i % 2 == 0 else 0.0,
                )
                for i in range(math.ceil(base * depth_factor))
            ]
            stages.append(nn.Sequential(*blocks))
            dim_in = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        conv5_dim = int(bottleneck_factor * WIDTHS[-1])
        self.conv5, self.norm5 = conv_norm(WIDTHS[-1], conv5_dim, (1, 1, 1))
        self.fc1 = nn.Linear(conv5_dim, head_dim, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(head_dim, num_classes)
        self.num_features = head_dim
        self.num_classes = num_classes
        self.input_spec = InputSpec(num_frames=num_frames, image_size=image_size, mean=PTV_MEAN, std=PTV_STD)
        _init_weights(self)

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        x = self.stem(video)  # (B, 24, T, H/2, W/2)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 192, T, H/32, W/32)
        x = self.act(self.norm5(self.conv5(x))).mean(dim=(2, 3, 4))  # (B, 432)
        return self.act(self.fc1(x))  # (B, 2048)

    def remap_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """PyTorchVideo's ``create_x3d`` keys → these modules; its 1×1×1 ``post_conv`` becomes ``fc1``."""
        out = {}
        for key, value in sd.items():
            new = _ptv_key(key)
            if new == "fc1.weight" and value.dim() == 5:
                value = value.flatten(1)  # (2048, 432, 1, 1, 1) → (2048, 432)
            out[new] = value
        return out


_STEM = {"conv.conv_t": "conv_s", "conv.conv_xy": "conv_t", "norm": "norm"}  # PyTorchVideo's names are swapped
_BRANCH = {
    "branch1_conv": "proj_conv",
    "branch1_norm": "proj_norm",
    "branch2.norm_b.0": "norm_b",
    "branch2.norm_b.1.block.0": "se.fc1",
    "branch2.norm_b.1.block.2": "se.fc2",
}
_HEAD = {
    "blocks.5.pool.pre_conv": "conv5",
    "blocks.5.pool.pre_norm": "norm5",
    "blocks.5.pool.post_conv": "fc1",
    "blocks.5.proj": "head",
}


def _ptv_key(key: str) -> str:
    m = re.fullmatch(r"blocks\.0\.(conv\.conv_t|conv\.conv_xy|norm)\.(\w+)", key)
    if m:
        return f"stem.{_STEM[m[1]]}.{m[2]}"
    m = re.fullmatch(r"blocks\.([1-4])\.res_blocks\.(\d+)\.(.+)\.(\w+)", key)
    if m:
        part = _BRANCH.get(m[3], m[3].replace("branch2.", ""))
        return f"layer{m[1]}.{m[2]}.{part}.{m[4]}"
    m = re.fullmatch(r"(blocks\.5\.[\w.]+)\.(\w+)", key)
    if m and m[1] in _HEAD:
        return f"{_HEAD[m[1]]}.{m[2]}"
    return key


def _zoo(file: str, frames: int, size: int, top1: float) -> list[PretrainedCfg]:
    return [
        PretrainedCfg(
            "kinetics400",
            f"url:{PTV_ZOO}/{file}",
            num_frames=frames,
            image_size=size,
            mean=PTV_MEAN,
            std=PTV_STD,
            num_classes=400,
            dataset="Kinetics-400",
            top1=top1,
        )
    ]


@register_model("x3d_xs", input=InputSpec(4, 160, PTV_MEAN, PTV_STD), pretrained=_zoo("X3D_XS.pyth", 4, 160, 69.12))
def x3d_xs(**kwargs: Any) -> X3D:
    """X3D-XS: 4 frames at 160² (0.6 GFLOPs), 3.79M parameters at 400 classes."""
    return build_variant("x3d_xs", dict(num_frames=4, image_size=160), **kwargs)


@register_model("x3d_s", input=InputSpec(13, 160, PTV_MEAN, PTV_STD), pretrained=_zoo("X3D_S.pyth", 13, 160, 73.33))
def x3d_s(**kwargs: Any) -> X3D:
    """X3D-S: 13 frames at 160², the same network as XS and M."""
    return build_variant("x3d_s", dict(num_frames=13, image_size=160), **kwargs)


@register_model("x3d_m", input=InputSpec(16, 224, PTV_MEAN, PTV_STD), pretrained=_zoo("X3D_M.pyth", 16, 224, 75.94))
def x3d_m(**kwargs: Any) -> X3D:
    """X3D-M: 16 frames at 224², the same network as XS and S."""
    return build_variant("x3d_m", dict(num_frames=16, image_size=224), **kwargs)
