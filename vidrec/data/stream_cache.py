"""The per-video stream cache (hand joints, object crops) and the side input that reads it.

``vidrec prepare hands`` / ``vidrec prepare objects`` run :func:`prepare_streams`: for every
video, decode its annotated frames at native size, compute the kind's arrays, and write
``<cache_dir>/<video_id>.npz`` atomically. Both kinds share the one file per video (a second
kind is merged into it); the file records, per kind, the options it was made with, so a re-run
skips videos already done with the same options (resumable) and redoes those made otherwise.

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

:class:`StreamSideInput` gives the dataset ``hand_joints``/``hand_joints_mask`` and
``object_crops`` aligned with the sampled frame indices (a frame the cache lacks gives zeros
and mask 0); with ``on_the_fly=True`` a video without a cache file is computed when sampled.
Boxes and their masks come from :mod:`vidrec.data.boxes` (same slot order).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from vidrec.data.boxes import ANNOTATION_FPS, VideoBoxes, _object_order, open_box_store
from vidrec.data.hands import NUM_HANDS, NUM_JOINTS, HandLandmarker, empty_frame_hands, hands_in_frame, make_landmarker
from vidrec.data.objects import objects_in_frame
from vidrec.data.records import VideoRecord
from vidrec.errors import DatasetError, VidrecError
from vidrec.utils.io import atomic_path, write_json_atomic
from vidrec.video.decode import AutoDecoder, Decoder

log = logging.getLogger(__name__)

CACHE_VERSION = 1
KINDS = ("hands", "objects")
_KIND_KEYS = {
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
        keep = ("margin", "roi", "min_confidence", "model_complexity") if kind == "hands" else ("object_size", "max_objects")
        return {"version": CACHE_VERSION, **{k: d[k] for k in keep}}


def _check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    out = tuple(kinds)
    bad = [k for k in out if k not in KINDS]
    if bad or not out:
        raise ValueError(f"stream kinds must be among {KINDS}, got {out}")
    return out


# ------------------------------------------------------------------------------------------ boxes


def record_boxes(record: VideoRecord, boxes_file: str | os.PathLike[str] | None = None) -> VideoBoxes | None:
    """The record's Something-Else boxes (``meta["boxes_file"]``/``meta["boxes"]`` or ``boxes_file``)."""
    src = record.meta.get("boxes_file") or record.meta.get("boxes") or boxes_file
    if not src:
        return None
    return open_box_store(src).get(str(record.meta.get("boxes_id", record.video_id)))


def annotation_index(i: int, fps: float | None, annotation_fps: float, is_folder: bool) -> int:
    """Decoded frame ``i`` → annotation entry (the rule of :class:`vidrec.data.boxes.BoxesSideInput`)."""
    if is_folder or not fps or abs(fps - annotation_fps) < 0.5:
        return int(i)
    return int(round(i * annotation_fps / fps))


def frame_layout(
    entries: Sequence[Sequence[Any]], sx: float, sy: float, w: int, h: int, object_slots: dict[str, int]
) -> tuple[list[tuple[float, float, float, float] | None], list[tuple[float, float, float, float] | None]]:
    """One annotated frame → (hand boxes per slot, object boxes per slot) in decoded-frame pixels.

    ``sx, sy`` scale annotation pixels to decoded pixels. Hands fill slots in annotation order and
    boxes with nothing inside the frame are skipped, as in the boxes side input.
    """
    hands: list[tuple[float, float, float, float] | None] = [None] * NUM_HANDS
    objs: list[tuple[float, float, float, float] | None] = [None] * len(object_slots)
    n_hands = 0
    for cat, x1, y1, x2, y2 in entries:
        box = (min(max(x1 * sx, 0.0), w), min(max(y1 * sy, 0.0), h), min(max(x2 * sx, 0.0), w), min(max(y2 * sy, 0.0), h))
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        if cat == "hand":
            if n_hands < NUM_HANDS:
                hands[n_hands] = box
                n_hands += 1
        elif cat in object_slots:
            objs[object_slots[cat]] = box
    return hands, objs


# ------------------------------------------------------------------------------------------ compute


