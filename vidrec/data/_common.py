"""Helpers shared by the dataset loaders: problem collection, path lookup, frame folders, scan index.

Loaders never write to the dataset root; they only list directories and read annotation files.
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from vidrec.data.records import VideoRecord
from vidrec.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)


class Problems:
    """Collect user-facing problems; with ``strict=True`` the first one raises :class:`DatasetError`."""

    def __init__(self, *, strict: bool = False, max_logged: int = 20) -> None:
        self.strict = strict
        self.items: list[str] = []
        self.max_logged = max_logged
        self.subset: str | None = None  # the subset the next problems concern (a loader sets it while reading one)
        self.subsets: list[str | None] = []  # parallel to items (RecordSet.problem_subsets)

    def add(self, message: str, *, subset: str | None = None) -> None:
        if self.strict:
            raise DatasetError(message)
        if len(self.items) < self.max_logged:
            log.warning("%s", message)
        elif len(self.items) == self.max_logged:
            log.warning("more problems found; see `vidrec data show` for the full list")
        self.items.append(message)
        self.subsets.append(subset or self.subset)

    def __len__(self) -> int:
        return len(self.items)


def user_path(root: Path, value: str | os.PathLike[str]) -> Path:
    """A path from a ``data.*`` option: ``~`` expanded; a relative path that does not exist from the
    working directory is taken relative to the dataset root."""
    p = Path(value).expanduser()
    return root / p if not p.is_absolute() and not p.exists() else p


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
    Paths are handled as strings inside: at 100k records, pathlib's parsing costs more than the listing.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self._base = os.fspath(base)
        self._cache: dict[str, tuple[frozenset[str], dict[str, str]] | None] = {}

    def _listing(self, folder: str) -> tuple[frozenset[str], dict[str, str]] | None:
        if folder not in self._cache:
            try:
                with os.scandir(folder) as it:
                    exact = frozenset(e.name for e in it)
                self._cache[folder] = (exact, {n.lower(): n for n in exact})
            except OSError:
                self._cache[folder] = None
        return self._cache[folder]

    def names(self, folder: Path) -> dict[str, str] | None:
        """``{lower-case name: name}`` of ``folder``'s entries; ``None`` when it cannot be listed."""
        listing = self._listing(os.fspath(folder))
        return None if listing is None else listing[1]

    def resolve(self, rel: str | Path) -> Path | None:
        cur = self._base
        for part in rel.replace("\\", "/").split("/") if isinstance(rel, str) else Path(rel).parts:
            if part in ("", "."):
                continue
            listing = self._listing(cur)
            if listing is None:
                return None
            exact, lower = listing
            real = part if part in exact else lower.get(part.lower())
            if real is None:
                return None
            cur = os.path.join(cur, real)
        return Path(cur)


def find_dir(
    root: Path, names: Iterable[str], *, depth: int = 2, accept: Callable[[Path], bool] | None = None
) -> Path | None:
    """The first folder below ``root`` (breadth first, then ``root`` itself) named one of ``names``.

    Children are tried before ``root``: a dataset root called ``ucf101`` must not pass for the
    ``UCF101`` video folder inside it. With ``accept``, a folder must also pass that check (e.g.
    hold ``classInd.txt``) to count.
    """
    wanted = {n.lower() for n in names}

    def ok(d: Path) -> bool:
        return d.name.lower() in wanted and (accept is None or accept(d))

    level = [root]
    for _ in range(depth):
        nxt: list[Path] = []
        for d in level:
            subs = _subdirs(d)
            for p in subs:
                if ok(p):
                    return p
            nxt.extend(subs)
        level = nxt
    return root if ok(root) else None


