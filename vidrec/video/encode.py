"""Write uint8 frames to a real video file with PyAV (used by `vidrec synth`, tests and --visualize)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidrec.utils.io import atomic_path

# container suffix -> (codec, pixel format)
_CODECS = {
    ".mp4": ("libx264", "yuv420p"),
    ".mkv": ("libx264", "yuv420p"),
    ".avi": ("mpeg4", "yuv420p"),
    ".webm": ("libvpx-vp9", "yuv420p"),
}


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    *,
    fps: float = 12.0,
    codec: str | None = None,
    crf: int = 23,
) -> Path:
    """Encode ``frames`` (uint8, T×H×W×3, RGB) to ``path``; the container follows the suffix.

    Width and height must be even (yuv420p). The file appears atomically.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 T×H×W×3, got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if t == 0:
        raise ValueError("cannot write a video with no frames")
    if h % 2 or w % 2:
        raise ValueError(f"height and width must be even for yuv420p, got {h}×{w}")
    default_codec, pix_fmt = _CODECS.get(path.suffix.lower(), ("libx264", "yuv420p"))
    codec = codec or default_codec
    rate = Fraction(fps).limit_denominator(1000)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=_format_for(path)) as container:
            stream = container.add_stream(codec, rate=rate)
            if not isinstance(stream, av.VideoStream):
                raise ValueError(f"codec {codec!r} is not a video codec (e.g. libx264, libvpx-vp9, mpeg4)")
            stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
            if codec == "libx264":
                stream.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
            elif codec.startswith("libvpx"):
                stream.options = {"crf": str(crf + 8), "b:v": "0", "deadline": "realtime", "cpu-used": "8"}
            for arr in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def _format_for(path: Path) -> str | None:
    return {".mp4": "mp4", ".mkv": "matroska", ".avi": "avi", ".webm": "webm"}.get(path.suffix.lower())