def compute_streams(
    record: VideoRecord,
    kinds: Sequence[str],
    options: StreamOptions = StreamOptions(),
    *,
    decoder: Decoder | None = None,
    landmarker: HandLandmarker | None = None,
    indices: Sequence[int] | None = None,
    boxes_file: str | os.PathLike[str] | None = None,
) -> dict[str, np.ndarray]:
    """The cache arrays of ``kinds`` for one video (see the module docstring).

    ``indices``: the decoded frames to compute (default: every frame that has boxes; every frame
    for hands without ROI). A frame without boxes gets zeros and mask 0.
    """
    kinds = _check_kinds(kinds)
    decoder = decoder or AutoDecoder()
    info = decoder.info(record.path)
    boxes = record_boxes(record, boxes_file)
    w, h = int(info.width), int(info.height)
    fw, fh = record.meta.get("frame_size") or (w, h)  # annotation pixels are the original video's
    sx, sy = w / float(fw), h / float(fh)
    is_folder = Path(record.path).is_dir()
    fps = record.fps or info.fps
    frames_map = boxes["frames"] if boxes else {}
    ann = {i: frames_map.get(annotation_index(i, fps, options.annotation_fps, is_folder)) for i in range(info.num_frames)}
    if indices is None:
        if "hands" in kinds and not options.roi:
            rows = list(range(info.num_frames))
        else:
            rows = [i for i in range(info.num_frames) if ann.get(i)]
    else:
        rows = sorted({int(i) for i in indices})
    object_ids = _object_order(boxes["objects"])[: options.max_objects] if boxes else []
    slots = {oid: k for k, oid in enumerate(object_ids)}
    out: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps({"version": CACHE_VERSION, "video_id": record.video_id, "frame_size": [w, h]})),
    }
    t, o, s = len(rows), options.max_objects, options.object_size
    if "hands" in kinds:
        out |= {
            "hands_frames": np.array(rows, np.int32),
            "hand_joints": np.zeros((t, NUM_HANDS, NUM_JOINTS, 3), np.float32),
            "hand_joints_mask": np.zeros((t, NUM_HANDS), np.uint8),
            "hand_score": np.zeros((t, NUM_HANDS), np.float32),
            "handedness": np.full((t, NUM_HANDS), -1, np.int8),
            "hand_boxes": np.zeros((t, NUM_HANDS, 4), np.float32),
            "hand_mask": np.zeros((t, NUM_HANDS), np.uint8),
        }
        if landmarker is None:
            landmarker = make_landmarker(min_confidence=options.min_confidence, model_complexity=options.model_complexity)
    if "objects" in kinds:
        out |= {
            "objects_frames": np.array(rows, np.int32),
            "object_crops": np.zeros((t, o, 3, s, s), np.uint8),
            "object_boxes": np.zeros((t, o, 4), np.float32),
            "object_mask": np.zeros((t, o), np.uint8),
            "object_ids": np.array(object_ids + [""] * (o - len(object_ids)), dtype="<U16"),
        }
    if not rows:
        return out
    chunk = 64  # decode in chunks: bounded memory for long videos
    for start in range(0, t, chunk):
        part = rows[start : start + chunk]
        frames = decoder.decode(record.path, part, size=None).numpy()  # (n, H, W, 3) uint8
        for j, (i, frame) in enumerate(zip(part, frames)):
            r = start + j
            hand_boxes, obj_boxes = frame_layout(ann.get(i) or [], sx, sy, w, h, slots)
            if "hands" in kinds:
                assert landmarker is not None
                if options.roi and not any(b is not None for b in hand_boxes):
                    fh_ = empty_frame_hands()
                else:
                    fh_ = hands_in_frame(frame, hand_boxes if options.roi else None, landmarker, margin=options.margin)
                out["hand_joints"][r], out["hand_joints_mask"][r] = fh_.joints, fh_.mask
                out["hand_score"][r], out["handedness"][r] = fh_.score, fh_.handedness
                for k, b in enumerate(hand_boxes):
                    if b is not None:
                        out["hand_boxes"][r, k] = (b[0] / w, b[1] / h, b[2] / w, b[3] / h)
                        out["hand_mask"][r, k] = 1
            if "objects" in kinds:
                fo = objects_in_frame(frame, obj_boxes + [None] * (o - len(obj_boxes)), size=s)
                out["object_crops"][r], out["object_boxes"][r], out["object_mask"][r] = fo.crops, fo.boxes, fo.mask
    return out


# ------------------------------------------------------------------------------------------ files


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
            if kind not in kinds and kind in _KIND_KEYS:
                merged |= {k: old_arrays[k] for k in _KIND_KEYS[kind] if k in old_arrays}
                done[kind] = sig
    for kind in kinds:
        merged |= {k: arrays[k] for k in _KIND_KEYS[kind]}
        done[kind] = options.signature(kind)
    meta["kinds"] = done
    merged["meta"] = np.array(json.dumps(meta))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez_compressed(f, **merged)


