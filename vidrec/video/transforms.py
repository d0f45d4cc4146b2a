"""Clip transforms on ``torchvision.transforms.v2`` video tensors.

Input: ``uint8`` ``T×C×H×W`` (a :class:`torchvision.tv_tensors.Video`); output: normalised float
``C×T×H×W``, the layout every vidrec model takes. The same random crop and flip apply to every
frame of a clip (v2 transforms treat a Video as one sample).
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

_DIRECTIONAL = re.compile(r"left|right", re.IGNORECASE)


def flip_changes_label(class_names: Sequence[str]) -> bool:
    """True when class names mention left/right: a horizontal flip would change the label."""
    return any(_DIRECTIONAL.search(c) for c in class_names)


class ClipTransform:
    """Train: random resized crop (+ optional flip); eval: resize short side and centre crop. Then normalise."""

    def __init__(
        self,
        *,
        train: bool,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        scale: tuple[float, float] = (0.7, 1.0),
        horizontal_flip: bool = False,
        resize_size: int | None = None,
    ) -> None:
        self.train = train
        ops: list[v2.Transform] = []
        if train:
            ops.append(v2.RandomResizedCrop(image_size, scale=scale, ratio=(3 / 4, 4 / 3), antialias=True))
            if horizontal_flip:
                ops.append(v2.RandomHorizontalFlip())
        else:
            ops += [v2.Resize(resize_size or image_size, antialias=True), v2.CenterCrop(image_size)]
        ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        self.pipeline = v2.Compose(ops)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames``: uint8 T×H×W×C (decoder output) → float C×T×H×W."""
        video = tv_tensors.Video(frames.permute(0, 3, 1, 2))  # (T, C, H, W)
        out = self.pipeline(video)
        return out.as_subclass(torch.Tensor).permute(1, 0, 2, 3).contiguous()  # (C, T, H, W)

    def __repr__(self) -> str:
        return f"ClipTransform({self.pipeline})"
