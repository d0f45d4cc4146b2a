"""UCF101 from its official files.

Expected (as unpacked from ``UCF101.rar`` and ``UCF101TrainTestSplits-RecognitionTask.zip``)::

    <root>/UCF-101/<Class>/v_<Class>_gNN_cMM.avi
    <root>/ucfTrainTestlist/classInd.txt          "1 ApplyEyeMakeup"          (1-based)
    <root>/ucfTrainTestlist/trainlist0{1,2,3}.txt "ApplyEyeMakeup/v_..._g08_c01.avi 1"
    <root>/ucfTrainTestlist/testlist0{1,2,3}.txt  "ApplyEyeMakeup/v_..._g01_c01.avi"   (label from the folder)

Both folders are found anywhere up to two levels below ``root``; the video folder is the one
that holds the class folders, whatever it and the root are called. Subsets: ``train``, ``test``
and ``val`` (the same records as ``test``: the official protocol evaluates on the test list).
Class order is classInd's. A trimmed classInd (original ids kept, e.g. 1, 39, 79) or
``classes=[...]`` loads a class subset labelled 0..K-1; split-file lines of classes outside it
are counted (``info["left_out"]``, shown by ``vidrec data show``), not reported as problems. Paths are matched
case-insensitively as a fallback (the official lists spell ``HandStandPushups`` where the folder says
``HandstandPushups``).
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

_NAME = re.compile(r"_g(\d+)_c(\d+)$")
VIDEO_DIRS = ("UCF-101", "UCF101")


def read_class_ind(path: Path) -> dict[int, str]:
    """``classInd.txt``: ``index name`` lines -> ``{index: name}`` in index order.

    Every index and name appears once. The indices need not run 1..N: a trimmed file that keeps
    the original ids (``1 ApplyEyeMakeup``, ``39 HandstandPushups``, ...) is a class subset.
    """
    found: dict[int, str] = {}
    names: dict[str, int] = {}
    for n, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(f"{path}: line {n}: expected '<index> <ClassName>', got {line!r}")
        idx, name = int(parts[0]), parts[1]
        if idx in found:
            raise DatasetError(f"{path}: line {n}: class index {idx} appears twice")
        if name.lower() in names:
            raise DatasetError(
                f"{path}: line {n}: class {name!r} appears twice (indices {names[name.lower()]} and {idx})"
            )
        found[idx] = name
        names[name.lower()] = idx
    if not found:
        raise DatasetError(f"{path}: holds no classes. It ships in UCF101TrainTestSplits-RecognitionTask.zip.")
    return dict(sorted(found.items()))


@register_dataset("ucf101")
def load_ucf101(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    classes: Sequence[str] | None = None,
    frames_root: str | os.PathLike[str] | None = None,
    index: str | os.PathLike[str] | None = None,
) -> RecordSet:
    """Read UCF101's official split ``split`` (1..3).

    Args:
        classes: only these classes, labelled 0..K-1 in this order (``data.classes=[Basketball, Diving]``).
            A trimmed ``classInd.txt`` selects a subset too (labels 0..K-1 in its index order).
        frames_root: read pre-extracted frame folders from here instead of the videos, whether or not the
            videos are still there (``<frames_root>/[UCF-101/]<Class>/<video stem>/`` as written by
            ``vidrec prepare frames``, or ``<frames_root>/<video stem>/``; frame files in any naming, read sorted).
        index: a scan index from ``vidrec prepare scan`` (frame counts and fps without opening files).
    """
    split = check_split(split, "ucf101")
    root = Path(root)
    problems = Problems(strict=strict)
    lists = find_dir(root, ["ucfTrainTestlist"], accept=lambda d: (d / "classInd.txt").is_file()) or find_dir(
        root, ["ucfTrainTestlist"]
    )
    if lists is None:
        raise DatasetError(
            f"{root}: no ucfTrainTestlist/ folder found (searched two levels down). Unpack "
            "UCF101TrainTestSplits-RecognitionTask.zip into the dataset root."
        )
    class_file = lists / "classInd.txt"
    if not class_file.is_file():
        raise DatasetError(f"{class_file}: missing. It ships in UCF101TrainTestSplits-RecognitionTask.zip.")
    class_ind = read_class_ind(class_file)
    ids, names = list(class_ind), list(class_ind.values())
    chosen = select_classes(names, classes, dataset="ucf101")
    class_names = [names[i] for i in chosen]
    label_of_id = {ids[i]: k for k, i in enumerate(chosen)}  # classInd id -> label
    label_of_name = {names[i].lower(): k for k, i in enumerate(chosen)}
    known_ids, known_names = set(ids), {n.lower() for n in names}
    # Lines of classes that classInd.txt does not list (a trimmed classInd) or data.classes leaves out
    # are counted, not problems; a line whose folder and index disagree is a problem.
    left_out = LeftOut()
    videos = find_class_dir(root, names, prefer=VIDEO_DIRS, exclude=[lists])
    if videos is None and frames_root is None:  # with frame folders the videos may be gone
        raise DatasetError(
            f"{root}: no folder holding the class folders ({', '.join(names[:3])}, ...) found (searched two levels "
            "down). Unpack UCF101.rar into the dataset root: <root>/UCF-101/<Class>/v_<Class>_gNN_cMM.avi."
        )
    finder = RecordFinder(videos, frames_root, classes=names)

    def record(rel: str, label: int, where: str) -> VideoRecord | None:
        stem = os.path.splitext(rel.rsplit("/", 1)[-1])[0]
        path, meta = finder.find(rel, stem)
        if path is None:
            problems.add(f"{where}: {finder.missing(rel, stem)}")
            return None
        m = _NAME.search(stem)
        if m:
            meta = {**meta, "group": f"g{m.group(1)}", "clip": f"c{m.group(2)}"}
        return VideoRecord(path=path, label=label, video_id=stem, meta=meta)

    subsets: dict[str, list[VideoRecord]] = {}
    for subset, fname in (("train", f"trainlist0{split}.txt"), ("test", f"testlist0{split}.txt")):
        fpath = lists / fname
        if not fpath.is_file():
            raise DatasetError(
                f"{fpath}: missing. The official split files are trainlist0{{1,2,3}}.txt and testlist0{{1,2,3}}.txt."
            )
        problems.subset = subset
        recs: list[VideoRecord] = []
        for n, line in read_lines(fpath):
            parts = line.split()
            where = f"{fpath}: line {n}"
            rel = parts[0].replace("\\", "/")
            folder = rel.split("/")[0] if "/" in rel else ""
            if len(parts) >= 2:  # trainlist: "path index"
                if len(parts) > 2 or not parts[1].isdigit():
                    problems.add(f"{where}: expected '<Class>/<video>.avi <index>', got {line!r}")
                    continue
                cid = int(parts[1])
                if cid not in known_ids:
                    if folder and folder.lower() not in known_names:
                        left_out.add(subset, folder)
                    else:
                        problems.add(
                            f"{where}: class index {cid} is not in {class_file.name} ({_id_range(ids)}). Fix the line."
                        )
                    continue
                if folder and folder.lower() in known_names and class_ind[cid].lower() != folder.lower():
                    problems.add(
                        f"{where}: {rel} sits in folder {folder!r} but is labelled {class_ind[cid]!r}; using the label."
                    )
                if cid not in label_of_id:
                    left_out.add(subset, class_ind[cid])
                    continue
                label = label_of_id[cid]
            else:  # testlist: "path", label from the folder
                if not folder:
                    problems.add(f"{where}: expected '<Class>/<video>.avi' (the class is the folder), got {line!r}")
                    continue
                if folder.lower() not in label_of_name:
                    left_out.add(subset, folder)
                    continue
                label = label_of_name[folder.lower()]
            r = record(rel, label, where)
            if r is not None:
                recs.append(r)
        subsets[subset] = recs
    problems.subset = None
    subsets["val"] = subsets["test"]  # the official protocol reports accuracy on the test list
    subsets = finish_records(subsets, index=index, problems=problems)
    info: dict[str, Any] = {
        "dataset": "ucf101",
        "split": split,
        "video_root": str(videos) if videos else None,
        "frames_root": str(finder.frames_root) if finder.frames_root else None,
        "lists": str(lists),
        "val_is_test": True,
    }
    info.update(remap_info([ids[i] for i in chosen], base=1, source=class_file.name))
    info.update(left_out.info())
    return RecordSet(
        subsets=subsets, classes=class_names, problems=problems.items, info=info, problem_subsets=problems.subsets
    )


def _id_range(ids: list[int]) -> str:
    return (
        f"1..{len(ids)}"
        if ids == list(range(1, len(ids) + 1))
        else "ids " + ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "")
    )
