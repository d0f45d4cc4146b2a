"""Helpers shared by the dataset loaders: problem collection, path lookup, frame folders, scan index.

Loaders never write to the dataset root; they only list directories and read annotation files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from vidrec.data.records import VideoRecord
from vidrec.errors import DatasetError

log = logging.getLogger(__name__)


class Problems:
    """Collect user-facing problems; with ``strict=True`` the first one raises :class:`DatasetError`."""

    def __init__(self, *, strict: bool = False, max_logged: int = 20) -> None:
        self.strict = strict
        self.items: list[str] = []
        self.max_logged = max_logged

    def add(self, message: str) -> None:
        if self.strict:
            raise DatasetError(message)
        if len(self.items) < self.max_logged:
            log.warning("%s", message)
        elif len(self.items) == self.max_logged:
            log.warning("more problems found; see `vidrec data show` for the full list")
        self.items.append(message)

    def __len__(self) -> int:
        return len(self.items)


def check_split(split: int, dataset: str) -> int:
    """The official splits are 1, 2, 3; anything else is a user error."""
    try:
        value = int(split)
    except (TypeError, ValueError):
        value = -1
    if value not in (1, 2, 3):
        raise DatasetError(f"{dataset}: split {split!r} is not an official split; use data.split=1, 2 or 3")
    return value


def read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines of a text file with their 1-based line numbers (CRLF and BOM tolerated)."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


class DirListing:
    """Lazy, cached listings of folders, so that checking 100k paths costs one ``scandir`` per folder.

    ``resolve(rel)`` returns the existing path for ``rel`` (exact, else case-insensitive) or ``None``.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self._cache: dict[Path, dict[str, str] | None] = {}

    def names(self, folder: Path) -> dict[str, str] | None:
        if folder not in self._cache:
            try:
                with os.scandir(folder) as it:
                    self._cache[folder] = {e.name.lower(): e.name for e in it}
            except OSError:
                self._cache[folder] = None
        return self._cache[folder]

    def resolve(self, rel: str | Path) -> Path | None:
        cur = self.base
        for part in Path(rel).parts:
            names = self.names(cur)
            if names is None:
                return None
            real = part if part in names.values() else names.get(part.lower())
            if real is None:
                return None
            cur = cur / real
        return cur


def find_dir(root: Path, names: Iterable[str], *, depth: int = 2) -> Path | None:
    """The first folder under ``root`` (itself included, breadth first) whose name is one of ``names``."""
    wanted = {n.lower() for n in names}
    if root.name.lower() in wanted:
        return root
    level = [root]
    for _ in range(depth):
        nxt: list[Path] = []
        for d in level:
            try:
                subs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
            for p in subs:
                if p.name.lower() in wanted:
                    return p
            nxt.extend(subs)
        level = nxt
    return None


def find_file(root: Path, name: str, *, depth: int = 3) -> Path | None:
    """The first file called ``name`` under ``root`` (breadth first, hidden folders skipped)."""
    level = [root]
    for _ in range(depth + 1):
        nxt: list[Path] = []
        for d in level:
            cand = d / name
            if cand.is_file():
                return cand
            try:
                nxt.extend(sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")))
            except OSError:
                continue
        level = nxt
    return None


def frames_path(frames_root: Path, video_root: Path, path: Path, video_id: str) -> Path | None:
    """Where ``vidrec prepare frames`` (or a user) put the JPEG folder for a video, if it exists.

    Tried in order: ``frames_root/<path relative to video_root (or its parent, or grandparent),
    without suffix>``, ``frames_root/<video_id>``, ``frames_root/<file stem>``.
    """
    cands = []
    for base in (video_root, video_root.parent, video_root.parent.parent):
        try:
            cands.append(frames_root / path.relative_to(base).with_suffix(""))
        except ValueError:
            pass
    cands += [frames_root / video_id, frames_root / path.stem]
    for c in cands:
        if c.is_dir():
            return c
    return None


def finish_records(
    subsets: Mapping[str, list[VideoRecord]],
    *,
    video_root: Path,
    frames_root: str | os.PathLike[str] | None,
    index: str | os.PathLike[str] | None,
    problems: Problems,
) -> dict[str, list[VideoRecord]]:
    """Point records at frame folders (``frames_root``) and fill frames/fps from a scan index (``index``)."""
    out: dict[str, list[VideoRecord]] = {k: list(v) for k, v in subsets.items()}
    if frames_root is not None:
        froot = Path(frames_root).expanduser()
        if not froot.is_dir():
            raise DatasetError(f"data.frames_root: {froot} is not a folder. Run `vidrec prepare frames` first or fix the path.")
        for name, recs in out.items():
            new = []
            for r in recs:
                p = frames_path(froot, video_root, r.path, r.video_id)
                if p is None:
                    problems.add(
                        f"{name}: video {r.video_id}: no frame folder under {froot} "
                        f"(looked for {r.video_id}/000001.jpg). Run `vidrec prepare frames` for it."
                    )
                    continue
                new.append(replace(r, path=p, meta={**r.meta, "video_path": str(r.path)}))
            out[name] = new
    if index is not None:
        from vidrec.data.scan import load_index

        idx = load_index(index)
        ok, nf, fps, width, height = (idx.column(c) for c in ("ok", "num_frames", "fps", "width", "height"))
        missing = 0
        for name, recs in out.items():
            new = []
            for r in recs:
                src = r.meta.get("video_path") or r.path  # frame folders remember their video
                i = idx.position(src)
                if i is None:
                    missing += 1
                    new.append(r)
                    continue
                if not ok[i]:
                    problems.add(f"{name}: video {r.video_id} ({src}) is unreadable per the scan index: {idx.column('error')[i]}")
                    continue
                meta: dict[str, Any] = {**r.meta, "frame_size": (width[i], height[i])}
                if src is r.path:  # a frame folder has its own count; keep the decoder's
                    new.append(VideoRecord(r.path, r.label, r.video_id, nf[i], fps[i], meta))
                else:
                    new.append(VideoRecord(r.path, r.label, r.video_id, r.num_frames, r.fps, meta))
            out[name] = new
        if missing:
            log.info("%d records are not in the scan index %s; their frame counts are read when decoded", missing, index)
    return out
