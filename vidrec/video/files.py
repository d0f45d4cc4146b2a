"""What counts as one video on disk: a video file, or a folder of frame images (JPEG/PNG).

A folder that holds frame images directly is one video (its subfolders are not looked into);
any other folder is searched recursively for videos. Light: no torch, no decoding.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from vidrec.errors import VideoError

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")


def is_frame_folder(path: Path) -> bool:
    """A folder with at least one frame image directly inside it."""
    if not path.is_dir():
        return False
    with os.scandir(path) as it:
        return any(
            e.is_file() and Path(e.name).suffix.lower() in FRAME_SUFFIXES and not e.name.startswith(".") for e in it
        )


def find_videos(
    root: str | os.PathLike[str], *, frame_folders: bool = True, exclude: Iterable[Path] = ()
) -> list[Path]:
    """The videos under ``root``, sorted: video files and (``frame_folders``) folders of frames.

    Hidden files and folders and the folders in ``exclude`` are skipped. ``root`` itself may be a
    video file or a frame folder (then it is the only video)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise VideoError(f"{root}: no such file or folder")
    if root.is_file():
        return [root]
    if frame_folders and is_frame_folder(root):
        return [root]
    skip = {Path(p).resolve() for p in exclude}
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        keep = []
        for n in sorted(dirnames):
            sub = d / n
            if n.startswith(".") or sub.resolve() in skip:
                continue
            if frame_folders and is_frame_folder(sub):
                out.append(sub)  # one video; its own subfolders are not videos of their own
            else:
                keep.append(n)
        dirnames[:] = keep
        out += [d / f for f in filenames if Path(f).suffix.lower() in VIDEO_SUFFIXES and not f.startswith(".")]
    return sorted(out)


def expand_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Command-line inputs → videos: a file or a frame folder as given, another folder searched
    recursively. An input that names nothing, or a folder with no video, is a one-line error."""
    out: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise VideoError(f"{path}: no such file or folder")
        if path.is_dir() and not is_frame_folder(path):
            found = find_videos(path)
            if not found:
                raise VideoError(
                    f"{path}: no videos in this folder or below it ({', '.join(VIDEO_SUFFIXES[:4])}, ... or folders of "
                    f"{'/'.join(s.lstrip('.') for s in FRAME_SUFFIXES)} frames)"
                )
            out += found
        else:
            out.append(path)
    return list(dict.fromkeys(out))
