"""Layouts: one rendered video encoded into every requested layout, and each layout's annotation files.

- SSv2: ``20bn-something-something-v2/<id><ext>`` and ``annotations/something-something-v2-*.json``;
- Something-Else: ``annotations/bounding_box_smthsmth_part{1,2}.json`` and ``dataset_splits/compositional/``;
- captions: ``captions.json`` in the MSR-VTT layout;
- UCF101: ``UCF-101/<Class>/v_<Class>_gNN_cMM.avi`` and ``ucfTrainTestlist/`` (CRLF, as the official lists);
- folder: ``folder/<class_name>/<id>.mp4``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidrec.data.synthetic.render import CONTAINER, HAND, OBJ, Boxes, render_video
from vidrec.data.synthetic.spec import (
    ANNOTATION_DIR,
    CLASSES,
    VERSION,
    VIDEO_DIR,
    ClassDef,
    SynthSpec,
    camel_name,
    snake_name,
)
from vidrec.utils.io import write_json_atomic, write_text_atomic
from vidrec.video.encode import write_video

# what encode_video returns of each video, by id: (Something-Else frames, facts)
Results = dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]


@dataclass
class VideoPlan:
    video_id: str
    subset: str  # train / val / test
    class_pos: int  # index into the selected classes (= label)
    class_full: int  # index into CLASSES (seeds the randomness, so subsets of classes agree)
    k: int  # index within (subset, class)


def plan_videos(spec: SynthSpec) -> list[VideoPlan]:
    """Every video of ``spec`` in a fixed order, with SSv2-like numeric ids drawn from the seed."""
    chosen = spec.class_defs()
    items: list[tuple[str, int, int, int]] = []
    for subset, per in (("train", spec.videos_per_class), ("val", spec.val_per_class), ("test", spec.test_per_class)):
        for pos, (full, _) in enumerate(chosen):
            for k in range(per):
                items.append((subset, pos, full, k))
    ids = np.random.default_rng([spec.seed, 7919]).permutation(len(items)) + 1  # SSv2-like numeric ids
    return [VideoPlan(str(int(vid)), s, pos, full, k) for vid, (s, pos, full, k) in zip(ids, items)]


def ucf_group(subset: str, k: int) -> tuple[int, int]:
    """(group, clip) in UCF101 numbering: validation videos fill groups 1-7 (split 1's test groups),
    training videos groups 8-25; a group never holds both."""
    if subset == "val":
        return 1 + k % 7, 1 + k // 7
    return 8 + k % 18, 1 + k // 18


def encode_video(spec: SynthSpec, plan: VideoPlan, root: Path) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """Render one video and encode it into every requested layout; (id, Something-Else frames, facts)."""
    frames, boxes, facts = render_video(spec, plan.class_full, plan.subset, plan.k)
    write_video(root / VIDEO_DIR / f"{plan.video_id}{spec.ext}", frames, fps=spec.fps)
    template = CLASSES[plan.class_full].template
    if plan.subset != "test":
        if "ucf101" in spec.layouts:
            cname = camel_name(template)
            g, c = ucf_group(plan.subset, plan.k)
            write_video(root / "UCF-101" / cname / f"v_{cname}_g{g:02d}_c{c:02d}.avi", frames, fps=spec.fps)
        if "folder" in spec.layouts:
            write_video(root / "folder" / snake_name(template) / f"{plan.video_id}.mp4", frames, fps=spec.fps)
    box_json: list[dict[str, Any]] = []
    if "something_else" in spec.layouts:
        box_json = something_else_frames(plan.video_id, boxes, facts["placeholders"])
    return plan.video_id, box_json, facts


def ssv2_label(template: str, placeholders: Sequence[str]) -> str:
    """SSv2's ``label`` field: the template with its placeholders filled in, lower-cased first letter."""
    out = template
    for p in placeholders:
        out = out.replace("[something]", p, 1)
    return out[:1].lower() + out[1:]


def something_else_frames(video_id: str, boxes: Boxes, placeholders: list[str]) -> list[dict[str, Any]]:
    """One video's entry of a Something-Else box file: per frame, the object, container and hand boxes."""
    frames = []
    for i, fb in enumerate(boxes):
        labels = []
        for ent, std, gt in ((OBJ, "0000", "object 0"), (CONTAINER, "0001", "object 1")):
            if ent in fb and (ent == OBJ or len(placeholders) > 1):
                x1, y1, x2, y2 = fb[ent]
                cat = placeholders[0] if ent == OBJ else placeholders[1]
                labels.append(
                    {
                        "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
                        "category": cat,
                        "standard_category": std,
                        "gt_annotation": gt,
                    }
                )
        if HAND in fb:
            x1, y1, x2, y2 = fb[HAND]
            labels.append(
                {
                    "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
                    "category": "hand",
                    "standard_category": "hand",
                    "gt_annotation": "object hand",
                }
            )
        frames.append(
            {
                "name": f"{video_id}/{i + 1:04d}.jpg",
                "gt_placeholders": list(placeholders),
                "nr_instances": len(labels),
                "labels": labels,
            }
        )
    return frames


def write_ssv2(
    out: Path, plans: list[VideoPlan], names: list[str], results: Results
) -> dict[str, list[dict[str, Any]]]:
    """The labels file and the train / validation / test lists; returns the lists by subset."""
    ann = out / ANNOTATION_DIR
    ann.mkdir(parents=True, exist_ok=True)
    write_json_atomic(ann / "something-something-v2-labels.json", {n: str(i) for i, n in enumerate(names)})
    lists: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for p in plans:
        template = CLASSES[p.class_full].template
        ph = results[p.video_id][1]["placeholders"]
        if p.subset == "test":
            lists["test"].append({"id": p.video_id})
        else:
            lists[p.subset].append(
                {"id": p.video_id, "label": ssv2_label(template, ph), "template": template, "placeholders": ph}
            )
    write_json_atomic(ann / "something-something-v2-train.json", lists["train"], indent=None)
    write_json_atomic(ann / "something-something-v2-validation.json", lists["val"], indent=None)
    write_json_atomic(ann / "something-something-v2-test.json", lists["test"], indent=None)
    return lists


def write_something_else(
    out: Path, plans: list[VideoPlan], names: list[str], results: Results, lists: dict[str, list[dict[str, Any]]]
) -> dict[str, list[str]]:
    """The two box files and the compositional split; returns {box file name: the video ids in it}."""
    ann = out / ANNOTATION_DIR
    box_parts: dict[str, list[str]] = {}
    ordered = [p.video_id for p in plans]
    half = (len(ordered) + 1) // 2
    for part, ids in ((1, ordered[:half]), (2, ordered[half:])):
        name = f"bounding_box_smthsmth_part{part}.json"
        write_json_atomic(ann / name, {vid: results[vid][0] for vid in ids}, indent=None)
        box_parts[name] = ids
    # Compositional split: per temporal pair, train sees one shape group, validation the other.
    comp = out / "dataset_splits" / "compositional"
    ctrain: list[dict[str, str]] = []
    cval: list[dict[str, str]] = []
    for p in plans:
        if p.subset == "test":
            continue
        facts = results[p.video_id][1]
        entry = next(e for e in lists[p.subset] if e["id"] == p.video_id)
        train_group = "A" if (p.class_full // 2) % 2 == 0 else "B"
        (ctrain if facts["shape_group"] == train_group else cval).append(entry)
    write_json_atomic(comp / "train.json", ctrain, indent=None)
    write_json_atomic(comp / "validation.json", cval, indent=None)
    write_json_atomic(comp / "labels.json", {n: i for i, n in enumerate(names)})
    return box_parts


def write_captions(path: Path, plans: list[VideoPlan], results: Results) -> None:
    """One caption per video, in the MSR-VTT layout (``split``: train / validate / test)."""
    split_name = {"train": "train", "val": "validate", "test": "test"}
    write_json_atomic(
        path,
        {
            "info": {"description": "vidrec synthetic dataset captions (MSR-VTT style)", "version": VERSION},
            "videos": [
                {"video_id": p.video_id, "id": i, "split": split_name[p.subset], "category": p.class_pos}
                for i, p in enumerate(plans)
            ],
            "sentences": [
                {"video_id": p.video_id, "sen_id": i, "caption": results[p.video_id][1]["caption"]}
                for i, p in enumerate(plans)
            ],
        },
        indent=None,
    )


def write_ucf_lists(out: Path, plans: list[VideoPlan], chosen: list[tuple[int, ClassDef]]) -> None:
    """classInd.txt and the three official train/test lists (CRLF line ends, as in the official files)."""
    lst = out / "ucfTrainTestlist"
    cnames = [camel_name(c.template) for _, c in chosen]
    write_text_atomic(lst / "classInd.txt", "".join(f"{i + 1} {n}\r\n" for i, n in enumerate(cnames)))
    videos = []
    for p in plans:
        if p.subset == "test":
            continue
        g, c = ucf_group(p.subset, p.k)
        cn = cnames[p.class_pos]
        videos.append((p.class_pos, g, c, f"{cn}/v_{cn}_g{g:02d}_c{c:02d}.avi"))
    videos.sort()
    for split, test_groups in ((1, range(1, 8)), (2, range(8, 15)), (3, range(15, 22))):
        train_lines = [f"{rel} {cls + 1}\r\n" for cls, g, _, rel in videos if g not in test_groups]
        test_lines = [f"{rel}\r\n" for _, g, _, rel in videos if g in test_groups]
        write_text_atomic(lst / f"trainlist0{split}.txt", "".join(train_lines))
        write_text_atomic(lst / f"testlist0{split}.txt", "".join(test_lines))
