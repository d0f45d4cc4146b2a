"""SlowFast (Feichtenhofer et al. 2019), R50 8×8 as PySlowFast and PyTorchVideo define it, on torch blocks.

Both pathways come from one clip of ``T`` frames (no second decode): the fast pathway sees all of them,
the slow one ``T/α`` picked evenly (PySlowFast's ``PackPathway``: ``linspace(0, T-1, T/α)``)::

    video (B, 3, T, H, W) ──────────────── fast: all T frames, β = 1/8 of the channels
      │ slow: T/α frames                        │
    slow_stem 1×7×7 conv, max pool    (B, 64, T/α, H/4, W/4)     fast_stem 5×7×7 conv    (B, 8, T, H/4, W/4)
      │ ◄── fusion 0: fast → 7×1×1 conv, temporal stride α, 2× channels, concatenated to slow ──┤
    slow_layers[i]: bottlenecks, temporal kernel 1 (res2, res3) / 3 (res4, res5)   fast_layers[i]: all temporal 3
      │ ◄── fusions 1..3 after res2..res4 ──────────────────────────────────────────────────────┤
    (B, 2048, T/α, H/32, W/32)                                  (B, 256, T, H/32, W/32)
      │ global average pool each, concatenate                   (B, 2304)   ← forward_features
      │ dropout 0.5 → linear
    logits                                                      (B, num_classes)

At 400 classes it has PyTorchVideo's 34,566,488 parameters (model zoo: 34.57M). Their released checkpoints
(``SLOWFAST_8x8_R50.pyth``) load with ``model.weights=PATH``: ``remap_state_dict`` renames PyTorchVideo's
keys (``blocks.N.multipathway_blocks.P...``) to these modules.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from vidrec.errors import ConfigError
from vidrec.models.base import InputSpec, VideoClassifier
from vidrec.models.registry import PretrainedCfg, build_variant, register_model

PTV_MEAN = (0.45, 0.45, 0.45)  # PyTorchVideo / PySlowFast Kinetics normalisation
PTV_STD = (0.225, 0.225, 0.225)
PTV_ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
_SPEC = InputSpec(num_frames=32, image_size=224, mean=PTV_MEAN, std=PTV_STD)


def conv_norm(
    dim_in: int, dim_out: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1), groups: int = 1
) -> tuple[nn.Conv3d, nn.BatchNorm3d]:
    """A bias-free 3D convolution padded to keep the size (at stride 1) and its batch norm."""
    padding = (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)
    return nn.Conv3d(dim_in, dim_out, kernel, stride, padding, groups=groups, bias=False), nn.BatchNorm3d(dim_out)


class Bottleneck(nn.Module):
    """``kt×1×1`` → ``1×3×3`` (spatial stride) → ``1×1×1`` with a projection shortcut when the shape changes."""

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, *, temporal_kernel: int, stride: int) -> None:
        super().__init__()
        self.conv_a, self.norm_a = conv_norm(dim_in, dim_inner, (temporal_kernel, 1, 1))
        self.conv_b, self.norm_b = conv_norm(dim_inner, dim_inner, (1, 3, 3), (1, stride, stride))
        self.conv_c, self.norm_c = conv_norm(dim_inner, dim_out, (1, 1, 1))
        self.proj: nn.Sequential | None = None
        if dim_in != dim_out or stride > 1:
            self.proj = nn.Sequential(*conv_norm(dim_in, dim_out, (1, 1, 1), (1, stride, stride)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm_a(self.conv_a(x)))
        y = self.act(self.norm_b(self.conv_b(y)))
        y = self.norm_c(self.conv_c(y))
        return self.act(y + (x if self.proj is None else self.proj(x)))


def res_stage(
    dim_in: int, dim_inner: int, dim_out: int, depth: int, *, temporal_kernel: int, stride: int
) -> nn.Sequential:
    """``depth`` bottlenecks; the first changes the width and strides."""
    blocks = [
        Bottleneck(
            dim_out if i else dim_in, dim_inner, dim_out, temporal_kernel=temporal_kernel, stride=1 if i else stride
        )
        for i in range(depth)
    ]
    return nn.Sequential(*blocks)


class Stem(nn.Sequential):
    """Conv (spatial stride 2) → BN → ReLU → 1×3×3 max pool (spatial stride 2)."""

    def __init__(self, dim_out: int, kernel: tuple[int, int, int]) -> None:
        conv, norm = conv_norm(3, dim_out, kernel, (1, 2, 2))
        super().__init__()
        self.conv, self.norm, self.act = conv, norm, nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))


class FuseFastToSlow(nn.Module):
    """The lateral connection: fast features, strided in time by α, concatenated to the slow ones."""

    def __init__(self, dim_fast: int, *, ratio: int, kernel: int, alpha: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            dim_fast, dim_fast * ratio, (kernel, 1, 1), (alpha, 1, 1), (kernel // 2, 0, 0), bias=False
        )
        self.norm = nn.BatchNorm3d(dim_fast * ratio)
        self.act = nn.ReLU(inplace=True)

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return torch.cat([slow, self.act(self.norm(self.conv(fast)))], dim=1)  # (B, C_s + ratio·C_f, T/α, H, W)


class SlowFast(VideoClassifier):
    """Two ResNet-50 pathways from one clip, joined by lateral connections; pooled, concatenated, linear."""

    def __init__(
        self,
        *,
        num_classes: int,
        layers: list[int] = [3, 4, 6, 3],  # noqa: B006 - read only; R50
        alpha: int = 4,  # frame-rate ratio: the slow pathway sees T/α frames
        beta_inv: int = 8,  # channel ratio: the fast pathway has 1/β_inv of the slow one's width
        fusion_ratio: int = 2,  # lateral connection: fast channels × this
        fusion_kernel: int = 7,  # its temporal kernel
        dropout: float = 0.5,
        num_frames: int = 32,  # the clip (fast pathway) length it expects
        image_size: int = 224,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or alpha < 1 or beta_inv < 1 or not 0.0 <= dropout < 1.0:
            raise ConfigError(
                "SlowFast: model.layers must have 4 entries, alpha and beta_inv be >= 1, dropout in [0, 1) "
                f"(got {layers}, {alpha}, {beta_inv}, {dropout})"
            )
        self.alpha = alpha
        slow_w = [64, 256, 512, 1024, 2048]  # stem, res2..res5 outputs
        fast_w = [w // beta_inv for w in slow_w]
        inner = [64, 128, 256, 512]
        self.slow_stem, self.fast_stem = Stem(slow_w[0], (1, 7, 7)), Stem(fast_w[0], (5, 7, 7))
        self.fusions = nn.ModuleList(
            FuseFastToSlow(fast_w[i], ratio=fusion_ratio, kernel=fusion_kernel, alpha=alpha) for i in range(4)
        )
        self.slow_layers, self.fast_layers = nn.ModuleList(), nn.ModuleList()
        for i in range(4):
            stride = 1 if i == 0 else 2
            slow_in = slow_w[i] + fast_w[i] * fusion_ratio  # the fused fast channels ride along
            self.slow_layers.append(
                res_stage(slow_in, inner[i], slow_w[i + 1], layers[i], temporal_kernel=1 if i < 2 else 3, stride=stride)
            )
            self.fast_layers.append(
                res_stage(fast_w[i], inner[i] // beta_inv, fast_w[i + 1], layers[i], temporal_kernel=3, stride=stride)
            )
        self.num_features = slow_w[-1] + fast_w[-1]
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes
        self.input_spec = InputSpec(num_frames=num_frames, image_size=image_size, mean=PTV_MEAN, std=PTV_STD)
        _init_weights(self)

    def pathways(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, T, H, W)`` → slow ``(B, C, T/α, H, W)`` (evenly spaced frames) and fast (the clip itself)."""
        t = video.shape[2]
        if t % self.alpha:
            raise ConfigError(
                f"SlowFast: clips of {t} frames are not a multiple of alpha={self.alpha}; set data.num_frames"
            )
        index = torch.linspace(0, t - 1, t // self.alpha, device=video.device).long()
        return video.index_select(2, index), video

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        slow, fast = self.pathways(video)
        slow, fast = self.slow_stem(slow), self.fast_stem(fast)  # (B, 64, T/α, H/4, W/4), (B, 8, T, H/4, W/4)
        slow = self.fusions[0](slow, fast)
        for i in range(4):
            slow, fast = self.slow_layers[i](slow), self.fast_layers[i](fast)
            if i < 3:
                slow = self.fusions[i + 1](slow, fast)
        return torch.cat([slow.mean(dim=(2, 3, 4)), fast.mean(dim=(2, 3, 4))], dim=1)  # (B, 2048 + 256)

    def remap_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """PyTorchVideo's ``create_slowfast`` keys → these modules (other keys pass through)."""
        return {_ptv_key(k): v for k, v in sd.items()}


_PATHWAY = ("slow", "fast")


def _ptv_key(key: str) -> str:
    m = re.fullmatch(r"blocks\.0\.multipathway_blocks\.([01])\.(conv|norm)\.(.+)", key)
    if m:
        return f"{_PATHWAY[int(m[1])]}_stem.{m[2]}.{m[3]}"
    m = re.fullmatch(r"blocks\.([0-3])\.multipathway_fusion\.(conv_fast_to_slow|norm)\.(.+)", key)
    if m:
        return f"fusions.{m[1]}.{'conv' if m[2] == 'conv_fast_to_slow' else 'norm'}.{m[3]}"
    m = re.fullmatch(r"blocks\.([1-4])\.multipathway_blocks\.([01])\.res_blocks\.(\d+)\.(.+)", key)
    if m:
        rest = m[4].replace("branch2.", "").replace("branch1_conv", "proj.0").replace("branch1_norm", "proj.1")
        return f"{_PATHWAY[int(m[2])]}_layers.{int(m[1]) - 1}.{m[3]}.{rest}"
    return re.sub(r"^blocks\.6\.proj\.", "head.", key)


def _init_weights(model: nn.Module) -> None:
    """He init for convolutions, BN at 1/0 with the last BN of each residual branch at 0, a small head."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in model.modules():
        norm_c = getattr(m, "norm_c", None)
        if isinstance(norm_c, nn.BatchNorm3d):
            nn.init.zeros_(norm_c.weight)  # each residual block starts as the identity


@register_model(
    "slowfast_r50",
    input=_SPEC,
    pretrained=[
        PretrainedCfg(
            "kinetics400",
            f"url:{PTV_ZOO}/SLOWFAST_8x8_R50.pyth",
            num_frames=32,
            image_size=224,
            mean=PTV_MEAN,
            std=PTV_STD,
            num_classes=400,
            dataset="Kinetics-400",
            top1=76.94,
        )
    ],
)
def slowfast_r50(**kwargs: Any) -> SlowFast:
    """SlowFast R50 8×8 (α=4, β=1/8): 32-frame clips, 8 of them to the slow pathway; 34.57M parameters at 400."""
    return build_variant("slowfast_r50", {}, **kwargs)
