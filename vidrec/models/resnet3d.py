"""3D ResNets (seed 002) and R(2+1)D, on torchvision's video ResNet building blocks.

One generic :class:`ResNet3D`; variants differ only in the block, the convolution builder and the
stem, as in ``torchvision.models.video.resnet``. MC3 ("mixed convolutions") keeps 3D convolutions
in the stem and ``layer1`` only, 2D (1×3×3) ones after::

    video (B, 3, T, H, W)
      │  stem: Conv3d 3×7×7 (R3D, MC3) or (2+1)D factorised (R(2+1)D)  (B, 64, T, H/2, W/2)
    layer1 … layer4: BasicBlock / Bottleneck, space-time stride 2     (B, 512·e, T/8, H/16, W/16)
      │  global average pool                                          (B, 512·e)   ← forward_features
      │  dropout → linear
    logits                                                            (B, num_classes)

``r3d_18`` / ``mc3_18`` / ``r2plus1d_18`` have exactly torchvision's parameters (the classifier is called
``head`` instead of ``fc``; torchvision checkpoints are remapped on load) and produce the same
output with the same weights. ``r3d_34`` and ``r3d_50`` use the ``[3, 4, 6, 3]`` layout with
basic and bottleneck blocks. These models benefit from ``train.channels_last`` on GPUs.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn
from torchvision.models.video.resnet import (
    BasicBlock,
    BasicStem,
    Bottleneck,
    Conv2Plus1D,
    Conv3DNoTemporal,
    Conv3DSimple,
    R2Plus1dStem,
    VideoResNet,
)

from vidrec.errors import ConfigError
from vidrec.models.base import InputSpec, VideoClassifier
from vidrec.models.registry import PretrainedCfg, build_variant, register_model

# torchvision's Kinetics-400 weights: 16 frames at 112×112 (resized to 128×171), these statistics.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
_SPEC = InputSpec(num_frames=16, image_size=112, mean=KINETICS_MEAN, std=KINETICS_STD)


def _k400(enum: str, top1: float) -> list[PretrainedCfg]:
    """torchvision's Kinetics-400 weights for a 112² video ResNet."""
    return [
        PretrainedCfg(
            "kinetics400",
            f"torchvision:{enum}.KINETICS400_V1",
            num_frames=16,
            image_size=112,
            mean=KINETICS_MEAN,
            std=KINETICS_STD,
            num_classes=400,
            dataset="Kinetics-400",
            top1=top1,
        )
    ]


class ResNet3D(VideoClassifier):
    """A video ResNet: torchvision's stem, layers and initialisation; vidrec's interface."""

    input_spec = _SPEC

    def __init__(
        self,
        *,
        block: type[BasicBlock | Bottleneck],
        conv_makers: Sequence[type[Conv3DSimple | Conv3DNoTemporal | Conv2Plus1D]],
        layers: list[int],
        stem: Callable[[], nn.Module],
        num_classes: int,
        dropout: float = 0.0,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1) (got {dropout})")
        net = VideoResNet(
            block, conv_makers, layers, stem, num_classes=num_classes, zero_init_residual=zero_init_residual
        )
        # Adopt torchvision's modules under their own names, so checkpoints map one to one.
        self.stem, self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.stem,
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.avgpool = net.avgpool
        self.drop = nn.Dropout(dropout)
        self.head = net.fc
        self.num_features = net.fc.in_features
        self.num_classes = num_classes

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        x = self.stem(video)  # (B, 64, T, H/2, W/2)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512·e, T', H', W')
        return self.avgpool(x).flatten(1)  # (B, 512·e)

    def remap_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """torchvision's ``fc.*`` is vidrec's ``head.*``."""
        return {("head." + k[3:] if k.startswith("fc.") else k): v for k, v in sd.items()}


@register_model("r3d_18", input=_SPEC, pretrained=_k400("R3D_18_Weights", 63.2))
def r3d_18(**kwargs: Any) -> ResNet3D:
    """3D ResNet-18 (Tran et al. 2018), torchvision's r3d_18: 33.2M parameters at 400 classes."""
    model_args = dict(block=BasicBlock, conv_makers=[Conv3DSimple] * 4, layers=[2, 2, 2, 2], stem=BasicStem)
    return build_variant("r3d_18", model_args, **kwargs)


@register_model("mc3_18", input=_SPEC, pretrained=_k400("MC3_18_Weights", 63.96))
def mc3_18(**kwargs: Any) -> ResNet3D:
    """Mixed-convolution ResNet-18 (MC3), torchvision's mc3_18: 3D convolutions in the stem and layer1, 2D after."""
    model_args = dict(
        block=BasicBlock, conv_makers=[Conv3DSimple] + [Conv3DNoTemporal] * 3, layers=[2, 2, 2, 2], stem=BasicStem
    )
    return build_variant("mc3_18", model_args, **kwargs)


@register_model("r3d_34", input=_SPEC)
def r3d_34(**kwargs: Any) -> ResNet3D:
    """3D ResNet-34 (seed 002): basic blocks, [3, 4, 6, 3]."""
    model_args = dict(block=BasicBlock, conv_makers=[Conv3DSimple] * 4, layers=[3, 4, 6, 3], stem=BasicStem)
    return build_variant("r3d_34", model_args, **kwargs)


@register_model("r3d_50", input=_SPEC)
def r3d_50(**kwargs: Any) -> ResNet3D:
    """3D ResNet-50 (seed 002): bottleneck blocks, [3, 4, 6, 3]."""
    model_args = dict(block=Bottleneck, conv_makers=[Conv3DSimple] * 4, layers=[3, 4, 6, 3], stem=BasicStem)
    return build_variant("r3d_50", model_args, **kwargs)


@register_model("r2plus1d_18", input=_SPEC, pretrained=_k400("R2Plus1D_18_Weights", 67.463))
def r2plus1d_18(**kwargs: Any) -> ResNet3D:
    """R(2+1)D-18: 3D convolutions factorised into 2D spatial + 1D temporal (torchvision's r2plus1d_18)."""
    model_args = dict(block=BasicBlock, conv_makers=[Conv2Plus1D] * 4, layers=[2, 2, 2, 2], stem=R2Plus1dStem)
    return build_variant("r2plus1d_18", model_args, **kwargs)