# ------------------------------------------------------------------------------------------ prepare


@dataclass
class PrepareSummary:
    kind: str
    cache_dir: Path
    videos: int = 0
    computed: int = 0
    skipped: int = 0  # already cached with the same options
    no_boxes: int = 0  # videos without any box annotation (cached as empty)
    failed: list[str] = field(default_factory=list)
    frames: int = 0
    hand_boxes: int = 0  # hands: annotated hand slots (ROI mode) / frames x 2 (full frame)
    hands_found: int = 0  # hands: slots where MediaPipe found joints
    objects: int = 0  # objects: crops written
    seconds: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def detection_rate(self) -> float:
        return self.hands_found / self.hand_boxes if self.hand_boxes else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cache_dir"] = str(self.cache_dir)
        d["detection_rate"] = round(self.detection_rate, 4)
        return d

    def lines(self) -> list[str]:
        out = [f"{self.kind}: {self.videos} videos: {self.computed} computed, {self.skipped} already cached, "
               f"{len(self.failed)} failed, {self.no_boxes} without boxes; {self.frames} frames in {self.seconds:.1f} s"]
        if self.kind == "hands":
            where = "ground-truth hand boxes" if self.options.get("roi", True) else "frames x 2 hand slots (full frame)"
            out.append(f"MediaPipe found joints in {self.hands_found} of {self.hand_boxes} {where} ({100 * self.detection_rate:.1f}%)")
        else:
            out.append(f"{self.objects} object crops")
        out += [f"failed: {msg}" for msg in self.failed[:10]]
        out.append(f"cache: {self.cache_dir}")
        return out


_WORKER: dict[str, Any] = {}


def _init_worker(kind: str, options: StreamOptions) -> None:
    torch.set_num_threads(1)
    _WORKER.clear()
    _WORKER["decoder"] = AutoDecoder()
    if kind == "hands":
        _WORKER["landmarker"] = make_landmarker(min_confidence=options.min_confidence, model_complexity=options.model_complexity)


def _process(job: tuple[VideoRecord, str, StreamOptions, str, str | None]) -> dict[str, Any]:
    record, kind, options, cache_dir, boxes_file = job
    res: dict[str, Any] = {"video_id": record.video_id, "frames": 0, "hand_boxes": 0, "hands_found": 0, "objects": 0}
    try:
        arrays = compute_streams(record, (kind,), options, decoder=_WORKER.get("decoder"),
                                 landmarker=_WORKER.get("landmarker"), boxes_file=boxes_file)
        write_cache(cache_path(cache_dir, record.video_id), arrays, (kind,), options)
    except VidrecError as exc:
        if type(exc).__name__ == "HandsUnavailable":
            raise
        res["error"] = f"{record.video_id}: {exc}"
        return res
    frames_key = f"{kind}_frames"
    res["frames"] = int(len(arrays[frames_key]))
    if kind == "hands":
        res["hand_boxes"] = int(arrays["hand_mask"].sum()) if options.roi else 2 * res["frames"]
        res["hands_found"] = int(arrays["hand_joints_mask"].sum())
        res["no_boxes"] = options.roi and res["hand_boxes"] == 0 and record_boxes(record, boxes_file) is None
    else:
        res["objects"] = int(arrays["object_mask"].sum())
        res["no_boxes"] = res["frames"] == 0
    return res


