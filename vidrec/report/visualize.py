"""Draw a prediction on its video: top-3 classes on every frame, plus boxes and hand joints where known.

``vidrec predict --visualize OUT.mp4`` calls :func:`visualize_prediction`. Works for every model:
the classes always; ground-truth boxes (hands, objects with their placeholder ids) and
MediaPipe hand joints when the video has a stream cache (``vidrec prepare hands/objects``),
which is where the multi-stream model reads them from.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vidrec.models.multistream import HAND_CONNECTIONS
from vidrec.video.encode import write_video

log = logging.getLogger(__name__)

HAND_COLOURS = ((255, 170, 0), (0, 200, 255))  # slot 0 (left), slot 1 (right)
OBJECT_COLOURS = ((60, 220, 60), (230, 60, 230), (250, 250, 60), (60, 120, 255), (255, 90, 90), (160, 255, 200))


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def draw_frame(
    frame: np.ndarray,
    *,
    lines: Sequence[str] = (),
    boxes: Sequence[tuple[Sequence[float], str, tuple[int, int, int]]] = (),
    hands: Sequence[tuple[np.ndarray, tuple[int, int, int]]] = (),
    at_bottom: bool = False,
) -> np.ndarray:
    """One frame (uint8 H×W×3) with ``boxes`` (normalised xyxy, label, colour), ``hands`` (21×3
    frame-normalised joints, colour) drawn as skeletons, and text ``lines`` at the top left
    (bottom left with ``at_bottom``, clear of a player's label drawn over the top of the video)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(img)
    w, h = img.size
    lw = max(1, round(min(w, h) / 160))
    font = _font(max(10, round(min(w, h) / 22)))
    for box, label, colour in boxes:
        x1, y1, x2, y2 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=lw)
        if label:
            draw.text((x1 + lw, max(0, y1 - font.size - 2)), label, fill=colour, font=font)
    for joints, colour in hands:
        pts = [(float(x) * w, float(y) * h) for x, y in np.asarray(joints)[:, :2]]
        for a, b in HAND_CONNECTIONS:
            draw.line([pts[a], pts[b]], fill=colour, width=lw)
        r = lw + 1
        for x, y in pts:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255), outline=colour)
    y = h - len(lines) * (font.size + 5) - 1 if at_bottom else 2
    for line in lines:
        tw = draw.textlength(line, font=font)
        draw.rectangle([0, y, tw + 6, y + font.size + 4], fill=(0, 0, 0))
        draw.text((3, y + 1), line, fill=(255, 255, 255), font=font)
        y += font.size + 5
    return np.asarray(img)


def render_clip(
    frames: np.ndarray,
    *,
    topk: Sequence[tuple[str, float]] = (),
    streams: dict[str, np.ndarray] | None = None,
    frame_indices: Sequence[int] | None = None,
    min_size: int = 256,
    at_bottom: bool = False,
) -> np.ndarray:
    """Frames ``T×H×W×3`` → annotated frames, upscaled so the short side is at least ``min_size``;
    the top-k lines at the top left (bottom left with ``at_bottom``).

    ``streams``: arrays of a stream-cache file (``hand_boxes``, ``hand_joints``, ``object_boxes``,
    ...); row ``r`` belongs to frame ``hands_frames[r]`` / ``objects_frames[r]``; ``frame_indices``
    are the video frame numbers of ``frames``.
    """
    from PIL import Image

    frames = np.asarray(frames)
    t, h, w = frames.shape[:3]
    scale = max(1.0, min_size / min(h, w))
    nw, nh = int(round(w * scale / 2) * 2), int(round(h * scale / 2) * 2)  # even: yuv420p
    idx = list(frame_indices) if frame_indices is not None else list(range(t))
    streams = streams or {}
    hand_rows = {int(f): r for r, f in enumerate(streams.get("hands_frames", []))}
    obj_rows = {int(f): r for r, f in enumerate(streams.get("objects_frames", []))}
    ids = [str(s) for s in streams.get("object_ids", [])]
    lines = [f"{i + 1}. {name} ({p:.0%})" for i, (name, p) in enumerate(list(topk)[:3])]
    out = np.empty((t, nh, nw, 3), np.uint8)
    for k, frame in enumerate(frames):
        big = (
            np.asarray(Image.fromarray(frame).resize((nw, nh), Image.Resampling.BILINEAR))
            if (nw, nh) != (w, h)
            else frame
        )
        boxes: list[tuple[Sequence[float], str, tuple[int, int, int]]] = []
        hands: list[tuple[np.ndarray, tuple[int, int, int]]] = []
        r = hand_rows.get(idx[k])
        if r is not None:
            for s in range(streams["hand_boxes"].shape[1]):
                if streams["hand_mask"][r, s]:
                    boxes.append((streams["hand_boxes"][r, s], "hand", HAND_COLOURS[s % 2]))
                if streams["hand_joints_mask"][r, s]:
                    hands.append((streams["hand_joints"][r, s], HAND_COLOURS[s % 2]))
        r = obj_rows.get(idx[k])
        if r is not None:
            for s in range(streams["object_boxes"].shape[1]):
                if streams["object_mask"][r, s]:
                    label = ids[s] if s < len(ids) and ids[s] else f"obj {s}"
                    boxes.append((streams["object_boxes"][r, s], label, OBJECT_COLOURS[s % len(OBJECT_COLOURS)]))
        out[k] = draw_frame(big, lines=lines, boxes=boxes, hands=hands, at_bottom=at_bottom)
    return out


def _find_cache(video: Path, checkpoint: Any, cache_dir: str | os.PathLike[str] | None) -> Path | None:
    from vidrec.data.streams.cache import cache_path, default_streams_dir

    dirs: list[Path] = []
    if cache_dir is not None:
        dirs.append(Path(cache_dir))
    cfg = getattr(checkpoint, "cfg", None)
    if cfg is not None:
        if cfg.data.streams_dir is not None:
            dirs.append(Path(cfg.data.streams_dir))
        dirs.append(default_streams_dir(cfg))
    for d in dirs:
        p = cache_path(d, video.stem)
        if p.is_file():
            return p
    return None


def visualize_prediction(
    video: str | os.PathLike[str],
    prediction: Any,
    out: str | os.PathLike[str],
    *,
    checkpoint: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
    max_frames: int = 300,
) -> Path:
    """Write ``out`` (.mp4/.webm/.avi): the video's frames (the first ``max_frames``) with the
    prediction's top-3 classes, and boxes / hand joints from its stream cache when there is one."""
    from vidrec.data.streams.cache import read_cache
    from vidrec.video.decode import AutoDecoder

    video = Path(video)
    decoder = AutoDecoder()
    info = decoder.info(video)
    indices = list(range(min(info.num_frames, max_frames)))
    frames = decoder.decode(video, indices).numpy()  # (T, H, W, 3) uint8
    streams: dict[str, np.ndarray] = {}
    found = _find_cache(video, checkpoint, cache_dir)
    if found is not None:
        got = read_cache(found)
        if got is not None:
            streams = got[1]
            log.info("drawing boxes and joints from %s", found)
    drawn = render_clip(frames, topk=getattr(prediction, "topk", prediction), streams=streams, frame_indices=indices)
    return write_video(out, drawn, fps=info.fps or 12.0)
