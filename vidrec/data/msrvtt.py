"""Captioned videos in the MSR-VTT JSON layout (``task: retrieval``).

``{"videos": [{"video_id", "split"}], "sentences": [{"video_id", "caption"}]}`` (the synthetic dataset writes
``captions.json`` that way). The ``msrvtt`` dataset loader: videos ``<root>/videos/<video_id>.mp4`` (or
``data.videos``) and ``<root>/MSRVTT_data.json`` (or ``data.captions``), subsets from the JSON's ``split``.
No torch here: ``vidrec data show`` on such a folder stays fast.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

from vidrec.data.records import RecordSet, VideoRecord, register_dataset
from vidrec.errors import DatasetError
from vidrec.video.decode import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

_SPLITS = {"train": "train", "validate": "val", "val": "val", "validation": "val", "test": "test"}


def read_captions(path: str | Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``(video_id → captions, video_id → subset)`` from an MSR-VTT style JSON file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f'{path}: no such captions file (MSR-VTT JSON: {{"videos": [...], "sentences": [...]}})')
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("sentences"), list):
        raise DatasetError(
            f'{path}: expected an object with a "sentences" list of {{"video_id", "caption"}} (MSR-VTT layout)'
        )
    caps: dict[str, list[str]] = defaultdict(list)
    for i, s in enumerate(data["sentences"]):
        if not isinstance(s, dict) or "video_id" not in s or not isinstance(s.get("caption"), str):
            raise DatasetError(f'{path}: sentences[{i}] needs "video_id" and a string "caption"')
        if s["caption"].strip():
            caps[str(s["video_id"])].append(s["caption"].strip())
    splits: dict[str, str] = {}
    for i, v in enumerate(data.get("videos", [])):
        if not isinstance(v, dict) or "video_id" not in v:
            raise DatasetError(f'{path}: videos[{i}] needs a "video_id"')
        split = str(v.get("split", "train")).lower()
        if split not in _SPLITS:
            raise DatasetError(f"{path}: videos[{i}] has split {split!r}; expected train, validate or test")
        splits[str(v["video_id"])] = _SPLITS[split]
    return dict(caps), splits


@register_dataset("msrvtt")
def load_msrvtt(
    root: Path,
    *,
    split: int = 1,
    strict: bool = False,
    captions: str | None = None,
    videos: str | None = None,
) -> RecordSet:
    """MSR-VTT (or any captioned folder in its JSON layout): records per ``split`` of the JSON.

    ``captions``: the JSON file (default ``<root>/MSRVTT_data.json`` or ``<root>/captions.json``);
    ``videos``: the video folder (default ``<root>/videos``, else ``<root>``).
    """
    root = Path(root).expanduser()
    cap_file = (
        Path(captions)
        if captions
        else next(
            (root / n for n in ("MSRVTT_data.json", "captions.json") if (root / n).is_file()), root / "MSRVTT_data.json"
        )
    )
    caps, splits = read_captions(cap_file)
    vdir = Path(videos) if videos else (root / "videos" if (root / "videos").is_dir() else root)
    files = {p.stem: p for p in vdir.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES} if vdir.is_dir() else {}
    subsets: dict[str, list[VideoRecord]] = {"train": [], "val": [], "test": []}
    problems: list[str] = []
    for vid, subset in sorted(splits.items(), key=lambda kv: kv[0]):
        f = files.get(vid)
        if f is None:
            problems.append(f"{vid}: no video file under {vdir}")
            continue
        if vid not in caps:
            problems.append(f"{vid}: no caption in {cap_file}")
            continue
        subsets[subset].append(VideoRecord(path=f, label=-1, video_id=vid, meta={"captions": caps[vid]}))
    if strict and problems:
        raise DatasetError(f"{cap_file}: {len(problems)} problems, first: {problems[0]}")
    if not any(subsets.values()):
        why = problems[0] if problems else "empty lists"
        raise DatasetError(f"{cap_file}: no captioned video found under {vdir} ({why})")
    return RecordSet(subsets=subsets, classes=["video"], problems=problems, info={"captions": cap_file})


def captions_for(
    records: Sequence[VideoRecord], captions: Mapping[str, list[str]] | None = None
) -> tuple[list[VideoRecord], list[list[str]]]:
    """Keep records that have a caption: from ``captions`` (by video_id) or from ``record.meta``."""
    kept, caps = [], []
    missing = 0
    for r in records:
        c = list(captions.get(r.video_id, [])) if captions is not None else []
        if not c:
            c = list(r.meta.get("captions") or ([r.meta["caption"]] if r.meta.get("caption") else []))
        if c:
            kept.append(r)
            caps.append(c)
        else:
            missing += 1
    if missing:
        log.warning("%d videos have no caption and are left out of retrieval training/evaluation", missing)
    if not kept:
        raise DatasetError(
            "no video has a caption: give retrieval.captions=FILE.json (MSR-VTT layout) or a captioned dataset"
        )
    return kept, caps