def prepare_streams(
    records: Sequence[VideoRecord],
    kind: str,
    cache_dir: str | os.PathLike[str],
    *,
    options: StreamOptions = StreamOptions(),
    workers: int = 0,
    boxes_file: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> PrepareSummary:
    """Cache ``kind`` ("hands" or "objects") for every record; skip those already done (resumable).

    ``workers`` > 0 runs that many processes (each with its own decoder and MediaPipe graph).
    Videos that fail to decode are listed in the summary and left uncached (a re-run retries them).
    Writes ``<cache_dir>/summary_<kind>.json``.
    """
    _check_kinds([kind])
    cache = Path(cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    summary = PrepareSummary(kind=kind, cache_dir=cache, videos=len(records), options=options.signature(kind))
    t0 = time.perf_counter()
    seen: set[str] = set()
    todo = []
    for r in records:
        if r.video_id in seen:
            continue
        seen.add(r.video_id)
        if not overwrite and cache_complete(cache_path(cache, r.video_id), kind, options):
            summary.skipped += 1
        else:
            todo.append(r)
    summary.videos = len(seen)
    if kind == "hands" and todo:
        make_landmarker(min_confidence=options.min_confidence).close()  # fail fast with the install hint
    from tqdm.auto import tqdm

    jobs = [(r, kind, options, str(cache), str(boxes_file) if boxes_file else None) for r in todo]
    bar = tqdm(total=len(jobs), desc=f"prepare {kind}", unit="video", disable=not progress)
    try:
        if workers > 0 and len(jobs) > 1:
            ctx = mp.get_context("spawn")  # MediaPipe graphs and FFmpeg state do not survive fork
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(kind, options)) as pool:
                for res in pool.map(_process, jobs, chunksize=1):
                    _account(summary, res)
                    bar.update(1)
        else:
            if jobs:
                _init_worker(kind, options)
            for job in jobs:
                _account(summary, _process(job))
                bar.update(1)
    finally:
        bar.close()
        _WORKER.clear()
    summary.seconds = time.perf_counter() - t0
    write_json_atomic(cache / f"summary_{kind}.json", summary.to_dict())
    return summary


def _account(summary: PrepareSummary, res: dict[str, Any]) -> None:
    if "error" in res:
        summary.failed.append(res["error"])
        log.warning("%s", res["error"])
        return
    summary.computed += 1
    summary.no_boxes += int(bool(res.get("no_boxes")))
    summary.frames += res["frames"]
    summary.hand_boxes += res["hand_boxes"]
    summary.hands_found += res["hands_found"]
    summary.objects += res["objects"]


# ------------------------------------------------------------------------------------------ side input


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
        self.kinds = _check_kinds(kinds)
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
                    got |= {key: arrays[key] for key in _KIND_KEYS[k]}
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
                self._landmarker = make_landmarker(min_confidence=self.options.min_confidence,
                                                   model_complexity=self.options.model_complexity)
            got |= compute_streams(record, missing, self.options, decoder=self._decoder, landmarker=self._landmarker,
                                   indices=indices, boxes_file=self.boxes_file)
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


# ------------------------------------------------------------------------------------------ wiring


def default_streams_dir(cfg: Any) -> Path:
    """Where the hand/object cache lives when ``data.streams_dir`` is not set.

    The synthetic dataset is vidrec's own, so its cache sits inside it (``<root>/streams``). A real
    dataset's root is never written to: its cache goes under ``$VIDREC_CACHE`` (default
    ``~/.cache/vidrec``), in a folder named after the dataset and its root.
    """
    import hashlib
    import os

    root = cfg.data.root if cfg.data.root is not None else cfg.train.out_dir / "data"
    if cfg.data.dataset == "synthetic":
        return Path(root) / "streams"
    base = Path(os.environ.get("VIDREC_CACHE", Path.home() / ".cache" / "vidrec"))
    tag = hashlib.sha1(str(Path(root).expanduser().resolve()).encode()).hexdigest()[:10]
    return base / "streams" / f"{cfg.data.dataset}-{tag}"


def _register() -> None:
    try:
        from vidrec.data.build import register_side_input
    except ImportError:  # pragma: no cover
        return

    @register_side_input("hand_joints", "hand_joints_mask", "object_crops")
    def _streams_factory(cfg: Any, recordset: Any) -> StreamSideInput:
        from vidrec.models.multistream import STREAMS, _parse_streams

        kw = cfg.model_kwargs
        streams = _parse_streams(kw.get("streams", STREAMS))
        kinds = [k for k in KINDS if k in streams]
        data = cfg.data
        extra = dict(data.model_extra or {})
        cache_dir = getattr(data, "streams_dir", None) or extra.get("streams_dir")
        if cache_dir is None:
            cache_dir = default_streams_dir(cfg)
        on_the_fly = bool(getattr(data, "streams_on_the_fly", None) or extra.get("streams_on_the_fly", False))
        options = StreamOptions(object_size=int(kw.get("object_size", 112)), max_objects=int(kw.get("num_objects", 4)))
        info = getattr(recordset, "info", None) or {}
        return StreamSideInput(cache_dir, kinds=kinds or ["objects"], on_the_fly=on_the_fly, options=options,
                               boxes_file=info.get("boxes"))


_register()
