"""Frame-only datasets: with data.frames_root a record is found when its frame folder exists, whatever the video.

Frame files are read in sorted order, whatever their naming: ``000001.jpg`` (vidrec prepare frames),
``0001.jpg`` (Something-Else), ``img_00001.jpg`` (MMAction2's rawframes).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures_datasets import (
    HMDB_CLASSES,
    SE_FRAMES,
    SE_SIZE,
    UCF_CLASSES,
    UCF_CLIPS,
    UCF_GROUPS,
    make_hmdb51,
    make_something_else,
    make_ucf101,
)
from tests.test_ssv2 import TEST, TRAIN, VAL
from tests.test_ssv2 import _write as write_ssv2
from vidrec.data.boxes import BoxesSideInput
from vidrec.data.records import load_records
from vidrec.video.decode import AutoDecoder


def write_frames(folder: Path, n: int, pattern: str, size: tuple[int, int] = (16, 24)) -> Path:
    """``n`` (<= 24) JPEG frames; frame i is flat grey 10 + 10*i, so a decoded value tells the frame's position."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((*size, 3), 10 + 10 * i, np.uint8)).save(folder / pattern.format(i + 1), quality=95)
    return folder


def positions(clip) -> list[int]:
    """The position in its folder of each decoded frame (see :func:`write_frames`)."""
    return [round((float(f.float().mean()) - 10) / 10) for f in clip]


def test_ssv2_frame_folders_without_videos(tmp_path: Path) -> None:
    root = write_ssv2(tmp_path / "ssv2")
    shutil.rmtree(root / "20bn-something-something-v2")  # the videos were deleted after extraction
    frames = tmp_path / "frames"
    for e in TRAIN + VAL + TEST:
        if e["id"] != "13":
            write_frames(frames / e["id"], 3, "{:04d}.jpg")  # Something-Else's naming: 0001.jpg
    rs = load_records("ssv2", root, frames_root=frames)
    assert {k: len(v) for k, v in rs.subsets.items()} == {"train": 3, "val": 2, "test": 2}
    assert all(r.path == frames / r.video_id for recs in rs.subsets.values() for r in recs)
    assert all("video_path" not in r.meta for r in rs.subsets["train"])
    assert len(rs.problems) == 1 and "frame folder 13 (listed in something-something-v2-train.json" in rs.problems[0]
    clip = AutoDecoder().decode(rs.subsets["train"][0].path, [2, 0, 1])
    assert positions(clip) == [2, 0, 1]


def test_ssv2_data_frames_without_videos(tmp_path: Path) -> None:
    """data.frames=true reads 20bn-something-something-v2-frames/<id>/ under the root, with no video left."""
    root = write_ssv2(tmp_path / "ssv2")
    shutil.rmtree(root / "20bn-something-something-v2")
    for e in TRAIN + VAL + TEST:
        write_frames(root / "20bn-something-something-v2-frames" / e["id"], 2, "{:04d}.jpg")
    rs = load_records("ssv2", root, frames=True)
    assert rs.problems == [] and {k: len(v) for k, v in rs.subsets.items()} == {"train": 4, "val": 2, "test": 2}
    assert all(r.path.is_dir() for r in rs.subsets["val"])


def test_ssv2_frames_root_remembers_the_video_when_it_is_there(tmp_path: Path) -> None:
    root = write_ssv2(tmp_path / "ssv2")
    (root / "20bn-something-something-v2" / "11.webm").unlink()
    frames = tmp_path / "frames"
    for e in TRAIN:
        write_frames(frames / e["id"], 2, "{:06d}.jpg")
    rs = load_records("ssv2", root, frames_root=frames)
    train = {r.video_id: r for r in rs.subsets["train"]}
    assert set(train) == {"11", "12", "13", "14"}  # 11 has frames but no video: found all the same
    assert "video_path" not in train["11"].meta
    assert train["12"].meta["video_path"] == str(root / "20bn-something-something-v2" / "12.webm")


