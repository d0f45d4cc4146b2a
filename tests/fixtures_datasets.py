"""Tiny datasets in the exact official layouts and line formats, with real (tiny) videos.

Each builder writes a few distinct real videos with :func:`vidrec.video.encode.write_video`
and copies their bytes for the rest (a copy is as real a video as the original, and fast).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from vidrec.video.encode import write_video

# ---------------------------------------------------------------------------------------- videos

_SOURCES: dict[tuple[str, int, int, int], Path] = {}


def tiny_video(
    path: Path, *, frames: int = 12, size: tuple[int, int] = (32, 48), seed: int = 0, fps: float = 12.0
) -> Path:
    """A real video at ``path``: moving bright square on noise (H×W = ``size``)."""
    key = (path.suffix.lower(), frames, size[0] * 10000 + size[1], seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    src = _SOURCES.get(key)
    if src is not None and src.exists():
        shutil.copyfile(src, path)
        return path
    rng = np.random.default_rng(seed)
    h, w = size
    arr = rng.integers(0, 60, (frames, h, w, 3), dtype=np.uint8)
    for t in range(frames):
        x = int((w - 8) * t / max(frames - 1, 1))
        arr[t, h // 2 - 4 : h // 2 + 4, x : x + 8] = 255
    write_video(path, arr, fps=fps)
    _SOURCES[key] = path
    return path


def crlf(lines: list[str]) -> str:
    return "".join(line + "\r\n" for line in lines)


# ---------------------------------------------------------------------------------------- UCF101

# classInd order on purpose not alphabetical: the loader must follow the file.
UCF_CLASSES = ["Basketball", "ApplyEyeMakeup", "HandstandPushups"]
UCF_GROUPS = (1, 2, 3, 4)
UCF_CLIPS = (1, 2)


def ucf_file_class(cls: str) -> str:
    # the official archive spells this one differently inside the file names
    return "HandStandPushups" if cls == "HandstandPushups" else cls


def make_ucf101(root: Path) -> Path:
    """``root/UCF-101/<Class>/v_<Class>_gNN_cMM.avi`` + ``root/ucfTrainTestlist/*`` (CRLF, like the official files).

    Split k: group k is test, the other groups train. 3 classes × 4 groups × 2 clips = 24 videos.
    """
    vids = root / "UCF-101"
    for ci, cls in enumerate(UCF_CLASSES):
        for g in UCF_GROUPS:
            for c in UCF_CLIPS:
                tiny_video(vids / cls / f"v_{ucf_file_class(cls)}_g{g:02d}_c{c:02d}.avi", seed=ci)
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_text(crlf([f"{i + 1} {c}" for i, c in enumerate(UCF_CLASSES)]))
    for k in (1, 2, 3):
        train, test = [], []
        for ci, cls in enumerate(UCF_CLASSES):
            for g in UCF_GROUPS:
                for c in UCF_CLIPS:
                    rel = f"{cls}/v_{ucf_file_class(cls)}_g{g:02d}_c{c:02d}.avi"
                    (test.append(rel) if g == k else train.append(f"{rel} {ci + 1}"))
        (lists / f"trainlist0{k}.txt").write_text(crlf(train))
        (lists / f"testlist0{k}.txt").write_text(crlf(test))
    return root


# ---------------------------------------------------------------------------------------- HMDB51

HMDB_CLASSES = ["brush_hair", "cartwheel", "catch"]  # sorted: the standard order
HMDB_VIDEOS = 5  # per class


def hmdb_name(cls: str, i: int) -> str:
    return f"April_09_{cls}_u_nm_np1_ba_goo_{i}.avi"


def hmdb_assignment(split: int, i: int) -> str:
    """1 train / 2 test / 0 unused, different per split: video (split-1) is test, the last is unused."""
    if i == HMDB_VIDEOS - 1:
        return "0"
    return "2" if i == split - 1 else "1"


def make_hmdb51(root: Path) -> Path:
    """``root/hmdb51_org/<class>/<video>.avi`` + ``root/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt``."""
    for ci, cls in enumerate(HMDB_CLASSES):
        for i in range(HMDB_VIDEOS):
            tiny_video(root / "hmdb51_org" / cls / hmdb_name(cls, i), seed=10 + ci)
    sdir = root / "testTrainMulti_7030_splits"
    sdir.mkdir(parents=True, exist_ok=True)
    for cls in HMDB_CLASSES:
        for k in (1, 2, 3):
            # the official lines end with a space
            lines = [f"{hmdb_name(cls, i)} {hmdb_assignment(k, i)} " for i in range(HMDB_VIDEOS)]
            (sdir / f"{cls}_test_split{k}.txt").write_text("\n".join(lines) + "\n")
    return root


# ---------------------------------------------------------------------------------------- folder


def make_folder(root: Path, *, classes: int = 3, groups: int = 5, clips: int = 2) -> Path:
    """``root/<class>/<name>_gNN_cMM.mp4``: UCF-style group names."""
    for ci in range(classes):
        for g in range(1, groups + 1):
            for c in range(1, clips + 1):
                tiny_video(root / f"class_{ci}" / f"clip_g{g:02d}_c{c:02d}.mp4", seed=20 + ci)
    return root


# ---------------------------------------------------------------------------------------- Something-Else

SE_TEMPLATES = [
    "Pushing [something] from left to right",
    "Pushing [something] from right to left",
    "Picking [something] up",
]
SE_FRAMES = 24
SE_SIZE = (32, 48)  # H, W of the tiny videos


def se_boxes(video_id: str, frames: int = SE_FRAMES, *, outside: bool = False) -> list[dict]:
    """Per-frame entries in the Something-Else format; frame t has a hand at x=t and object 0000 at x=t+1.

    Frame 3 has no boxes at all (annotators skip frames); with ``outside`` frame 5's hand box
    runs past the right edge.
    """
    out = []
    for t in range(frames):
        labels = []
        if t != 3:
            labels.append(
                {
                    "box2d": {"x1": float(t), "y1": 2.0, "x2": float(t + 10), "y2": 12.0},
                    "category": "hand",
                    "gt_annotation": "object hand",
                    "standard_category": "hand",
                }
            )
            labels.append(
                {
                    "box2d": {"x1": float(t + 1), "y1": 4.0, "x2": float(t + 7), "y2": 10.0},
                    "category": "a cup",
                    "gt_annotation": "object 0",
                    "standard_category": "0000",
                }
            )
            if t % 2 == 0:
                labels.append(
                    {
                        "box2d": {"x1": 1.0, "y1": 1.0, "x2": 5.0, "y2": 5.0},
                        "category": "table",
                        "gt_annotation": "object 1",
                        "standard_category": "0001",
                    }
                )
        if outside and t == 5:
            labels[0]["box2d"] = {"x1": 40.0, "y1": -3.0, "x2": 60.0, "y2": 12.0}
        out.append(
            {
                "name": f"{video_id}/{t + 1:04d}.jpg",
                "labels": labels,
                "gt_placeholders": ["a cup", "table"],
                "nr_instances": len(labels),
            }
        )
    return out


def make_something_else(
    root: Path, *, ids: tuple[str, ...] = ("101", "102", "103", "104", "105", "106")
) -> dict[str, Path]:
    """SSv2 layout (videos + labels/train/validation JSON), box parts and both split lists.

    Returns the paths: ``root`` (videos + annotations), ``parts`` (box part files), ``splits``
    (``compositional/`` and ``shuffled/`` with train.json, validation.json, labels.json).
    """
    vids = root / "20bn-something-something-v2"
    ann = root / "labels"
    ann.mkdir(parents=True, exist_ok=True)
    for i, vid in enumerate(ids):
        tiny_video(vids / f"{vid}.webm", frames=SE_FRAMES, size=SE_SIZE, seed=30 + i % 2)
    labels = {t.replace("[", "").replace("]", ""): str(i) for i, t in enumerate(SE_TEMPLATES)}
    (ann / "something-something-v2-labels.json").write_text(json.dumps(labels, indent=1))

    def entry(vid: str, k: int) -> dict:
        t = SE_TEMPLATES[k % len(SE_TEMPLATES)]
        return {"id": vid, "label": t.replace("[something]", "a cup").lower(), "template": t, "placeholders": ["a cup"]}

    half = len(ids) // 2
    (ann / "something-something-v2-train.json").write_text(json.dumps([entry(v, i) for i, v in enumerate(ids[:half])]))
    (ann / "something-something-v2-validation.json").write_text(
        json.dumps([entry(v, i + half) for i, v in enumerate(ids[half:])])
    )
    (ann / "something-something-v2-test.json").write_text(json.dumps([]))
    parts = root.parent / (root.name + "_boxes")
    parts.mkdir(parents=True, exist_ok=True)
    (parts / "bounding_box_smthsmth_part1.json").write_text(
        json.dumps({v: se_boxes(v, outside=(v == ids[0])) for v in ids[:3]})
    )
    (parts / "bounding_box_smthsmth_part2.json").write_text(json.dumps({v: se_boxes(v) for v in ids[3:]}))
    splits = root.parent / (root.name + "_splits")
    se_labels = {t.replace("[", "").replace("]", ""): i for i, t in enumerate(SE_TEMPLATES)}
    for name, train_ids in (("compositional", ids[1:4]), ("shuffled", ids[:4])):
        d = splits / name
        d.mkdir(parents=True, exist_ok=True)
        rest = [v for v in ids if v not in train_ids]
        (d / "train.json").write_text(json.dumps([entry(v, ids.index(v)) for v in train_ids]))
        (d / "validation.json").write_text(json.dumps([entry(v, ids.index(v)) for v in rest]))
        (d / "labels.json").write_text(json.dumps(se_labels))
    return {"root": root, "parts": parts, "splits": splits}


# ---------------------------------------------------------------------------------------- Kinetics

K_CLASSES = ["abseiling", "air drumming", "passing American football (in game)"]  # sorted, as the label map
# YouTube ids are 11 characters and may hold '-' and '_'
K_TRAIN = [
    ("--07WQ2iBlw", 1, 11, 0),
    ("a_b-c_d_e_f", 30, 40, 0),
    ("0wR5jVB-WPk", 417, 427, 1),
    ("3caPS4FHFF8", 36, 46, 1),
    ("ZZ_-9aX_3rQ", 5, 15, 2),
    ("-zbOBl8rU8Q", 0, 10, 2),
]
K_VAL = [("4YDv9kCE4xM", 42, 52, 0), ("b_X-7mYy_Bo", 12, 22, 1), ("DnR1yPa-Yqk", 100, 110, 2)]
K_TEST = [("aaaaaaaaaaa", 3, 13), ("b-b-b-b-b-b", 7, 17)]


def kinetics_name(yt: str, start: int, end: int, *, padded: bool = True) -> str:
    return f"{yt}_{start:06d}_{end:06d}.mp4" if padded else f"{yt}_{start}_{end}.mp4"


def make_kinetics(root: Path, *, layout: str = "split_label") -> Path:
    """Kinetics-400 as downloaded: the official CSVs in ``annotations/`` and the clips.

    ``layout``: ``split_label`` writes ``<split>/<label>/<id>_<start:06d>_<end:06d>.mp4`` (ActivityNet's
    downloader; one class folder spelled with underscores, as MMAction2's renaming script leaves it),
    ``flat`` writes every clip into ``videos/`` with unpadded times (``<id>_<start>_<end>.mp4``).
    """
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    head = "label,youtube_id,time_start,time_end,split,is_cc"
    for name, split, rows in (("train.csv", "train", K_TRAIN), ("validate.csv", "val", K_VAL)):
        lines = [head] + [f'"{K_CLASSES[c]}",{yt},{s},{e},{split},0' for yt, s, e, c in rows]
        (ann / name).write_text("\n".join(lines) + "\n")
    (ann / "test.csv").write_text(
        "youtube_id,time_start,time_end,split\n" + "".join(f"{yt},{s},{e},test\n" for yt, s, e in K_TEST)
    )
    for split, rows in (("train", K_TRAIN), ("val", K_VAL), ("test", [(*r, None) for r in K_TEST])):
        for i, (yt, s, e, c) in enumerate(rows):
            if layout == "flat":
                dst = root / "videos" / kinetics_name(yt, s, e, padded=False)
            elif c is None:  # the test clips have no label: one folder
                dst = root / "test" / kinetics_name(yt, s, e)
            else:
                folder = K_CLASSES[c].replace(" ", "_") if c == 1 else K_CLASSES[c]
                dst = root / split / folder / kinetics_name(yt, s, e)
            tiny_video(dst, seed=40 + i % 2)
    return root


def data_show_json(*sets: str) -> dict:
    """``vidrec data show --set S ... --json``, through the CLI; the report as a dict (exit status 0 asserted)."""
    from typer.testing import CliRunner

    import vidrec.cli  # noqa: F401  (registers the verbs)
    from vidrec.cli.app import app

    res = CliRunner().invoke(app, ["data", "show", *[a for s in sets for a in ("--set", s)], "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime (to prove nothing was written there)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else 0, st.st_mtime_ns)
    out["."] = (0, root.stat().st_mtime_ns)
    return out
