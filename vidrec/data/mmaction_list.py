"""MMAction2's annotation lists (``data.dataset: list``), for users who move over from MMAction2.

Two text formats, one sample per line, fields split by whitespace (MMAction2's ``VideoDataset`` and
``RawframeDataset``)::

    some/path/000.mp4 1                video list: path, label
    some/path/001.mp4 1 3 5            ... several labels: a multi-label list
    some/directory-1 163 1             rawframes list: frame folder, total frames, label
    some/directory-2 122 1 2           ... several labels

Labels are class indices from 0. MMAction2's ``.json`` lists (``[{"filename": ..., "label": ...}]`` or
``[{"frame_dir": ..., "total_frames": ..., "label": ...}]``) are read too. The format is told by the
file (``list_format: auto``): a path with a video suffix is a video list, a folder is a rawframes list.

Relative paths resolve against ``prefix`` (MMAction2's ``data_prefix``; default: the root). One list
per subset: ``train_list``, ``val_list``, ``test_list`` (relative to the root, or absolute); ``test``
is ``val`` when no test list is given. Class names come from ``label_map`` (one name per line, line
``i`` names label ``i``: MMAction2's ``label_map_k400.txt``), or ``classes=[...]`` in label order;
without either, class ``i`` is called ``"i"``.

A multi-label line needs ``multi_label: true``: its record is labelled by its first label (vidrec
trains single-label classifiers) and keeps all of them in ``meta["labels"]``. MMAction2's
``with_offset`` lists (clips cut from long frame folders) are not read.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal, Sequence

from vidrec.data._common import DirListing, Problems, RecordFinder, finish_records, read_lines, user_path
from vidrec.data.records import RecordSet, VideoRecord, register_dataset
from vidrec.errors import ConfigError, DatasetError
from vidrec.video.decode import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

Format = Literal["auto", "video", "rawframes"]


def _entries_from_text(path: Path, problems: Problems) -> list[tuple[str, str, list[str]]]:
    """``(where, path, trailing integer fields)`` per line; a path may hold spaces (the integers end the line)."""
    out = []
    for n, line in read_lines(path):
        tokens = line.split()
        k = len(tokens)
        while k > 1 and tokens[k - 1].lstrip("-").isdigit():
            k -= 1
        if k == len(tokens):
            problems.add(
                f"{path}: line {n}: expected '<path> <label>' or '<frame folder> <total frames> <label>', "
                f"got {line!r}. Fix or remove the line."
            )
            continue
        out.append((f"{path}: line {n}", " ".join(tokens[:k]), tokens[k:]))
    return out


def _entries_from_json(path: Path, problems: Problems) -> list[tuple[str, str, list[str]]]:
    """MMAction2's JSON lists, as ``(where, path, [total_frames?, labels...])`` like the text lines."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg}). Fix the file.") from exc
    if not isinstance(data, list):
        raise DatasetError(f'{path}: expected a JSON list of {{"filename"|"frame_dir", "label"}} objects')
    out = []
    for i, obj in enumerate(data):
        where = f"{path}: item {i}"
        name = obj.get("frame_dir", obj.get("filename")) if isinstance(obj, dict) else None
        label = obj.get("label") if isinstance(obj, dict) else None
        labels = label if isinstance(label, list) else [label]
        if not isinstance(name, str) or not labels or not all(isinstance(x, int) for x in labels):
            problems.add(
                f'{where}: expected {{"filename": "a/b.mp4", "label": 3}} or {{"frame_dir": "a/b", '
                f'"total_frames": 120, "label": 3}}, got {str(obj)[:80]}. Fix or remove it.'
            )
            continue
        ints = [str(x) for x in labels]
        if "frame_dir" in obj:
            ints = [str(obj.get("total_frames", -1)), *ints]
        out.append((where, name, ints))
    return out


