"""``vidrec embed``: a folder of videos → video- and segment-level embeddings in a store.

The run is built for large folders:

- recursive scan for video containers (:data:`~vidrec.video.decode.VIDEO_SUFFIXES`), sorted;
- resumable: a video whose path, size and mtime are already in the store is skipped, so a re-run
  (or a run after an interruption) embeds only new or changed files;
- decoding in DataLoader workers with the encoder's :class:`~vidrec.video.reader.ClipReader` (for a
  vidrec checkpoint: the checkpoint's own frame sampler, ``data.decode_size`` and eval crop, so embed reads
  the frames evaluation reads) while the model encodes the previous batch; results are written to
  LanceDB after every batch;
- a video that fails (unreadable, no frames, an error in the model) is recorded with its error in
  ``failures.json`` and the run goes on; it is retried by the next run;
- several processes and machines fill one store: under ``torchrun`` / ``accelerate launch`` each
  process embeds every world-th video (on its own GPU), and ``shard=(i, n)`` splits the folder between
  machines (both together: every (n·world)-th). Each writer replaces only its own videos' rows
  (LanceDB retries concurrent commits); when all processes of a launch are done, rank 0 compacts the
  tables, builds the ANN index and writes the exports. A killed run loses nothing but the batch in
  flight: a video's row is written last, after its segments, so a re-run redoes exactly the videos
  without one.

Segments: ``frame`` mode stores one row per clip the encoder produced (a sampled frame, or the
frames a temporal merge combined) with the time span those frames stand for; ``window`` mode
cuts the video into ``window_seconds`` windows and encodes each as its own clip of
``num_frames`` frames (finer moments, proportionally more decoding).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import av
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidrec.embed.encoders import Encoder, load_encoder
from vidrec.embed.store import INDEX_THRESHOLD, Store, StoreError, now_iso
from vidrec.engine.distributed import launch_state, main_process_first
from vidrec.errors import VidrecError
from vidrec.utils.proc import worker_init_fn
from vidrec.video.decode import VideoInfo
from vidrec.video.files import VIDEO_SUFFIXES, find_videos
from vidrec.video.reader import ClipReader
from vidrec.video.sampling import FrameSampler, window_views

log = logging.getLogger(__name__)

SegmentMode = Literal["frame", "window"]


@dataclass
class EmbedSummary:
    store: Path
    found: int = 0
    processed: int = 0
    skipped: int = 0  # unchanged since they were embedded
    failed: int = 0
    short: int = 0  # fewer frames than sampled (frames repeated)
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)
    exports: list[str] = field(default_factory=list)
    indexed: list[str] = field(default_factory=list)

    @property
    def videos_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": str(self.store),
            "found": self.found,
            "processed": self.processed,
            "skipped": self.skipped,
            "failed": self.failed,
            "short": self.short,
            "seconds": round(self.seconds, 3),
            "videos_per_s": round(self.videos_per_s, 3),
            "failures": self.failures,
            "exports": self.exports,
            "indexed": self.indexed,
        }


def scan_videos(root: str | os.PathLike[str], *, exclude: Sequence[Path] = ()) -> list[Path]:
    """Video files under ``root`` (recursive, sorted; hidden folders and ``exclude`` skipped)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise VidrecError(f"{root}: no such folder")
    if root.is_file():
        if root.suffix.lower() not in VIDEO_SUFFIXES:
            raise VidrecError(f"{root}: not a video file ({', '.join(VIDEO_SUFFIXES)})")
        return [root]
    return find_videos(root, frame_folders=False, exclude=exclude)


def export_name(path: Path, root: Path) -> str:
    """``sub/dir/clip.mp4`` → ``sub__dir__clip`` (unique inside one scanned folder)."""
    try:
        rel = path.relative_to(root) if root.is_dir() else Path(path.name)
    except ValueError:
        rel = Path(path.name)
    return "__".join(rel.with_suffix("").parts)


