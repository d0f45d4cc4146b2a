"""The one clip reader: ``(record or path, view k of V, train or eval, seed) → uint8 clip``.

Every verb that turns a video file into model input goes through :class:`ClipReader`:
training and evaluation (through :class:`~vidrec.data.dataset.VideoClipDataset`), ``vidrec
predict``, ``vidrec embed`` and ``vidrec serve``. It composes the three separate pieces:

    decoder (I/O)            frame sampler (arithmetic)    transform (uint8 crop)
    facts: frames, fps,  ──▶  indices of view k of V   ──▶  decode straight to data.decode_size
    rotation, key frames      (train: seeded random)        → crop/flip → uint8 C×T×S×S

and returns a :class:`Clip` with the frame indices and their presentation times. Float
conversion and normalisation happen later, per batch, on the device
(:class:`~vidrec.video.transforms.VideoNormalize`).

Real files: when decoding finds fewer frames than the header announced, the decoder learns the
true count (cached, warned once per file) and the reader samples again within it. Videos with
a variable frame rate are sampled by time: the frame sampler sees an evenly spaced time grid and each
grid point maps to the frame shown at that moment.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from vidrec.errors import VideoError
from vidrec.video.decode import AutoDecoder, Decoder, VideoInfo
from vidrec.video.sampling import FrameSampler

Source = Any  # a VideoRecord (anything with .path) or a path


@dataclass
class Clip:
    """One clip of one video. ``video`` is what the model gets (after the reader's transform)."""

    video: torch.Tensor  # uint8 (C, T, S, S) after the transform; (T, H, W, C) frames when there is none
    indices: list[int]  # display indices of the decoded frames
    times: list[float]  # their presentation times, seconds
    info: VideoInfo
    view: int = 0
    views: int = 1


def source_path(source: Source) -> Path:
    return Path(source.path if hasattr(source, "path") else source)


def sample_seed(seed: Sequence[int] | int) -> int:
    """One 32-bit torch seed from a seed tuple such as ``(seed, epoch, index, view)``."""
    key = list(seed) if isinstance(seed, Sequence) else [int(seed)]
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])


