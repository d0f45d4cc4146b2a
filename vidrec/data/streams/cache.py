"""The stream cache's file format: one ``<cache_dir>/<video_id>.npz`` per video, and where the folder is.

Both kinds share the one file per video (a second kind is merged into it); the file records, per
kind, the options it was made with, so ``prepare`` skips videos already done with the same options
(resumable) and redoes those made otherwise.

Arrays in ``<video_id>.npz`` (``T`` = frames processed for that kind, listed in ``*_frames``)::

    meta               JSON: {"version", "video_id", "frame_size": [w, h], "kinds": {kind: options}}
    hands_frames       (T,) int32          video frame numbers (0-based decoded frame index)
    hand_joints        (T, 2, 21, 3) f32   frame-normalised x, y and MediaPipe's z; zeros where no hand
    hand_joints_mask   (T, 2) uint8        1 = MediaPipe found the hand of that slot
    hand_score         (T, 2) f32          MediaPipe's handedness score
    handedness         (T, 2) int8         0 Left, 1 Right, -1 none
    hand_boxes         (T, 2, 4) f32       ground-truth boxes, normalised xyxy (slot i = i-th hand annotated)
    hand_mask          (T, 2) uint8
    objects_frames     (T,) int32
    object_crops       (T, O, 3, S, S) uint8
    object_boxes       (T, O, 4) f32
    object_mask        (T, O) uint8
    object_ids         (O,) str            placeholder ids per slot ("0000", "0001", ...)
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidrec.data.boxes import ANNOTATION_FPS
from vidrec.utils.io import atomic_path

log = logging.getLogger(__name__)

CACHE_VERSION = 1
KINDS = ("hands", "objects")
KIND_KEYS = {
    "hands": ("hands_frames", "hand_joints", "hand_joints_mask", "hand_score", "handedness", "hand_boxes", "hand_mask"),
    "objects": ("objects_frames", "object_crops", "object_boxes", "object_mask", "object_ids"),
}


@dataclass(frozen=True)
class StreamOptions:
    """How streams are computed. A cache made with other options is redone by ``prepare``."""

    margin: float = 0.25  # hand crop: fraction of the box's longer side added on each side
    roi: bool = True  # hands: MediaPipe on ground-truth hand crops (False: on the full frame)
    min_confidence: float = 0.3  # MediaPipe's min_detection_confidence
    model_complexity: int = 1  # MediaPipe hand model: 0 lite, 1 full
    object_size: int = 112  # object crop side S
    max_objects: int = 4  # object slots O
    annotation_fps: float = ANNOTATION_FPS  # Something-Else boxes assume 12 fps

    def signature(self, kind: str) -> dict[str, Any]:
        d = asdict(self)
        if kind == "hands":
            keep: tuple[str, ...] = ("margin", "roi", "min_confidence", "model_complexity")
        else:
            keep = ("object_size", "max_objects")
        return {"version": CACHE_VERSION, **{k: d[k] for k in keep}}


def check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    out = tuple(kinds)
    bad = [k for k in out if k not in KINDS]
    if bad or not out:
        raise ValueError(f"stream kinds must be among {KINDS}, got {out}")
    return out


def cache_path(cache_dir: str | os.PathLike[str], video_id: str) -> Path:
    safe = str(video_id).replace(os.sep, "_").replace("/", "_")
    return Path(cache_dir) / f"{safe}.npz"


def read_cache(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """``(meta, arrays)`` of a cache file, or ``None`` when missing or unreadable (then it is redone)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("%s: unreadable stream cache (%s); it will be recomputed", path, exc)
        return None
    return meta, arrays


def cache_complete(path: Path, kind: str, options: StreamOptions) -> bool:
    got = read_cache(path)
    return got is not None and got[0].get("kinds", {}).get(kind) == options.signature(kind)


def write_cache(path: Path, arrays: dict[str, np.ndarray], kinds: Sequence[str], options: StreamOptions) -> None:
    """Write ``kinds``' arrays into ``path`` atomically, keeping the other kind's arrays already there."""
    old = read_cache(path)
    meta = json.loads(str(arrays["meta"]))
    merged: dict[str, np.ndarray] = {}
    done: dict[str, Any] = {}
    if old is not None:
        old_meta, old_arrays = old
        for kind, sig in old_meta.get("kinds", {}).items():
            if kind not in kinds and kind in KIND_KEYS:
                merged |= {k: old_arrays[k] for k in KIND_KEYS[kind] if k in old_arrays}
                done[kind] = sig
    for kind in kinds:
        merged |= {k: arrays[k] for k in KIND_KEYS[kind]}
        done[kind] = options.signature(kind)
    meta["kinds"] = done
    merged["meta"] = np.array(json.dumps(meta))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez_compressed(f, **merged)  # type: ignore[arg-type]  # numpy's stubs: a key could be allow_pickle


def default_streams_dir(cfg: Any) -> Path:
    """Where the hand/object cache lives when ``data.streams_dir`` is not set.

    The synthetic dataset is vidrec's own, so its cache sits inside it (``<root>/streams``). A real
    dataset's root is never written to: its cache goes under ``$VIDREC_CACHE`` (default
    ``~/.cache/vidrec``), in a folder named after the dataset and its root.
    """
    import hashlib

    root = cfg.data.root if cfg.data.root is not None else cfg.train.out_dir / "data"
    if cfg.data.dataset == "synthetic":
        return Path(root) / "streams"
    base = Path(os.environ.get("VIDREC_CACHE", Path.home() / ".cache" / "vidrec"))
    tag = hashlib.sha1(str(Path(root).expanduser().resolve()).encode()).hexdigest()[:10]
    return base / "streams" / f"{cfg.data.dataset}-{tag}"


def streams_dir(cfg: Any) -> Path:
    """The stream cache of a config: ``data.streams_dir``, else :func:`default_streams_dir`."""
    return Path(cfg.data.streams_dir).expanduser() if cfg.data.streams_dir is not None else default_streams_dir(cfg)
