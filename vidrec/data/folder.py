"""Any user's own videos: ``root/<class>/<video>``, or a CSV / JSON list.

The split is made for the user: stratified by class, and *group-aware*: clips of one group
(UCF-style ``_gNN_`` in the name, or a user ``group_regex``) always land on the same side, so
near-duplicate clips cut from one long recording never straddle train and validation. A group
is looked up within its class. A class with a single group keeps it in ``train`` (reported).

A list file (``list_file=``, relative paths resolve against ``root``):

- CSV with a header ``path,label`` (optional third column ``subset`` = train/val/test),
- JSON: a list of ``{"path": ..., "label": ..., "subset"?: ...}``,
- JSON Lines (``.jsonl``): one such object per line.

Videos may be files (any FFmpeg container) or folders of extracted frames (``000001.jpg``).
Classes are sorted by name unless ``classes=`` gives the order. Subsets: ``train``, ``val``,
and ``test`` (the list's own, else the same records as ``val``).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vidrec.data._common import Problems, RecordFinder, finish_records, user_path
from vidrec.data.records import RecordSet, VideoRecord, register_dataset
from vidrec.errors import ConfigError, DatasetError
from vidrec.video.decode import FRAME_SUFFIXES, VIDEO_SUFFIXES

UCF_GROUP = r"_g(\d+)_"


def is_video_entry(path: Path) -> bool:
    """A video file by suffix, or a folder holding frames."""
    if path.name.startswith("."):
        return False
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES
    if path.is_dir():
        try:
            return any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir())
        except OSError:
            return False
    return False


def group_of(name: str, pattern: re.Pattern[str]) -> str:
    """The group a clip belongs to: the regex's first group (or whole match); else the clip itself."""
    m = pattern.search(name)
    if m is None:
        return f"clip:{name}"
    return m.group(1) if m.groups() else m.group(0)


def group_split(
    items: Sequence[tuple[str, int, str]],
    *,
    val_fraction: float,
    seed: int,
) -> tuple[list[int], list[int], list[tuple[int, int, int]]]:
    """Split ``(name, label, group)`` items into train / val positions, stratified and group-aware.

    Per class: groups in a seeded random order go to val while that brings the class's val
    count closer to ``val_fraction`` of it, never taking the class's last train group.
    Returns (train positions, val positions, ``(label, groups, clips)`` of classes that got no val clip).
    """
    by_class: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pos, (_, label, group) in enumerate(items):
        by_class[label][group].append(pos)
    train: list[int] = []
    val: list[int] = []
    notes: list[tuple[int, int, int]] = []
    for label in sorted(by_class):
        groups = by_class[label]
        names = sorted(groups)
        n = sum(len(v) for v in groups.values())
        target = val_fraction * n
        rng = np.random.default_rng([seed, label])
        order = [names[i] for i in rng.permutation(len(names))]
        in_val = 0
        chosen: set[str] = set()
        for g in order:
            size = len(groups[g])
            if len(chosen) + 1 >= len(names):
                break  # keep at least one group for training
            if abs(in_val + size - target) < abs(in_val - target):
                chosen.add(g)
                in_val += size
        if val_fraction > 0 and not chosen:
            notes.append((label, len(names), n))
        for g in names:
            (val if g in chosen else train).extend(groups[g])
    return sorted(train), sorted(val), notes


def _read_list(path: Path, problems: Problems) -> list[dict[str, Any]]:
    try:
        rows = _parse_list(path, problems)
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"data.list_file {path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None
    ok = []
    for row in rows:
        where = f"{path}: line {row['_line']}" if isinstance(row["_line"], int) else f"{path}: {row['_line']}"
        label, vpath = row.get("label"), row.get("path")
        if not isinstance(label, (str, int)) or isinstance(label, bool):
            problems.add(
                f"{where}: the label must be a class name (a string), got {type(label).__name__} "
                f"{json.dumps(label)[:60]}. Fix the line."
            )
        elif not isinstance(vpath, str):
            problems.add(f"{where}: the path must be a string, got {type(vpath).__name__}. Fix the line.")
        else:
            ok.append(row)
    return ok