def test_something_else_frames_only_with_aligned_boxes(tmp_path: Path) -> None:
    paths = make_something_else(tmp_path / "ssv2")
    shutil.rmtree(paths["root"] / "20bn-something-something-v2")
    frames = tmp_path / "frames"
    ids = ["101", "102", "103", "104", "105", "106"]
    for vid in ids:
        write_frames(frames / vid, SE_FRAMES, "{:04d}.jpg", size=SE_SIZE)  # as Something-Else ships them
    rs = load_records(
        "something_else", paths["root"], splits_dir=paths["splits"], boxes=paths["parts"], frames_root=frames
    )
    assert rs.problems == []
    assert sorted(r.video_id for r in rs.subsets["train"] + rs.subsets["val"]) == ids
    rec = next(r for r in rs.subsets["val"] if r.video_id == "101")
    assert rec.path == frames / "101"
    decoder = AutoDecoder()
    info = decoder.info(rec.path)
    assert info.num_frames == SE_FRAMES
    indices = [0, 7, 12, 23]
    out = BoxesSideInput(max_objects=2)(rec, indices, info)
    _h, w = SE_SIZE
    for row, t in enumerate(indices):  # annotation NNNN.jpg is frame NNNN - 1: the fixture's hand sits at x1 = t
        assert out["hand_mask"][row, 0]
        assert out["hand_boxes"][row, 0, 0].item() == pytest.approx(t / w)
    assert positions(decoder.decode(rec.path, [0, 7, 23])) == [0, 7, 23]


def test_ucf101_frames_only_in_mmaction2_naming(tmp_path: Path) -> None:
    root = make_ucf101(tmp_path / "ucf101")
    frames = tmp_path / "rawframes"
    for v in sorted((root / "UCF-101").rglob("*.avi")):  # <frames>/UCF-101/<Class>/<stem>/img_00001.jpg
        write_frames(frames / v.relative_to(root).with_suffix(""), 2, "img_{:05d}.jpg")
    shutil.rmtree(root / "UCF-101")
    rs = load_records("ucf101", root, split=1, frames_root=frames)
    assert rs.problems == []
    assert len(rs.subsets["train"]) == len(UCF_CLASSES) * (len(UCF_GROUPS) - 1) * len(UCF_CLIPS)
    for r in rs.subsets["train"] + rs.subsets["test"]:
        assert r.path.is_dir() and rs.classes[r.label] == r.path.parent.name and r.meta["group"].startswith("g")
    assert rs.info["video_root"] is None and rs.info["frames_root"] == str(frames)
    assert positions(AutoDecoder().decode(rs.subsets["test"][0].path, [1, 0])) == [1, 0]
    # a frame folder missing: a problem that says which, and how to make it
    shutil.rmtree(rs.subsets["test"][0].path)
    rs = load_records("ucf101", root, split=1, frames_root=frames)
    assert len(rs.problems) == 1 and "testlist01.txt: line 1: no frame folder for" in rs.problems[0]
    assert "vidrec prepare frames" in rs.problems[0]


def test_hmdb51_frames_only_flat_by_video_name(tmp_path: Path) -> None:
    root = make_hmdb51(tmp_path / "hmdb51")
    frames = tmp_path / "frames"
    for v in sorted((root / "hmdb51_org").rglob("*.avi")):  # <frames>/<video stem>/ (no class folders)
        write_frames(frames / v.stem, 1, "{:06d}.jpg")
    shutil.rmtree(root / "hmdb51_org")
    rs = load_records("hmdb51", root, split=2, frames_root=frames)
    assert rs.problems == [] and len(rs.subsets["test"]) == len(HMDB_CLASSES)
    assert all(r.path.parent == frames for r in rs.subsets["train"])
    # without frames_root and without videos: one clear error
    from vidrec.errors import DatasetError

    with pytest.raises(DatasetError, match="no folder with the class folders"):
        load_records("hmdb51", root, split=2)
