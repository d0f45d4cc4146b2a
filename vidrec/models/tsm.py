"""TSM: Temporal Shift Module (Lin et al. 2019) on a timm ResNet, TSN segments, average consensus.

::

    video (B, C, T, H, W), T = num_segments (TSN sampling: one frame per segment, data.sampler=segments)
      │  fold time into batch                                   (B*T, C, H, W)
    timm ResNet; in every residual block, before conv1 (residual shift):
        channels [0, C/8)      ← the same channels of frame t+1   (zero at the last frame)
        channels [C/8, 2C/8)   ← the same channels of frame t-1   (zero at the first frame)
        the other 6/8 stay                                      (B*T, C', H', W')
      │  global average pool per frame                          (B, T, D)
      │  average consensus over the segments                    (B, D)   ← forward_features
      │  dropout → linear
    logits                                                      (B, num_classes)

The shift moves data, not weights: the model has exactly the ResNet's parameters plus the head, and
timm's ImageNet weights (``model.pretrained``) load into it unchanged (the shifting convolutions keep
their names). Averaging the features and then applying the linear head is TSN's average of the
per-segment scores. The shift is done within each video's segments, never across the videos of a batch.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from vidrec.errors import ConfigError
from vidrec.models.base import InputSpec
from vidrec.models.cnn_rnn import ALL_LAYERS, timm_imagenet
from vidrec.models.frame_avg import FrameAverage
from vidrec.models.registry import build_variant, register_model

_SPEC = InputSpec(num_frames=8, image_size=224)  # TSN-8 segments at 224², ImageNet mean/std


def temporal_shift(x: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """Shift ``1/fold_div`` of the channels one segment back in time and ``1/fold_div`` one forward.

    ``x``: ``(N*T, C, H, W)``, frames of ``N`` videos of ``T = num_segments`` frames each; zero-padded at
    each video's ends, so nothing moves from one video to the next.
    """
    nt, c, h, w = x.shape
    if nt % num_segments:
        raise ConfigError(f"TSM: a batch of {nt} frames is not a whole number of {num_segments}-segment clips")
    fold = c // fold_div
    x = x.view(nt // num_segments, num_segments, c, h, w)  # (N, T, C, H, W)
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]  # frame t sees frame t+1's first fold
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]  # frame t sees frame t-1's second fold
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out.view(nt, c, h, w)


class TemporalShiftConv2d(nn.Conv2d):
    """A convolution that shifts its input in time first; its parameters are the wrapped convolution's."""

    def __init__(self, conv: nn.Conv2d, fold_div: int) -> None:
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            conv.stride,  # type: ignore[arg-type]
            conv.padding,  # type: ignore[arg-type]
            conv.dilation,  # type: ignore[arg-type]
            conv.groups,
            conv.bias is not None,
            conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        self.weight, self.bias = conv.weight, conv.bias  # the same tensors: names, values and init kept
        self.fold_div = fold_div
        self.num_segments = 1  # set by the model from each clip's length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(temporal_shift(x, self.num_segments, self.fold_div))


class TSM(FrameAverage):
    """Frame averaging whose ResNet shifts channels across segments in every residual block."""

    input_spec = _SPEC

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "resnet50",
        pretrained: bool = False,
        finetune_layers: Sequence[str] | str | None = ALL_LAYERS,
        freeze_bn: bool = False,
        dropout: float = 0.5,
        shift_div: int = 8,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            backbone=backbone,
            pretrained=pretrained,
            finetune_layers=finetune_layers,
            freeze_bn=freeze_bn,
            dropout=dropout,
        )
        if shift_div < 2:
            raise ConfigError(f"model.shift_div must be >= 2 (got {shift_div}): 2/shift_div of the channels move")
        self.shift_div = shift_div
        self.shifts: list[TemporalShiftConv2d] = []
        for name, block in self.encoder.net.named_modules():
            conv = getattr(block, "conv1", None)
            if name.startswith("layer") and name.count(".") == 1 and isinstance(conv, nn.Conv2d):  # residual blocks
                block.conv1 = TemporalShiftConv2d(conv, shift_div)
                self.shifts.append(block.conv1)
        if not self.shifts:
            raise ConfigError(
                f"model.backbone: {backbone!r} has no ResNet blocks (layerN.M.conv1) to shift in; use a timm ResNet"
            )

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        for conv in self.shifts:
            conv.num_segments = video.shape[2]  # T segments per clip
        return super().forward_features(video)  # (B, D): average consensus


@register_model("tsm_r50", input=_SPEC, pretrained=[timm_imagenet("resnet50")])
def tsm_r50(**kwargs: Any) -> TSM:
    """TSM on ResNet-50 (the SSv2 baseline), TSN-8 segments, residual shift of 1/8 + 1/8 channels."""
    return build_variant("tsm_r50", {}, **kwargs)


@register_model("tsm_r18", input=_SPEC, pretrained=[timm_imagenet("resnet18")])
def tsm_r18(**kwargs: Any) -> TSM:
    """TSM on ResNet-18, TSN-8 segments: the CPU-sized member of the family."""
    return build_variant("tsm_r18", dict(backbone="resnet18"), **kwargs)
