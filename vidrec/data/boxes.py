"""Something-Else box annotations: merge the shipped parts once, then read boxes per sampled frame.

The official annotations (``bounding_box_smthsmth_part1.json`` … ``part4.json``) map a video id
to a list of per-frame entries::

    {"name": "114040/0001.jpg",                  # <video id>/<1-based frame number>.jpg
     "labels": [{"box2d": {"x1": .., "y1": .., "x2": .., "y2": ..},   # pixels of the original video
                 "category": "highlighter",      # the annotator's object name (or "hand")
                 "standard_category": "0000",    # placeholder id: "0000", "0001", ... or "hand"
                 "gt_annotation": "object 0"}, ...],
     "gt_placeholders": ["highlighter"], "nr_instances": 2}

Frame numbering: the frame files are 1-based (``0001.jpg`` is the video's first frame, index 0)
and the annotations assume the video's native 12 fps (SSv2's rate), so annotation entry
``NNNN.jpg`` belongs to decoded frame ``NNNN - 1``. The number is read from ``name``; the
list position is used only when a name has no number. For a video decoded at another rate the
index is rescaled by time (``round(i * 12 / fps)``).

:func:`merge_box_parts` (``vidrec prepare something-else PARTS --out FILE``) writes every part
into one SQLite file keyed by video id: a single file, random access by id in any DataLoader
worker, written atomically. :class:`BoxesSideInput` turns a record and its sampled frame
indices into tensors aligned with those indices:

- ``hand_boxes`` ``T×2×4`` float (x1, y1, x2, y2 normalised to [0, 1] by the frame size),
  ``hand_mask`` ``T×2`` bool (hands in annotation order),
- ``object_boxes`` ``T×O×4``, ``object_mask`` ``T×O``: placeholder ids in a stable order
  (``0000`` → slot 0, ``0001`` → slot 1, ...; at most ``max_objects``).

A frame with no annotation gives zeros and mask ``False``. Boxes outside the frame are clipped
to it and counted (``BoxesSideInput.clipped``, with one warning per video).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from vidrec.data.side_inputs import register_side_input
from vidrec.errors import ConfigError, DatasetError
from vidrec.utils.io import atomic_path

if TYPE_CHECKING:  # torch only where boxes become tensors: loading the Something-Else records needs none
    import torch

log = logging.getLogger(__name__)

ANNOTATION_FPS = 12.0  # Something-Else: "the annotations assume that the frame rate of the videos is 12"
PART_GLOB = "bounding_box_smthsmth_part*.json"
FORMAT = "vidrec-something-else-boxes"
FORMAT_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"
_FRAME_NO = re.compile(r"(\d+)\.\w+$")

# compact per-video form: {"frames": {frame_index: [[id, x1, y1, x2, y2], ...]}, "objects": {id: name}}
VideoBoxes = dict[str, Any]


# ------------------------------------------------------------------------------------------ parsing


def parse_video(video_id: str, frames: Any, *, where: str, problems: list[str] | None = None) -> VideoBoxes:
    """Normalise one video's official per-frame list into the compact form; bad entries are reported."""

    def bad(msg: str) -> None:
        if problems is not None:
            problems.append(f"{where}: video {video_id}: {msg}")

    out: dict[str, Any] = {"frames": {}, "objects": {}}
    if not isinstance(frames, list):
        bad(f"expected a list of frames, got {type(frames).__name__}")
        return out
    for pos, fr in enumerate(frames):
        if not isinstance(fr, dict):
            bad(f"frame {pos}: expected an object with 'name' and 'labels'")
            continue
        m = _FRAME_NO.search(str(fr.get("name", "")))
        idx = int(m.group(1)) - 1 if m else pos  # 0001.jpg -> frame 0
        boxes = []
        for lab in fr.get("labels") or []:
            try:
                b = lab["box2d"]
                if isinstance(b, Mapping):
                    x1, y1, x2, y2 = (float(b[k]) for k in ("x1", "y1", "x2", "y2"))
                else:
                    x1, y1, x2, y2 = (float(v) for v in b)
                cat = str(lab.get("standard_category") or lab.get("category") or "")
            except (KeyError, TypeError, ValueError):
                bad(f"frame {fr.get('name', pos)}: a label without a valid box2d {{x1, y1, x2, y2}}: {str(lab)[:80]}")
                continue
            if not cat:
                bad(f"frame {fr.get('name', pos)}: a box without category/standard_category")
                continue
            if x2 < x1 or y2 < y1:
                bad(f"frame {fr.get('name', pos)}: box {cat} has x2 < x1 or y2 < y1; swapped")
                x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
            boxes.append([cat, round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)])
            if cat != "hand" and cat not in out["objects"]:
                out["objects"][cat] = str(lab.get("category", cat))
        out["frames"][idx] = boxes
    return out