def _list_path(root: Path, value: str | os.PathLike[str], key: str) -> Path:
    p = user_path(root, value)
    if not p.is_file():
        raise DatasetError(f"data.{key}: {value} not found (relative paths resolve against {root}).")
    return p


@register_dataset("list")
def load_list(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    train_list: str | os.PathLike[str] | None = None,
    val_list: str | os.PathLike[str] | None = None,
    test_list: str | os.PathLike[str] | None = None,
    prefix: str | os.PathLike[str] | None = None,
    list_format: Format = "auto",
    label_map: str | os.PathLike[str] | None = None,
    classes: Sequence[str] | None = None,
    multi_label: bool = False,
    frames_root: str | os.PathLike[str] | None = None,
    index: str | os.PathLike[str] | None = None,
) -> RecordSet:
    """Read MMAction2 video or rawframes lists, one per subset.

    Args:
        split: ignored (the lists are the split).
        train_list, val_list, test_list: the annotation lists (``.txt`` or MMAction2 ``.json``).
        prefix: where relative paths in the lists resolve (MMAction2's ``data_prefix``); default the root.
        list_format: ``auto`` (told by the first line), ``video`` or ``rawframes``.
        label_map: class names, one per line, line ``i`` naming label ``i``.
        classes: class names in label order (instead of ``label_map``).
        multi_label: accept lines with several labels (the record's label is the first; all in ``meta["labels"]``).
        frames_root: for a video list, read frame folders instead of the videos (see docs/datasets.md).
        index: a ``vidrec prepare scan`` index of the videos.
    """
    del split
    root = Path(root).expanduser()
    if list_format not in ("auto", "video", "rawframes"):
        raise ConfigError(f"data.list_format: {list_format!r} is not auto, video or rawframes")
    given = {k: v for k, v in (("train", train_list), ("val", val_list), ("test", test_list)) if v is not None}
    if not given:
        raise ConfigError(
            "data.train_list / data.val_list: name MMAction2's annotation lists, e.g. "
            "--set data.train_list=ucf101_train_split_1_videos.txt "
            "--set data.val_list=ucf101_val_split_1_videos.txt"
        )
    lists = {k: _list_path(root, v, f"{k}_list") for k, v in given.items()}
    base = user_path(root, prefix) if prefix is not None else root
    if not base.is_dir():
        raise DatasetError(f"data.prefix: {base} is not a folder. Point it at the folder the lists' paths start from.")
    names: list[str] | None = None
    if label_map is not None:
        names = [line for _, line in read_lines(_list_path(root, label_map, "label_map"))]
    elif classes is not None:
        if isinstance(classes, str) or not isinstance(classes, Sequence):
            raise ConfigError(f"data.classes: expected a list of class names in label order; got {classes!r}")
        names = [str(c) for c in classes]
    problems = Problems(strict=strict)
    listing = DirListing(base)
    finder: RecordFinder | None = None
    formats: dict[str, str] = {}
    raw: dict[str, list[tuple[str, Path, int | None, list[int], dict[str, str]]]] = {}
    for sub, lpath in lists.items():
        problems.subset = sub  # the problems below concern this subset (eval --strict looks at its own only)
        reader = _entries_from_json if lpath.suffix.lower() == ".json" else _entries_from_text
        entries = reader(lpath, problems)
        fmt = list_format if list_format != "auto" else _detect(entries, base)
        formats[sub] = fmt
        if fmt == "rawframes" and frames_root is not None:
            raise ConfigError(
                f"data.frames_root: {lpath.name} is a rawframes list: it names the frame folders "
                "already. Use data.prefix for the folder they are in."
            )
        if fmt == "video" and frames_root is not None and finder is None:
            finder = RecordFinder(base, frames_root)
        rows = []
        for where, rel, ints in entries:
            if fmt == "rawframes":
                if len(ints) < 2:
                    problems.add(
                        f"{where}: expected '<frame folder> <total frames> <label>', got {rel!r} {' '.join(ints)}"
                    )
                    continue
                total: int | None = int(ints[0])  # kept in meta: the decoder counts the folder's frames itself
                labels = [int(x) for x in ints[1:]]
            else:
                total, labels = None, [int(x) for x in ints]
            if len(labels) > 1 and not multi_label:
                problems.add(
                    f"{where}: {len(labels)} labels ({' '.join(map(str, labels))}): a multi-label list. "
                    "Set data.multi_label=true to read it; the line is skipped."
                )
                continue
            if any(x < 0 for x in labels) or (total is not None and total <= 0):
                problems.add(
                    f"{where}: labels are class indices from 0 and the frame count is positive; got "
                    f"{' '.join(ints)}. Fix the line."
                )
                continue
            p = Path(rel)
            meta: dict[str, str] = {}
            if finder is not None:
                found, meta = finder.find(rel, p.stem)
            else:
                found = p if p.is_absolute() and p.exists() else (None if p.is_absolute() else listing.resolve(rel))
            if found is None or (fmt == "rawframes" or finder is not None) != found.is_dir():
                kind = "frame folder" if fmt == "rawframes" else "video"
                why = finder.missing(rel, p.stem) if finder is not None else f"{kind} {rel} not found under {base}"
                problems.add(f"{where}: {why}. Fix the path or data.prefix.")
                continue
            rows.append((where, found, total, labels, meta))
        raw[sub] = rows
    largest = max((x for rows in raw.values() for r in rows for x in r[3]), default=-1)
    num_classes = len(names) if names is not None else largest + 1
    class_names = names if names is not None else [str(i) for i in range(num_classes)]
    subsets: dict[str, list[VideoRecord]] = {}
    notes: list[str] = []
    n_multi = 0
    for sub, rows in raw.items():
        problems.subset = sub
        recs = []
        for where, found, total, labels, meta in rows:
            bad = [x for x in labels if x >= num_classes]
            if bad:
                src = "label_map" if label_map is not None else "data.classes"
                problems.add(
                    f"{where}: unknown label {bad[0]}: {src} names {num_classes} classes "
                    f"(0..{num_classes - 1}). Fix the line or {src}."
                )
                continue
            extra: dict[str, Any] = dict(meta)
            if total is not None:
                extra["total_frames"] = total
            if len(labels) > 1:
                extra["labels"] = labels
                n_multi += 1
            vid = found.name if found.is_dir() else found.stem
            recs.append(VideoRecord(found, labels[0], vid, meta=extra))
        subsets[sub] = recs
    problems.subset = None
    for sub in ("train", "val"):
        if sub not in subsets:
            subsets[sub] = []
            notes.append(f"no data.{sub}_list: the {sub} subset is empty")
    if "test" not in subsets:
        subsets["test"] = subsets["val"]
    if index is not None:
        subsets = finish_records(subsets, index=index, problems=problems)
    if names is None:
        notes.append(
            f"the lists give label indices only: classes are named 0..{num_classes - 1}; "
            "name them with data.label_map=FILE (one name per line) or data.classes=[...]"
        )
    if n_multi:
        notes.append(
            f"{n_multi} videos carry several labels: vidrec trains on the first; all are in record.meta['labels']"
        )
    info: dict[str, Any] = {
        "dataset": "list",
        "lists": {k: str(v) for k, v in lists.items()},
        "formats": formats,
        "prefix": str(base),
        "notes": notes,
    }
    return RecordSet(
        subsets=subsets, classes=class_names, problems=problems.items, info=info, problem_subsets=problems.subsets
    )


def _detect(entries: list[tuple[str, str, list[str]]], base: Path) -> str:
    """``video`` or ``rawframes``, from the first entry: a video suffix, else a folder on disk, else the field count."""
    if not entries:
        return "video"
    _, rel, ints = entries[0]
    if Path(rel).suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    p = Path(rel) if Path(rel).is_absolute() else base / rel
    if p.is_dir():
        return "rawframes"
    return "rawframes" if len(ints) >= 2 else "video"
