"""The one Dataset class: records + the clip reader (+ side inputs) → sample dicts.

Samples are dicts with stable keys:

- ``video``: uint8 ``C×T×H×W`` (cropped; float conversion and normalisation happen per batch
  on the device, :class:`~vidrec.video.transforms.VideoNormalize`)
- ``label``: int64 class index (-1 when unknown)
- ``index``: record index (multi-view clips of one video share it), ``clip_index``: view number
- ``frame_indices``: int64 ``T``, the decoded frame numbers; ``frame_times``: float ``T``, seconds
- ``video_id``: str
- ``substituted``: 1 when the requested video failed and another record stood in for it (training)
- ``failed``: 1 when the video could not be read and the sample is a placeholder (evaluation
  never substitutes: it drops these and reports them), ``error``: why ("" otherwise)
- side inputs (boxes, joints, crops), from callables ``(record, indices, info) -> dict[str, Tensor]``

Randomness is a pure function of ``(seed, epoch, index)``: the :class:`EpochSampler` encodes the
epoch into the keys it yields, so persistent workers, mid-epoch resume and any worker count all
see the same clips. :class:`CaptionClipDataset` (``task: retrieval``) adds a ``caption`` to each sample, drawn from the
same keys.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vidrec.data.records import VideoRecord
from vidrec.errors import VideoError
from vidrec.video.decode import Decoder, VideoInfo
from vidrec.video.reader import Clip, ClipReader
from vidrec.video.sampling import FrameSampler

log = logging.getLogger(__name__)

SideInput = Callable[[VideoRecord, list[int], VideoInfo], dict[str, torch.Tensor]]
OnError = Literal["substitute", "mark", "raise"]
_EPOCH_STRIDE = 1 << 32  # key = epoch * _EPOCH_STRIDE + index


class ClipCache:
    """Decoded clips of an evaluation dataset kept in this process, up to ``budget`` bytes.

    Evaluation clips are deterministic (view k of V, centre crop), so a clip read once is the same
    clip every epoch. Clips are admitted in the order they are read until the budget is full and
    then kept (no eviction: a sequential pass over more data than fits would evict every clip
    before its next use, so an LRU would hit nothing). Each DataLoader worker holds its own share
    (``budget / num_workers``): with persistent workers and the fixed evaluation order, batch b goes
    to worker ``b % num_workers`` every epoch, so each worker is asked again for exactly the clips
    it cached; no shared memory or locking is needed.
    """

    def __init__(self, budget: int) -> None:
        self.budget = int(budget)
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.share: int | None = None  # this process's part of the budget, fixed on first use
        self.used = 0
        self.clips: dict[tuple[int, int], Clip] = {}
        self.hits = self.misses = 0

    def _own(self) -> None:
        """A forked worker starts empty, with its own share (not a copy of what its parent held)."""
        if self.pid != os.getpid():
            self._reset()

    def _my_share(self) -> int:
        if self.share is None:
            from torch.utils.data import get_worker_info

            w = get_worker_info()
            self.share = self.budget // (w.num_workers if w is not None else 1)
            log.debug("decoded-clip cache: %.0f MB in process %d", self.share / 1e6, self.pid)
        return self.share

    def get(self, key: tuple[int, int]) -> Clip | None:
        self._own()
        clip = self.clips.get(key)
        if clip is None:
            self.misses += 1
        else:
            self.hits += 1
        return clip

    def put(self, key: tuple[int, int], clip: Clip) -> None:
        size = clip.video.numel() * clip.video.element_size()
        if self.used + size <= self._my_share():
            self.clips[key] = clip
            self.used += size

    def __getstate__(self) -> dict[str, Any]:  # a spawned worker starts with an empty cache of its own
        return {"budget": self.budget}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.budget = state["budget"]
        self._reset()


class VideoClipDataset(Dataset[dict[str, Any]]):
    """Clips from ``records``; with ``views > 1`` every record yields ``views`` deterministic clips.

    Args:
        records: what to read.
        frame_sampler: the bound frame-index sampler (:func:`vidrec.video.sampling.make_frame_sampler`); it also
            spreads the views, so ``target_fps`` holds for every view.
        transform: uint8 ``T×H×W×C`` → uint8 ``C×T×S×S`` (:class:`~vidrec.video.transforms.ClipTransform`).
        train: random sampling (seeded per sample) instead of centred.
        views: clips per video for multi-view testing (eval only).
        decode_size: short side to decode straight to (``None``: native size).
        side_inputs: extra per-sample tensors (boxes, joints, crops) aligned with the indices.
        cache_bytes: keep decoded clips in memory up to this many bytes (evaluation only, where
            clips are deterministic; see :class:`ClipCache`); 0: off.
        on_error: what an unreadable video becomes. ``substitute`` (training): logged, and the
            next record stands in (counted in ``substituted``; the trainer stops past
            ``data.max_skips``); ``mark`` (evaluation): a placeholder with ``failed=1`` that
            evaluation drops and reports; ``raise`` (``--strict``): the error stops the run.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        frame_sampler: FrameSampler,
        transform: Callable[[torch.Tensor], torch.Tensor],
        train: bool,
        decoder: Decoder | None = None,
        views: int = 1,
        decode_size: int | None = None,
        side_inputs: Sequence[SideInput] = (),
        seed: int = 0,
        on_error: OnError | None = None,
        max_tries: int = 10,
        cache_bytes: int = 0,
    ) -> None:
        if not records:
            raise VideoError("no videos to read: the dataset subset is empty")
        self.records = list(records)
        self.reader = ClipReader(frame_sampler, transform=transform, decode_size=decode_size, decoder=decoder)
        self.train = train
        self.views = views if not train else 1
        self.side_inputs = list(side_inputs)
        self.seed = seed
        self.on_error: OnError = on_error or ("substitute" if train else "mark")
        self.max_tries = max_tries
        self._bad: set[Path] = set()
        self.cache = ClipCache(cache_bytes) if cache_bytes > 0 and not train else None  # training clips are random

    def __len__(self) -> int:
        return len(self.records) * self.views

    @property
    def frame_sampler(self) -> FrameSampler:
        return self.reader.frame_sampler

    def info(self, record: VideoRecord) -> VideoInfo:
        return self.reader.info(record)

    def load(self, idx: int, *, epoch: int = 0) -> dict[str, Any]:
        """Build the sample for clip ``idx`` (no substitution on failure)."""
        rec_idx, view = divmod(idx, self.views)
        record = self.records[rec_idx]
        clip = self.cache.get((rec_idx, view)) if self.cache is not None else None
        if clip is None:
            clip = self.reader.read(
                record, view=view, views=self.views, train=self.train, seed=(self.seed, epoch, rec_idx)
            )
            if self.cache is not None:
                self.cache.put((rec_idx, view), clip)
        sample: dict[str, Any] = {
            "video": clip.video,  # (C, T, S, S) uint8
            "label": torch.tensor(record.label, dtype=torch.long),
            "index": rec_idx,
            "clip_index": view,
            "frame_indices": torch.tensor(clip.indices, dtype=torch.long),
            "frame_times": torch.tensor(clip.times, dtype=torch.float32),
            "video_id": record.video_id,
            "substituted": 0,
            "failed": 0,
            "error": "",
        }
        for side in self.side_inputs:
            sample.update(side(record, list(clip.indices), clip.info))
        return sample

    def _placeholder(self, idx: int, exc: VideoError) -> dict[str, Any]:
        """Evaluation's stand-in for an unreadable video: zeros, ``failed=1``, never scored."""
        rec_idx, view = divmod(idx, self.views)
        record = self.records[rec_idx]
        t = self.frame_sampler.num_frames
        s = int(getattr(self.reader.transform, "image_size", 0)) or 1
        sample: dict[str, Any] = {
            "video": torch.zeros(3, t, s, s, dtype=torch.uint8),
            "label": torch.tensor(record.label, dtype=torch.long),
            "index": rec_idx,
            "clip_index": view,
            "frame_indices": torch.zeros(t, dtype=torch.long),
            "frame_times": torch.zeros(t, dtype=torch.float32),
            "video_id": record.video_id,
            "substituted": 0,
            "failed": 1,
            "error": str(exc),
        }
        if self.side_inputs:
            info = VideoInfo(t, 25.0, t / 25.0, s, s)
            for side in self.side_inputs:
                sample.update(side(record, [0] * t, info))
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
                if self.on_error == "raise":
                    raise
                path = self.records[j // self.views].path
                if path not in self._bad:
                    self._bad.add(path)
                    log.warning(
                        "unreadable video, %s: %s", "skipped" if self.on_error == "mark" else "another stands in", exc
                    )
                if self.on_error == "mark":
                    return self._placeholder(idx, exc)
        raise VideoError(
            f"{self.max_tries} videos in a row failed to decode (last near record {idx // self.views}); "
            "check the dataset"
        )


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


class CaptionClipDataset(Dataset[dict[str, Any]]):
    """A :class:`VideoClipDataset` whose samples also carry ``caption`` (a random one of the video's captions in
    training, a function of ``(seed, epoch, index)``; the first in evaluation)."""

    def __init__(
        self, clips: Dataset[dict[str, Any]], captions: Sequence[Sequence[str]], *, train: bool, seed: int = 0
    ) -> None:
        self.clips = clips
        self.captions = [list(c) for c in captions]
        self.train = train
        self.seed = seed

    def __len__(self) -> int:
        return len(self.clips)  # type: ignore[arg-type]

    def __getitem__(self, key: int) -> dict[str, Any]:
        sample = self.clips[key]
        caps = self.captions[int(sample["index"])]
        if self.train and len(caps) > 1:
            epoch = int(key) // _EPOCH_STRIDE
            rng = np.random.default_rng((self.seed, epoch, int(sample["index"]), 7))
            sample["caption"] = caps[int(rng.integers(len(caps)))]
        else:
            sample["caption"] = caps[0]
        return sample

    def set_epoch(self, epoch: int) -> None:  # the sampler carries the epoch; kept for loaders that ask
        return None