@dataclass
class MergeSummary:
    out: Path
    parts: list[Path]
    videos: int = 0
    frames: int = 0
    boxes: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)


def find_parts(path: str | os.PathLike[str]) -> list[Path]:
    """The part files: ``path`` itself, or every ``bounding_box_smthsmth_part*.json`` below it."""
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DatasetError(f"{p}: no such file or folder. Give the folder holding {PART_GLOB}.")
    parts = sorted(p.rglob(PART_GLOB), key=lambda q: (len(q.parts), q.as_posix()))
    if not parts:
        parts = sorted(q for q in p.glob("*.json"))
    if not parts:
        raise DatasetError(f"{p}: holds no {PART_GLOB} files. Download the Something-Else box annotations into it.")
    return parts


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: line {exc.lineno} column {exc.colno}: malformed JSON ({exc.msg}). Re-download this part."
        ) from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc


def merge_box_parts(
    parts: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    progress: Callable[[int], None] | None = None,
    on_part: Callable[[Path, int], None] | None = None,
) -> MergeSummary:
    """Merge the official part files into one SQLite file at ``out`` (atomic; a later part wins on duplicates)."""
    if isinstance(parts, (str, os.PathLike)):
        files = find_parts(parts)
    else:
        files = [Path(p) for p in parts]
    out = Path(out).expanduser()
    if out.suffix.lower() in (".json", ".jsonl", ".npz", ".parquet"):
        raise ConfigError(
            f"--out {out}: the merged box file is SQLite (random access by video id from every worker); "
            f"name it e.g. {out.with_suffix('.sqlite')}"
        )
    summary = MergeSummary(out=out, parts=files)
    with atomic_path(out) as tmp:
        con = sqlite3.connect(str(tmp))
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            con.execute("CREATE TABLE videos (video_id TEXT PRIMARY KEY, num_frames INTEGER, data TEXT)")
            for part in files:
                data = _load_json(part)
                if not isinstance(data, dict):
                    raise DatasetError(
                        f"{part}: expected an object mapping video ids to frame lists, got {type(data).__name__}"
                    )
                if on_part:
                    on_part(part, len(data))
                batch = []
                for vid, frames in data.items():
                    v = parse_video(str(vid), frames, where=str(part), problems=summary.problems)
                    summary.frames += len(v["frames"])
                    summary.boxes += sum(len(b) for b in v["frames"].values())
                    batch.append(
                        (str(vid), len(frames) if isinstance(frames, list) else 0, json.dumps(v, separators=(",", ":")))
                    )
                    if len(batch) >= 2000:
                        summary.duplicates += _insert(con, batch)
                        if progress:
                            progress(len(batch))
                        batch = []
                summary.duplicates += _insert(con, batch)
                if progress and batch:
                    progress(len(batch))
                del data
            summary.videos = con.execute("SELECT COUNT(*) FROM videos").fetchone()[0]
            meta = {
                "format": FORMAT,
                "version": str(FORMAT_VERSION),
                "annotation_fps": str(ANNOTATION_FPS),
                "parts": json.dumps([p.name for p in files]),
            }
            con.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
            con.commit()
        finally:
            con.close()
    _STORES.pop(str(out.resolve()), None)
    return summary


