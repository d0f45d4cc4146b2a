"""Something-Something-v2 from its official files (``data.dataset: ssv2``).

Layout (the official download names; point elsewhere with ``annotations=`` / ``videos=``)::

    ROOT/
      20bn-something-something-v2/<id>.webm         videos (or <id>/000001.jpg frame folders)
      annotations/                                  or 20bn-something-something-download-package-labels/labels/
        something-something-v2-labels.json          {"Approaching something with your camera": "0", ...}
        something-something-v2-train.json           [{"id": "78687", "label": "...",
                                                      "template": "Holding [something] ...", "placeholders": [...]}]
        something-something-v2-validation.json
        something-something-v2-test.json            [{"id": "1420"}]  (ids only: for prediction)

The short names of the download package (``labels.json``, ``train.json``, ``validation.json``,
``test.json``) are read too. A record's class is its template with the brackets removed, matched
against the labels file; classes are ordered by their index there.

Nothing is written into ROOT, no video is opened: one directory listing finds every video, so
220k records load in about a second.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from vidrec.data._common import (
    LeftOut,
    Problems,
    finish_records,
    frames_root_dir,
    remap_info,
    select_classes,
    user_path,
)
from vidrec.data.records import RecordSet, VideoRecord, register_dataset
from vidrec.errors import ConfigError, DatasetError
from vidrec.video.decode import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

ANNOTATION_DIRS = ("annotations", "20bn-something-something-download-package-labels/labels", "labels", "")
VIDEO_DIRS = ("20bn-something-something-v2", "videos")
FRAME_DIRS = ("20bn-something-something-v2-frames", "frames")
FILES = {
    "labels": ("something-something-v2-labels.json", "labels.json"),
    "train": ("something-something-v2-train.json", "train.json"),
    "val": ("something-something-v2-validation.json", "validation.json"),
    "test": ("something-something-v2-test.json", "test.json"),
}
MAX_LISTED_MISSING = 10  # per subset; the rest are counted in one summary line


def class_name(template: str) -> str:
    """``"Putting [something] into [something]"`` -> ``"Putting something into something"``."""
    return template.replace("[", "").replace("]", "")


def _read_json(path: Path) -> Any:
    """Parse ``path``; a syntax error names the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc}). Check the file and its permissions.") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}). "
            "The file is truncated or was edited by hand; download it again."
        ) from exc


def _find_file(ann_dir: Path, key: str) -> Path | None:
    for name in FILES[key]:
        p = ann_dir / name
        if p.is_file():
            return p
    return None


def _find_annotations(root: Path, annotations: str | os.PathLike[str] | None) -> Path:
    if annotations is not None:
        ann = user_path(root, annotations)
        if not ann.is_dir():
            raise DatasetError(
                f"ssv2 annotations: {ann} is not a folder. "
                f"Point data.annotations at the folder with {FILES['labels'][0]}."
            )
        if _find_file(ann, "labels") is None:
            raise DatasetError(
                f"{ann}: holds no {' or '.join(FILES['labels'])}. "
                "Point data.annotations at the folder with the labels file."
            )
        return ann
    for sub in ANNOTATION_DIRS:
        cand = root / sub if sub else root
        if cand.is_dir() and _find_file(cand, "labels") is not None:
            return cand
    looked = ", ".join(str(root / s) if s else str(root) for s in ANNOTATION_DIRS)
    raise DatasetError(
        f"{root}: no Something-Something-v2 labels file ({FILES['labels'][0]}) found; looked in {looked}. "
        "Unpack the annotation download there or pass data.annotations=DIR."
    )


def _find_videos(root: Path, videos: str | os.PathLike[str] | None, frames: bool) -> Path:
    if videos is not None:
        v = user_path(root, videos)
        if not v.is_dir():
            raise DatasetError(
                f"ssv2 videos: {v} is not a folder. Point data.videos at the folder with <id>.webm files."
            )
        return v
    for sub in (FRAME_DIRS + VIDEO_DIRS) if frames else (VIDEO_DIRS + FRAME_DIRS):
        if (root / sub).is_dir():
            return root / sub
    return root


def _list_videos(video_dir: Path, frames: bool) -> dict[str, str]:
    """One listing: video id -> file or folder name. Frame folders win when ``frames``."""
    found: dict[str, str] = {}
    dirs: dict[str, str] = {}
    with os.scandir(video_dir) as it:
        for entry in it:
            name = entry.name
            if name.startswith("."):
                continue
            stem, dot, suffix = name.rpartition(".")
            if dot and ("." + suffix.lower()) in VIDEO_SUFFIXES:
                found.setdefault(stem, name)
            elif entry.is_dir():
                dirs[name] = name
    if frames:
        found.update(dirs)
    else:
        for k, v in dirs.items():
            found.setdefault(k, v)
    return found