def _parse_list(path: Path, problems: Problems) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in reader.fieldnames or []]
            if "path" not in fields or "label" not in fields:
                raise DatasetError(
                    f"{path}: line 1: the CSV header must name the columns path,label (optionally subset); got {fields}"
                )
            for n, row in enumerate(reader, 2):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                if not row.get("path") or not row.get("label"):
                    problems.add(f"{path}: line {n}: needs a path and a label, got {row}. Fix or remove the line.")
                    continue
                row["_line"] = n
                rows.append(row)
    elif suffix in (".jsonl", ".ndjson"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.add(f"{path}: line {n}: malformed JSON ({exc.msg}). Fix the line or remove it.")
                continue
            if not isinstance(obj, dict) or "path" not in obj or "label" not in obj:
                problems.add(f'{path}: line {n}: expected an object with "path" and "label", got {line.strip()[:80]}')
                continue
            obj["_line"] = n
            rows.append(obj)
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: line {exc.lineno}: malformed JSON ({exc.msg}). Fix the file.") from exc
        if not isinstance(data, list):
            raise DatasetError(f'{path}: expected a JSON list of {{"path", "label"}} objects')
        for i, obj in enumerate(data):
            if not isinstance(obj, dict) or "path" not in obj or "label" not in obj:
                problems.add(f'{path}: item {i}: expected an object with "path" and "label", got {str(obj)[:80]}')
                continue
            obj["_line"] = f"item {i}"
            rows.append(obj)
    else:
        raise DatasetError(f"{path}: a list file must be .csv (path,label), .json or .jsonl")
    return rows


@register_dataset("folder")
def load_folder(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
    group_regex: str | None = None,
    list_file: str | os.PathLike[str] | None = None,
    classes: Sequence[str] | None = None,
    frames_root: str | os.PathLike[str] | None = None,
    index: str | os.PathLike[str] | None = None,
) -> RecordSet:
    """Read ``root/<class>/<video>`` (or ``list_file``) and split it by group.

    Args:
        split: ignored (there are no official splits); ``seed`` picks the split.
        val_fraction: share of each class's clips held out for validation (whole groups).
        seed: the split's seed.
        group_regex: regex whose first group (or match) names a clip's group; default ``_g(\\d+)_``
            (UCF-style). Clips that do not match are their own group.
        list_file: CSV / JSON / JSONL list instead of folders (see module doc).
        classes: class order (and the only labels allowed); default: sorted names.
        frames_root, index: as for the other loaders.
    """
    del split
    root = Path(root)
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction: must be in [0, 1), got {val_fraction}")
    try:
        pattern = re.compile(group_regex or UCF_GROUP)
    except re.error as exc:
        raise ConfigError(f"data.group_regex: {group_regex!r} is not a valid regular expression ({exc})") from exc
    problems = Problems(strict=strict)
    finder = RecordFinder(root, frames_root)
    # (path, class name, explicit subset or None, where, meta)
    found: list[tuple[Path, str, str | None, str, dict[str, str]]] = []

    def locate(p: Path, where: str, written: str = "") -> tuple[Path | None, dict[str, str]]:
        """The video, or with frames_root its frame folder (the video need not exist then)."""
        if finder.frames is None:
            if p.exists():
                return p, {}
            problems.add(
                f"{where}: video {written or p} not found (relative paths resolve against {root}). Fix the path."
            )
            return None, {}
        try:
            rel = p.relative_to(root).as_posix()
        except ValueError:
            rel = p.name
        vid = p.stem if p.suffix.lower() in VIDEO_SUFFIXES else p.name
        path, meta = finder.find(rel, vid)
        if path is None:
            problems.add(f"{where}: {finder.missing(rel, vid)}")
        return path, meta

    if list_file is not None:
        lpath = user_path(root, list_file)
        if not lpath.is_file():
            raise DatasetError(f"data.list_file: {list_file} not found (also looked in {root}).")
        for row in _read_list(lpath, problems):
            where = f"{lpath}: line {row['_line']}" if isinstance(row["_line"], int) else f"{lpath}: {row['_line']}"
            p = Path(str(row["path"])).expanduser()
            path, meta = locate(p if p.is_absolute() else root / p, where, str(row["path"]))
            if path is None:
                continue
            sub = str(row.get("subset") or "").strip() or None
            if sub is not None and sub not in ("train", "val", "test"):
                problems.add(f"{where}: subset {sub!r} must be train, val or test")
                continue
            found.append((path, str(row["label"]).strip(), sub, where, meta))
    else:
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise DatasetError(
                f"{root}: no class folders. Expected {root}/<class>/<video>, or give data.list_file=LIST.csv"
            )
        for cdir in class_dirs:
            vids = sorted(p for p in cdir.iterdir() if is_video_entry(p))
            if not vids:
                problems.add(
                    f"{cdir}: the class folder holds no videos; class {cdir.name!r} is left out. "
                    "Add videos or remove the folder."
                )
                continue
            for v in vids:
                path, meta = locate(v, str(cdir))
                if path is not None:
                    found.append((path, cdir.name, None, str(cdir), meta))
    if classes is not None:
        class_list = [str(c) for c in classes]
    else:
        class_list = sorted({c for _, c, _, _, _ in found})
    to_label = {c: i for i, c in enumerate(class_list)}
    items: list[tuple[VideoRecord, str | None]] = []
    for p, cname, sub, where, meta in found:
        if cname not in to_label:
            problems.add(
                f"{where}: unknown class {cname!r}; known: {', '.join(class_list[:10])}. Fix the label or data.classes."
            )
            continue
        vid = p.stem if p.is_file() else p.name
        rec = VideoRecord(path=p, label=to_label[cname], video_id=vid, meta={**meta, "group": group_of(vid, pattern)})
        items.append((rec, sub))
    if not items:
        raise DatasetError(
            f"{root}: no usable videos found" + (f" ({len(problems)} problems)" if len(problems) else "")
        )
    explicit = [(r, s) for r, s in items if s is not None]
    auto = [r for r, s in items if s is None]
    subsets: dict[str, list[VideoRecord]] = {"train": [], "val": []}
    for r, s in explicit:
        subsets.setdefault(s, []).append(r)
    if auto:
        tr, va, notes = group_split(
            [(r.video_id, r.label, r.meta["group"]) for r in auto], val_fraction=val_fraction, seed=seed
        )
        for lab, n_groups, n_clips in notes:
            problems.add(
                f"{root}: class {class_list[lab]!r} has {n_groups} group(s) / {n_clips} clip(s): "
                "too few to hold any out for validation, so it has no val clips. Add clips from other recordings."
            )
        subsets["train"] += [auto[i] for i in tr]
        subsets["val"] += [auto[i] for i in va]
    if "test" not in subsets:
        subsets["test"] = subsets["val"]
    subsets = finish_records(subsets, index=index, problems=problems)
    info = {
        "dataset": "folder",
        "val_fraction": val_fraction,
        "seed": seed,
        "group_regex": pattern.pattern,
        "list_file": str(list_file) if list_file else None,
    }
    return RecordSet(subsets=subsets, classes=class_list, problems=problems.items, info=info)
