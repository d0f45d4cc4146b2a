"""Video decoding behind one small protocol.

A decoder turns ``(path, frame indices)`` into a ``uint8`` tensor ``T×H×W×C`` and reports
frame count, fps, duration and displayed size. It never samples: the frame sampler decides which
indices. The reader (:mod:`vidrec.video.reader`) composes decoder, frame sampler and transform.

- :class:`PyAVDecoder` (default, always available): any container FFmpeg reads.
- :class:`TorchCodecDecoder`: torchcodec where it is installed (optional; see the class).
- :class:`FrameFolderDecoder`: pre-extracted JPEG folders (``<video_id>/000001.jpg``).

How :class:`PyAVDecoder` stays fast and right on real files:

- **Facts once per file.** The first look at a file demuxes its packets (no decoding) and keeps
  what sampling and seeking need: the frame count (containers without one, WebM and MKV, get it
  counted), the display-order timestamps, the key frames and their spacing, the rotation.
  Facts are cached per process (:attr:`PyAVDecoder.facts`), so later epochs open the file once.
- **Frames are identified exactly.** Where the timestamps are trustworthy each decoded frame is
  identified by its timestamp's rank among all of the file's packet timestamps. AVI files written
  as packed bitstreams (DivX/XviD, common in HMDB51; recognised by their 1–8 byte "not coded"
  packets) give decoded frames timestamps that are not monotonic, so there frames are counted in
  the order the decoder returns them; only after a seek is the landing frame identified, from its
  packet and the key-frame table.
- **Nothing that is not needed is decoded or converted.** The decoder seeks only when a key frame
  lies between the current position and the next wanted frame (seeking elsewhere would decode
  the same frames again); while the next wanted frame is not the current packet, frames that no
  other frame references are not decoded at all (FFmpeg's ``skip_frame=NONREF``); only the
  wanted frames are converted to RGB, straight to the requested size by FFmpeg's scaler.
- **What the header claims is checked.** A header frame count above what really decodes (every
  HMDB51 clip is off by one, a truncated file by more) is learned the first time decoding runs
  out, cached, and warned about once per file with both counts; the reader samples again within
  the true count.
- Rotated phone videos (a display matrix) come out upright; non-UTF-8 metadata (HMDB51's AVIs)
  is ignored instead of making the file unreadable.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import av
import numpy as np

from vidrec.errors import VideoError
from vidrec.video.files import FRAME_SUFFIXES, VIDEO_SUFFIXES  # noqa: F401  (re-exported: the names others import)

if TYPE_CHECKING:  # torch is imported where frames become tensors: probing a video (vidrec prepare scan) needs none
    import torch

log = logging.getLogger(__name__)

_PLACEHOLDER_BYTES = 8  # packed-bitstream AVIs hold 1–8 byte "not coded" packets, some wrongly flagged as key frames
_HEADER_SLACK = 1  # a header may count one frame more than there are packets (B-frame delay)


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int  # frames that decode (learned and cached when the header claims more)
    fps: float  # average frame rate (num_frames / duration where the container knows better)
    duration: float  # seconds
    width: int  # as displayed (after rotation)
    height: int
    codec: str = ""
    rotation: int = 0  # degrees the coded frames are turned to be shown upright (0, 90, 180, 270)
    header_frames: int = 0  # the frame count the container announces (0: none)
    keyframe_interval: int = 0  # median frames between key frames (0: unknown or a single key frame)
    vfr: bool = False  # frame times are not evenly spaced


@runtime_checkable
class Decoder(Protocol):
    def info(self, path: str | os.PathLike[str]) -> VideoInfo: ...

    def decode(
        self, path: str | os.PathLike[str], indices: Sequence[int], *, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Return frames at ``indices`` (in the given order, repeats allowed) as uint8 T×H×W×C.

        ``size`` is the displayed ``(height, width)`` to decode straight to; ``None`` keeps the
        native size. Rotated videos come out upright.
        """
        ...


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"{path}: no such file. Check the dataset root and the annotation file that names it.")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty (0 bytes). Re-download or remove it from the list.")