def _list_frame_folders(frames_root: Path) -> dict[str, str]:
    """One listing of ``frames_root``: video id -> its frame folder's name."""
    with os.scandir(frames_root) as it:
        return {e.name: e.name for e in it if not e.name.startswith(".") and not e.name.endswith(".tmp") and e.is_dir()}


def _read_labels(path: Path, problems: Problems) -> tuple[list[str], dict[str, int]]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(
            f'{path}: expected an object {{"class name": "index", ...}}, got a {type(data).__name__}. '
            "Is this the labels file?"
        )
    by_index: dict[int, str] = {}
    for name, raw in data.items():
        try:
            idx = int(raw)
        except (TypeError, ValueError):
            problems.add(
                f'{path}: class {name!r} has index {raw!r}, which is not a number. Fix the entry (e.g. "{name}": "3").'
            )
            continue
        if idx in by_index:
            problems.add(
                f"{path}: index {idx} is given to both {by_index[idx]!r} and {name!r}; each class needs its own index. "
                f"Fix the labels file (the second one is ignored)."
            )
            continue
        by_index[idx] = class_name(name)
    order = sorted(by_index)
    if order and order != list(range(len(order))):
        missing = sorted(set(range(order[-1] + 1)) - set(order))[:10]
        problems.add(
            f"{path}: class indices are not 0..{len(order) - 1} (missing {missing}); "
            "classes are renumbered in index order."
        )
    classes = [by_index[i] for i in order]
    return classes, {n: i for i, n in enumerate(classes)}


def _read_subset(
    path: Path,
    subset: str,
    labelled: bool,
    index: dict[str, int],
    labels_path: Path,
    video_dir: Path,
    listing: dict[str, str],
    problems: Problems,
    left_out: LeftOut,
    all_classes: set[str],
    frame_folders: bool = False,
) -> tuple[list[VideoRecord], int]:
    """Records of one annotation file; ``listing`` maps an id to its file (or, ``frame_folders``, its frame folder)."""
    what, fix = (
        (
            "frame folder",
            "Extract its frames (vidrec prepare frames), or point data.frames_root at the folder holding <id>/",
        )
        if frame_folders
        else ("video", "Download it, or point data.videos at the folder that holds it")
    )
    try:
        data = _read_json(path)
    except DatasetError as exc:
        problems.add(str(exc))
        return [], 0
    if not isinstance(data, list):
        problems.add(
            f'{path}: expected a list of {{"id": ...}} entries, got a {type(data).__name__}. '
            f"Is this an SSv2 {subset} file?"
        )
        return [], 0
    records: list[VideoRecord] = []
    append = records.append
    missing = 0
    get_video = listing.get
    get_class = index.get
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "id" not in entry:
            problems.add(
                f'{path}: entry {i} has no "id" ({str(entry)[:80]}). Each entry must look like {{"id": "123", ...}}.'
            )
            continue
        vid = str(entry["id"])
        label = -1
        meta: dict[str, Any] = {}
        if labelled:
            template = entry.get("template")
            if not isinstance(template, str):
                problems.add(
                    f'{path}: entry {i} (id {vid}) has no "template". '
                    'Labelled entries need the template, e.g. "Moving [something] up".'
                )
                continue
            name = template.replace("[", "").replace("]", "")
            label = get_class(name, -1)
            if label < 0 and name in all_classes:  # outside data.classes
                left_out.add(subset, name)
                continue
            if label < 0:
                problems.add(
                    f"{path}: entry {i} (id {vid}): template {template!r} matches no class in {labels_path}. "
                    "Fix the template or add the class to the labels file."
                )
                continue
            meta = {
                "template": template,
                "placeholders": entry.get("placeholders") or [],
                "label_text": entry.get("label", ""),
            }
        fname = get_video(vid)
        if fname is None:
            missing += 1
            if missing <= MAX_LISTED_MISSING or problems.strict:
                problems.add(
                    f"{video_dir}: {what} {vid} (listed in {path.name}, entry {i}) is missing; "
                    f"the record is skipped. {fix}."
                )
            continue
        append(VideoRecord(video_dir / fname, label, vid, meta=meta))
    if missing > MAX_LISTED_MISSING:
        problems.add(
            f"{video_dir}: {missing} {what}s for {path} are missing in all (first {MAX_LISTED_MISSING} named above); "
            "they were skipped."
        )
    return records, missing


