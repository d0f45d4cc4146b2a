"""``vidrec prepare hands`` / ``vidrec prepare objects``: compute a stream for every video, in parallel.

Each video is computed by :func:`~vidrec.data.streams.compute.compute_streams` and written atomically
by :func:`~vidrec.data.streams.cache.write_cache`; a re-run skips the videos already cached with the
same options, so an interrupted prepare resumes. Worker processes are spawned (MediaPipe graphs and
FFmpeg state do not survive a fork), each with its own decoder and hand landmarker.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidrec.data.records import VideoRecord
from vidrec.data.streams import hands
from vidrec.data.streams.cache import StreamOptions, cache_complete, cache_path, check_kinds, write_cache
from vidrec.data.streams.compute import compute_streams, record_boxes
from vidrec.errors import VidrecError
from vidrec.utils.io import write_json_atomic
from vidrec.video.decode import AutoDecoder

log = logging.getLogger(__name__)


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
        out = [
            f"{self.kind}: {self.videos} videos: {self.computed} computed, {self.skipped} already cached, "
            f"{len(self.failed)} failed, {self.no_boxes} without boxes; "
            f"{self.frames} frames in {self.seconds:.1f} s"
        ]
        if self.kind == "hands":
            where = "ground-truth hand boxes" if self.options.get("roi", True) else "frames x 2 hand slots (full frame)"
            out.append(
                f"MediaPipe found joints in {self.hands_found} of {self.hand_boxes} {where} "
                f"({100 * self.detection_rate:.1f}%)"
            )
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
        _WORKER["landmarker"] = hands.make_landmarker(
            min_confidence=options.min_confidence, model_complexity=options.model_complexity
        )


def _process(job: tuple[VideoRecord, str, StreamOptions, str, str | None]) -> dict[str, Any]:
    record, kind, options, cache_dir, boxes_file = job
    res: dict[str, Any] = {"video_id": record.video_id, "frames": 0, "hand_boxes": 0, "hands_found": 0, "objects": 0}
    try:
        arrays = compute_streams(
            record,
            (kind,),
            options,
            decoder=_WORKER.get("decoder"),
            landmarker=_WORKER.get("landmarker"),
            boxes_file=boxes_file,
        )
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
    check_kinds([kind])
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
        hands.make_landmarker(min_confidence=options.min_confidence).close()  # fail fast with the install hint
    from tqdm.auto import tqdm

    jobs = [(r, kind, options, str(cache), str(boxes_file) if boxes_file else None) for r in todo]
    bar = tqdm(total=len(jobs), desc=f"prepare {kind}", unit="video", disable=not progress)
    try:
        if workers > 0 and len(jobs) > 1:
            ctx = mp.get_context("spawn")  # MediaPipe graphs and FFmpeg state do not survive fork
            pool_kw: dict[str, Any] = {"mp_context": ctx, "initializer": _init_worker, "initargs": (kind, options)}
            with ProcessPoolExecutor(workers, **pool_kw) as pool:
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
