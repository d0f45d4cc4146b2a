"""Computing one video's streams: decode its annotated frames at native size, then hand joints
(MediaPipe on ground-truth hand crops, :mod:`~vidrec.data.streams.hands`) and object crops
(:mod:`~vidrec.data.streams.objects`), into the arrays of :mod:`~vidrec.data.streams.cache`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidrec.data.boxes import VideoBoxes, object_order, open_box_store
from vidrec.data.records import VideoRecord
from vidrec.data.streams import hands
from vidrec.data.streams.cache import CACHE_VERSION, StreamOptions, check_kinds
from vidrec.data.streams.hands import NUM_HANDS, NUM_JOINTS, HandLandmarker, empty_frame_hands, hands_in_frame
from vidrec.data.streams.objects import objects_in_frame
from vidrec.video.decode import AutoDecoder, Decoder

Box = tuple[float, float, float, float]


def record_boxes(record: VideoRecord, boxes_file: str | os.PathLike[str] | None = None) -> VideoBoxes | None:
    """The record's Something-Else boxes (``meta["boxes_file"]``/``meta["boxes"]`` or ``boxes_file``)."""
    src = record.meta.get("boxes_file") or record.meta.get("boxes") or boxes_file
    if not src:
        return None
    return open_box_store(src).get(str(record.meta.get("boxes_id", record.video_id)))


def annotation_index(i: int, fps: float | None, annotation_fps: float, is_folder: bool) -> int:
    """Decoded frame ``i`` → annotation entry (the rule of :class:`vidrec.data.boxes.BoxesSideInput`)."""
    if is_folder or not fps or abs(fps - annotation_fps) < 0.5:
        return int(i)
    return int(round(i * annotation_fps / fps))


def frame_layout(
    entries: Sequence[Sequence[Any]], sx: float, sy: float, w: int, h: int, object_slots: dict[str, int]
) -> tuple[list[Box | None], list[Box | None]]:
    """One annotated frame → (hand boxes per slot, object boxes per slot) in decoded-frame pixels.

    ``sx, sy`` scale annotation pixels to decoded pixels. Hands fill slots in annotation order and
    boxes with nothing inside the frame are skipped, as in the boxes side input.
    """
    hand_boxes: list[Box | None] = [None] * NUM_HANDS
    objs: list[Box | None] = [None] * len(object_slots)
    n_hands = 0
    for cat, x1, y1, x2, y2 in entries:
        box = (
            min(max(x1 * sx, 0.0), w),
            min(max(y1 * sy, 0.0), h),
            min(max(x2 * sx, 0.0), w),
            min(max(y2 * sy, 0.0), h),
        )
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        if cat == "hand":
            if n_hands < NUM_HANDS:
                hand_boxes[n_hands] = box
                n_hands += 1
        elif cat in object_slots:
            objs[object_slots[cat]] = box
    return hand_boxes, objs


def compute_streams(
    record: VideoRecord,
    kinds: Sequence[str],
    options: StreamOptions = StreamOptions(),
    *,
    decoder: Decoder | None = None,
    landmarker: HandLandmarker | None = None,
    indices: Sequence[int] | None = None,
    boxes_file: str | os.PathLike[str] | None = None,
) -> dict[str, np.ndarray]:
    """The cache arrays of ``kinds`` for one video (see :mod:`vidrec.data.streams.cache`).

    ``indices``: the decoded frames to compute (default: every frame that has boxes; every frame
    for hands without ROI). A frame without boxes gets zeros and mask 0.
    """
    kinds = check_kinds(kinds)
    decoder = decoder or AutoDecoder()
    info = decoder.info(record.path)
    boxes = record_boxes(record, boxes_file)
    w, h = int(info.width), int(info.height)
    fw, fh = record.meta.get("frame_size") or (w, h)  # annotation pixels are the original video's
    sx, sy = w / float(fw), h / float(fh)
    is_folder = Path(record.path).is_dir()
    fps = record.fps or info.fps
    frames_map = boxes["frames"] if boxes else {}
    ann = {
        i: frames_map.get(annotation_index(i, fps, options.annotation_fps, is_folder)) for i in range(info.num_frames)
    }
    if indices is None:
        if "hands" in kinds and not options.roi:
            rows = list(range(info.num_frames))
        else:
            rows = [i for i in range(info.num_frames) if ann.get(i)]
    else:
        rows = sorted({int(i) for i in indices})
    object_ids = object_order(boxes["objects"])[: options.max_objects] if boxes else []
    slots = {oid: k for k, oid in enumerate(object_ids)}
    out: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps({"version": CACHE_VERSION, "video_id": record.video_id, "frame_size": [w, h]})),
    }
    t, o, s = len(rows), options.max_objects, options.object_size
    if "hands" in kinds:
        out |= {
            "hands_frames": np.array(rows, np.int32),
            "hand_joints": np.zeros((t, NUM_HANDS, NUM_JOINTS, 3), np.float32),
            "hand_joints_mask": np.zeros((t, NUM_HANDS), np.uint8),
            "hand_score": np.zeros((t, NUM_HANDS), np.float32),
            "handedness": np.full((t, NUM_HANDS), -1, np.int8),
            "hand_boxes": np.zeros((t, NUM_HANDS, 4), np.float32),
            "hand_mask": np.zeros((t, NUM_HANDS), np.uint8),
        }
        if landmarker is None:
            landmarker = hands.make_landmarker(
                min_confidence=options.min_confidence, model_complexity=options.model_complexity
            )
    if "objects" in kinds:
        out |= {
            "objects_frames": np.array(rows, np.int32),
            "object_crops": np.zeros((t, o, 3, s, s), np.uint8),
            "object_boxes": np.zeros((t, o, 4), np.float32),
            "object_mask": np.zeros((t, o), np.uint8),
            "object_ids": np.array(object_ids + [""] * (o - len(object_ids)), dtype="<U16"),
        }
    if not rows:
        return out
    chunk = 64  # decode in chunks: bounded memory for long videos
    for start in range(0, t, chunk):
        part = rows[start : start + chunk]
        frames = decoder.decode(record.path, part, size=None).numpy()  # (n, H, W, 3) uint8
        for j, (i, frame) in enumerate(zip(part, frames)):
            r = start + j
            hand_boxes, obj_boxes = frame_layout(ann.get(i) or [], sx, sy, w, h, slots)
            if "hands" in kinds:
                assert landmarker is not None
                if options.roi and not any(b is not None for b in hand_boxes):
                    fh_ = empty_frame_hands()
                else:
                    fh_ = hands_in_frame(frame, hand_boxes if options.roi else None, landmarker, margin=options.margin)
                out["hand_joints"][r], out["hand_joints_mask"][r] = fh_.joints, fh_.mask
                out["hand_score"][r], out["handedness"][r] = fh_.score, fh_.handedness
                for k, b in enumerate(hand_boxes):
                    if b is not None:
                        out["hand_boxes"][r, k] = (b[0] / w, b[1] / h, b[2] / w, b[3] / h)
                        out["hand_mask"][r, k] = 1
            if "objects" in kinds:
                fo = objects_in_frame(frame, obj_boxes + [None] * (o - len(obj_boxes)), size=s)
                out["object_crops"][r], out["object_boxes"][r], out["object_mask"][r] = fo.crops, fo.boxes, fo.mask
    return out
