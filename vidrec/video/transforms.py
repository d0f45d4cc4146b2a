"""Clip transforms: spatial ones on uint8 in the DataLoader worker, normalisation per batch.

:class:`ClipTransform` takes the decoder's ``uint8`` ``T×H×W×C`` and returns ``uint8``
``C×T×H×W`` (the layout every vidrec model takes), cropped and flipped with
``torchvision.transforms.v2`` (which treats a :class:`~torchvision.tv_tensors.Video` as one
sample, so every frame of a clip gets the same crop). Clips cross process boundaries as uint8,
4× less traffic than float; :class:`VideoNormalize` converts a whole batch to normalised float
on the device it is on (the GPU when there is one).
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
    """Train: random resized crop (+ optional flip); eval: resize short side and centre crop. uint8 in and out."""

    def __init__(
        self,
        *,
        train: bool,
        image_size: int,
        scale: tuple[float, float] = (0.7, 1.0),
        horizontal_flip: bool = False,
        resize_size: int | None = None,
    ) -> None:
        self.train = train
        self.image_size = image_size
        ops: list[v2.Transform] = []
        if train:
            ops.append(v2.RandomResizedCrop(image_size, scale=scale, ratio=(3 / 4, 4 / 3), antialias=True))
            if horizontal_flip:
                ops.append(v2.RandomHorizontalFlip())
        else:
            ops += [v2.Resize(resize_size or image_size, antialias=True), v2.CenterCrop(image_size)]
        self.pipeline = v2.Compose(ops)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames``: uint8 T×H×W×C (decoder output) → uint8 C×T×S×S."""
        video = tv_tensors.Video(frames.permute(0, 3, 1, 2))  # (T, C, H, W)
        out = self.pipeline(video)
        return out.as_subclass(torch.Tensor).permute(1, 0, 2, 3).contiguous()  # (C, T, S, S)

    def __repr__(self) -> str:
        return f"ClipTransform({self.pipeline})"


class VideoNormalize:
    """uint8 ``(B, C, T, H, W)`` → float ``(x / 255 - mean) / std``, on the tensor's own device.

    Float input is taken as already normalised and passed through, so callers that build their
    own float clips keep working.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._cache: dict[tuple[torch.device, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        if video.dtype != torch.uint8:
            return video
        shape = (1, -1) + (1,) * (video.ndim - 2)  # broadcast over C of (B, C, ...)
        key = (video.device, video.ndim)
        if key not in self._cache:
            mean = torch.tensor(self.mean, device=video.device).view(shape) * 255
            std = torch.tensor(self.std, device=video.device).view(shape) * 255
            self._cache[key] = (mean, std)
        mean, std = self._cache[key]
        return (video.float() - mean) / std

    def __repr__(self) -> str:
        return f"VideoNormalize(mean={self.mean}, std={self.std})"
