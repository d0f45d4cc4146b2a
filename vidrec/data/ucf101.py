"""UCF101 from its official files.

Expected (as unpacked from ``UCF101.rar`` and ``UCF101TrainTestSplits-RecognitionTask.zip``)::

    <root>/UCF-101/<Class>/v_<Class>_gNN_cMM.avi
    <root>/ucfTrainTestlist/classInd.txt          "1 ApplyEyeMakeup"          (1-based)
    <root>/ucfTrainTestlist/trainlist0{1,2,3}.txt "ApplyEyeMakeup/v_..._g08_c01.avi 1"
    <root>/ucfTrainTestlist/testlist0{1,2,3}.txt  "ApplyEyeMakeup/v_..._g01_c01.avi"   (label from the folder)

Both folders are found anywhere up to two levels below ``root``. Subsets: ``train``, ``test``
and ``val`` (the same records as ``test``: the official protocol evaluates on the test list).
Class order is classInd's. Paths are matched case-insensitively as a fallback (the official
lists spell ``HandStandPushups`` where the folder says ``HandstandPushups``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vidrec.data._common import DirListing, Problems, check_split, find_dir, finish_records, read_lines
from vidrec.data.records import RecordSet, VideoRecord, register_dataset
from vidrec.errors import DatasetError

_NAME = re.compile(r"_g(\d+)_c(\d+)$")


def read_class_ind(path: Path) -> list[str]:
    """``classInd.txt``: ``index name`` lines, 1-based, every index exactly once."""
    found: dict[int, str] = {}
    for n, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(f"{path}: line {n}: expected '<index> <ClassName>', got {line!r}")
        idx = int(parts[0])
        if idx in found:
            raise DatasetError(f"{path}: line {n}: class index {idx} appears twice")
        found[idx] = parts[1]
    if sorted(found) != list(range(1, len(found) + 1)):
        raise DatasetError(f"{path}: class indices must run 1..N without gaps; got {sorted(found)[:5]}...")
    return [found[i] for i in range(1, len(found) + 1)]


@register_dataset("ucf101")
def load_ucf101(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    frames_root: str | os.PathLike[str] | None = None,
    index: str | os.PathLike[str] | None = None,
) -> RecordSet:
    """Read UCF101's official split ``split`` (1..3).

    Args:
        frames_root: read pre-extracted JPEG folders from here instead of the videos
            (``<frames_root>/<Class>/<video stem>/`` as written by ``vidrec prepare frames``, or
            ``<frames_root>/<video stem>/``).
        index: a scan index from ``vidrec prepare scan`` (frame counts and fps without opening files).
    """
    split = check_split(split, "ucf101")
    root = Path(root)
    problems = Problems(strict=strict)
    lists = find_dir(root, ["ucfTrainTestlist"])
    if lists is None:
        raise DatasetError(
            f"{root}: no ucfTrainTestlist/ folder found (searched two levels down). Unpack "
            "UCF101TrainTestSplits-RecognitionTask.zip into the dataset root."
        )
    videos = find_dir(root, ["UCF-101", "UCF101"]) or root
    class_file = lists / "classInd.txt"
    if not class_file.is_file():
        raise DatasetError(f"{class_file}: missing. It ships in UCF101TrainTestSplits-RecognitionTask.zip.")
    classes = read_class_ind(class_file)
    by_name = {c.lower(): i for i, c in enumerate(classes)}
    listing = DirListing(videos)

    def record(rel: str, label: int, where: str) -> VideoRecord | None:
        path = listing.resolve(rel)
        if path is None:
            problems.add(f"{where}: video {rel} not found under {videos}. Re-download it or remove the line.")
            return None
        stem = Path(rel).stem
        m = _NAME.search(stem)
        meta = {"group": f"g{m.group(1)}", "clip": f"c{m.group(2)}"} if m else {}
        return VideoRecord(path=path, label=label, video_id=stem, meta=meta)

    subsets: dict[str, list[VideoRecord]] = {}
    for subset, fname in (("train", f"trainlist0{split}.txt"), ("test", f"testlist0{split}.txt")):
        fpath = lists / fname
        if not fpath.is_file():
            raise DatasetError(f"{fpath}: missing. The official split files are trainlist0{{1,2,3}}.txt and testlist0{{1,2,3}}.txt.")
        recs: list[VideoRecord] = []
        for n, line in read_lines(fpath):
            parts = line.split()
            where = f"{fpath}: line {n}"
            rel = parts[0].replace("\\", "/")
            folder = rel.split("/")[0] if "/" in rel else ""
            folder_label = by_name.get(folder.lower())
            if len(parts) >= 2:  # trainlist: "path index"
                if len(parts) > 2 or not parts[1].isdigit():
                    problems.add(f"{where}: expected '<Class>/<video>.avi <index>', got {line!r}")
                    continue
                label = int(parts[1]) - 1
                if not 0 <= label < len(classes):
                    problems.add(f"{where}: class index {parts[1]} is not in {class_file.name} (1..{len(classes)}). Fix the line.")
                    continue
                if folder_label is not None and folder_label != label:
                    problems.add(f"{where}: {rel} sits in folder {folder!r} but is labelled {classes[label]!r}; using the label.")
            else:  # testlist: "path", label from the folder
                if folder_label is None:
                    problems.add(f"{where}: unknown class {folder!r} (not in {class_file.name}). Fix the path or classInd.txt.")
                    continue
                label = folder_label
            r = record(rel, label, where)
            if r is not None:
                recs.append(r)
        subsets[subset] = recs
    subsets["val"] = subsets["test"]  # the official protocol reports accuracy on the test list
    subsets = finish_records(subsets, video_root=videos, frames_root=frames_root, index=index, problems=problems)
    info = {"dataset": "ucf101", "split": split, "video_root": str(videos), "lists": str(lists), "val_is_test": True}
    return RecordSet(subsets=subsets, classes=classes, problems=problems.items, info=info)
