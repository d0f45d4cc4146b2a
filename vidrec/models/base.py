"""The interface every vidrec model follows (timm-style).

- ``forward(video, **side)``: ``video`` is float ``(B, C, T, H, W)``; side inputs (hand joints,
  object crops, boxes) arrive as keyword tensors named in ``side_inputs``; returns logits ``(B, K)``.
- ``forward_features(video, **side) -> (B, D)``: the clip embedding before the classifier.
- ``forward_head(features) -> (B, K)``.
- ``reset_classifier(num_classes)``: a new head for another label set.
- ``backbone_parameters()``: what progressive unfreezing freezes for the first N epochs;
  ``backbone_stages()``: the same in named parts, input to output (``train.unfreeze_schedule``).
- ``input_spec``: frames, size, mean/std the model expects (data, not code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

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
    object_size: int | None = None  # side S of the ``object_crops`` it takes (3×S×S per slot), if any
    num_objects: int | None = None  # object slots O of ``object_crops`` / ``object_boxes``, if any


def input_spec_of(model: object) -> InputSpec:
    """``model.input_spec``, typed: a vidrec model (or the ONNX backend's stand-in) declares one, but
    ``nn.Module.__getattr__`` types any attribute it does not know as ``Tensor | Module``."""
    spec = getattr(model, "input_spec", None)
    if not isinstance(spec, InputSpec):
        raise TypeError(f"{type(model).__name__} declares no InputSpec (input_spec): not a vidrec model")
    return spec


class VideoClassifier(nn.Module):
    """Base class with the shared interface; subclasses implement ``forward_features`` and own a head."""

    input_spec: InputSpec = InputSpec()
    head: nn.Module  # the classifier (nn.Linear; nn.Identity where a model has none)
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
        return self.head

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

    def backbone_stages(self) -> dict[str, list[nn.Parameter]]:
        """The backbone's parameters by part, input to output (``conv1``, ``layer1``, ..., ``blocks.11``):
        the names ``train.unfreeze_schedule`` takes. Parts are read off the parameter names."""
        stages: dict[str, list[nn.Parameter]] = {}
        for name, p in named_backbone_parameters(self, self.backbone_parameters()):
            stages.setdefault(backbone_parts([name])[0], []).append(p)
        return stages

    def no_weight_decay(self) -> set[str]:
        """Parameter names excluded from weight decay (biases and norms are excluded anyway)."""
        return set()


def _common_prefix(names: Sequence[str]) -> str:
    """Longest dotted prefix shared by all ``names`` (``encoder.net.``), so parts read as in the backbone."""
    if not names:
        return ""
    parts = [n.split(".") for n in names]
    k = 0
    while all(len(p) > k + 1 for p in parts) and len({p[k] for p in parts}) == 1:
        k += 1
    return ".".join(parts[0][:k]) + "." if k else ""


def named_backbone_parameters(model: nn.Module, params: Iterable[nn.Parameter]) -> list[tuple[str, nn.Parameter]]:
    """``params`` (the backbone's) with their names relative to the backbone (``layer4.0.conv1.weight``)."""
    ids = {id(p) for p in params}
    named = [(n, p) for n, p in model.named_parameters() if id(p) in ids]
    prefix = _common_prefix([n for n, _ in named])
    return [(n[len(prefix) :], p) for n, p in named]


def backbone_parts(names: Iterable[str]) -> list[str]:
    """Top-level part names in order (``conv1, bn1, layer1, ...``; numbered containers as ``blocks.0``)."""
    out: list[str] = []
    for n in names:
        p = n.split(".")
        numbered = len(p) > 2 and p[1].isdigit() and p[0] in ("blocks", "layers", "stages", "layer")
        part = ".".join(p[:2]) if numbered else p[0]
        if part not in out:
            out.append(part)
    return out


def to_channels_last(model: nn.Module) -> nn.Module:
    """Channels-last weights, in place: ``channels_last_3d`` for 3D convolutions' 5-D weights and
    ``channels_last`` for 2D convolutions' 4-D ones (per-frame CNNs, 2D backbones inside video models).

    ``model.to(memory_format=torch.channels_last_3d)`` alone fails on any 4-D weight. Convolutions
    whose weight is channels-last run channels-last (cuDNN and oneDNN pick their faster kernels);
    the input needs no conversion.
    """
    for p in model.parameters():
        if p.dim() == 5:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
        elif p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    return model
