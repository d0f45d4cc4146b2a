"""The demo's preview videos: small H.264 mp4s (short side :data:`PREVIEW_SHORT_SIDE`) that any browser plays,
whatever the library's containers, so no library folder is ever served: the upload (:func:`render_upload`),
the upload with its top classes drawn on (:func:`render_prediction`), and a search hit's best moment
(:func:`render_hit`)."""

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from vidrec.errors import VideoError
from vidrec.serve.handlers import (
    MOMENT_CONTEXT_S,
    PathLike,
    SearchRow,
    display_name,
    errors_named,
    fmt_score,
    fmt_span,
    uploaded_path,
)

PREVIEW_SHORT_SIDE = 256  # preview videos are decoded straight to this short side (px), down or up
PREVIEW_MAX_FRAMES = 240  # longer spans are subsampled (playback keeps real time)


def _preview_frames(
    path: Path, start_s: float = 0.0, end_s: float | None = None
) -> tuple[np.ndarray, list[int], float, float]:
    """Frames of ``path`` between two times, decoded small: ``(T, H, W, 3)`` uint8, their indices,
    the video's fps and the preview's (lower where frames were skipped)."""
    from vidrec.video.decode import AutoDecoder

    decoder = AutoDecoder()
    info = decoder.info(path)
    if info.num_frames <= 0:
        raise VideoError(f"{path}: the video has no frames")
    fps = info.fps or 12.0
    first = max(0, min(info.num_frames - 1, math.floor(start_s * fps)))
    last = info.num_frames if end_s is None else max(first + 1, min(info.num_frames, math.ceil(end_s * fps)))
    step = max(1, math.ceil((last - first) / PREVIEW_MAX_FRAMES))
    indices = list(range(first, last, step))
    short = min(info.width, info.height) or PREVIEW_SHORT_SIDE
    scale = PREVIEW_SHORT_SIDE / short  # down (or up, so the captions stay legible)
    size = (max(2, round(info.height * scale / 2) * 2), max(2, round(info.width * scale / 2) * 2))  # even: yuv420p
    frames = decoder.decode(path, indices, size=size).numpy()  # (T, H, W, 3)
    return frames, indices, fps, fps / step


def render_upload(video_path: PathLike, out: PathLike) -> Path:
    """The uploaded video, small (at most PREVIEW_MAX_FRAMES frames, H.264), as ``out``: the page shows
    this rather than the upload, so any container vidrec reads plays, and a bad file is caught at once."""
    from vidrec.video.encode import write_video

    path = uploaded_path(video_path)
    with errors_named(path):
        frames, _, _, fps = _preview_frames(path)
    return write_video(out, frames, fps=fps)


def render_prediction(video_path: PathLike, topk: Sequence[tuple[str, float]], out: PathLike) -> Path:
    """The uploaded video (small, at most PREVIEW_MAX_FRAMES frames) with the top-3 classes drawn on it, as ``out``."""
    from vidrec.report.visualize import render_clip
    from vidrec.video.encode import write_video

    path = uploaded_path(video_path)
    with errors_named(path):
        frames, indices, _, fps = _preview_frames(path)
    drawn = render_clip(
        frames, topk=topk, frame_indices=indices, min_size=min(frames.shape[1:3]), at_bottom=True
    )  # clear of the label
    return write_video(out, drawn, fps=fps)


def render_hit(row: SearchRow, out: PathLike, *, context_s: float = MOMENT_CONTEXT_S, root: Path | None = None) -> Path:
    """The hit's best moment with ``context_s`` around it (the whole video without moments), captioned
    at the bottom (the player's label covers the top), as ``out``. Errors name the video relative to ``root``."""
    from vidrec.report.visualize import draw_frame
    from vidrec.video.encode import write_video

    path = Path(row.path)
    shown = display_name(path, root) if root is not None else str(path)
    if not path.is_file():
        raise VideoError(
            f"{shown}: the stored video is gone (moved or deleted since vidrec embed); embed the library again"
        )
    caption = f"#{row.rank}  score {fmt_score(row.score)}"
    start, end = (row.moments[0][0], row.moments[0][1]) if row.moments else (0.0, None)
    with errors_named(path, shown):
        if end is None:
            frames, indices, video_fps, fps = _preview_frames(path)
        else:
            frames, indices, video_fps, fps = _preview_frames(path, max(0.0, start - context_s), end + context_s)
    # the drawn caption uses a hyphen: the font has no en dash
    moment = "" if end is None else f"best moment {fmt_span(start, end).replace('–', '-')} s"
    drawn = []
    for frame, i in zip(frames, indices):
        t = i / video_fps
        inside = end is not None and start <= t < max(end, start + 1.0 / video_fps)
        lines = [caption, moment if inside else f"{t:.2f} s"]
        drawn.append(draw_frame(frame, lines=lines, at_bottom=True))
    return write_video(out, np.stack(drawn), fps=fps)
