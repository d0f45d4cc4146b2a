"""Frame-index samplers: pure functions from a video's length to frame indices (not to be confused with
``torch.utils.data.Sampler``, which orders a dataset's items: vidrec's is ``EpochSampler``).

Every frame sampler has the shape ``(num_frames, fps, rng) -> list[int]`` once its parameters are
bound (see :func:`make_frame_sampler`); ``rng`` is a ``numpy.random.Generator`` (``None`` means
deterministic, evaluation-style sampling). Short videos never fail: indices are clamped to
the last frame (MMAction2's ``repeat_last``), so a 5-frame video still yields 8 indices.

- ``segments`` (TSN): split the video into N equal segments, one frame per segment, random
  offset inside the segment in training, the centre in evaluation.
- ``dense``: ``clip_len`` frames ``stride`` apart, random start in training, centred in eval.
- :func:`multi_view_indices`: ``num_clips`` evenly spaced clips for multi-view testing.
- :class:`FrameSampler` binds the parameters (``make_frame_sampler``); views are its business too, so
  ``target_fps`` holds for training, evaluation and every view alike.
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def segment_indices(num_frames: int, num_segments: int, *, rng: np.random.Generator | None = None) -> list[int]:
    """TSN sampling: one index per equal segment; random within it when ``rng`` is given."""
    if num_segments <= 0:
        raise ValueError(f"num_segments must be positive, got {num_segments}")
    if num_frames <= 0:
        return [0] * num_segments
    edges = np.linspace(0, num_frames, num_segments + 1)  # segment boundaries, float
    starts, ends = edges[:-1], edges[1:]
    if rng is None:
        idx = (starts + ends) / 2
    else:
        idx = starts + rng.random(num_segments) * (ends - starts)
    return np.clip(np.floor(idx).astype(int), 0, num_frames - 1).tolist()


def dense_indices(
    num_frames: int, clip_len: int, stride: int = 1, *, rng: np.random.Generator | None = None
) -> list[int]:
    """``clip_len`` indices ``stride`` apart; random start with ``rng``, centred without."""
    if clip_len <= 0 or stride <= 0:
        raise ValueError(f"clip_len and stride must be positive, got {clip_len}, {stride}")
    if num_frames <= 0:
        return [0] * clip_len
    span = (clip_len - 1) * stride + 1
    room = max(num_frames - span, 0)
    start = int(rng.integers(0, room + 1)) if rng is not None else room // 2
    idx = start + np.arange(clip_len) * stride
    return np.clip(idx, 0, num_frames - 1).tolist()


def multi_view_indices(
    num_frames: int,
    clip_len: int,
    stride: int = 1,
    num_clips: int = 1,
    *,
    mode: Literal["dense", "segments"] = "dense",
) -> list[list[int]]:
    """Deterministic views for testing: ``num_clips`` clips spread evenly over the video.

    In ``dense`` mode the clip starts are evenly spaced; in ``segments`` mode each view shifts
    the TSN sampling point inside every segment (``(k + 0.5) / num_clips`` of the way through).
    """
    if num_clips <= 0:
        raise ValueError(f"num_clips must be positive, got {num_clips}")
    if num_frames <= 0:
        return [[0] * clip_len for _ in range(num_clips)]
    views: list[list[int]] = []
    if mode == "segments":
        edges = np.linspace(0, num_frames, clip_len + 1)
        for k in range(num_clips):
            idx = edges[:-1] + (edges[1:] - edges[:-1]) * (k + 0.5) / num_clips
            views.append(np.clip(np.floor(idx).astype(int), 0, num_frames - 1).tolist())
        return views
    span = (clip_len - 1) * stride + 1
    room = max(num_frames - span, 0)
    starts = [room // 2] if num_clips == 1 else np.linspace(0, room, num_clips).round().astype(int).tolist()
    for s in starts:
        views.append(np.clip(s + np.arange(clip_len) * stride, 0, num_frames - 1).tolist())
    return views


class FrameSampler:
    """Sampling parameters bound once; the one place that turns a video's length into clips.

    ``sampler(num_frames, fps, rng)`` gives one clip (random with ``rng``, centred without);
    ``sampler.views(num_frames, fps, k)`` gives ``k`` deterministic views for multi-view testing.
    ``target_fps`` (dense only) rescales ``stride`` so that a clip spans the same time whatever
    the video's frame rate, in training, evaluation and every view alike.
    """

    def __init__(
        self, kind: Literal["segments", "dense"], *, num_frames: int, stride: int = 1, target_fps: float | None = None
    ) -> None:
        if kind not in ("segments", "dense"):
            raise ValueError(f"unknown sampler {kind!r}; known: segments, dense")
        if num_frames <= 0 or stride <= 0:
            raise ValueError(f"num_frames and stride must be positive, got {num_frames}, {stride}")
        self.kind = kind
        self.num_frames = num_frames
        self.stride = stride
        self.target_fps = target_fps

    def stride_for(self, fps: float) -> int:
        """Frames between samples of a dense clip in a video at ``fps``."""
        if self.target_fps and fps:
            return max(1, round(self.stride * fps / self.target_fps))
        return self.stride

    def __call__(self, num_frames: int, fps: float, rng: np.random.Generator | None = None) -> list[int]:
        if self.kind == "dense":
            return dense_indices(num_frames, self.num_frames, self.stride_for(fps), rng=rng)
        return segment_indices(num_frames, self.num_frames, rng=rng)

    def views(self, num_frames: int, fps: float, num_views: int) -> list[list[int]]:
        """``num_views`` deterministic clips spread over the video (one view: the centred clip)."""
        if num_views == 1:
            return [self(num_frames, fps, None)]
        mode: Literal["dense", "segments"] = "dense" if self.kind == "dense" else "segments"
        return multi_view_indices(num_frames, self.num_frames, self.stride_for(fps), num_views, mode=mode)

    def __repr__(self) -> str:
        extra = f", stride={self.stride}, target_fps={self.target_fps}" if self.kind == "dense" else ""
        return f"FrameSampler({self.kind!r}, num_frames={self.num_frames}{extra})"


def make_frame_sampler(
    kind: Literal["segments", "dense"], *, num_frames: int, stride: int = 1, target_fps: float | None = None
) -> FrameSampler:
    """Bind parameters: returns ``f(video_frames, fps, rng) -> indices`` with ``f.views(...)``."""
    return FrameSampler(kind, num_frames=num_frames, stride=stride, target_fps=target_fps)


def window_views(
    num_frames: int, fps: float, *, clip_frames: int, window_seconds: float, stride_seconds: float | None = None
) -> tuple[list[list[int]], list[tuple[float, float]]]:
    """Cut a video into ``window_seconds`` windows starting every ``stride_seconds`` (default: the
    window, i.e. no overlap; less: overlapping windows), one TSN clip of ``clip_frames`` per window.

    Windows start at 0, stride, 2·stride, ... until one reaches the end (the last may be shorter).
    Returns the clips' indices and each window's span in seconds (``vidrec embed --segments
    window``, ``vidrec moments``).
    """
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    if stride_seconds is not None and stride_seconds <= 0:
        raise ValueError(f"stride_seconds must be positive, got {stride_seconds}")
    n = max(num_frames, 1)
    fps = fps or 25.0
    per = max(1, int(round(window_seconds * fps)))
    step = per if stride_seconds is None else max(1, int(round(stride_seconds * fps)))
    clips, spans = [], []
    for start in range(0, n, step):
        stop = min(start + per, n)
        clips.append([start + i for i in segment_indices(stop - start, clip_frames)])
        spans.append((start / fps, stop / fps))
        if stop >= n:
            break
    return clips, spans


__all__ = [
    "FrameSampler",
    "segment_indices",
    "dense_indices",
    "multi_view_indices",
    "make_frame_sampler",
    "window_views",
]
