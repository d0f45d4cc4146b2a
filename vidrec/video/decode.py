"""Video decoding behind one small protocol.

A decoder turns ``(path, frame indices)`` into a ``uint8`` tensor ``T×H×W×C`` and reports
frame count, fps and duration. It never samples: the sampler decides which indices.

- :class:`PyAVDecoder` (default): any container FFmpeg reads; decodes straight to a smaller
  size with FFmpeg's scaler; seeks instead of decoding long gaps.
- :class:`FrameFolderDecoder`: pre-extracted JPEG folders (``<video_id>/000001.jpg``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import av
import numpy as np

from vidrec.errors import VideoError

if TYPE_CHECKING:  # torch is imported where frames become tensors: probing a video (vidrec prepare scan) needs none
    import torch

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int  # decodable frames (exact for frame folders, from metadata or a count for files)
    fps: float
    duration: float  # seconds
    width: int
    height: int
    codec: str = ""


@runtime_checkable
class Decoder(Protocol):
    def info(self, path: str | os.PathLike[str]) -> VideoInfo: ...

    def decode(
        self, path: str | os.PathLike[str], indices: Sequence[int], *, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Return frames at ``indices`` (in the given order, repeats allowed) as uint8 T×H×W×C.

        ``size`` is ``(height, width)`` to decode straight to; ``None`` keeps the native size.
        """
        ...


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"{path}: no such file. Check the dataset root and the annotation file that names it.")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty (0 bytes). Re-download or remove it from the list.")


class PyAVDecoder:
    """Decode with PyAV (FFmpeg in the wheel).

    Args:
        seek_gap: when the next wanted frame is more than this many frames ahead, seek to the
            nearest key frame before it instead of decoding every frame in between.
        threads: FFmpeg decoding threads per file (0 = FFmpeg's choice). DataLoader workers
            already run in parallel, so 1 is the right default there.
    """

    def __init__(self, *, seek_gap: int = 96, threads: int = 1) -> None:
        self.seek_gap = seek_gap
        self.threads = threads

    def _open(self, path: Path) -> av.container.InputContainer:
        _check_file(path)
        try:
            container = av.open(str(path), mode="r")
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise VideoError(f"{path}: not a readable video ({exc}). Is it truncated or another file type?") from exc
        if not container.streams.video:
            container.close()
            raise VideoError(f"{path}: the file has no video stream.")
        return container

    def info(self, path: str | os.PathLike[str]) -> VideoInfo:
        path = Path(path)
        with self._open(path) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            duration = 0.0
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            num_frames = int(stream.frames or 0)
            if num_frames <= 0:
                # WebM and some AVIs carry no frame count: count packets (no decoding).
                num_frames = sum(1 for p in container.demux(stream) if p.size > 0)
            if duration <= 0 and num_frames:
                duration = num_frames / fps
            ctx = stream.codec_context
            return VideoInfo(num_frames, fps, duration, int(ctx.width), int(ctx.height), str(ctx.name))

    def decode(
        self, path: str | os.PathLike[str], indices: Sequence[int], *, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        path = Path(path)
        if len(indices) == 0:
            raise ValueError("no frame indices requested")
        wanted = sorted(set(int(i) for i in indices))
        if wanted[0] < 0:
            raise ValueError(f"negative frame index {wanted[0]}")
        got: dict[int, np.ndarray] = {}
        last: np.ndarray | None = None
        last_idx = -1
        with self._open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if self.threads:
                stream.codec_context.thread_count = self.threads
            fps = float(stream.average_rate or stream.guessed_rate or 25.0)
            tb = float(stream.time_base) if stream.time_base else 1.0 / fps
            start_pts = stream.start_time or 0
            pos = 0  # next position in `wanted`
            idx = -1  # index of the last decoded frame
            try:
                frames = container.decode(stream)
                from_pts = False
                sought = -1  # a target is sought at most once (a far key frame must not loop)
                while pos < len(wanted):
                    if wanted[pos] - idx > self.seek_gap and wanted[pos] != sought:
                        sought = wanted[pos]
                        # Long gap: jump to the key frame before the target instead of decoding through.
                        target_pts = int(start_pts + wanted[pos] / fps / tb)
                        container.seek(target_pts, stream=stream, backward=True, any_frame=False)
                        frames = container.decode(stream)
                        from_pts = True
                    frame = next(frames, None)
                    if frame is None:
                        break
                    if from_pts and frame.pts is not None:
                        idx = round((frame.pts - start_pts) * tb * fps)
                        from_pts = False
                    else:
                        idx += 1
                    if idx < wanted[pos]:
                        continue
                    arr = self._to_array(frame, size)
                    last, last_idx = arr, idx
                    while pos < len(wanted) and wanted[pos] <= idx:
                        got[wanted[pos]] = arr
                        pos += 1
            except av.error.FFmpegError as exc:
                if not got:
                    raise VideoError(f"{path}: decoding failed ({exc}). The file may be truncated or corrupt.") from exc
                log.warning("%s: decoding stopped early at frame %d (%s); repeating the last good frame", path, last_idx, exc)
        if last is None:
            raise VideoError(f"{path}: no frame could be decoded. The file may be empty, truncated or corrupt.")
        if pos < len(wanted):
            log.debug("%s: %d requested frames past the end (last frame %d); repeating it", path, len(wanted) - pos, last_idx)
            for w in wanted[pos:]:
                got[w] = last
        import torch

        return torch.from_numpy(np.stack([got[int(i)] for i in indices]))

    @staticmethod
    def _to_array(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
        if size is None:
            return frame.to_ndarray(format="rgb24")
        h, w = size
        return frame.reformat(width=int(w), height=int(h), format="rgb24").to_ndarray()


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
                        im = im.convert("RGB")
                        if size is not None:
                            im = im.resize((size[1], size[0]), Image.BILINEAR)
                        cache[i] = np.asarray(im)
                except OSError as exc:
                    raise VideoError(f"{files[i]}: unreadable frame ({exc}).") from exc
            out.append(cache[i])
        import torch

        return torch.from_numpy(np.stack(out))


_DEFAULT_FILE = PyAVDecoder()
_DEFAULT_FOLDER = FrameFolderDecoder()


def decoder_for(path: str | os.PathLike[str]) -> Decoder:
    """The default decoder for a path: a frame folder or a video file."""
    return _DEFAULT_FOLDER if Path(path).is_dir() else _DEFAULT_FILE


class AutoDecoder:
    """Dispatch on the path: folders go to :class:`FrameFolderDecoder`, files to :class:`PyAVDecoder`."""

    def __init__(self, file_decoder: Decoder | None = None, folder_decoder: Decoder | None = None) -> None:
        self.file_decoder = file_decoder or PyAVDecoder()
        self.folder_decoder = folder_decoder or FrameFolderDecoder()

    def _pick(self, path: str | os.PathLike[str]) -> Decoder:
        return self.folder_decoder if Path(path).is_dir() else self.file_decoder

    def info(self, path: str | os.PathLike[str]) -> VideoInfo:
        return self._pick(path).info(path)

    def decode(
        self, path: str | os.PathLike[str], indices: Sequence[int], *, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        return self._pick(path).decode(path, indices, size=size)
