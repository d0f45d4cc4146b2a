"""Something-Something-v2 loader on tiny fixtures written in the official format."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from vidrec.data.records import load_records
from vidrec.data.ssv2 import load_ssv2
from vidrec.errors import ConfigError, DatasetError
from vidrec.video.encode import write_video

LABELS = {  # index order differs from alphabetical and file order on purpose
    "Putting something into something": "2",
    "Moving something up": "0",
    "Pushing something from left to right": "1",
}
TRAIN = [
    {"id": "11", "label": "moving pen up", "template": "Moving [something] up", "placeholders": ["pen"]},
    {
        "id": "12",
        "label": "putting pen into cup",
        "template": "Putting [something] into [something]",
        "placeholders": ["pen", "cup"],
    },
    {
        "id": "13",
        "label": "pushing box from left to right",
        "template": "Pushing [something] from left to right",
        "placeholders": ["box"],
    },
    {"id": "14", "label": "moving a cup up", "template": "Moving [something] up", "placeholders": ["a cup"]},
]
VAL = [
    {
        "id": "21",
        "label": "pushing pen from left to right",
        "template": "Pushing [something] from left to right",
        "placeholders": ["pen"],
    },
    {
        "id": "22",
        "label": "putting coin into box",
        "template": "Putting [something] into [something]",
        "placeholders": ["coin", "box"],
    },
]
TEST = [{"id": "31"}, {"id": "32"}]


def _write(
    root: Path,
    *,
    ann: str = "annotations",
    short: bool = False,
    labels=LABELS,
    train=TRAIN,
    val=VAL,
    test=TEST,
    skip=(),
) -> Path:
    a = root / ann
    a.mkdir(parents=True, exist_ok=True)
    prefix = "" if short else "something-something-v2-"
    for name, obj in (("labels", labels), ("train", train), ("validation", val), ("test", test)):
        if obj is not None:
            (a / f"{prefix}{name}.json").write_text(json.dumps(obj))
    vids = root / "20bn-something-something-v2"
    vids.mkdir(parents=True, exist_ok=True)
    ids = [e["id"] for e in (train or []) + (val or []) + (test or []) if e["id"] not in skip]
    src = vids / f"{ids[0]}.webm"
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    write_video(src, frames, fps=12)
    for i in ids[1:]:
        (vids / f"{i}.webm").write_bytes(src.read_bytes())
    return root


def test_classes_subsets_and_template_matching(tmp_path: Path) -> None:
    root = _write(tmp_path)
    rs = load_records("ssv2", root)
    assert rs.problems == []
    assert rs.classes == [
        "Moving something up",
        "Pushing something from left to right",
        "Putting something into something",
    ]
    assert {k: len(v) for k, v in rs.subsets.items()} == {"train": 4, "val": 2, "test": 2}
    labels = {r.video_id: r.label for r in rs.subsets["train"]}
    assert labels == {"11": 0, "12": 2, "13": 1, "14": 0}
    r = rs.subsets["train"][1]
    assert r.path == root / "20bn-something-something-v2" / "12.webm"
    assert r.meta["template"] == "Putting [something] into [something]" and r.meta["placeholders"] == ["pen", "cup"]
    assert r.meta["label_text"] == "putting pen into cup"
    assert [r.label for r in rs.subsets["test"]] == [-1, -1]
    assert rs.info["annotations"] == root / "annotations"


def test_download_package_names_and_explicit_folders(tmp_path: Path) -> None:
    root = _write(tmp_path / "a", ann="20bn-something-something-download-package-labels/labels", short=True)
    rs = load_ssv2(root)
    assert rs.problems == [] and len(rs.subsets["train"]) == 4
    # annotations and videos elsewhere, named explicitly
    other = _write(tmp_path / "b", ann="my_labels")
    rs = load_ssv2(tmp_path, annotations=other / "my_labels", videos=other / "20bn-something-something-v2")
    assert len(rs.subsets["val"]) == 2
    with pytest.raises(DatasetError, match="no Something-Something-v2 labels file"):
        load_ssv2(tmp_path / "b" / "20bn-something-something-v2")
    with pytest.raises(DatasetError, match="not a folder"):
        load_ssv2(other, annotations="my_labels", videos=other / "nope")
    with pytest.raises(ConfigError, match="one official split"):
        load_ssv2(other, split=2)


def test_frame_folders(tmp_path: Path) -> None:
    root = _write(tmp_path)
    frames = root / "20bn-something-something-v2-frames"
    for e in TRAIN + VAL + TEST:
        (frames / e["id"]).mkdir(parents=True)
        (frames / e["id"] / "000001.jpg").write_bytes(b"")
    rs = load_ssv2(root, frames=True)
    assert rs.problems == []
    assert all(r.path.parent == frames and r.path.name == r.video_id for r in rs.subsets["train"])


def test_bad_json_names_the_file_and_line(tmp_path: Path) -> None:
    root = _write(tmp_path)
    bad = root / "annotations" / "something-something-v2-train.json"
    bad.write_text('[\n  {"id": "11", "template": "Moving [something] up"},\n  {"id": \n')
    rs = load_ssv2(root)
    assert "train" in rs.subsets and rs.subsets["train"] == [] and len(rs.subsets["val"]) == 2
    assert len(rs.problems) == 1
    assert f"{bad}:4:" in rs.problems[0] and "not valid JSON" in rs.problems[0]
    with pytest.raises(DatasetError, match=r"something-something-v2-train\.json:4:\d+: not valid JSON"):
        load_ssv2(root, strict=True)
    (root / "annotations" / "something-something-v2-labels.json").write_text("{oops")
    with pytest.raises(DatasetError, match=r"labels\.json:1:2: not valid JSON"):
        load_ssv2(root)


def test_unknown_template(tmp_path: Path) -> None:
    train = TRAIN + [
        {"id": "15", "label": "juggling balls", "template": "Juggling [something]", "placeholders": ["balls"]}
    ]
    root = _write(tmp_path, train=train)
    rs = load_ssv2(root)
    assert [r.video_id for r in rs.subsets["train"]] == ["11", "12", "13", "14"]
    assert len(rs.problems) == 1
    msg = rs.problems[0]
    assert (
        "id 15" in msg
        and "'Juggling [something]'" in msg
        and "something-something-v2-labels.json" in msg
        and "entry 4" in msg
    )
    with pytest.raises(DatasetError, match="matches no class"):
        load_ssv2(root, strict=True)


def test_missing_video_is_skipped_and_counted(tmp_path: Path) -> None:
    root = _write(tmp_path, skip=("13", "21"))
    rs = load_ssv2(root)
    assert [r.video_id for r in rs.subsets["train"]] == ["11", "12", "14"]
    assert [r.video_id for r in rs.subsets["val"]] == ["22"]
    assert rs.info["missing"] == {"train": 1, "val": 1, "test": 0}
    assert len(rs.problems) == 2 and "video 13" in rs.problems[0] and "skipped" in rs.problems[0]
    with pytest.raises(DatasetError, match="video 13"):
        load_ssv2(root, strict=True)


def test_many_missing_videos_are_summarised(tmp_path: Path) -> None:
    train = [
        {"id": str(100 + i), "label": "x", "template": "Moving [something] up", "placeholders": ["x"]}
        for i in range(30)
    ]
    root = _write(tmp_path, train=train, skip=tuple(str(100 + i) for i in range(1, 30)))
    rs = load_ssv2(root)
    assert len(rs.subsets["train"]) == 1 and rs.info["missing"]["train"] == 29
    assert len(rs.problems) == 11 and "29 videos" in rs.problems[-1]


def test_duplicate_label_indices(tmp_path: Path) -> None:
    labels = {**LABELS, "Moving something down": "1"}
    root = _write(tmp_path, labels=labels)
    rs = load_ssv2(root)
    assert any("index 1 is given to both" in p and "Moving something down" in p for p in rs.problems)
    assert len(rs.classes) == 3
    with pytest.raises(DatasetError, match="index 1 is given to both"):
        load_ssv2(root, strict=True)


def test_nothing_is_written_into_the_root(tmp_path: Path) -> None:
    root = _write(tmp_path, skip=("13",))
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    os.chmod(root, 0o555)
    try:
        load_ssv2(root)
        load_ssv2(root, frames=True)
    finally:
        os.chmod(root, 0o755)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_loads_many_records_without_touching_each_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 20_000
    train = [
        {"id": str(i), "label": "moving x up", "template": "Moving [something] up", "placeholders": ["x"]}
        for i in range(n)
    ]
    a = tmp_path / "annotations"
    a.mkdir()
    (a / "something-something-v2-labels.json").write_text(json.dumps(LABELS))
    (a / "something-something-v2-train.json").write_text(json.dumps(train))
    (a / "something-something-v2-validation.json").write_text("[]")
    vids = tmp_path / "20bn-something-something-v2"
    vids.mkdir()
    for i in range(n):
        os.close(os.open(vids / f"{i}.webm", os.O_CREAT | os.O_WRONLY))
    calls = {"stat": 0}
    real_stat = os.stat

    def counting_stat(*args, **kwargs):
        calls["stat"] += 1
        return real_stat(*args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    t0 = time.perf_counter()
    rs = load_ssv2(tmp_path)
    seconds = time.perf_counter() - t0
    monkeypatch.undo()
    assert len(rs.subsets["train"]) == n and rs.problems == []
    assert calls["stat"] < 30, f"{calls['stat']} stat calls for {n} records: one directory listing must do"
    assert seconds < 10.0, f"{n} records took {seconds:.2f} s"


def test_scan_index_fills_frame_counts_and_drops_unreadable_videos(tmp_path: Path) -> None:
    from vidrec.data.scan import scan_videos, write_index

    root = _write(tmp_path / "ssv2")
    broken = sorted((root / "20bn-something-something-v2").glob("*.webm"))[-1]
    broken.write_bytes(b"not a video")
    index = write_index(scan_videos(root / "20bn-something-something-v2"), tmp_path / "index.parquet")
    plain = load_ssv2(root)
    rs = load_ssv2(root, index=index)
    n_plain = sum(len(v) for v in plain.subsets.values())
    n_indexed = sum(len(v) for v in rs.subsets.values())
    assert n_indexed == n_plain - 1
    assert any(broken.stem in p and "unreadable per the scan index" in p for p in rs.problems)
    rec = next(r for v in rs.subsets.values() for r in v)
    assert rec.num_frames == 4 and rec.fps == pytest.approx(12) and tuple(rec.meta["frame_size"]) == (32, 32)
