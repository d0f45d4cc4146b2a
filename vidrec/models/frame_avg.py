"""Frame averaging (TSN-style average consensus): the baseline that cannot tell temporal order.

::

    video (B, C, T, H, W)
      │  fold time into batch          (B*T, C, H, W)
    FrameEncoder: timm 2D CNN          (B*T, D) → (B, T, D)
      │  mean over time                (B, D)          ← forward_features
      │  dropout → linear
    logits                             (B, num_classes)

Because the mean over time is invariant to frame order, "moving left→right" and "right→left"
give the same features; the gap between this model and a temporal one on the synthetic dataset
is the measure of how much temporal modelling buys.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch
from torch import nn

from vidrec.errors import ConfigError
from vidrec.models.base import VideoClassifier
from vidrec.models.cnn_rnn import _SPEC as CNN_RNN_SPEC
from vidrec.models.cnn_rnn import AUTO_LAYERS, FrameEncoder, timm_imagenet
from vidrec.models.registry import build_variant, register_model

_SPEC = CNN_RNN_SPEC  # same input as the CNN-RNN, so the two compare like for like


class FrameAverage(VideoClassifier):
    """Per-frame 2D CNN, mean over time, linear head."""

    input_spec = _SPEC

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "resnet18",
        pretrained: bool = False,
        finetune_layers: Sequence[str] | str | None = AUTO_LAYERS,
        freeze_bn: bool = False,
        spatial_pool: int = 1,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1) (got {dropout})")
        self.encoder = FrameEncoder(
            backbone,
            pretrained=pretrained,
            finetune_layers=finetune_layers,
            freeze_bn=freeze_bn,
            spatial_pool=spatial_pool,
        )
        self.num_features = self.encoder.num_features
        self.num_classes = num_classes
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        return self.encoder(video).mean(dim=1)  # (B, T, D) → (B, D)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.encoder.trainable_parameters()

    def remap_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accept a bare timm backbone checkpoint for the frame encoder."""
        if any(k.startswith(("encoder.", "head.")) for k in sd):
            return sd
        return {f"encoder.{k}": v for k, v in self.encoder.remap_state_dict(sd).items()}


@register_model("frame_avg", input=_SPEC, pretrained=[timm_imagenet("resnet18")])
def frame_avg(**kwargs: Any) -> FrameAverage:
    """Frame-averaging baseline (TSN average consensus): timm ResNet-18 per frame, mean over time."""
    return build_variant("frame_avg", {}, **kwargs)
