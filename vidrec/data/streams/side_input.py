"""The multi-stream model's side input: ``hand_joints`` / ``object_crops`` read from the stream cache.

:class:`StreamSideInput` gives the dataset ``hand_joints``/``hand_joints_mask`` and ``object_crops``
aligned with the sampled frame indices (a frame the cache lacks gives zeros and mask 0); with
``on_the_fly=True`` a video without a cache file is computed when sampled. Boxes and their masks
come from :mod:`vidrec.data.boxes` (same slot order). Which streams, the crop size and the number
of object slots are the model's: its :class:`~vidrec.models.base.InputSpec`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vidrec.data.records import RecordSet, VideoRecord
from vidrec.data.side_inputs import register_side_input
from vidrec.data.streams import hands
from vidrec.data.streams.cache import KIND_KEYS, KINDS, StreamOptions, cache_path, check_kinds, read_cache, streams_dir
from vidrec.data.streams.compute import compute_streams
from vidrec.data.streams.hands import NUM_HANDS, NUM_JOINTS, HandLandmarker
from vidrec.errors import DatasetError
from vidrec.video.decode import AutoDecoder, Decoder

if TYPE_CHECKING:
    from vidrec.config import Config
    from vidrec.models.base import InputSpec

# the batch key that makes a model need each kind
_KIND_OF = {"hand_joints": "hands", "hand_joints_mask": "hands", "object_crops": "objects"}


class StreamSideInput:
    """``(record, indices, info) -> {hand_joints, hand_joints_mask, object_crops}`` from the cache.

    ``kinds``: which streams to read. ``on_the_fly``: compute (and not cache) a video whose cache
    file lacks a kind; otherwise that is a :class:`DatasetError` naming the command to run.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None,
        *,
        kinds: Sequence[str] = KINDS,
        on_the_fly: bool = False,
        options: StreamOptions = StreamOptions(),
        boxes_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.kinds = check_kinds(kinds)
        self.on_the_fly = on_the_fly
        self.options = options
        self.boxes_file = boxes_file
        self._decoder: Decoder | None = None
        self._landmarker: HandLandmarker | None = None

    def _arrays(self, record: VideoRecord, indices: list[int]) -> dict[str, np.ndarray]:
        got: dict[str, np.ndarray] = {}
        missing: list[str] = list(self.kinds)
        if self.cache_dir is not None:
            cached = read_cache(cache_path(self.cache_dir, record.video_id))
            if cached is not None:
                meta, arrays = cached
                have = [k for k in self.kinds if k in meta.get("kinds", {})]
                for k in have:
                    got |= {key: arrays[key] for key in KIND_KEYS[k]}
                missing = [k for k in self.kinds if k not in have]
        if missing:
            if not self.on_the_fly:
                where = self.cache_dir or "(no cache folder set)"
                raise DatasetError(
                    f"video {record.video_id}: no cached {' and '.join(missing)} in {where}. Run "
                    + " and ".join(f"`vidrec prepare {k} ... --out {where}`" for k in missing)
                    + " first, or compute them while training with data.streams_on_the_fly=true"
                )
            if self._decoder is None:
                self._decoder = AutoDecoder()
            if "hands" in missing and self._landmarker is None:
                self._landmarker = hands.make_landmarker(
                    min_confidence=self.options.min_confidence, model_complexity=self.options.model_complexity
                )
            got |= compute_streams(
                record,
                missing,
                self.options,
                decoder=self._decoder,
                landmarker=self._landmarker,
                indices=indices,
                boxes_file=self.boxes_file,
            )
        return got

    def __call__(self, record: VideoRecord, indices: list[int], info: Any) -> dict[str, torch.Tensor]:
        arrays = self._arrays(record, indices)
        out: dict[str, torch.Tensor] = {}
        t = len(indices)
        if "hands" in self.kinds:
            rows = _rows(arrays["hands_frames"], indices)
            joints = np.zeros((t, NUM_HANDS, NUM_JOINTS, 3), np.float32)
            mask = np.zeros((t, NUM_HANDS), np.float32)
            ok = rows >= 0
            joints[ok] = arrays["hand_joints"][rows[ok]]
            mask[ok] = arrays["hand_joints_mask"][rows[ok]]
            out["hand_joints"] = torch.from_numpy(joints)  # (T, 2, 21, 3)
            out["hand_joints_mask"] = torch.from_numpy(mask)  # (T, 2)
        if "objects" in self.kinds:
            o, s = self.options.max_objects, self.options.object_size
            rows = _rows(arrays["objects_frames"], indices)
            crops = np.zeros((t, o, 3, s, s), np.uint8)
            src = arrays["object_crops"]
            if src.shape[-1] != s and src.shape[0]:
                raise DatasetError(
                    f"video {record.video_id}: cached object crops are {src.shape[-1]}px, the model wants {s}px; "
                    f"re-run `vidrec prepare objects --size {s}` (or set model.object_size={src.shape[-1]})"
                )
            ok = rows >= 0
            n = min(o, src.shape[1]) if src.ndim == 5 else 0
            if n:
                crops[ok, :n] = src[rows[ok], :n]
            out["object_crops"] = torch.from_numpy(crops)  # (T, O, 3, S, S)
        return out


def _rows(frames: np.ndarray, indices: Sequence[int]) -> np.ndarray:
    """Row of each wanted frame number in ``frames`` (sorted), -1 where the cache lacks it."""
    frames = np.asarray(frames, dtype=np.int64)
    want = np.asarray(indices, dtype=np.int64)
    if frames.size == 0:
        return np.full(len(want), -1, np.int64)
    pos = np.clip(np.searchsorted(frames, want), 0, frames.size - 1)
    return np.where(frames[pos] == want, pos, -1)


@register_side_input("hand_joints", "hand_joints_mask", "object_crops")
def _streams_factory(cfg: Config, spec: InputSpec, recordset: RecordSet | None) -> StreamSideInput:
    """The stream side input for a model whose ``spec`` asks for hand joints and/or object crops."""
    kinds = [k for k in KINDS if k in {_KIND_OF[key] for key in spec.side_inputs if key in _KIND_OF}]
    defaults = StreamOptions()
    options = StreamOptions(
        object_size=spec.object_size or defaults.object_size, max_objects=spec.num_objects or defaults.max_objects
    )
    info = recordset.info if recordset is not None else {}
    return StreamSideInput(
        streams_dir(cfg),
        kinds=kinds,
        on_the_fly=cfg.data.streams_on_the_fly,
        options=options,
        boxes_file=info.get("boxes"),
    )