def _insert(con: sqlite3.Connection, rows: list[tuple[str, int, str]]) -> int:
    if not rows:
        return 0
    count = "SELECT COUNT(*) FROM videos"
    before = con.execute(count).fetchone()[0]
    con.executemany("INSERT OR REPLACE INTO videos VALUES (?, ?, ?)", rows)
    return len(rows) - (con.execute(count).fetchone()[0] - before)  # ids that replaced an earlier row


# ------------------------------------------------------------------------------------------ stores


class BoxStore:
    """Random access to one video's boxes by id."""

    def get(self, video_id: str) -> VideoBoxes | None:
        raise NotImplementedError

    def ids(self) -> set[str]:
        raise NotImplementedError


class SqliteBoxStore(BoxStore):
    """The merged file; one read-only connection per process (safe with DataLoader workers)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con: sqlite3.Connection | None = None
        self._pid = -1
        con = self._connect()
        try:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise DatasetError(
                f"{path}: not a merged box file ({exc}). Make one with `vidrec prepare something-else`."
            ) from exc
        if meta.get("format") != FORMAT:
            raise DatasetError(f"{path}: not a merged box file. Make one with `vidrec prepare something-else`.")

    def _connect(self) -> sqlite3.Connection:
        if self._con is None or self._pid != os.getpid():
            uri = f"file:{self.path.resolve().as_posix()}?mode=ro&immutable=1"
            self._con = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._pid = os.getpid()
        return self._con

    def get(self, video_id: str) -> VideoBoxes | None:
        row = self._connect().execute("SELECT data FROM videos WHERE video_id = ?", (str(video_id),)).fetchone()
        if row is None:
            return None
        v = json.loads(row[0])
        v["frames"] = {int(k): b for k, b in v["frames"].items()}
        return v

    def ids(self) -> set[str]:
        return {r[0] for r in self._connect().execute("SELECT video_id FROM videos")}

    def __getstate__(self) -> dict[str, Any]:  # connections do not cross process boundaries
        return {"path": self.path, "_con": None, "_pid": -1}


class JsonBoxStore(BoxStore):
    """The raw part files, loaded into memory (fine for small sets; merge the full annotations instead)."""

    def __init__(self, parts: list[Path]) -> None:
        self.parts = parts
        self._data: dict[str, VideoBoxes] | None = None

    def _load(self) -> dict[str, VideoBoxes]:
        if self._data is None:
            data: dict[str, VideoBoxes] = {}
            for part in self.parts:
                raw = _load_json(part)
                if not isinstance(raw, dict):
                    raise DatasetError(f"{part}: expected an object mapping video ids to frame lists")
                for vid, frames in raw.items():
                    data[str(vid)] = parse_video(str(vid), frames, where=str(part))
            self._data = data
        return self._data

    def get(self, video_id: str) -> VideoBoxes | None:
        return self._load().get(str(video_id))

    def ids(self) -> set[str]:
        return set(self._load())


_STORES: dict[str, BoxStore] = {}


def open_box_store(path: str | os.PathLike[str]) -> BoxStore:
    """A merged SQLite file, a part file, or a folder of parts (cached per process)."""
    p = Path(path).expanduser()
    key = str(p.resolve())
    store = _STORES.get(key)
    if store is None:
        if p.is_file():
            with open(p, "rb") as f:
                head = f.read(16)
            store = SqliteBoxStore(p) if head == _SQLITE_MAGIC else JsonBoxStore([p])
        elif p.is_dir():
            store = JsonBoxStore(find_parts(p))
        else:
            raise DatasetError(
                f"data.boxes: {p} not found. "
                "Give the merged file from `vidrec prepare something-else` or the parts folder."
            )
        _STORES[key] = store
    return store


# ------------------------------------------------------------------------------------------ side input


def object_order(objects: Iterable[str]) -> list[str]:
    """Placeholder ids in a stable order: numeric ids by value ('0000' → 0), others after, by name."""
    ids = list(objects)
    return sorted(ids, key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s))


class BoxesSideInput:
    """``(record, indices, info) -> {hand_boxes, hand_mask, object_boxes, object_mask}`` aligned with ``indices``.

    The record's ``meta["boxes_file"]`` names the box store and ``meta.get("boxes_id")`` its id
    (default: ``video_id``); ``meta["frame_size"]`` (width, height of the original video, from a
    scan index) takes precedence over the decoder's size, so boxes stay right on resized frame folders.
    """

    def __init__(
        self,
        *,
        max_objects: int = 4,
        max_hands: int = 2,
        annotation_fps: float = ANNOTATION_FPS,
        boxes_file: str | os.PathLike[str] | None = None,
    ) -> None:
        if max_objects < 1 or max_hands < 1:
            raise ValueError("max_objects and max_hands must be at least 1")
        self.max_objects = max_objects
        self.max_hands = max_hands
        self.annotation_fps = annotation_fps
        self.boxes_file = boxes_file
        self.clipped = 0  # boxes outside the frame, clipped (this process)
        self.missing = 0  # samples whose video has no annotation at all
        self._warned: set[str] = set()

    def annotation_index(self, i: int, fps: float | None, is_folder: bool) -> int:
        if is_folder or not fps or abs(fps - self.annotation_fps) < 0.5:
            return int(i)
        return int(round(i * self.annotation_fps / fps))

    def __call__(self, record: Any, indices: list[int], info: Any) -> dict[str, torch.Tensor]:
        import torch

        t = len(indices)
        hands = torch.zeros(t, self.max_hands, 4)
        hand_mask = torch.zeros(t, self.max_hands, dtype=torch.bool)
        objs = torch.zeros(t, self.max_objects, 4)
        obj_mask = torch.zeros(t, self.max_objects, dtype=torch.bool)
        out = {"hand_boxes": hands, "hand_mask": hand_mask, "object_boxes": objs, "object_mask": obj_mask}
        src = record.meta.get("boxes_file") or self.boxes_file
        if not src:
            return out
        vid = str(record.meta.get("boxes_id", record.video_id))
        boxes = open_box_store(src).get(vid)
        if boxes is None:
            self.missing += 1
            return out
        w, h = record.meta.get("frame_size") or (info.width, info.height)
        w, h = float(w), float(h)
        slots = {oid: k for k, oid in enumerate(object_order(boxes["objects"])[: self.max_objects])}
        is_folder = Path(record.path).is_dir()
        fps = record.fps or getattr(info, "fps", None)
        for row, i in enumerate(indices):
            frame = boxes["frames"].get(self.annotation_index(i, fps, is_folder))
            if not frame:
                continue
            n_hands = 0
            for cat, x1, y1, x2, y2 in frame:
                if x1 < -1 or y1 < -1 or x2 > w + 1 or y2 > h + 1:
                    self.clipped += 1
                    if vid not in self._warned:
                        self._warned.add(vid)
                        log.warning(
                            "video %s frame %d: box %s (%.0f, %.0f, %.0f, %.0f) lies outside the %dx%d frame; clipped",
                            vid,
                            i,
                            cat,
                            x1,
                            y1,
                            x2,
                            y2,
                            w,
                            h,
                        )
                box = torch.tensor([x1 / w, y1 / h, x2 / w, y2 / h]).clamp_(0.0, 1.0)
                if box[2] <= box[0] or box[3] <= box[1]:
                    continue  # nothing left inside the frame
                if cat == "hand":
                    if n_hands < self.max_hands:
                        hands[row, n_hands] = box
                        hand_mask[row, n_hands] = True
                        n_hands += 1
                elif cat in slots:
                    objs[row, slots[cat]] = box
                    obj_mask[row, slots[cat]] = True
        return out


@register_side_input("hand_boxes", "hand_mask", "object_boxes", "object_mask")
def _boxes_factory(cfg: Any, spec: Any, recordset: Any) -> BoxesSideInput:
    info = getattr(recordset, "info", None) or {}
    return BoxesSideInput(max_objects=int(info.get("max_objects", 4)), boxes_file=info.get("boxes"))