@dataclass
class _Plan:
    """The clips to encode for one video: frame indices per clip and the span each stands for."""

    clips: list[list[int]]
    spans: list[tuple[float, float]]  # seconds per clip (window mode); frame mode: the whole video
    frame_spans: list[tuple[int, int]] = field(
        default_factory=list
    )  # frame mode: [first, last] frames each sampled frame stands for


def plan_clips(
    info: VideoInfo,
    frame_sampler: FrameSampler,
    mode: SegmentMode,
    window_seconds: float,
    stride_seconds: float | None = None,
) -> _Plan:
    """Frame mode: the reader's evaluation clip (``frame_sampler``); window mode: one TSN clip per window
    (windows start every ``stride_seconds``; default: back to back)."""
    n = max(info.num_frames, 1)
    fps = info.fps or 25.0
    if mode == "frame":
        idx = frame_sampler(n, fps, None)
        if frame_sampler.kind == "segments":
            edges = np.linspace(0, n, frame_sampler.num_frames + 1)  # the TSN segment each sampled frame stands for
            fspans = [(int(edges[j]), max(int(edges[j]), min(int(edges[j + 1]), n) - 1)) for j in range(len(idx))]
        else:
            step = frame_sampler.stride_for(fps)
            fspans = [(int(i), min(int(i) + step, n) - 1) for i in idx]
        return _Plan([idx], [(0.0, n / fps)], fspans)
    if window_seconds <= 0:
        raise VidrecError(f"--window-seconds {window_seconds}: must be positive")
    if stride_seconds is not None and stride_seconds <= 0:
        raise VidrecError(f"--stride-seconds {stride_seconds}: must be positive")
    clips, spans = window_views(
        n, fps, clip_frames=frame_sampler.num_frames, window_seconds=window_seconds, stride_seconds=stride_seconds
    )
    return _Plan(clips, spans)


class _VideoReader(Dataset[dict[str, Any]]):
    """Read one video per item with the encoder's :class:`ClipReader` (runs in DataLoader workers);
    errors are returned, not raised."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        reader: ClipReader,
        mode: SegmentMode,
        window_seconds: float,
        stride_seconds: float | None = None,
    ) -> None:
        self.paths = list(paths)
        self.reader = reader
        self.mode, self.window_seconds, self.stride_seconds = mode, window_seconds, stride_seconds

    def plan(self, info: VideoInfo) -> _Plan:
        return plan_clips(info, self.reader.frame_sampler, self.mode, self.window_seconds, self.stride_seconds)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path = self.paths[i]
        try:
            st = path.stat()
            info = self.reader.info(path)
            plan = self.plan(info)
            if self.mode == "frame":
                got = self.reader.read_views(path, 1)  # exactly the clip evaluation reads
                info = got[0].info
                plan = self.plan(info)  # the true count may be smaller
            else:
                got = self.reader.read_indices(path, plan.clips)
            clips = torch.stack([c.video.permute(1, 2, 3, 0) for c in got])  # (n_clips, T, S, S, C) uint8
            return {
                "path": path,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "info": info,
                "plan": plan,
                "frames": clips,
            }
        except (VidrecError, OSError, ValueError, RuntimeError, av.error.FFmpegError) as exc:
            return {"path": path, "error": f"{type(exc).__name__}: {exc}"}


def _collate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


def _rows_for(
    item: dict[str, Any],
    video: np.ndarray,
    clips: np.ndarray,
    groups: list[list[int]],
    *,
    mode: SegmentMode,
    name: str,
    num_frames: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One video row and its segment rows. ``video`` (n_clips, E); ``clips`` (n_clips, T', E)."""
    info: VideoInfo = item["info"]
    plan: _Plan = item["plan"]
    fps = info.fps or 25.0
    n = max(info.num_frames, 1)
    segments: list[dict[str, Any]] = []
    if mode == "frame":
        idx = plan.clips[0]
        for j, g in enumerate(groups):
            fr = [int(idx[p]) for p in g]
            f0 = plan.frame_spans[g[0]][0]
            f1 = max(f0, plan.frame_spans[g[-1]][1])
            segments.append(
                {
                    "segment": j,
                    "start_s": f0 / fps,
                    "end_s": (f1 + 1) / fps,
                    "frame_start": f0,
                    "frame_end": f1,
                    "frame_indices": fr,
                    "vector": clips[0, j],
                }
            )
        vec = video[0]
    else:
        for j, (c, (s0, s1)) in enumerate(zip(plan.clips, plan.spans)):
            segments.append(
                {
                    "segment": j,
                    "start_s": s0,
                    "end_s": s1,
                    "frame_start": int(round(s0 * fps)),
                    "frame_end": max(int(round(s1 * fps)) - 1, int(round(s0 * fps))),
                    "frame_indices": [int(v) for v in c],
                    "vector": video[j],
                }
            )
        vec = video.mean(0)
        vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
    path = str(Path(item["path"]).resolve())
    for s in segments:
        s["path"] = path
    row = {
        "path": path,
        "name": name,
        "size": int(item["size"]),
        "mtime_ns": int(item["mtime_ns"]),
        "num_frames": int(info.num_frames),
        "fps": float(fps),
        "duration": float(info.duration or n / fps),
        "frame_indices": [int(v) for c in plan.clips for v in c][:4096],
        "vector": vec,
        "embedded_at": now_iso(),
    }
    return row, segments


