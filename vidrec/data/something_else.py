"""Something-Else: Something-Something-v2 videos, its compositional / shuffled splits, and per-frame boxes.

What the user downloads (see ``docs/datasets.md``):

- the SSv2 videos and annotation JSONs (read by :func:`vidrec.data.ssv2.load_ssv2`),
- the box annotations ``bounding_box_smthsmth_part{1,2,3,4}.json`` (merge them once with
  ``vidrec prepare something-else PARTS --out boxes.sqlite`` and pass ``data.boxes=boxes.sqlite``;
  small sets can also point ``data.boxes`` at the parts folder),
- the split lists from the Something-Else repository, ``dataset_splits/<set>/`` with
  ``train.json``, ``validation.json`` (SSv2 format: ``id``, ``template``, ``placeholders``, ...)
  and ``labels.json`` (``{"Approaching something with your camera": 0, ...}``).

The records are SSv2's, restricted to the split list, labelled by the split's own
``labels.json`` (its template with the brackets removed), and each record's meta names its box
file (``boxes_file``) so :class:`vidrec.data.boxes.BoxesSideInput` can hand per-frame hand and
object boxes to the sample. Subsets: ``train``, ``val`` (validation.json) and ``test`` (the same
records as ``val``: the split has no separate test list).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from vidrec.data._common import Problems, find_dir, finish_records, user_path
from vidrec.data.boxes import PART_GLOB, open_box_store
from vidrec.data.records import RecordSet, VideoRecord, register_dataset
from vidrec.data.ssv2 import class_name, load_ssv2
from vidrec.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

SPLIT_SETS = ("compositional", "shuffled")
_MAX_LISTED = 20  # per kind of problem; the rest are counted in one line


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: line {exc.lineno} column {exc.colno}: malformed JSON ({exc.msg}). Download it again."
        ) from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc


def find_split_dir(root: Path, split_set: str, splits_dir: str | os.PathLike[str] | None) -> Path:
    """``<splits_dir>/<split_set>/`` (or ``splits_dir`` itself), else searched under ``root``."""
    if splits_dir is not None:
        d = user_path(root, splits_dir)
        for cand in (d / split_set, d):
            if (cand / "train.json").is_file():
                return cand
        raise DatasetError(
            f"data.splits_dir: no {split_set}/train.json in {d}. "
            "Copy dataset_splits/ from the Something-Else repository there."
        )
    found = find_dir(root, [split_set], depth=4)
    if found is None or not (found / "train.json").is_file():
        raise DatasetError(
            f"{root}: no {split_set}/train.json found (searched four levels down). "
            f"Copy dataset_splits/{split_set}/ from "
            "github.com/joaanna/something_else (code/dataset_splits) under the root, or set data.splits_dir=DIR."
        )
    return found


def _find_boxes(root: Path, boxes: str | os.PathLike[str] | None) -> Path | None:
    if boxes is not None:
        p = user_path(root, boxes)
        if not p.exists():
            raise DatasetError(
                f"data.boxes: {boxes} not found. Merge the parts with `vidrec prepare something-else PARTS --out FILE`."
            )
        return p
    parts = sorted(root.glob(PART_GLOB)) or sorted(root.glob(f"*/{PART_GLOB}")) or sorted(root.glob(f"*/*/{PART_GLOB}"))
    return parts[0].parent if parts else None


@register_dataset("something_else")
def load_something_else(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    split_set: str = "compositional",
    splits_dir: str | os.PathLike[str] | None = None,
    train_list: str | os.PathLike[str] | None = None,
    val_list: str | os.PathLike[str] | None = None,
    labels_file: str | os.PathLike[str] | None = None,
    boxes: str | os.PathLike[str] | None = None,
    max_objects: int = 4,
    annotations: str | os.PathLike[str] | None = None,
    videos: str | os.PathLike[str] | None = None,
    frames: bool = False,
    frames_root: str | os.PathLike[str] | None = None,
    index: str | os.PathLike[str] | None = None,
) -> RecordSet:
    """Read a Something-Else split over the SSv2 videos.

    Args:
        split: one split per set; must be 1.
        split_set: ``compositional`` or ``shuffled`` (the folder name under ``dataset_splits/``).
        splits_dir: folder holding ``<split_set>/`` (default: searched under root).
        train_list, val_list, labels_file: explicit list files instead (SSv2 JSON format).
        boxes: merged box file (``vidrec prepare something-else``), a parts folder or one part
            (default: parts found under root, read into memory).
        max_objects: object slots in the boxes side input.
        annotations, videos, frames: passed to the SSv2 loader.
        frames_root, index: as for the other loaders; with ``index`` (frame sizes known) every
            box of the split is checked against its frame.
    """
    root = Path(root)
    if split != 1:
        raise ConfigError(
            f"data.split: Something-Else has one split per set; got {split}. Use data.split_set to choose the set."
        )
    problems = Problems(strict=strict)
    if train_list is None and val_list is None:
        if split_set not in SPLIT_SETS:
            raise ConfigError(
                f"data.split_set: {split_set!r} is not one of {', '.join(SPLIT_SETS)} "
                "(or give data.train_list/val_list)"
            )
        sdir = find_split_dir(root, split_set, splits_dir)
        lists = {"train": sdir / "train.json", "val": sdir / "validation.json"}
        labels_path = Path(labels_file) if labels_file else sdir / "labels.json"
    else:
        lists = {k: Path(v).expanduser() for k, v in (("train", train_list), ("val", val_list)) if v is not None}
        labels_path = Path(labels_file).expanduser() if labels_file else None  # type: ignore[assignment]
    # with frames_root, SSv2 finds each record by its frame folder (Something-Else ships <id>/0001.jpg),
    # whatever the video
    ssv2 = load_ssv2(root, strict=False, annotations=annotations, videos=videos, frames=frames, frames_root=frames_root)
    by_id: dict[str, VideoRecord] = {r.video_id: r for recs in ssv2.subsets.values() for r in recs}
    if labels_path is not None and labels_path.is_file():
        raw = _read_json(labels_path)
        if not isinstance(raw, dict):
            raise DatasetError(f'{labels_path}: expected {{"template": index, ...}}, got a {type(raw).__name__}')
        try:
            order = sorted(raw.items(), key=lambda kv: int(kv[1]))
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{labels_path}: every class needs a numeric index ({exc})") from exc
        classes = [class_name(k) for k, _ in order]
    else:
        if labels_path is not None:
            problems.add(
                f"{labels_path}: missing; using the SSv2 labels file's classes instead. "
                "Copy labels.json from the split folder."
            )
        classes = list(ssv2.classes)
    to_label = {c: i for i, c in enumerate(classes)}
    box_path = _find_boxes(root, boxes)
    if box_path is None:
        problems.add(
            f"{root}: no Something-Else box annotations found ({PART_GLOB}); samples get empty boxes. "
            "Merge them with `vidrec prepare something-else PARTS --out FILE` and set data.boxes=FILE."
        )
    subsets: dict[str, list[VideoRecord]] = {}
    for subset, lpath in lists.items():
        problems.subset = subset
        if not lpath.is_file():
            problems.add(
                f"{lpath}: missing; the {subset} subset is empty. Copy it from the Something-Else split folder."
            )
            subsets[subset] = []
            continue
        data = _read_json(lpath)
        if not isinstance(data, list):
            raise DatasetError(
                f'{lpath}: expected a list of {{"id", "template", ...}} entries, got a {type(data).__name__}'
            )
        recs: list[VideoRecord] = []
        n_missing = 0
        for i, entry in enumerate(data):
            where = f"{lpath}: entry {i}"
            if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("template"), str):
                problems.add(f'{where}: expected {{"id": ..., "template": ...}}, got {str(entry)[:80]}')
                continue
            vid = str(entry["id"])
            label = to_label.get(class_name(entry["template"]))
            if label is None:
                problems.add(
                    f"{where} (id {vid}): template {entry['template']!r} matches no class in {labels_path}. "
                    "Fix the entry."
                )
                continue
            rec = by_id.get(vid)
            if rec is None:
                n_missing += 1
                if n_missing <= _MAX_LISTED or strict:
                    what, fix = (
                        ("frame folders", "Extract its frames")
                        if frames_root is not None
                        else ("videos", "Download it")
                    )
                    problems.add(
                        f"{where}: video {vid} is not among the SSv2 {what} found (missing, or id absent "
                        f"from the SSv2 annotation files). {fix} or remove the entry."
                    )
                continue
            meta = {
                **rec.meta,
                "template": entry["template"],
                "placeholders": list(entry.get("placeholders") or []),
                "split_set": split_set,
            }
            if box_path is not None:
                meta["boxes_file"] = str(box_path)
            recs.append(replace(rec, label=label, meta=meta))
        if n_missing > _MAX_LISTED:
            problems.add(f"{lpath}: {n_missing} videos missing in all (first {_MAX_LISTED} named above).")
        subsets[subset] = recs
    problems.subset = None
    if "val" in subsets:
        subsets["test"] = subsets["val"]
    video_root = Path(ssv2.info.get("videos", root))
    subsets = finish_records(subsets, index=index, problems=problems)
    if box_path is not None:
        _check_boxes(box_path, subsets, problems, with_sizes=index is not None)
    info = {
        "dataset": "something_else",
        "split_set": split_set,
        "lists": {k: str(v) for k, v in lists.items()},
        "labels": str(labels_path) if labels_path else None,
        "boxes": str(box_path) if box_path else None,
        "max_objects": max_objects,
        "val_is_test": True,
        "videos": str(video_root),
        "ssv2_problems": len(ssv2.problems),
    }
    return RecordSet(
        subsets=subsets, classes=classes, problems=problems.items, info=info, problem_subsets=problems.subsets
    )


def _check_boxes(
    box_path: Path, subsets: dict[str, list[VideoRecord]], problems: Problems, *, with_sizes: bool
) -> None:
    """Every split video has boxes; with known frame sizes, every box lies inside its frame."""
    store = open_box_store(box_path)
    have = store.ids()
    seen: set[str] = set()
    no_boxes: list[str] = []
    outside = 0
    for recs in subsets.values():
        for r in recs:
            if r.video_id in seen:
                continue
            seen.add(r.video_id)
            if r.video_id not in have:
                no_boxes.append(r.video_id)
                continue
            size = r.meta.get("frame_size")
            if not with_sizes or not size:
                continue
            w, h = size
            v = store.get(r.video_id) or {"frames": {}}
            for fidx, frame in sorted(v["frames"].items()):
                bad = [b for b in frame if b[1] < -1 or b[2] < -1 or b[3] > w + 1 or b[4] > h + 1]
                if bad:
                    outside += 1
                    if outside <= _MAX_LISTED or problems.strict:
                        cat, x1, y1, x2, y2 = bad[0]
                        problems.add(
                            f"{box_path}: video {r.video_id} frame {fidx + 1:04d}.jpg: "
                            f"{cat} box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the {w}x{h} frame; "
                            "it is clipped to the frame when read."
                        )
                    break  # one message per video
    if outside > _MAX_LISTED:
        problems.add(
            f"{box_path}: {outside} videos have boxes outside their frame in all (first {_MAX_LISTED} named above)."
        )
    if no_boxes:
        problems.add(
            f"{box_path}: {len(no_boxes)} split videos have no box annotation (e.g. {', '.join(no_boxes[:5])}); "
            "their samples get empty boxes. Check that every part was merged."
        )
