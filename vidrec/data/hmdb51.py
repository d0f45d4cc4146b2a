"""HMDB51 from its official files.

Expected (``hmdb51_org.rar`` unpacked, each class archive unpacked into its folder, and
``test_train_splits.rar`` unpacked)::

    <root>/<videos>/<class>/<video>.avi                      e.g. hmdb51_org/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi
    <root>/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt
        "<video>.avi N"   N: 1 = train, 2 = test, 0 = not used in this split

The split folder and the video folder are found up to two levels below ``root`` (the video
folder is the one holding the class folders). Classes are sorted alphabetically, the standard
order. Subsets: ``train``, ``test`` and ``val`` (the same records as ``test``: the official
protocol evaluates on the test part).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vidrec.data._common import DirListing, Problems, check_split, find_dir, finish_records, read_lines
from vidrec.data.records import RecordSet, VideoRecord, register_dataset
from vidrec.errors import DatasetError

_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>\d+)\.txt$")
SPLIT_DIR_NAMES = ("testTrainMulti_7030_splits", "test_train_splits")


def _find_split_dir(root: Path) -> Path | None:
    d = find_dir(root, SPLIT_DIR_NAMES)
    if d is not None:
        return d
    # any folder holding *_test_split1.txt files
    for cand in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if any(_SPLIT_FILE.match(p.name) for p in cand.glob("*_test_split1.txt")):
            return cand
    return None


def _find_video_dir(root: Path, classes: list[str], exclude: Path) -> Path | None:
    """The folder (root or up to two levels down) holding the most class folders."""
    wanted = {c.lower() for c in classes}
    best, best_n = None, 0
    level = [root]
    for _ in range(3):
        nxt = []
        for d in level:
            if d == exclude:
                continue
            try:
                subs = [p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")]
            except OSError:
                continue
            n = sum(p.name.lower() in wanted for p in subs)
            if n > best_n:
                best, best_n = d, n
            nxt.extend(subs)
        level = nxt
    return best


@register_dataset("hmdb51")
def load_hmdb51(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    frames_root: str | os.PathLike[str] | None = None,
    index: str | os.PathLike[str] | None = None,
) -> RecordSet:
    """Read HMDB51's official split ``split`` (1..3).

    Args:
        frames_root: read pre-extracted JPEG folders instead of videos (``<frames_root>/<class>/<video stem>/``
            as written by ``vidrec prepare frames``, or ``<frames_root>/<video stem>/``).
        index: a scan index from ``vidrec prepare scan``.
    """
    split = check_split(split, "hmdb51")
    root = Path(root)
    problems = Problems(strict=strict)
    split_dir = _find_split_dir(root)
    if split_dir is None:
        raise DatasetError(
            f"{root}: no split folder found (testTrainMulti_7030_splits/ with <class>_test_split1.txt files). "
            "Unpack test_train_splits.rar into the dataset root."
        )
    files: dict[str, Path] = {}
    all_classes: set[str] = set()
    for p in split_dir.iterdir():
        m = _SPLIT_FILE.match(p.name)
        if not m:
            continue
        all_classes.add(m.group("cls"))
        n = int(m.group("n"))
        if n not in (1, 2, 3):
            problems.add(f"{p}: split number {n} is outside 1..3; the file is ignored. Rename or remove it.")
        elif n == split:
            files[m.group("cls")] = p
    classes = sorted(all_classes)
    if not classes:
        raise DatasetError(f"{split_dir}: holds no <class>_test_split{{1,2,3}}.txt files.")
    videos = _find_video_dir(root, classes, split_dir)
    if videos is None:
        raise DatasetError(
            f"{root}: no folder with the class folders ({', '.join(classes[:3])}, ...) found. "
            "Unpack hmdb51_org.rar and each class's .rar inside the dataset root."
        )
    listing = DirListing(videos)
    subsets: dict[str, list[VideoRecord]] = {"train": [], "test": []}
    unused = 0
    for label, cls in enumerate(classes):
        fpath = files.get(cls)
        if fpath is None:
            problems.add(f"{split_dir}: no {cls}_test_split{split}.txt; class {cls!r} has no videos in split {split}.")
            continue
        cdir = listing.resolve(cls)
        names = listing.names(cdir) if cdir is not None else None
        if names is None:
            problems.add(f"{videos}: class folder {cls!r} is missing (named by {fpath.name}). Unpack {cls}.rar there.")
            continue
        if not names:
            problems.add(f"{cdir}: the class folder is empty. Unpack {cls}.rar into it.")
            continue
        for n, line in read_lines(fpath):
            parts = line.split()
            where = f"{fpath}: line {n}"
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                problems.add(f"{where}: expected '<video>.avi 0|1|2' (1 train, 2 test, 0 unused), got {line!r}")
                continue
            if parts[1] == "0":
                unused += 1
                continue
            path = listing.resolve(f"{cls}/{parts[0]}")
            if path is None:
                problems.add(f"{where}: video {cls}/{parts[0]} not found under {videos}. Re-extract {cls}.rar or remove the line.")
                continue
            subset = "train" if parts[1] == "1" else "test"
            subsets[subset].append(VideoRecord(path=path, label=label, video_id=Path(parts[0]).stem, meta={"class_folder": cls}))
    subsets["val"] = subsets["test"]
    subsets = finish_records(subsets, video_root=videos, frames_root=frames_root, index=index, problems=problems)
    info = {"dataset": "hmdb51", "split": split, "video_root": str(videos), "splits_dir": str(split_dir),
            "unused": unused, "val_is_test": True}
    return RecordSet(subsets=subsets, classes=classes, problems=problems.items, info=info)