def _subdirs(d: Path) -> list[Path]:
    """Visible sub-folders of ``d``, sorted; none when it cannot be listed."""
    try:
        with os.scandir(d) as it:
            return sorted(Path(e.path) for e in it if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return []


def find_class_dir(
    root: Path, classes: Iterable[str], *, prefer: Iterable[str] = (), exclude: Iterable[Path] = (), depth: int = 2
) -> Path | None:
    """The folder (``root`` or up to ``depth`` levels below) that holds the most of ``classes`` as sub-folders.

    This is where the videos are, whatever the folder is called. Ties go to a folder named in
    ``prefer`` (e.g. ``UCF-101``), then to the shallower one. Class folders themselves are not
    descended into (they hold videos), so the search lists a few folders only.
    """
    wanted = {c.lower() for c in classes}
    preferred = {n.lower() for n in prefer}
    skip = set(exclude)
    best: tuple[int, int, int] = (0, 0, 0)
    best_dir: Path | None = None
    level = [root]
    for dist in range(depth + 1):
        nxt: list[Path] = []
        for d in level:
            if d in skip:
                continue
            subs = _subdirs(d)
            n = sum(p.name.lower() in wanted for p in subs)
            score = (n, d.name.lower() in preferred, -dist)
            if n and score > best:
                best, best_dir = score, d
            nxt.extend(p for p in subs if p.name.lower() not in wanted)
        level = nxt
    return best_dir


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


def frames_root_dir(frames_root: str | os.PathLike[str]) -> Path:
    """``data.frames_root`` as a folder, or a clear error."""
    froot = Path(frames_root).expanduser()
    if not froot.is_dir():
        raise DatasetError(
            f"data.frames_root: {froot} is not a folder. Run `vidrec prepare frames` first or fix the path."
        )
    return froot


class RecordFinder:
    """Find the file behind an annotation line: the video, or with ``frames_root`` its frame folder.

    With ``frames_root`` a record is found when its frame folder exists, whatever the video (many
    users delete the videos once the frames are extracted). The folder is looked up as the line's
    path without its suffix below the frames folder that holds the class folders (``vidrec prepare
    frames`` keeps the dataset's tree, run on the root or on the video folder), else as
    ``<frames_root>/<video id>/``. Frame files may be named in any pattern (``000001.jpg``,
    ``0001.jpg``, ``img_00001.jpg``): they are read in sorted order.
    """

    def __init__(
        self, video_root: Path | None, frames_root: str | os.PathLike[str] | None = None, *, classes: Iterable[str] = ()
    ) -> None:
        self.video_root = video_root
        self.videos = DirListing(video_root) if video_root is not None else None
        self.frames_root = frames_root_dir(frames_root) if frames_root is not None else None
        self.frames: DirListing | None = None
        self.flat: DirListing | None = None
        if self.frames_root is not None:
            base = find_class_dir(self.frames_root, classes) if classes else None
            self.frames = DirListing(base or self.frames_root)
            self.flat = DirListing(self.frames_root)

    def find(self, rel: str, video_id: str) -> tuple[Path | None, dict[str, str]]:
        """(path to read or ``None``, meta): with frames, meta names the video when it is there too."""
        video = self.videos.resolve(rel) if self.videos is not None else None
        if self.frames is None or self.flat is None:
            return video, {}
        folder = self.frames.resolve(os.path.splitext(rel)[0]) or self.flat.resolve(video_id)
        if folder is None:
            return None, {}
        return folder, ({"video_path": str(video)} if video is not None else {})

    def missing(self, rel: str, video_id: str, *, fix: str = "Re-download it or remove the line.") -> str:
        """The problem text for a line whose file was not found (``fix``: what to do about a missing video)."""
        if self.frames is not None:
            return (
                f"no frame folder for {rel} under {self.frames_root} (looked for {os.path.splitext(rel)[0]}/ and "
                f"{video_id}/). Run `vidrec prepare frames` for it."
            )
        return f"video {rel} not found under {self.video_root}. {fix}"


def finish_records(
    subsets: Mapping[str, list[VideoRecord]],
    *,
    index: str | os.PathLike[str] | None,
    problems: Problems,
) -> dict[str, list[VideoRecord]]:
    """Fill frames/fps/frame size from a scan index (``index``); videos it found unreadable become problems."""
    out: dict[str, list[VideoRecord]] = {k: list(v) for k, v in subsets.items()}
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
                    problems.add(
                        f"{name}: video {r.video_id} ({src}) is unreadable per the scan index: "
                        f"{idx.column('error')[i]}",
                        subset=name,
                    )
                    continue
                meta: dict[str, Any] = {**r.meta, "frame_size": (width[i], height[i])}
                if src is r.path:  # a frame folder has its own count; keep the decoder's
                    new.append(VideoRecord(r.path, r.label, r.video_id, nf[i], fps[i], meta))
                else:
                    new.append(VideoRecord(r.path, r.label, r.video_id, r.num_frames, r.fps, meta))
            out[name] = new
        if missing:
            log.info(
                "%d records are not in the scan index %s; their frame counts are read when decoded", missing, index
            )
    return out


# ------------------------------------------------------------------------------------------ class subsets


def _class_key(name: str) -> str:
    """How class names are compared: case and SSv2's template brackets do not matter."""
    return name.replace("[", "").replace("]", "").strip().lower()


def select_classes(names: Sequence[str], wanted: Sequence[str] | str | None, *, dataset: str) -> list[int]:
    """Positions in ``names`` of the classes ``data.classes`` asks for, in its order (all when ``None``).

    Names match ignoring case (and SSv2's brackets); an unknown or repeated name is a
    :class:`ConfigError` that lists close matches.
    """
    if wanted is None:
        return list(range(len(names)))
    if isinstance(wanted, str) or not isinstance(wanted, Sequence):
        raise ConfigError(f"data.classes: expected a list of class names, e.g. data.classes=[a, b]; got {wanted!r}")
    if not wanted:
        raise ConfigError("data.classes: the list is empty; name at least one class or drop the key")
    index = {_class_key(n): i for i, n in enumerate(names)}
    out: list[int] = []
    for w in wanted:
        i = index.get(_class_key(str(w)))
        if i is None:
            close = difflib.get_close_matches(str(w), list(names), n=3)
            hint = (
                f"; did you mean {', '.join(map(repr, close))}?"
                if close
                else f"; it has {len(names)} classes (see `vidrec data show`)"
            )
            raise ConfigError(f"data.classes: {w!r} is not a class of {dataset}{hint}")
        if i in out:
            raise ConfigError(f"data.classes: {w!r} is named twice")
        out.append(i)
    return out


def remap_info(original: Sequence[Any], *, base: int, source: str) -> dict[str, Any]:
    """``info`` entries saying how a loader's labels 0..K-1 relate to the ids in its annotation files.

    ``original[k]`` is the annotation id of label ``k``; nothing is said when label ``k`` is id
    ``k + base`` for all ``k`` (the usual, unremapped case).
    """
    if all(o == k + base for k, o in enumerate(original)):
        return {}
    return {"remapped_ids": {"source": source, "map": {str(o): k for k, o in enumerate(original)}}}


class LeftOut:
    """Count the annotation lines of classes outside a class subset (not problems: the user chose them)."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.classes: set[str] = set()

    def add(self, subset: str, cls: str, n: int = 1) -> None:
        self.lines[subset] = self.lines.get(subset, 0) + n
        self.classes.add(cls)

    def info(self) -> dict[str, Any]:
        if not self.lines:
            return {}
        return {"left_out": dict(self.lines), "left_out_classes": sorted(self.classes)}