@register_dataset("ssv2")
def load_ssv2(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    classes: Sequence[str] | None = None,
    annotations: str | os.PathLike[str] | None = None,
    videos: str | os.PathLike[str] | None = None,
    frames: bool = False,
    frames_root: str | os.PathLike[str] | None = None,
    index: str | os.PathLike[str] | None = None,
) -> RecordSet:
    """Read Something-Something-v2: subsets ``train``, ``val`` and (when its file exists) ``test``.

    Args:
        split: SSv2 has one official split; must be 1.
        strict: raise :class:`DatasetError` on the first problem instead of collecting them.
        classes: only these classes, labelled 0..K-1 in this order (names as in the labels file, with or
            without the brackets); the unlabelled test subset is kept whole.
        annotations: folder with the label/train/validation/test JSON files (default: searched under root).
        videos: folder with ``<id>.webm`` files or ``<id>/`` frame folders (default: searched under root).
        frames: prefer pre-extracted frame folders (``20bn-something-something-v2-frames/<id>/000001.jpg``).
        frames_root: read frame folders ``<frames_root>/<id>/`` (e.g. from ``vidrec prepare frames``, or
            Something-Else's ``<id>/0001.jpg``) instead of videos: a record is found when its frame folder is,
            whatever the video.
        index: a ``vidrec prepare scan`` index: frame counts, fps and sizes come from it (no probing at train time),
            and videos it found unreadable are left out with a problem each.
    """
    root = Path(root).expanduser()
    if split != 1:
        raise ConfigError(f"data.split: Something-Something-v2 has one official split; got {split}. Use split 1.")
    problems = Problems(strict=strict)
    ann_dir = _find_annotations(root, annotations)
    labels_path = _find_file(ann_dir, "labels")
    assert labels_path is not None
    all_classes, all_index = _read_labels(labels_path, problems)
    chosen = select_classes(all_classes, classes, dataset="ssv2")
    class_names = [all_classes[i] for i in chosen]
    label_index = {c: k for k, c in enumerate(class_names)}
    left_out = LeftOut()
    video_dir = _find_videos(root, videos, frames)
    if frames_root is not None:  # a record is there when its frame folder is, whatever the video
        record_dir = frames_root_dir(frames_root)
        listing = _list_frame_folders(record_dir)
    else:
        record_dir, listing = video_dir, _list_videos(video_dir, frames)
    subsets: dict[str, list[VideoRecord]] = {}
    missing: dict[str, int] = {}
    files: dict[str, Path] = {"labels": labels_path}
    for subset, labelled in (("train", True), ("val", True), ("test", False)):
        problems.subset = subset
        path = _find_file(ann_dir, subset)
        if path is None:
            if subset != "test":
                problems.add(
                    f"{ann_dir}: no {' or '.join(FILES[subset])}; the {subset} subset is empty. "
                    "Unpack the full annotation download there."
                )
            continue
        files[subset] = path
        subsets[subset], missing[subset] = _read_subset(
            path,
            subset,
            labelled,
            label_index,
            labels_path,
            record_dir,
            listing,
            problems,
            left_out,
            set(all_index),
            frame_folders=frames_root is not None,
        )
    problems.subset = None
    if not listing and any(missing.values()):
        what = (
            "frame folders (<id>/)"
            if frames_root is not None
            else "videos. Point data.videos at the folder with the <id>.webm files"
        )
        problems.add(f"{record_dir}: holds no {what} at all.")
    if frames_root is not None:  # frame folders remember their video, when it is there (a scan index knows videos)
        names = _list_videos(video_dir, False) if video_dir.is_dir() else {}
        for recs in subsets.values():
            for i, r in enumerate(recs):
                if r.video_id in names:
                    recs[i] = replace(r, meta={**r.meta, "video_path": str(video_dir / names[r.video_id])})
    if index is not None:
        subsets = finish_records(subsets, index=index, problems=problems)
    info: dict[str, Any] = {
        "annotations": ann_dir,
        "videos": video_dir,
        "files": files,
        "missing": missing,
        "frames_root": str(record_dir) if frames_root is not None else None,
    }
    info.update(remap_info(chosen, base=0, source=labels_path.name))
    info.update(left_out.info())
    log.info("ssv2: %s (%d classes) from %s", {k: len(v) for k, v in subsets.items()}, len(class_names), ann_dir)
    return RecordSet(
        subsets=subsets, classes=class_names, problems=problems.items, info=info, problem_subsets=problems.subsets
    )
