"""``vidrec prepare frames``: extract JPEG frame folders, in parallel, resumably.

Every video ``ROOT/<rel>/<name>.<ext>`` becomes ``OUT/<rel>/<name>/000001.jpg, 000002.jpg, ...``
(1-based, six digits), the layout every loader reads with ``data.frames_root=OUT``.

Resumable by construction: a video is written into ``<name>.tmp/`` and renamed to ``<name>/``
only when complete, so a folder without ``.tmp`` is always whole. A rerun skips finished
folders, deletes leftover ``.tmp`` folders and redoes those videos. A failing video is
reported with its reason and never stops the others. The dataset root is only read.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vidrec.data.scan import iter_videos
from vidrec.errors import ConfigError, DatasetError
from vidrec.utils.proc import map_bounded

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
FRAME_NAME = "{:06d}.jpg"


@dataclass(frozen=True)
class FrameOptions:
    quality: int = 90  # JPEG quality 1..100
    short_side: int | None = None  # resize so the short side is this (None: native size)
    fps: float | None = None  # keep this many frames per second (None: every frame)

    def check(self) -> None:
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"--quality must be in 1..100, got {self.quality}")
        if self.short_side is not None and self.short_side < 8:
            raise ConfigError(f"--short-side must be at least 8, got {self.short_side}")
        if self.fps is not None and self.fps <= 0:
            raise ConfigError(f"--fps must be positive, got {self.fps}")


@dataclass(frozen=True)
class VideoResult:
    rel: str  # video path relative to ROOT
    ok: bool
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0
    error: str = ""
    skipped: bool = False  # already done by an earlier run


@dataclass
class FramesPlan:
    root: Path
    out: Path
    videos: list[Path]  # everything selected (after --subset)
    todo: list[Path]  # not done yet
    done: int  # finished by an earlier run
    stale_tmp: int  # leftover .tmp folders (a killed run) to be redone
    clashes: list[tuple[Path, Path]] = field(default_factory=list)  # (video, earlier video with the same frame folder)
    sampled: int = 0
    est_frames: float = 0.0
    est_bytes: float = 0.0
    est_seconds: float = 0.0  # with the given workers


@dataclass
class FramesSummary:
    done: int = 0
    skipped: int = 0
    failed: list[VideoResult] = field(default_factory=list)
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0


def target_dir(out: Path, root: Path, video: Path) -> Path:
    return out / video.relative_to(root).with_suffix("")


def _tmp_dir(final: Path) -> Path:
    return final.with_name(final.name + TMP_SUFFIX)


def _check_paths(root: Path, out: Path) -> None:
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder. Give the folder holding the videos.")
    r, o = root.resolve(), out.resolve()
    if o == r or r in o.parents:
        raise ConfigError(
            f"--out {out} lies inside the dataset root {root}; vidrec never writes there. Choose another folder."
        )


def extract_video(src: Path, final: Path, options: FrameOptions = FrameOptions()) -> tuple[int, int]:
    """Write ``src``'s frames into ``final`` via ``final.tmp``; returns (frames, bytes). Raises on failure."""
    import av

    tmp = _tmp_dir(final)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    n = 0
    size = 0
    try:
        if src.stat().st_size == 0:
            raise DatasetError(f"{src}: empty file (0 bytes)")
        try:
            container = av.open(str(src))
        except av.error.FFmpegError as exc:
            raise DatasetError(f"{src}: not a readable video ({exc})") from exc
        with container:
            if not container.streams.video:
                raise DatasetError(f"{src}: the file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            native = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            step = 1.0 / options.fps if options.fps and options.fps < native else 0.0
            next_t = 0.0
            w = h = None
            decoded = 0
            for i, frame in enumerate(container.decode(stream)):
                decoded = i + 1
                t = i / native
                if step:
                    if t + 1e-6 < next_t:
                        continue
                    next_t += step
                if w is None:
                    w, h = frame.width, frame.height
                    if options.short_side:
                        s = options.short_side / min(w, h)
                        w, h = max(1, round(w * s)), max(1, round(h * s))
                img = frame.to_image(width=w, height=h) if (w, h) != (frame.width, frame.height) else frame.to_image()
                n += 1
                path = tmp / FRAME_NAME.format(n)
                img.save(path, format="JPEG", quality=options.quality)
                size += path.stat().st_size
            header = int(stream.frames or 0)
        if n == 0:
            raise DatasetError(f"{src}: no frame could be decoded")
        if header and decoded + 2 < header:
            raise DatasetError(f"{src}: truncated: the header announces {header} frames, only {decoded} decode")
        if final.exists():  # an older, complete result: replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return n, size


def _task(args: tuple[str, str, str, FrameOptions]) -> VideoResult:
    src, root, out, options = args
    s, r, o = Path(src), Path(root), Path(out)
    rel = s.relative_to(r).as_posix()
    t0 = time.perf_counter()
    try:
        n, size = extract_video(s, target_dir(o, r, s), options)
    except Exception as exc:  # noqa: BLE001 - reported per video; the run goes on
        msg = str(exc)
        return VideoResult(rel, False, error=msg[len(src) + 2 :] if msg.startswith(src + ": ") else msg)
    return VideoResult(rel, True, n, size, time.perf_counter() - t0)


def plan_frames(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    subset: int | None = None,
    options: FrameOptions = FrameOptions(),
    workers: int = 1,
    sample: int = 0,
) -> FramesPlan:
    """What a run would do; with ``sample > 0`` also time a few videos (in a temp folder) for estimates."""
    root, out = Path(root).expanduser(), Path(out).expanduser()
    _check_paths(root, out)
    options.check()
    videos = list(iter_videos(root))
    if subset is not None:
        videos = videos[:subset]
    todo, done, stale = [], 0, 0
    owner: dict[Path, Path] = {}
    clashes: list[tuple[Path, Path]] = []
    for v in list(videos):
        final = target_dir(out, root, v)
        if final in owner:  # clip.avi and clip.mp4 side by side would share clip/
            clashes.append((v, owner[final]))
            videos.remove(v)
            continue
        owner[final] = v
        if _tmp_dir(final).exists():
            stale += 1
        if final.is_dir():
            done += 1
        else:
            todo.append(v)
    plan = FramesPlan(root, out, videos, todo, done, stale, clashes)
    if sample > 0 and todo:
        picks = [todo[round(i * (len(todo) - 1) / max(sample - 1, 1))] for i in range(min(sample, len(todo)))]
        picks = list(dict.fromkeys(picks))
        frames = size = secs = 0.0
        ok = 0
        with tempfile.TemporaryDirectory(prefix="vidrec-frames-") as tmp:
            for i, v in enumerate(picks):
                t0 = time.perf_counter()
                try:
                    n, b = extract_video(v, Path(tmp) / f"v{i}", options)
                except Exception as exc:  # noqa: BLE001 - a sample that fails is skipped, with a warning
                    log.warning("%s: sample extraction failed (%s)", v, exc)
                    continue
                secs += time.perf_counter() - t0
                frames += n
                size += b
                ok += 1
        if ok:
            plan.sampled = ok
            plan.est_frames = frames / ok * len(todo)
            plan.est_bytes = size / ok * len(todo)
            plan.est_seconds = secs / ok * len(todo) / max(1, workers)
    return plan


def extract_frames(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    workers: int = 1,
    subset: int | None = None,
    options: FrameOptions = FrameOptions(),
    on_result: Callable[[VideoResult], None] | None = None,
) -> FramesSummary:
    """Extract every (or the first ``subset``) video under ``root`` into ``out``; resumable.

    ``on_result`` is called after each video (finished, failed or skipped); an exception it raises
    stops the run (finished folders stay finished; an unfinished one stays ``.tmp`` and is redone).
    """
    plan = plan_frames(root, out, subset=subset, options=options)
    summary = FramesSummary()
    t0 = time.perf_counter()
    todo = set(plan.todo)
    for v in plan.videos:
        if v not in todo:
            r = VideoResult(v.relative_to(plan.root).as_posix(), True, skipped=True)
            summary.skipped += 1
            if on_result:
                on_result(r)

    def record(r: VideoResult) -> None:
        if r.ok:
            summary.done += 1
            summary.frames += r.frames
            summary.bytes += r.bytes
        else:
            summary.failed.append(r)
        if on_result:
            on_result(r)

    for v, other in plan.clashes:
        record(
            VideoResult(
                v.relative_to(plan.root).as_posix(),
                False,
                error=(
                    f"its frame folder is taken by {other.relative_to(plan.root).as_posix()} "
                    "(same name, another suffix); rename one"
                ),
            )
        )
    tasks = [(str(v), str(plan.root), str(plan.out), options) for v in plan.todo]
    plan.out.mkdir(parents=True, exist_ok=True)
    map_bounded(_task, tasks, workers, record)
    summary.seconds = time.perf_counter() - t0
    return summary