def _encode_items(
    encoder: Encoder, items: list[dict[str, Any]], batch_size: int
) -> list[tuple[np.ndarray, np.ndarray, list[list[int]]]]:
    """Encode every clip of ``items`` in chunks of ``batch_size`` clips."""
    clips = torch.cat([it["frames"] for it in items])  # (sum n_clips, T, S, S, C)
    vids, seqs, groups = [], [], None
    for s in range(0, clips.shape[0], batch_size):
        v, c, groups = encoder.encode(clips[s : s + batch_size])
        vids.append(v.cpu().numpy())
        seqs.append(c.cpu().numpy())
    video, seq = np.concatenate(vids), np.concatenate(seqs)
    out, k = [], 0
    for it in items:
        m = it["frames"].shape[0]
        out.append((video[k : k + m], seq[k : k + m], groups or []))
        k += m
    return out


def embed_one(encoder: Encoder, path: str | os.PathLike[str]) -> np.ndarray:
    """The normalised video embedding of one file (frame mode), e.g. for a video query."""
    item = _VideoReader([Path(path)], reader=encoder.clip_reader(), mode="frame", window_seconds=0)[0]
    if "error" in item:
        raise VidrecError(f"{path}: cannot embed it ({item['error']})")
    v, _, _ = encoder.encode(item["frames"])
    return v[0].cpu().numpy()


