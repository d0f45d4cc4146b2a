"""Object crops from ground-truth boxes, one slot per placeholder identity (seed 000's object stream).

Something-Else names the objects of a video by placeholder id (``0000``, ``0001``, …) in every
frame, so slot ``k`` holds the same object across frames: slot order is
:func:`vidrec.data.boxes.object_order` (numeric ids by value), the order the boxes side input
uses, so ``object_crops[t, k]`` and ``object_boxes[t, k]`` describe the same object.

A crop is the box's pixels (clipped at the frame) resized to ``size``×``size`` (aspect ratio not
kept, as in seed 000), stored as uint8 ``3×S×S``; an absent object is zeros with mask 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

Box = tuple[float, float, float, float]  # pixel xyxy, x2/y2 exclusive


def box_pixels(box: Sequence[float], frame_w: int, frame_h: int) -> tuple[int, int, int, int] | None:
    """Whole-pixel bounds ``(x0, y0, x1, y1)`` covering ``box``, clipped at the frame; ``None`` if empty."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x0, y0 = max(0, math.floor(x1)), max(0, math.floor(y1))
    xe, ye = min(frame_w, math.ceil(x2)), min(frame_h, math.ceil(y2))
    if xe <= x0 or ye <= y0:
        return None
    return x0, y0, xe, ye


def crop_box(frame: np.ndarray, box: Sequence[float], size: int) -> np.ndarray | None:
    """``frame`` uint8 H×W×3 → the box's crop resized to uint8 ``3×size×size``, or ``None`` if empty."""
    h, w = frame.shape[:2]
    px = box_pixels(box, w, h)
    if px is None:
        return None
    x0, y0, x1, y1 = px
    patch = torch.from_numpy(np.ascontiguousarray(frame[y0:y1, x0:x1])).permute(2, 0, 1)[None].float()  # (1, 3, h, w)
    out = F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0].round_().clamp_(0, 255).to(torch.uint8).numpy()


@dataclass
class FrameObjects:
    crops: np.ndarray  # (O, 3, S, S) uint8
    boxes: np.ndarray  # (O, 4) float32, normalised xyxy
    mask: np.ndarray  # (O,) uint8


def objects_in_frame(frame: np.ndarray, boxes: Sequence[Box | None], *, size: int = 112) -> FrameObjects:
    """Crops for each slot's box (``None``: the object is absent in this frame)."""
    h, w = frame.shape[:2]
    n = len(boxes)
    out = FrameObjects(np.zeros((n, 3, size, size), np.uint8), np.zeros((n, 4), np.float32), np.zeros(n, np.uint8))
    for k, box in enumerate(boxes):
        if box is None:
            continue
        crop = crop_box(frame, box, size)
        if crop is None:
            continue
        out.crops[k] = crop
        x1, y1, x2, y2 = box
        out.boxes[k] = np.clip([x1 / w, y1 / h, x2 / w, y2 / h], 0.0, 1.0)
        out.mask[k] = 1
    return out