class ClipReader:
    """Turns a video into clips; the only code that does (see the module doc).

    Args:
        frame_sampler: the bound frame-index sampler (``make_frame_sampler``): clips and multi-view views.
        transform: uint8 ``T×H×W×C`` → uint8 ``C×T×S×S`` (:class:`ClipTransform`); ``None``
            returns the decoded frames.
        decode_size: short side to decode straight to (never upscaled; ``None``: native).
        decoder: defaults to :class:`AutoDecoder` (PyAV for files, JPEG folders for folders).
    """

    def __init__(
        self,
        frame_sampler: FrameSampler,
        *,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        decode_size: int | None = None,
        decoder: Decoder | None = None,
    ) -> None:
        self.frame_sampler = frame_sampler
        self.transform = transform
        self.decode_size = decode_size
        self.decoder = decoder or AutoDecoder()

    # ------------------------------------------------------------------ facts and arithmetic
    def info(self, source: Source) -> VideoInfo:
        info = self.decoder.info(source_path(source))
        if info.num_frames <= 0:
            raise VideoError(f"{source_path(source)}: the video has no frames")
        return info

    def decode_hw(self, info: VideoInfo) -> tuple[int, int] | None:
        """Displayed ``(height, width)`` to decode to: short side ``decode_size``, never larger than the video."""
        if not self.decode_size or not info.width or not info.height:
            return None
        s = self.decode_size / min(info.width, info.height)
        if s >= 1.0:
            return None  # never upscale at decode; the transform resizes
        return max(2, round(info.height * s)), max(2, round(info.width * s))

    def indices(
        self,
        info: VideoInfo,
        *,
        view: int = 0,
        views: int = 1,
        rng: np.random.Generator | None = None,
        path: Path | None = None,
    ) -> list[int]:
        """Frame indices of view ``view`` of ``views`` (``rng``: a random training clip)."""
        if not 0 <= view < views:
            raise ValueError(f"view {view} of {views}")
        n, fps = info.num_frames, info.fps
        picked = self.frame_sampler(n, fps, rng) if views == 1 else self.frame_sampler.views(n, fps, views)[view]
        if info.vfr and path is not None:
            picked = self._by_time(path, info, picked)
        return [int(i) for i in picked]

    def _by_time(self, path: Path, info: VideoInfo, grid: Sequence[int]) -> list[int]:
        """Variable frame rate: grid index g stands for time g / fps; take the frame shown then."""
        times = self._times(path, list(range(info.num_frames)), info)
        t0 = times[0]
        return [max(0, bisect.bisect_right(times, t0 + g / info.fps + 1e-6) - 1) for g in grid]

    def _times(self, path: Path, indices: Sequence[int], info: VideoInfo) -> list[float]:
        times = getattr(self.decoder, "times", None)
        if times is not None:
            return [float(t) for t in times(path, indices)]
        return [int(i) / (info.fps or 25.0) for i in indices]

    # ------------------------------------------------------------------ reading
    def read(
        self, source: Source, *, view: int = 0, views: int = 1, train: bool = False, seed: Sequence[int] | int = 0
    ) -> Clip:
        """View ``view`` of ``views`` (eval), or a random clip seeded by ``seed`` (``train``)."""
        path = source_path(source)
        key = (tuple(seed) if isinstance(seed, Sequence) else (int(seed),)) + (view,)
        for _ in range(2):  # a second pass when decoding found fewer frames than the header said
            info = self.info(source)
            rng = np.random.default_rng([int(k) for k in key]) if train else None
            idx = self.indices(info, view=view, views=views, rng=rng, path=path)
            frames = self.decoder.decode(path, idx, size=self.decode_hw(info))  # (T, H, W, C) uint8
            if self.decoder.info(path).num_frames >= info.num_frames:
                break
        video = self._transform(frames, key) if self.transform is not None else frames
        return Clip(video, idx, self._times(path, idx, info), info, view, views)

    def read_views(self, source: Source, views: int) -> list[Clip]:
        """All ``views`` evaluation views of one video, decoded in one pass (predict, serve)."""
        path = source_path(source)
        for _ in range(2):
            info = self.info(source)
            per_view = [self.indices(info, view=k, views=views, path=path) for k in range(views)]
            clips = self._decode_many(path, info, per_view)
            if self.decoder.info(path).num_frames >= info.num_frames:
                break
        return [
            Clip(c, idx, self._times(path, idx, info), info, k, views)
            for k, (c, idx) in enumerate(zip(clips, per_view))
        ]

    def read_indices(self, source: Source, clips: Sequence[Sequence[int]]) -> list[Clip]:
        """Explicit clips (``vidrec embed`` windows): each list of indices becomes one clip, one decoding pass."""
        path = source_path(source)
        info = self.info(source)
        lists = [[int(i) for i in c] for c in clips]
        out = self._decode_many(path, info, lists)
        return [
            Clip(c, idx, self._times(path, idx, info), info, k, len(lists))
            for k, (c, idx) in enumerate(zip(out, lists))
        ]

    def _decode_many(self, path: Path, info: VideoInfo, lists: list[list[int]]) -> list[torch.Tensor]:
        wanted = sorted({i for c in lists for i in c})
        frames = self.decoder.decode(path, wanted, size=self.decode_hw(info))  # (F, H, W, C)
        pos = {j: k for k, j in enumerate(wanted)}
        out = []
        for k, c in enumerate(lists):
            clip = frames[[pos[j] for j in c]]  # (T, H, W, C)
            out.append(self._transform(clip, (0, k)) if self.transform is not None else clip)
        return out

    def _transform(self, frames: torch.Tensor, key: Sequence[int]) -> torch.Tensor:
        # Augmentation draws from torch's RNG: fork it so each clip's crop depends only on its seed.
        # Only the CPU generator is seeded: torch.manual_seed also queues lazy CUDA/XPU/MTIA seeding, each
        # formatting a stack trace (about 10% of a small clip's read time).
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(sample_seed(key))
            return self.transform(frames)  # type: ignore[misc]


def read_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int],
    *,
    short_side: int | None = None,
    size: tuple[int, int] | None = None,
    decoder: Decoder | None = None,
) -> torch.Tensor:
    """Frames ``indices`` of ``path`` as uint8 ``T×H×W×C`` (upright), for previews and drawings.

    ``short_side`` scales (down or up) to that short side, even sizes; ``size`` is an exact (h, w).
    """
    dec = decoder or AutoDecoder()
    if short_side is not None and size is None:
        info = dec.info(path)
        short = min(info.width, info.height) or short_side
        scale = short_side / short
        size = (max(2, round(info.height * scale / 2) * 2), max(2, round(info.width * scale / 2) * 2))
    return dec.decode(path, indices, size=size)


__all__ = ["Clip", "ClipReader", "read_frames", "sample_seed", "source_path"]
