"""S3D (Xie et al. 2018, "separable 3D" Inception): torchvision's ``s3d`` behind vidrec's interface.

::

    video (B, 3, T, H, W)
      │  features: separable (1×k×k then k×1×1) Inception blocks, torchvision's     (B, 1024, T/8, H/32, W/32)
      │  average pool over 2×7×7 windows (stride 1), mean over the windows          (B, 1024)   ← forward_features
      │  dropout → linear (torchvision's 1×1×1 classifier convolution)
    logits                                                                          (B, num_classes)

The parameters are torchvision's exactly (the ``classifier.1`` convolution is stored as the linear
``head``; checkpoints are reshaped on load), and at 16×224² and above the output is torchvision's:
pooling 2×7×7 windows and then averaging the class scores of the windows is the same as averaging the
windows' features first, the classifier being linear. Smaller clips, whose last feature map is under
2×7×7, are pooled over the whole map instead of failing.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidrec.errors import ConfigError
from vidrec.models.base import InputSpec, VideoClassifier
from vidrec.models.registry import PretrainedCfg, build_variant, register_model
from vidrec.models.resnet3d import KINETICS_MEAN, KINETICS_STD

_SPEC = InputSpec(num_frames=16, image_size=224, mean=KINETICS_MEAN, std=KINETICS_STD)
_POOL = (2, 7, 7)  # torchvision's AvgPool3d window


class S3D(VideoClassifier):
    """torchvision's S3D features, window pooling, linear head."""

    input_spec = _SPEC

    def __init__(self, *, num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        from torchvision.models.video import s3d

        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1) (got {dropout})")
        net = s3d(num_classes=num_classes, dropout=dropout)
        self.features = net.features
        conv = net.classifier[1]
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(conv.in_channels, num_classes)
        with torch.no_grad():  # torchvision's initialisation of the 1×1×1 convolution, as a linear layer
            self.head.weight.copy_(conv.weight.flatten(1))
            self.head.bias.copy_(conv.bias)
        self.num_features = conv.in_channels
        self.num_classes = num_classes

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        x = self.features(video)  # (B, 1024, T', H', W')
        window = tuple(min(k, s) for k, s in zip(_POOL, x.shape[2:]))
        x = F.avg_pool3d(x, window, stride=1)  # (B, 1024, t, h, w): the 2×7×7 windows
        return x.mean(dim=(2, 3, 4))  # (B, 1024)

    def remap_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """torchvision's ``classifier.1`` convolution ``(K, 1024, 1, 1, 1)`` → ``head`` ``(K, 1024)``."""
        out = {}
        for key, value in sd.items():
            if key.startswith("classifier.1."):
                key, value = "head." + key[len("classifier.1.") :], value.flatten(1) if value.dim() == 5 else value
            out[key] = value
        return out


@register_model(
    "s3d",
    input=_SPEC,
    pretrained=[
        PretrainedCfg(
            "kinetics400",
            "torchvision:S3D_Weights.KINETICS400_V1",
            num_frames=16,
            image_size=224,
            mean=KINETICS_MEAN,
            std=KINETICS_STD,
            num_classes=400,
            dataset="Kinetics-400",
            top1=68.368,
        )
    ],
)
def s3d(**kwargs: Any) -> S3D:
    """S3D (separable 3D Inception), torchvision's s3d: 8.3M parameters at 400 classes."""
    return build_variant("s3d", {}, **kwargs)
