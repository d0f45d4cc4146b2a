"""The interface every vidrec model follows (timm-style).

- ``forward(video, **side)``: ``video`` is float ``(B, C, T, H, W)``; side inputs (hand joints,
  object crops, boxes) arrive as keyword tensors named in ``side_inputs``; returns logits ``(B, K)``.
- ``forward_features(video, **side) -> (B, D)``: the clip embedding before the classifier.
- ``forward_head(features) -> (B, K)``.
- ``reset_classifier(num_classes)``: a new head for another label set.
- ``backbone_parameters()``: what progressive unfreezing freezes for the first N epochs.
- ``input_spec``: frames, size, mean/std the model expects (data, not code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    num_frames: int = 8
    image_size: int = 112
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    side_inputs: tuple[str, ...] = field(default_factory=tuple)  # batch keys forwarded as kwargs


class VideoClassifier(nn.Module):
    """Base class with the shared interface; subclasses implement ``forward_features`` and own a head."""

    input_spec: InputSpec = InputSpec()
    num_classes: int
    num_features: int

    def forward_features(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """The model's dropout (``self.drop``, when it has one), then the classifier."""
        drop = getattr(self, "drop", None)
        return self.get_classifier()(features if drop is None else drop(features))

    def forward(self, video: torch.Tensor, **side: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(video, **side))

    def get_classifier(self) -> nn.Module:
        return self.head  # type: ignore[attr-defined,no-any-return]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one for ``num_classes`` classes."""
        old = self.get_classifier()
        in_features = old.in_features if isinstance(old, nn.Linear) else self.num_features
        self.head = nn.Linear(in_features, num_classes)
        self.num_classes = num_classes

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters frozen during progressive fine-tuning. Default: every one outside the classifier."""
        head = {id(p) for p in self.get_classifier().parameters()}
        return (p for p in self.parameters() if id(p) not in head)

    def no_weight_decay(self) -> set[str]:
        """Parameter names excluded from weight decay (biases and norms are excluded anyway)."""
        return set()
