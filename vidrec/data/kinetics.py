"""Kinetics-400/600/700 from the official CSVs (``data.dataset: kinetics``).

The CSVs (one per subset) name each clip by its YouTube id and its 10-second window::

    label,youtube_id,time_start,time_end,split,is_cc      K400 (is_cc only there)
    abseiling,--07WQ2iBlw,1,11,train,0
    youtube_id,time_start,time_end,split                 a test CSV without labels

Columns are read by name, in any order. The files are found under ``root`` (``annotations/`` or
anywhere two levels down) by name: ``train.csv``, ``validate.csv`` / ``val.csv`` / ``validation.csv``,
``test.csv``, also with a prefix (``kinetics_400_train.csv``, ``kinetics700_2020_validate.csv``).

Clips are found by file name, whatever the folders: ``<youtube_id>_<start:06d>_<end:06d>.mp4`` as
the common downloaders write them, in ``<split>/<label>/`` (ActivityNet's and MMAction2's
downloaders), in ``<split>/`` (the CVDF archives) or flat; unpadded times and any video container
are read too. One walk of the tree lists every clip, so no file is opened. Missing clips (a
download is typically 5-10 % short) and empty files are problems, counted per subset; with
``index=`` a scan also reports the clips that do not decode.

Classes are the train CSV's labels, sorted (the order of the usual ``label_map_k400.txt``), or the
lines of ``label_map=FILE``. Subsets: ``train``, ``val``, ``test`` (unlabelled unless its CSV has labels).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path
from typing import Any, Sequence

from vidrec.data._common import (
    LeftOut,
    Problems,
    finish_records,
    frames_root_dir,
    read_lines,
    remap_info,
    select_classes,
    user_path,
)
from vidrec.data.records import RecordSet, VideoRecord, register_dataset
from vidrec.errors import ConfigError, DatasetError
from vidrec.video.decode import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

SUBSET_NAMES = {"train": ("train",), "val": ("validate", "val", "validation"), "test": ("test",)}
REQUIRED = ("youtube_id", "time_start", "time_end")
MAX_LISTED_MISSING = 10  # per subset; the rest are counted in one line
_CSV_NAME = re.compile(r"^(?:.*[_\-])?(?P<subset>train|validate|val|validation|test)\.csv$", re.IGNORECASE)

ClipKey = tuple[str, int, int]  # (youtube id, start s, end s)


def clip_key(stem: str) -> ClipKey | str:
    """``abc_000001_000011`` -> ``("abc", 1, 11)``; a stem without times is its own key (``<youtube_id>.mp4``)."""
    vid, _, times = stem.rpartition("_")
    yt, _, start = vid.rpartition("_")
    if yt and start.isdigit() and times.isdigit():
        return yt, int(start), int(times)
    return stem


def find_csvs(root: Path, annotations: str | os.PathLike[str] | None) -> dict[str, Path]:
    """subset -> CSV file, from ``annotations`` (a folder) or searched under ``root`` (two levels)."""
    if annotations is not None:
        folder = user_path(root, annotations)
        if not folder.is_dir():
            raise DatasetError(
                f"data.annotations: {folder} is not a folder. Point it at the folder with train.csv / validate.csv."
            )
        folders = [folder]
    else:
        folders = [root, *sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]
        folders += [q for p in folders[1:] for q in sorted(p.iterdir()) if q.is_dir() and not q.name.startswith(".")]
    found: dict[str, Path] = {}
    for folder in folders:
        for p in sorted(folder.glob("*.csv")):
            m = _CSV_NAME.match(p.name)
            if m is None:
                continue
            sub = next(k for k, names in SUBSET_NAMES.items() if m.group("subset").lower() in names)
            found.setdefault(sub, p)
        if "train" in found or "val" in found:
            return found
    where = folders[0] if annotations is not None else f"{root} (two levels down)"
    raise DatasetError(
        f"no Kinetics annotation CSVs (train.csv, validate.csv, test.csv) found in {where}. Download them from "
        "the Kinetics page (or the CVDF kinetics-dataset repository) into the root, or set data.annotations=DIR."
    )


def list_clips(root: Path, *, depth: int = 4) -> tuple[dict[ClipKey | str, Path], list[Path]]:
    """One walk of ``root``: every video file by its clip key, and the empty files among them."""
    clips: dict[ClipKey | str, Path] = {}
    empty: list[Path] = []
    level = [root]
    for _ in range(depth):
        nxt: list[Path] = []
        for d in level:
            try:
                entries = list(os.scandir(d))
            except OSError:
                continue
            for e in entries:
                if e.name.startswith("."):
                    continue
                if e.is_dir():
                    nxt.append(Path(e.path))
                    continue
                stem, dot, suffix = e.name.rpartition(".")
                if dot and f".{suffix.lower()}" in VIDEO_SUFFIXES:
                    path = Path(e.path)
                    clips.setdefault(clip_key(stem), path)
                    if e.stat().st_size == 0:
                        empty.append(path)
        level = nxt
    return clips, empty


def _read_csv(path: Path) -> tuple[list[tuple[int, dict[str, str]]], bool]:
    """Rows with their line numbers, and whether the file has labels."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in REQUIRED if c not in fields]
            if missing:
                raise DatasetError(
                    f"{path}: line 1: the header must name {', '.join(REQUIRED)} (and label); got {fields}. "
                    "Is this a Kinetics annotation CSV?"
                )
            rows = []
            for n, row in enumerate(reader, 2):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                rows.append((n, row))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from exc
    return rows, "label" in fields


