"""HMDB51 from its official files.

Expected (``hmdb51_org.rar`` unpacked, each class archive unpacked into its folder, and
``test_train_splits.rar`` unpacked)::

    <root>/<videos>/<class>/<video>.avi     e.g. hmdb51_org/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi
    <root>/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt
        "<video>.avi N"   N: 1 = train, 2 = test, 0 = not used in this split

The split folder and the video folder are found up to two levels below ``root`` (the video
folder is the one holding the class folders). Classes are sorted alphabetically, the standard
order; ``classes=[...]`` selects a subset (labels 0..K-1 in its order). Subsets: ``train``, ``test`` and
``val`` (the same records as ``test``: the official protocol evaluates on the test part).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

from vidrec.data._common import (
    LeftOut,
    Problems,
    RecordFinder,
    check_split,
    find_class_dir,
    find_dir,
    finish_records,
    read_lines,
    remap_info,
    select_classes,
)
from vidrec.data.records import RecordSet, VideoRecord, register_dataset
from vidrec.errors import DatasetError

_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>\d+)\.txt$")
SPLIT_DIR_NAMES = ("testTrainMulti_7030_splits", "test_train_splits")


def _find_split_dir(root: Path) -> Path | None:
    d = find_dir(root, SPLIT_DIR_NAMES, accept=lambda c: any(c.glob("*_test_split1.txt")))
    if d is not None:
        return d
    # any folder holding *_test_split1.txt files
    for cand in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if any(_SPLIT_FILE.match(p.name) for p in cand.glob("*_test_split1.txt")):
            return cand
    return None


@register_dataset("hmdb51")
def load_hmdb51(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    classes: Sequence[str] | None = None,
    frames_root: str | os.PathLike[str] | None = None,
    index: str | os.PathLike[str] | None = None,
) -> RecordSet:
    """Read HMDB51's official split ``split`` (1..3).

    Args:
        classes: only these classes, labelled 0..K-1 in this order (``data.classes=[brush_hair, climb]``).
        frames_root: read pre-extracted frame folders instead of videos, whether or not the videos are still there
            (``<frames_root>/[<video folder>/]<class>/<video stem>/`` as written by ``vidrec prepare frames``, or
            ``<frames_root>/<video stem>/``; frame files in any naming, read sorted).
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
    names = sorted(all_classes)
    if not names:
        raise DatasetError(f"{split_dir}: holds no <class>_test_split{{1,2,3}}.txt files.")
    chosen = select_classes(names, classes, dataset="hmdb51")
    class_names = [names[i] for i in chosen]
    left_out = LeftOut()
    for cls in sorted(set(names) - set(class_names)):  # counted, so that data show can say what was left out
        if cls in files:
            for _, line in read_lines(files[cls]):
                flag = line.split()[-1]
                if flag in ("1", "2"):
                    left_out.add("train" if flag == "1" else "test", cls)
    videos = find_class_dir(root, class_names, exclude=[split_dir])
    if videos is None and frames_root is None:  # with frame folders the videos may be gone
        raise DatasetError(
            f"{root}: no folder with the class folders ({', '.join(class_names[:3])}, ...) found. "
            "Unpack hmdb51_org.rar and each class's .rar inside the dataset root."
        )
    finder = RecordFinder(videos, frames_root, classes=class_names)
    subsets: dict[str, list[VideoRecord]] = {"train": [], "test": []}
    unused = 0
    for label, cls in enumerate(class_names):
        fpath = files.get(cls)
        if fpath is None:
            problems.add(f"{split_dir}: no {cls}_test_split{split}.txt; class {cls!r} has no videos in split {split}.")
            continue
        if finder.frames is None and finder.videos is not None:  # one clear line for a class not unpacked
            cdir = finder.videos.resolve(cls)
            entries = finder.videos.names(cdir) if cdir is not None else None
            if entries is None:
                problems.add(
                    f"{videos}: class folder {cls!r} is missing (named by {fpath.name}). Unpack {cls}.rar there."
                )
                continue
            if not entries:
                problems.add(f"{cdir}: the class folder is empty. Unpack {cls}.rar into it.")
                continue
        for n, line in read_lines(fpath):
            parts = line.split()
            where = f"{fpath}: line {n}"
            problems.subset = {"1": "train", "2": "test"}.get(parts[-1] if parts else "")
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                problems.add(f"{where}: expected '<video>.avi 0|1|2' (1 train, 2 test, 0 unused), got {line!r}")
                continue
            if parts[1] == "0":
                unused += 1
                continue
            stem, rel = os.path.splitext(parts[0])[0], f"{cls}/{parts[0]}"
            path, meta = finder.find(rel, stem)
            if path is None:
                problems.add(f"{where}: {finder.missing(rel, stem, fix=f'Re-extract {cls}.rar or remove the line.')}")
                continue
            subset = "train" if parts[1] == "1" else "test"
            subsets[subset].append(
                VideoRecord(path=path, label=label, video_id=stem, meta={**meta, "class_folder": cls})
            )
    problems.subset = None
    subsets["val"] = subsets["test"]
    subsets = finish_records(subsets, index=index, problems=problems)
    info: dict[str, Any] = {
        "dataset": "hmdb51",
        "split": split,
        "video_root": str(videos) if videos else None,
        "frames_root": str(finder.frames_root) if finder.frames_root else None,
        "splits_dir": str(split_dir),
        "unused": unused,
        "val_is_test": True,
    }
    info.update(remap_info(chosen, base=0, source="the sorted class list"))
    info.update(left_out.info())
    return RecordSet(
        subsets=subsets, classes=class_names, problems=problems.items, info=info, problem_subsets=problems.subsets
    )