def embed_windows(
    encoder: Encoder,
    path: str | os.PathLike[str],
    *,
    window_seconds: float,
    stride_seconds: float | None = None,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Segment rows of one file cut into (overlapping) windows, each encoded as its own clip, without
    a store (``vidrec moments``, ``vidrec search --video`` at another resolution): ``start_s``,
    ``end_s``, ``frame_start``, ``frame_end``, ``frame_indices`` and the normalised ``vector``."""
    item = _VideoReader(
        [Path(path)],
        reader=encoder.clip_reader(),
        mode="window",
        window_seconds=window_seconds,
        stride_seconds=stride_seconds,
    )[0]
    if "error" in item:
        raise VidrecError(f"{path}: cannot embed it ({item['error']})")
    video, clips, groups = _encode_items(encoder, [item], batch_size)[0]
    _, segments = _rows_for(item, video, clips, groups, mode="window", name="", num_frames=encoder.num_frames)
    return segments


def _parse_formats(formats: str | Sequence[str] | None) -> list[str]:
    if not formats:
        return []
    items = [formats] if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for f in items:
        for part in str(f).split(","):
            part = part.strip().lower()
            if part == "all":
                out += ["npy", "json", "parquet"]
            elif part in ("npy", "json", "parquet"):
                out.append(part)
            elif part:
                raise VidrecError(f"--format {part}: unknown; use npy, json, parquet or all")
    return list(dict.fromkeys(out))


def extract(
    video_dir: str | os.PathLike[str],
    store: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    num_frames: int | None = None,
    merge: str | None = None,
    merge_layers: str | Sequence[int] | None = None,
    merge_keep: float | Sequence[float] | None = None,
    fusion: str | None = None,
    batch_size: int = 8,
    segments: SegmentMode = "frame",
    window_seconds: float = 5.0,
    stride_seconds: float | None = None,
    formats: str | Sequence[str] | None = None,
    workers: int | None = None,
    device: str = "auto",
    shard: tuple[int, int] | None = None,
    index_threshold: int = INDEX_THRESHOLD,
    progress: bool = False,
    limit: int | None = None,
) -> EmbedSummary:
    """Embed every video under ``video_dir`` into the store at ``store`` (see the module doc).

    ``model``: checkpoint dir, CLIP dir or hub id (or pass a loaded ``encoder``). ``merge``,
    ``merge_layers``, ``merge_keep``, ``fusion``: override the temporal merging (``merge="off"``:
    plain per-frame CLIP) and the fusion head. ``segments="window"``: ``window_seconds`` windows
    every ``stride_seconds`` (default: back to back; less: overlapping). ``formats``: exports
    to write afterwards (``npy``, ``json``, ``parquet``, ``all``). ``limit``: stop after that many
    videos were embedded (tests; the rest is done by the next run).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    if segments not in ("frame", "window"):
        raise VidrecError(f"--segments {segments}: use frame or window")
    if batch_size < 1:
        raise VidrecError(f"--batch-size {batch_size}: must be at least 1")
    fmts = _parse_formats(formats)
    if shard is not None and not (0 <= shard[0] < shard[1]):
        raise VidrecError(f"--shard {shard[0]}/{shard[1]}: the rank must be in 0..{shard[1] - 1}")
    launch = launch_state(cpu=device == "cpu")
    if launch is not None:  # torchrun / accelerate launch: this process's share of this machine's share
        rank, world = launch.process_index, launch.num_processes
        shard = (rank, world) if shard is None else (shard[0] + shard[1] * rank, shard[1] * world)
        if device == "auto" and launch.device.type == "cuda":
            device = str(launch.device)  # cuda:LOCAL_RANK
    with main_process_first(cpu=device == "cpu"):  # rank 0 creates the store; the others find it
        st = Store(store, create=True)
        root = Path(video_dir).expanduser()
        files = scan_videos(root, exclude=[st.path])
        if shard is not None:
            files = files[shard[0] :: shard[1]]
        if encoder is None:
            recorded = st.meta.get("encoder_options", {}) if st.meta else {}
            if model is None and recorded.get("model"):  # a re-run into a store: its own encoder by default
                model = recorded["model"]
            given: dict[str, Any] = {
                "num_frames": num_frames,
                "merge": merge,
                "merge_layers": merge_layers,
                "merge_keep": merge_keep,
                "fusion": fusion,
            }
            if st.meta and model is not None and str(model) == str(recorded.get("model")):
                given = {
                    k: v if v is not None else recorded.get(k) for k, v in given.items()
                }  # the store's own settings
            encoder = load_encoder(model, device=device, **given)
        st.bind_encoder(encoder)
    summary = EmbedSummary(store=st.path, found=len(files))
    known = st.known()
    todo = []
    for f in files:
        s = f.stat()
        if known.get(str(f.resolve())) == (s.st_size, s.st_mtime_ns):
            summary.skipped += 1
        else:
            todo.append(f)
    if limit is not None:
        todo = todo[:limit]
    fail_key = "failures" if shard is None else f"failures.rank{shard[0]}"
    failures = {p: e for p, e in st.failures(key=fail_key).items() if p not in known}  # earlier failures, retried below
    todo_keys = {str(f.resolve()) for f in todo}
    log.info("%d videos found, %d already embedded, %d to embed", len(files), summary.skipped, len(todo))
    if workers is None:
        workers = min(8, max(0, (os.cpu_count() or 1) - 1))
    reader = _VideoReader(
        todo, reader=encoder.clip_reader(), mode=segments, window_seconds=window_seconds, stride_seconds=stride_seconds
    )
    workers = workers if todo else 0
    # LanceDB's runtime does not survive fork(): workers start with forkserver.
    # Workers end with vidrec, even when it is killed with SIGKILL (vidrec.utils.proc).
    loader = DataLoader(
        reader,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        prefetch_factor=2 if workers else None,
        multiprocessing_context="forkserver" if workers else None,
        worker_init_fn=worker_init_fn() if workers else None,
    )
    bar = tqdm(total=len(todo), unit="video", desc="embed", disable=not progress, dynamic_ncols=True)
    for items in loader:
        good = [it for it in items if "error" not in it]
        for it in items:
            if "error" in it:
                failures[str(Path(it["path"]).resolve())] = {"error": it["error"], "at": now_iso()}
                log.warning("%s: skipped (%s)", it["path"], it["error"])
        encoded: list[tuple[dict[str, Any], Any]] = []
        if good:
            try:
                encoded = list(zip(good, _encode_items(encoder, good, batch_size)))
            except (RuntimeError, ValueError) as exc:  # one bad video must not sink the batch: retry one by one
                log.warning("a batch failed in the model (%s); retrying its videos one at a time", exc)
                for it in good:
                    try:
                        encoded.append((it, _encode_items(encoder, [it], batch_size)[0]))
                    except (RuntimeError, ValueError) as exc1:
                        failures[str(Path(it["path"]).resolve())] = {
                            "error": f"{type(exc1).__name__}: {exc1}",
                            "at": now_iso(),
                        }
        vrows, srows = [], []
        for it, (v, c, g) in encoded:
            if it["info"].num_frames < encoder.num_frames:
                summary.short += 1
                log.warning(
                    "%s: %d frames, fewer than the %d sampled; frames are repeated",
                    it["path"],
                    it["info"].num_frames,
                    encoder.num_frames,
                )
            row, segs = _rows_for(
                it, v, c, g, mode=segments, name=export_name(Path(it["path"]), root), num_frames=encoder.num_frames
            )
            vrows.append(row)
            srows += segs
            failures.pop(row["path"], None)
        st.write(vrows, srows)
        _write_failures(st, fail_key, failures)
        summary.processed += len(vrows)
        bar.update(len(items))
        bar.set_postfix(failed=len(failures), videos_s=f"{summary.processed / max(time.perf_counter() - t0, 1e-9):.2f}")
    bar.close()
    _write_failures(st, fail_key, failures)
    summary.failed = sum(1 for p in failures if p in todo_keys)
    summary.failures = {p: e["error"] for p, e in failures.items()}
    if launch is not None:
        launch.wait_for_everyone()  # every process's rows are in before rank 0 compacts, indexes and exports
    if shard is None or shard[0] == 0:  # one process compacts and indexes (a re-run refreshes a stale index)
        if summary.processed or launch is not None:
            st.compact()
        summary.indexed = st.ensure_index(threshold=index_threshold)
        if fmts:
            summary.exports = [str(p) for p in st.export(fmts)]
    summary.seconds = time.perf_counter() - t0
    if launch is not None:
        launch.wait_for_everyone()  # nobody exits (and tears the launch down) before rank 0 is done
    return summary


def _write_failures(st: Store, key: str, failures: dict[str, dict[str, Any]]) -> None:
    from vidrec.utils.io import write_json_atomic

    write_json_atomic(st.path / f"{key}.json", failures)


__all__ = ["extract", "EmbedSummary", "scan_videos", "embed_one", "embed_windows", "plan_clips", "StoreError"]