def _time(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and value >= 0 else None


@register_dataset("kinetics")
def load_kinetics(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    annotations: str | os.PathLike[str] | None = None,
    label_map: str | os.PathLike[str] | None = None,
    classes: Sequence[str] | None = None,
    frames_root: str | os.PathLike[str] | None = None,
    index: str | os.PathLike[str] | None = None,
) -> RecordSet:
    """Read Kinetics-400/600/700: subsets ``train``, ``val`` and (when its CSV exists) ``test``.

    Args:
        split: Kinetics has one official split; must be 1.
        annotations: folder with the CSVs (default: searched under root).
        label_map: class names, one per line, in label order (MMAction2's ``label_map_k400.txt``);
            default: the train CSV's labels, sorted.
        classes: only these classes, labelled 0..K-1 in this order (Mini-Kinetics and other subsets).
        frames_root: read frame folders ``<frames_root>/<clip file stem>/`` (any depth below it) instead of
            the clips: a record is found when its frame folder is, whatever the clip.
        index: a ``vidrec prepare scan`` index: frame counts and sizes, and clips that do not decode.
    """
    root = Path(root).expanduser()
    if split != 1:
        raise ConfigError(f"data.split: Kinetics has one official split; got {split}. Use split 1.")
    problems = Problems(strict=strict)
    csvs = find_csvs(root, annotations)
    parsed = {sub: _read_csv(path) for sub, path in csvs.items()}
    if label_map is not None:
        lpath = user_path(root, label_map)
        if not lpath.is_file():
            raise DatasetError(
                f"data.label_map: {label_map} not found (also looked in {root}). One class name per line."
            )
        names = [line for _, line in read_lines(lpath)]
        source = lpath.name
    else:
        first = parsed.get("train") or parsed.get("val")
        assert first is not None
        names = sorted({row.get("label", "") for _, row in first[0]} - {""})
        source = "the sorted train labels"
    if not names:
        raise DatasetError(f"{csvs.get('train') or csvs.get('val')}: holds no labels; cannot name the classes.")
    chosen = select_classes(names, classes, dataset="kinetics")
    class_names = [names[i] for i in chosen]
    label_of = {c: k for k, c in enumerate(class_names)}
    known = set(names)
    left_out = LeftOut()

    empty: list[Path]
    if frames_root is not None:  # a record is there when its frame folder is, whatever the clip
        clips, empty = _frame_folders(frames_root_dir(frames_root)), []
    else:
        clips, empty = list_clips(root)
    empty_set = set(empty)
    subsets: dict[str, list[VideoRecord]] = {}
    missing: dict[str, int] = {}
    for sub, (rows, labelled) in parsed.items():
        problems.subset = sub  # the problems below concern this subset (eval --strict looks at its own only)
        path = csvs[sub]
        recs: list[VideoRecord] = []
        n_missing = 0
        for n, row in rows:
            where = f"{path}: line {n}"
            yt, start, end = row.get("youtube_id", ""), _time(row.get("time_start", "")), _time(row.get("time_end", ""))
            if not yt or start is None or end is None or end <= start:
                problems.add(
                    f"{where}: expected youtube_id,time_start,time_end with whole seconds, start < end; got "
                    f"{','.join(row.get(c, '') for c in REQUIRED)!r}. Fix or remove the line."
                )
                continue
            label = -1
            if labelled:
                name = row.get("label", "")
                if name not in label_of:
                    if name in known:
                        left_out.add(sub, name)
                    else:
                        problems.add(
                            f"{where}: unknown label {name!r} (not a class of {source}). Fix the line"
                            + (" or data.label_map." if label_map is not None else ".")
                        )
                    continue
                label = label_of[name]
            clip = clips.get((yt, start, end)) or clips.get(yt)
            stem = f"{yt}_{start:06d}_{end:06d}"
            if clip is None:
                n_missing += 1
                if n_missing <= MAX_LISTED_MISSING or problems.strict:
                    what = "frame folder" if frames_root is not None else "clip"
                    problems.add(
                        f"{where}: {what} {stem} is missing (not downloaded, or removed from YouTube); "
                        "the record is skipped."
                    )
                continue
            if clip in empty_set:
                problems.add(
                    f"{where}: clip {clip} is empty (0 bytes: a failed download); the record is skipped. "
                    "Download it again or delete it."
                )
                continue
            meta: dict[str, Any] = {"youtube_id": yt, "time_start": start, "time_end": end}
            recs.append(VideoRecord(clip, label, stem, meta=meta))
        if n_missing > MAX_LISTED_MISSING:
            share = 100 * n_missing / max(1, len(rows))
            problems.add(
                f"{path}: {n_missing} of {len(rows)} clips ({share:.1f} %) are missing in all (first "
                f"{MAX_LISTED_MISSING} named above); they were skipped."
            )
        subsets[sub] = recs
        missing[sub] = n_missing
    problems.subset = None
    for sub in ("train", "val"):
        if sub not in csvs:
            names_ = " or ".join(f"{n}.csv" for n in SUBSET_NAMES[sub])
            problems.add(
                f"no {names_} found beside {next(iter(csvs.values())).name}; the {sub} subset is empty. "
                "Download it with the others.",
                subset=sub,
            )
            subsets[sub] = []
    if index is not None:
        subsets = finish_records(subsets, index=index, problems=problems)
    info: dict[str, Any] = {
        "dataset": "kinetics",
        "annotations": {k: str(v) for k, v in csvs.items()},
        "classes_from": source,
        "missing": missing,
        "frames_root": str(frames_root) if frames_root is not None else None,
    }
    info.update(remap_info(chosen, base=0, source=source))
    info.update(left_out.info())
    log.info("kinetics: %s (%d classes)", {k: len(v) for k, v in subsets.items()}, len(class_names))
    return RecordSet(
        subsets=subsets, classes=class_names, problems=problems.items, info=info, problem_subsets=problems.subsets
    )


def _frame_folders(frames_root: Path, *, depth: int = 4) -> dict[ClipKey | str, Path]:
    """Frame folders below ``frames_root`` (any depth up to ``depth``) by the clip key of their name."""
    found: dict[ClipKey | str, Path] = {}
    level = [frames_root]
    for _ in range(depth):
        nxt: list[Path] = []
        for d in level:
            try:
                entries = [e for e in os.scandir(d) if e.is_dir() and not e.name.startswith(".")]
            except OSError:
                continue
            for e in entries:
                key = clip_key(e.name)
                if isinstance(key, tuple):
                    found.setdefault(key, Path(e.path))
                else:
                    nxt.append(Path(e.path))  # a split or class folder: look inside
        level = nxt
    return found
