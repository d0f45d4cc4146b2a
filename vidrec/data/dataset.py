"""The one Dataset class: records + decoder + sampler + transform (+ side inputs) → sample dicts.

Samples are dicts with stable keys:

- ``video``: float ``C×T×H×W`` (normalised)
- ``label``: int64 class index (-1 when unknown)
- ``index``: record index (multi-view clips of one video share it), ``clip_index``: view number
- ``frame_indices``: int64 ``T``, the decoded frame numbers
- ``video_id``: str
- ``substituted``: 1 when the requested video failed and another record stood in for it
- side inputs (boxes, joints, crops), from callables ``(record, indices, info) -> dict[str, Tensor]``

Randomness is a pure function of ``(seed, epoch, index)``: the :class:`EpochSampler` encodes the
epoch into the keys it yields, so persistent workers, mid-epoch resume and any worker count all
see the same clips.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vidrec.data.records import VideoRecord
from vidrec.errors import VideoError
from vidrec.video.decode import AutoDecoder, Decoder, VideoInfo
from vidrec.video.sampling import Sampler as FrameSampler
from vidrec.video.sampling import multi_view_indices

log = logging.getLogger(__name__)

SideInput = Callable[[VideoRecord, list[int], VideoInfo], dict[str, torch.Tensor]]
_EPOCH_STRIDE = 1 << 32  # key = epoch * _EPOCH_STRIDE + index


class VideoClipDataset(Dataset[dict[str, Any]]):
    """Clips from ``records``; with ``views > 1`` every record yields ``views`` deterministic clips.

    Args:
        records: what to read.
        sampler: ``(num_frames, fps, rng) -> indices`` (see :func:`vidrec.video.sampling.make_sampler`).
        transform: uint8 ``T×H×W×C`` → float ``C×T×H×W``.
        train: random sampling (seeded per sample) instead of centred.
        views: clips per video for multi-view testing (eval only).
        view_mode: how views are spread (``dense`` clip starts or ``segments`` offsets).
        clip_len, stride: used for multi-view indices.
        decode_size: short side to decode straight to (``None``: native size).
        side_inputs: extra per-sample tensors (boxes, joints, crops) aligned with the indices.
        skip_bad: a failing video is logged and replaced by the next record (counted in
            ``substituted``); with ``False`` (``--strict``) the error is raised.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        sampler: FrameSampler,
        transform: Callable[[torch.Tensor], torch.Tensor],
        train: bool,
        decoder: Decoder | None = None,
        views: int = 1,
        view_mode: str = "segments",
        clip_len: int = 8,
        stride: int = 1,
        decode_size: int | None = None,
        side_inputs: Sequence[SideInput] = (),
        seed: int = 0,
        skip_bad: bool = True,
        max_tries: int = 10,
    ) -> None:
        if not records:
            raise VideoError("no videos to read: the dataset subset is empty")
        self.records = list(records)
        self.sampler = sampler
        self.transform = transform
        self.train = train
        self.decoder = decoder or AutoDecoder()
        self.views = views if not train else 1
        self.view_mode = view_mode
        self.clip_len = clip_len
        self.stride = stride
        self.decode_size = decode_size
        self.side_inputs = list(side_inputs)
        self.seed = seed
        self.skip_bad = skip_bad
        self.max_tries = max_tries
        self._info: dict[Path, VideoInfo] = {}
        self._bad: set[Path] = set()

    def __len__(self) -> int:
        return len(self.records) * self.views

    # ------------------------------------------------------------------ helpers
    def info(self, record: VideoRecord) -> VideoInfo:
        info = self._info.get(record.path)
        if info is None and record.num_frames and record.fps and record.meta.get("frame_size"):
            # a scan index (vidrec prepare scan) already probed this video: no need to open it twice
            w, h = record.meta["frame_size"]
            info = VideoInfo(int(record.num_frames), float(record.fps), record.num_frames / record.fps, int(w), int(h))
            self._info[record.path] = info
        if info is None:
            info = self.decoder.info(record.path)
            if info.num_frames <= 0:
                raise VideoError(f"{record.path}: the video has no frames")
            self._info[record.path] = info
        return info

    def _decode_hw(self, info: VideoInfo) -> tuple[int, int] | None:
        if not self.decode_size or not info.width or not info.height:
            return None
        s = self.decode_size / min(info.width, info.height)
        if s >= 1.0:
            return None  # never upscale at decode; the transform resizes
        return max(2, round(info.height * s)), max(2, round(info.width * s))

    def frame_indices(self, record: VideoRecord, info: VideoInfo, view: int, rng: np.random.Generator | None) -> list[int]:
        if self.views > 1:
            mode = "segments" if self.view_mode == "segments" else "dense"
            return multi_view_indices(info.num_frames, self.clip_len, self.stride, self.views, mode=mode)[view]  # type: ignore[arg-type]
        return self.sampler(info.num_frames, info.fps, rng)

    def load(self, idx: int, *, epoch: int = 0) -> dict[str, Any]:
        """Build the sample for clip ``idx`` (no substitution on failure)."""
        rec_idx, view = divmod(idx, self.views)
        record = self.records[rec_idx]
        info = self.info(record)
        sample_seed = (self.seed, epoch, rec_idx, view)
        rng = np.random.default_rng(sample_seed) if self.train else None
        indices = self.frame_indices(record, info, view, rng)
        frames = self.decoder.decode(record.path, indices, size=self._decode_hw(info))  # (T, H, W, C) uint8
        # Augmentation draws from torch's RNG: fork it so each sample's crop depends only on its seed.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence(sample_seed).generate_state(1)[0]))
            video = self.transform(frames)  # (C, T, H, W)
        sample: dict[str, Any] = {
            "video": video,
            "label": torch.tensor(record.label, dtype=torch.long),
            "index": rec_idx,
            "clip_index": view,
            "frame_indices": torch.tensor(indices, dtype=torch.long),
            "video_id": record.video_id,
            "substituted": 0,
        }
        for side in self.side_inputs:
            sample.update(side(record, list(indices), info))
        return sample

    def __getitem__(self, key: int) -> dict[str, Any]:
        epoch, idx = divmod(int(key), _EPOCH_STRIDE)
        n = len(self)
        for attempt in range(self.max_tries):
            j = (idx + attempt * self.views) % n
            try:
                sample = self.load(j, epoch=epoch)
                sample["substituted"] = int(attempt > 0)
                return sample
            except VideoError as exc:
                if not self.skip_bad:
                    raise
                path = self.records[j // self.views].path
                if path not in self._bad:
                    self._bad.add(path)
                    log.warning("skipping unreadable video: %s", exc)
        raise VideoError(f"{self.max_tries} videos in a row failed to decode (last near record {idx // self.views}); check the dataset")


class EpochSampler(Sampler[int]):
    """Seeded (shuffled) order per epoch; yields keys that carry the epoch for :class:`VideoClipDataset`."""

    def __init__(self, num_items: int, *, shuffle: bool, seed: int = 0) -> None:
        self.num_items = num_items
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.num_items))
        g = torch.Generator()
        g.manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.num_items, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * _EPOCH_STRIDE
        return iter([base + i for i in self.order()])

    def __len__(self) -> int:
        return self.num_items
