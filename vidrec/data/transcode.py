"""``vidrec prepare transcode``: re-encode a folder of videos into something sampling can afford.

Long or high-resolution videos with the encoder's default GOP (a key frame every 250 frames or
more) make every sampled frame cost a long decode. Transcoding once gives every video:

- H.264 (PyAV's bundled FFmpeg, libx264), the short side you ask for (never upscaled, even sizes),
  upright (a display-matrix rotation is applied to the pixels);
- a key frame every ``gop`` frames (no scene-cut key frames in between), so a seek lands at most
  ``gop - 1`` frames before any wanted frame;
- optionally another frame rate (``fps``), no audio;
- the same relative path and file name, so the dataset's annotation files still name it. The
  container follows the suffix (``.mp4``/``.mov``/``.m4v``: MP4, ``.avi``: AVI, anything else:
  Matroska, which FFmpeg opens whatever the suffix says). Other files (annotation lists, JSON)
  are copied, so ``data.root=DST`` works as ``data.root=SRC`` did.

Parallel and resumable: each video is written to a temporary file beside its target and renamed
when complete, so a killed run leaves no half-written video that counts as done; a rerun skips
finished videos (unless the source is newer) and removes stale temporary files. The source tree
is only read; an ``--out`` inside it is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

from vidrec.errors import ConfigError, DatasetError, VideoError
from vidrec.utils.proc import map_bounded

log = logging.getLogger(__name__)

_TMP_TAG = ".transcoding"


@dataclass(frozen=True)
class TranscodeOptions:
    short_side: int = 256  # pixels; a smaller video keeps its size
    gop: int = 16  # frames between key frames
    fps: float | None = None  # output frame rate (None: the source's)
    crf: int = 23  # x264 quality (lower: better, larger)
    preset: str = "veryfast"  # x264 speed/size trade-off

    def check(self) -> None:
        if self.short_side < 16:
            raise ConfigError(f"--short-side must be at least 16, got {self.short_side}")
        if self.gop < 1:
            raise ConfigError(f"--gop must be at least 1, got {self.gop}")
        if self.fps is not None and self.fps <= 0:
            raise ConfigError(f"--fps must be positive, got {self.fps}")


@dataclass(frozen=True)
class TranscodeResult:
    rel: str  # path relative to SRC
    ok: bool
    src_bytes: int = 0
    dst_bytes: int = 0
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    skipped: bool = False  # done by an earlier run


@dataclass
class TranscodePlan:
    src: Path
    out: Path
    videos: list[Path]
    todo: list[Path]
    done: list[Path]
    stale_tmp: list[Path]
    others: list[Path]  # non-video files to copy
    src_bytes: int = 0


@dataclass
class TranscodeSummary:
    done: int = 0
    skipped: int = 0
    failed: list[TranscodeResult] = field(default_factory=list)
    src_bytes: int = 0  # of every video now transcoded (this run and earlier ones)
    dst_bytes: int = 0
    copied: int = 0
    seconds: float = 0.0

    @property
    def saved_bytes(self) -> int:
        return self.src_bytes - self.dst_bytes


def _check_paths(src: Path, out: Path) -> None:
    if not src.is_dir():
        raise DatasetError(f"{src}: not a folder. Give the folder holding the videos.")
    s, o = src.resolve(), out.resolve()
    if o == s or s in o.parents:
        raise ConfigError(
            f"--out {out} lies inside the source folder {src}; vidrec never writes there. Choose another folder."
        )


def _tmp_for(final: Path) -> Path:
    return final.with_name(f".{final.name}{_TMP_TAG}")


def plan_transcode(src: str | os.PathLike[str], out: str | os.PathLike[str]) -> TranscodePlan:
    """What a run would do: videos already done, to do, stale temporary files, files to copy."""
    from vidrec.data.scan import iter_videos
    from vidrec.video.decode import VIDEO_SUFFIXES

    src, out = Path(src).expanduser(), Path(out).expanduser()
    _check_paths(src, out)
    videos = list(iter_videos(src))
    todo: list[Path] = []
    done: list[Path] = []
    for v in videos:
        dst = out / v.relative_to(src)
        (done if dst.is_file() and dst.stat().st_mtime >= v.stat().st_mtime else todo).append(v)
    stale = sorted(out.rglob(f".*{_TMP_TAG}")) if out.is_dir() else []
    others = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and not name.lower().endswith(VIDEO_SUFFIXES):
                others.append(Path(dirpath) / name)
    return TranscodePlan(src, out, videos, todo, done, stale, others, sum(v.stat().st_size for v in todo))


def _container_for(path: Path) -> str:
    return {".mp4": "mp4", ".mov": "mp4", ".m4v": "mp4", ".avi": "avi"}.get(path.suffix.lower(), "matroska")


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def transcode_video(src: Path, dst: Path, options: TranscodeOptions = TranscodeOptions()) -> int:
    """Re-encode ``src`` to ``dst`` (atomically); returns the frames written."""
    import av
    import numpy as np

    from vidrec.video.decode import PyAVDecoder, open_video, rotate_hwc

    info = PyAVDecoder().info(src)  # displayed size and rotation; raises VideoError on a bad file
    scale = min(1.0, options.short_side / max(1, min(info.width, info.height)))
    w, h = _even(info.width * scale), _even(info.height * scale)
    rotation = info.rotation
    coded_w, coded_h = (h, w) if rotation in (90, 270) else (w, h)
    in_fps = info.fps or 25.0
    fps = options.fps or in_fps
    rate = Fraction(fps).limit_denominator(1001)
    fmt = _container_for(dst)
    tmp = _tmp_for(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with open_video(src) as inp, av.open(str(tmp), "w", format=fmt) as outp:
            stream = outp.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.codec_context.gop_size = options.gop
            stream.options = {
                "crf": str(options.crf),
                "preset": options.preset,
                "x264-params": f"keyint={options.gop}:min-keyint={options.gop}:scenecut=0"
                + (":bframes=0" if fmt == "avi" else ""),
            }
            src_stream = inp.streams.video[0]
            src_stream.thread_type = "AUTO"
            k = 0  # source frames seen
            for frame in inp.decode(src_stream):
                t = k / in_fps  # source frame k is shown during [t, t + 1/in_fps)
                k += 1
                if options.fps and written / fps >= t + 1 / in_fps - 1e-9:
                    continue  # the next output tick falls after this frame: drop it
                if rotation:
                    arr = frame.reformat(width=coded_w, height=coded_h, format="rgb24").to_ndarray()
                    out = av.VideoFrame.from_ndarray(rotate_hwc(np.asarray(arr), rotation), format="rgb24")
                else:
                    out = frame.reformat(width=w, height=h, format="yuv420p")
                out.pts = written
                out.pict_type = (
                    av.video.frame.PictureType.NONE
                )  # the source's key frames must not force key frames here
                out.time_base = Fraction(1, 1) / rate
                for packet in stream.encode(out):
                    outp.mux(packet)
                written += 1
            for packet in stream.encode():
                outp.mux(packet)
        if written == 0:
            raise VideoError(f"{src}: no frame could be decoded")
        os.replace(tmp, dst)
    except av.error.FFmpegError as exc:
        raise VideoError(f"{src}: transcoding failed ({exc})") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return written


def _task(args: tuple[str, str, str, TranscodeOptions]) -> TranscodeResult:
    src, root, out, options = args
    s, r = Path(src), Path(root)
    rel = s.relative_to(r).as_posix()
    dst = Path(out) / rel
    t0 = time.perf_counter()
    try:
        frames = transcode_video(s, dst, options)
    except (VideoError, OSError, ValueError) as exc:
        return TranscodeResult(rel, False, s.stat().st_size if s.exists() else 0, error=str(exc).removeprefix(f"{s}: "))
    return TranscodeResult(rel, True, s.stat().st_size, dst.stat().st_size, frames, time.perf_counter() - t0)


def transcode(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    options: TranscodeOptions = TranscodeOptions(),
    workers: int = 1,
    on_result: Callable[[TranscodeResult], None] | None = None,
) -> TranscodeSummary:
    """Transcode every video under ``src`` into ``out`` (see the module doc); one bad file never stops the rest."""
    options.check()
    plan = plan_transcode(src, out)
    summary = TranscodeSummary()
    t0 = time.perf_counter()
    for p in plan.stale_tmp:  # a killed run's unfinished files: never counted, redone below
        p.unlink(missing_ok=True)
    for v in plan.done:
        summary.skipped += 1
        summary.src_bytes += v.stat().st_size
        summary.dst_bytes += (plan.out / v.relative_to(plan.src)).stat().st_size
        if on_result:
            on_result(TranscodeResult(v.relative_to(plan.src).as_posix(), True, skipped=True))
    for f in plan.others:  # annotation files and the like, so data.root=OUT works
        dst = plan.out / f.relative_to(plan.src)
        if not dst.exists() or dst.stat().st_mtime < f.stat().st_mtime:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst)
            summary.copied += 1

    def record(r: TranscodeResult) -> None:
        if r.ok:
            summary.done += 1
            summary.src_bytes += r.src_bytes
            summary.dst_bytes += r.dst_bytes
        else:
            summary.failed.append(r)
        if on_result:
            on_result(r)

    tasks = [(str(v), str(plan.src), str(plan.out), options) for v in plan.todo]
    plan.out.mkdir(parents=True, exist_ok=True)
    map_bounded(_task, tasks, workers, record)
    summary.seconds = time.perf_counter() - t0
    return summary


__all__ = ["TranscodeOptions", "TranscodeResult", "TranscodeSummary", "plan_transcode", "transcode", "transcode_video"]