def open_video(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """``av.open`` for reading that tolerates non-UTF-8 metadata and names the file in every error."""
    path = Path(path)
    _check_file(path)
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(f"{path}: not a readable video ({exc}). Is it truncated or another file type?") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: the file has no video stream.")
    return container


def _rotation(frame: av.VideoFrame) -> int:
    """Clockwise degrees (0/90/180/270) that show ``frame`` upright (from its display matrix)."""
    try:
        ccw = int(round(float(frame.rotation or 0)))
    except (AttributeError, TypeError, ValueError):
        return 0
    return (-ccw) % 360 // 90 * 90


def rotate_hwc(arr: np.ndarray, rotation: int) -> np.ndarray:
    """Turn an ``H×W×C`` (or ``T×H×W×C``) array ``rotation`` degrees clockwise."""
    if not rotation:
        return arr
    axes = (0, 1) if arr.ndim == 3 else (1, 2)
    return np.ascontiguousarray(np.rot90(arr, k=-(rotation // 90), axes=axes))


class _LostPosition(Exception):
    """A seek landed on a frame the key-frame table cannot identify."""


@dataclass
class FileFacts:
    """What one demux pass learns about a file (see the module doc). Cached per process."""

    info: VideoInfo
    exact_pts: bool  # frames are identified by timestamp (False: counted in output order, AVI)
    frame_pts: np.ndarray  # sorted packet timestamps (display order) where complete and unique, else empty
    key_index: list[int]  # display indices of key frames, ascending
    key_pts: list[int]  # their decode timestamps (what container indexes seek by)
    start_pts: int
    time_base: float
    true_frames: int | None = None  # learned by decoding to the end (None: not learned)
    warned: bool = False

    def times(self, indices: Sequence[int]) -> list[float]:
        """Presentation time in seconds of each display index."""
        n = self.info.num_frames
        if self.exact_pts and len(self.frame_pts):
            last = len(self.frame_pts) - 1
            return [
                float((self.frame_pts[min(max(int(i), 0), last)] - self.start_pts) * self.time_base) for i in indices
            ]
        fps = self.info.fps or 25.0
        return [min(max(int(i), 0), max(n - 1, 0)) / fps for i in indices]


class PyAVDecoder:
    """Decode with PyAV (FFmpeg in the wheel); see the module doc for what it does and why.

    Args:
        threads: FFmpeg decoding threads per file (0 = FFmpeg's choice). DataLoader workers
            already run in parallel, so 1 is the right default there.
        seek: jump to the key frame before a wanted frame when one lies ahead (``False``: decode
            straight through, the reference the fast path is tested against).
        skip_nonref: skip frames no other frame needs unless they are wanted.
        cache_size: files whose facts are kept (least recently used are dropped first).
    """

    def __init__(
        self, *, threads: int = 1, seek: bool = True, skip_nonref: bool = True, cache_size: int = 4096
    ) -> None:
        self.threads = threads
        self.seek = seek
        self.skip_nonref = skip_nonref
        self.cache_size = cache_size
        self._facts: OrderedDict[tuple[str, int, int], FileFacts] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ facts
    def facts(self, path: str | os.PathLike[str]) -> FileFacts:
        """The file's facts, learned on first use (one demux pass and one decoded frame)."""
        path = Path(path)
        _check_file(path)
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._facts.get(key)
            if hit is not None:
                self._facts.move_to_end(key)
                return hit
        facts = self._learn(path)
        with self._lock:
            self._facts[key] = facts
            while len(self._facts) > self.cache_size:
                self._facts.popitem(last=False)
        return facts

    def _learn(self, path: Path) -> FileFacts:
        with open_video(path) as container:
            stream = container.streams.video[0]
            ctx = stream.codec_context
            tb = float(stream.time_base) if stream.time_base else 0.0
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            header = int(stream.frames or 0)
            pts: list[int | None] = []
            placeholders = 0  # 1–8 byte "not coded" packets: the mark of a packed-bitstream AVI
            dts: dict[int, int | None] = {}  # key packet ordinal -> its dts (what container indexes seek by)
            keys: list[int] = []  # ordinals (decode order) of key packets
            try:
                for packet in container.demux(stream):
                    if packet.size <= 0:
                        continue
                    if packet.size <= _PLACEHOLDER_BYTES:
                        placeholders += 1
                    if packet.is_keyframe and packet.size > _PLACEHOLDER_BYTES:
                        keys.append(len(pts))
                        dts[len(pts)] = packet.dts
                    pts.append(packet.pts)
            except av.error.FFmpegError as exc:
                if not pts:
                    raise VideoError(f"{path}: demuxing failed ({exc}). The file may be truncated or corrupt.") from exc
                log.debug("%s: demuxing stopped after %d packets (%s)", path, len(pts), exc)
            if not pts:
                raise VideoError(f"{path}: the video stream holds no frames. The file may be empty or truncated.")
            rotation, start_pts = self._first_frame(container, stream, path)
            fmt = container.format.name if container.format else ""
            duration = 0.0
            if stream.duration is not None and tb:
                duration = float(stream.duration * tb)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            width, height, codec = int(ctx.width), int(ctx.height), str(ctx.name)
        clean = [p for p in pts if p is not None]
        unique = bool(tb) and len(clean) == len(pts) and len(set(clean)) == len(clean)
        # Packed-bitstream AVIs (DivX/XviD) give decoded frames timestamps out of order: count those
        exact = unique and not ("avi" in fmt and placeholders)
        n = len(pts)
        frame_pts = np.sort(np.asarray(clean, dtype=np.int64)) if unique else np.zeros(0, dtype=np.int64)
        if unique:
            # a key frame's display index is its timestamp's rank (AVI: packets are in decode order)
            by_index = sorted((int(np.searchsorted(frame_pts, pts[k])), k) for k in keys)  # type: ignore[arg-type]
            key_index = [i for i, _ in by_index]
            key_pts = [int(dts[k] if dts[k] is not None else pts[k]) for _, k in by_index]  # type: ignore[arg-type]
            if exact:
                start_pts = int(frame_pts[0])
        else:
            key_index, key_pts = [], []  # no timestamps to seek to: decode straight through
        n_frames = n  # a header may claim frames that carry no packet (truncated files)
        vfr = False
        if exact and n_frames >= 3:
            span = float((frame_pts[-1] - frame_pts[0]) * tb)
            steps = np.diff(frame_pts)
            vfr = bool(steps.max() > 1.5 * steps.min())
            if span > 0 and (vfr or duration <= 0):
                duration = max(
                    duration, span + float(steps[-1] if vfr else np.median(steps)) * tb
                )  # the last frame's own step
        if duration <= 0:
            duration = n_frames / (rate or 25.0)
        fps = rate or (n_frames / duration if duration else 25.0)
        if vfr and duration > 0:
            fps = n_frames / duration
        interval = int(np.median(np.diff(key_index))) if len(key_index) > 1 else 0
        if rotation in (90, 270):
            width, height = height, width
        info = VideoInfo(n_frames, fps, duration, width, height, codec, rotation, header, interval, vfr)
        facts = FileFacts(info, exact, frame_pts, key_index, key_pts, start_pts, tb or 1.0 / fps)
        if header > n_frames + _HEADER_SLACK:
            facts.warned = True
            log.warning(
                "%s: the header announces %d frames but the file holds %d; sampling within %d",
                path,
                header,
                n_frames,
                n_frames,
            )
        return facts

    @staticmethod
    def _first_frame(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> tuple[int, int]:
        """(rotation, start pts) from the first frame that decodes; a file none decodes is bad."""
        try:
            container.seek(0, stream=stream, backward=True)
        except av.error.FFmpegError:
            pass
        try:
            for frame in container.decode(stream):
                return _rotation(frame), int(frame.pts or 0)
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"{path}: no frame could be decoded ({exc}). The file may be truncated or corrupt."
            ) from exc
        raise VideoError(f"{path}: no frame could be decoded. The file may be empty, truncated or corrupt.")

    def info(self, path: str | os.PathLike[str]) -> VideoInfo:
        facts = self.facts(path)
        if facts.true_frames is not None and facts.true_frames < facts.info.num_frames:
            return replace(facts.info, num_frames=facts.true_frames)
        return facts.info

    def times(self, path: str | os.PathLike[str], indices: Sequence[int]) -> list[float]:
        """Presentation times (seconds) of display indices ``indices``."""
        return self.facts(path).times(indices)

    # ------------------------------------------------------------------ decoding
    def decode(
        self, path: str | os.PathLike[str], indices: Sequence[int], *, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        path = Path(path)
        if len(indices) == 0:
            raise ValueError("no frame indices requested")
        wanted = sorted({int(i) for i in indices})
        if wanted[0] < 0:
            raise ValueError(f"negative frame index {wanted[0]}")
        facts = self.facts(path)
        rot = facts.info.rotation
        coded = None if size is None else ((size[1], size[0]) if rot in (90, 270) else (size[0], size[1]))
        got, last_idx, ended = self._run(path, facts, wanted, coded)
        if not got:
            raise VideoError(f"{path}: no frame could be decoded. The file may be empty, truncated or corrupt.")
        if ended and last_idx + 1 < facts.info.num_frames and facts.true_frames is None:
            self._learned_count(path, facts, last_idx + 1)
        missing = [w for w in wanted if w not in got]
        if missing:
            keys = sorted(got)
            for w in missing:  # past the end: the last decoded frame before it (repeat_last)
                j = bisect.bisect_right(keys, w) - 1
                got[w] = got[keys[max(j, 0)]]
        out = np.stack([got[int(i)] for i in indices])  # (T, H, W, C) as coded
        import torch

        return torch.from_numpy(rotate_hwc(out, rot))

    def _learned_count(self, path: Path, facts: FileFacts, decodable: int) -> None:
        facts.true_frames = decodable
        said = facts.info.header_frames or facts.info.num_frames
        if not facts.warned:
            facts.warned = True
            log.warning(
                "%s: the header announces %d frames but only %d decode; sampling within %d",
                path,
                said,
                decodable,
                decodable,
            )

    def _run(
        self, path: Path, facts: FileFacts, wanted: list[int], size: tuple[int, int] | None
    ) -> tuple[dict[int, np.ndarray], int, bool]:
        """Decode ``wanted`` (sorted display indices). Returns (frames, last index seen, reached the end)."""
        got: dict[int, np.ndarray] = {}
        want = set(wanted)
        pos = 0  # next position in `wanted`
        idx = -1  # display index of the last frame out of the decoder
        ended = False
        exact = facts.exact_pts and len(facts.frame_pts) > 0
        with open_video(path) as container:
            stream = container.streams.video[0]
            ctx = stream.codec_context
            ctx.thread_type = "AUTO" if self.threads != 1 else "SLICE"
            if self.threads:
                ctx.thread_count = self.threads
            skipping = False
            flushed = False
            last_frame: av.VideoFrame | None = None
            try:
                while pos < len(wanted):
                    target = wanted[pos]
                    k = bisect.bisect_right(facts.key_index, target) - 1
                    if self.seek and k >= 0 and facts.key_index[k] > idx + 2 and facts.key_pts[k] >= 0:
                        # a key frame lies between here and the target: jump to it instead of decoding through
                        container.seek(facts.key_pts[k], stream=stream, backward=True, any_frame=False)
                        landed = False
                    else:
                        landed = True
                    for packet in container.demux(stream):
                        if not landed and packet.size > 0:
                            # identify the landing frame exactly: a key frame at or before the target
                            landed = True
                            j = int(np.searchsorted(facts.frame_pts, packet.pts)) if packet.pts is not None else -1
                            if (
                                not packet.is_keyframe
                                or j < 0
                                or j >= len(facts.frame_pts)
                                or facts.frame_pts[j] != packet.pts
                                or j > target
                            ):
                                raise _LostPosition()
                            idx = j - 1
                        if exact and self.skip_nonref:
                            # frames nobody references are not decoded unless they are wanted
                            skip = packet.pts is None or int(np.searchsorted(facts.frame_pts, packet.pts)) not in want
                            if skip != skipping:
                                ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                                skipping = skip
                        if packet.size == 0:
                            flushed = True  # the end: this empty packet drains the decoder
                        for frame in packet.decode():
                            if exact and frame.pts is not None:
                                j = int(np.searchsorted(facts.frame_pts, frame.pts))
                                idx = j if j < len(facts.frame_pts) and facts.frame_pts[j] == frame.pts else idx + 1
                            else:
                                idx += 1
                            last_frame = frame
                            if idx in want and idx not in got:
                                got[idx] = self._to_array(frame, size)
                        while pos < len(wanted) and wanted[pos] in got:
                            pos += 1
                        if flushed:
                            break
                        if pos >= len(wanted) or wanted[pos] != target:
                            break  # the target is done: decide afresh (seek?) for the next one
                    else:
                        flushed = True
                    if flushed:
                        ended = True  # end of file
                        break
            except _LostPosition:
                # the seek landed where the file's index did not say (a partial AVI index): decode straight through
                log.debug("%s: a seek landed off the key-frame table; decoding from the start", path)
                return self._run_plain(path, facts, wanted, size)
            except av.error.FFmpegError as exc:
                if not got:
                    raise VideoError(f"{path}: decoding failed ({exc}). The file may be truncated or corrupt.") from exc
                log.warning(
                    "%s: decoding stopped early at frame %d (%s); repeating the last good frame", path, idx, exc
                )
                ended = True
        if pos < len(wanted) and last_frame is not None and idx not in got:
            got[idx] = self._to_array(last_frame, size)  # wanted frames past the end repeat the last one
        return got, idx, ended

    def _run_plain(
        self, path: Path, facts: FileFacts, wanted: list[int], size: tuple[int, int] | None
    ) -> tuple[dict[int, np.ndarray], int, bool]:
        plain = PyAVDecoder(threads=self.threads, seek=False, skip_nonref=self.skip_nonref)
        return plain._run(path, facts, wanted, size)

    @staticmethod
    def _to_array(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
        if size is None:
            return _scale_rgb(frame, frame.width, frame.height)  # converted only (yuv -> rgb)
        h, w = size
        return _scale_rgb(frame, int(w), int(h))


_scalers = threading.local()


def _scale_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """``frame`` as an RGB ``H×W×3`` uint8 array at ``width×height`` (FFmpeg's bilinear scaler; at the frame's
    own size a conversion only).

    ``VideoFrame.reformat`` builds a new scaler context for every frame; one reformatter per
    thread keeps FFmpeg's cached context across frames of the same size, and one scaling thread
    (DataLoader workers already fill the cores): 2-5x less time per frame, the same pixels.
    """
    reformatter = getattr(_scalers, "reformatter", None)
    if reformatter is None:
        reformatter = _scalers.reformatter = av.video.reformatter.VideoReformatter()
    try:
        out = reformatter.reformat(frame, width=width, height=height, format="rgb24", threads=1)
    except TypeError:  # PyAV before the threads option
        out = reformatter.reformat(frame, width=width, height=height, format="rgb24")
    return out.to_ndarray()


class FrameFolderDecoder:
    """Read pre-extracted frames: a folder of ``000001.jpg``-style files, sorted by name.

    ``fps`` is unknown for a folder; pass the extraction rate if you know it.
    """

    def __init__(self, *, fps: float = 30.0) -> None:
        self.fps = fps

    def _frames(self, path: Path) -> list[Path]:
        if not path.is_dir():
            raise VideoError(f"{path}: no such frame folder.")
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise VideoError(f"{path}: the frame folder holds no .jpg/.png frames.")
        return files

    def info(self, path: str | os.PathLike[str]) -> VideoInfo:
        from PIL import Image

        files = self._frames(Path(path))
        with Image.open(files[0]) as im:
            w, h = im.size
        return VideoInfo(len(files), self.fps, len(files) / self.fps, w, h, "jpeg")

    def times(self, path: str | os.PathLike[str], indices: Sequence[int]) -> list[float]:
        return [int(i) / self.fps for i in indices]

    def decode(
        self, path: str | os.PathLike[str], indices: Sequence[int], *, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        from PIL import Image

        files = self._frames(Path(path))
        cache: dict[int, np.ndarray] = {}
        out = []
        for i in indices:
            i = min(int(i), len(files) - 1)
            if i not in cache:
                try:
                    with Image.open(files[i]) as im:
                        rgb = im.convert("RGB")
                        if size is not None:
                            rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                        cache[i] = np.asarray(rgb)
                except OSError as exc:
                    raise VideoError(f"{files[i]}: unreadable frame ({exc}).") from exc
            out.append(cache[i])
        import torch

        return torch.from_numpy(np.stack(out))


class AutoDecoder:
    """Dispatch on the path: folders go to :class:`FrameFolderDecoder`, files to :class:`PyAVDecoder`."""

    def __init__(self, file_decoder: Decoder | None = None, folder_decoder: Decoder | None = None) -> None:
        self.file_decoder = file_decoder or PyAVDecoder()
        self.folder_decoder = folder_decoder or FrameFolderDecoder()

    def _pick(self, path: str | os.PathLike[str]) -> Decoder:
        return self.folder_decoder if Path(path).is_dir() else self.file_decoder

    def info(self, path: str | os.PathLike[str]) -> VideoInfo:
        return self._pick(path).info(path)

    def times(self, path: str | os.PathLike[str], indices: Sequence[int]) -> list[float]:
        dec = self._pick(path)
        if hasattr(dec, "times"):
            return dec.times(path, indices)
        info = dec.info(path)
        return [int(i) / (info.fps or 25.0) for i in indices]

    def decode(
        self, path: str | os.PathLike[str], indices: Sequence[int], *, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        return self._pick(path).decode(path, indices, size=size)
