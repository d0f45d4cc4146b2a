"""Kinetics from its official CSVs, and MMAction2's annotation lists, in their exact published formats."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.fixtures_datasets import (
    K_CLASSES,
    K_TRAIN,
    K_VAL,
    data_show_json,
    kinetics_name,
    make_kinetics,
    snapshot,
    tiny_video,
)
from tests.test_frames_only import positions, write_frames
from vidrec.data.records import load_records
from vidrec.errors import ConfigError, DatasetError
from vidrec.video.decode import AutoDecoder


@pytest.fixture(scope="module")
def k400(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_kinetics(tmp_path_factory.mktemp("data") / "kinetics400")


# ------------------------------------------------------------------------------------------ Kinetics


@pytest.mark.parametrize("layout", ["split_label", "flat"])
def test_kinetics_both_layouts(tmp_path: Path, layout: str) -> None:
    root = make_kinetics(tmp_path / "k400", layout=layout)
    before = snapshot(root)
    rs = load_records("kinetics", root)
    assert rs.problems == []
    assert rs.classes == K_CLASSES  # the train labels, sorted
    assert {k: len(v) for k, v in rs.subsets.items()} == {"train": 6, "val": 3, "test": 2}
    by_id = {r.meta["youtube_id"]: r for r in rs.subsets["train"]}
    assert set(by_id) == {yt for yt, *_ in K_TRAIN}  # ids holding '_' and '-' parse
    for yt, s, e, c in K_TRAIN:
        r = by_id[yt]
        assert r.label == c and r.path.is_file() and r.video_id == kinetics_name(yt, s, e)[:-4]
        assert (r.meta["time_start"], r.meta["time_end"]) == (s, e)
    assert [r.label for r in rs.subsets["test"]] == [-1, -1]
    assert snapshot(root) == before


def test_kinetics_missing_empty_and_bad_lines(k400: Path, tmp_path: Path) -> None:
    root = tmp_path / "k400"
    shutil.copytree(k400, root)
    yt, s, e, c = K_TRAIN[0]
    (root / "train" / K_CLASSES[c] / kinetics_name(yt, s, e)).unlink()  # never downloaded
    yt, s, e, c = K_TRAIN[2]
    (root / "train" / "air_drumming" / kinetics_name(yt, s, e)).write_bytes(b"")  # a failed download
    with open(root / "annotations" / "validate.csv", "a") as f:
        f.write('"juggling fire",abcdefghijk,1,11,val,0\n')  # a label the train CSV does not have
        f.write("abseiling,bcdefghijkl,x,11,val,0\n")  # a bad time
    rs = load_records("kinetics", root)
    text = "\n".join(rs.problems)
    assert len(rs.problems) == 4, text
    assert re.search(r"train\.csv: line 2: clip --07WQ2iBlw_000001_000011 is missing", text)
    assert re.search(r"train\.csv: line 4: clip .*0wR5jVB-WPk_000417_000427\.mp4 is empty \(0 bytes", text)
    assert re.search(r"validate\.csv: line 5: unknown label 'juggling fire'", text)
    assert re.search(r"validate\.csv: line 6: expected youtube_id,time_start,time_end", text)
    assert len(rs.subsets["train"]) == 4 and rs.info["missing"] == {"train": 1, "val": 0, "test": 0}
    with pytest.raises(DatasetError, match="clip --07WQ2iBlw_000001_000011 is missing"):
        load_records("kinetics", root, strict=True)


def test_kinetics_many_missing_clips_are_summarised(k400: Path, tmp_path: Path) -> None:
    root = tmp_path / "k400"
    shutil.copytree(k400, root)
    with open(root / "annotations" / "train.csv", "a") as f:
        for i in range(14):
            f.write(f"abseiling,missing{i:04d}x,{i},{i + 10},train,0\n")
    rs = load_records("kinetics", root)
    assert len(rs.problems) == 11  # ten named, then one line with the count and the share
    assert "train.csv: 14 of 20 clips (70.0 %) are missing in all (first 10 named above)" in rs.problems[-1]


def test_kinetics_label_map_classes_index_and_frames(k400: Path, tmp_path: Path) -> None:
    (tmp_path / "label_map_k400.txt").write_text("\n".join(reversed(K_CLASSES)) + "\n")
    rs = load_records("kinetics", k400, label_map=tmp_path / "label_map_k400.txt")
    assert rs.classes == K_CLASSES[::-1] and rs.problems == []
    assert {r.meta["youtube_id"]: r.label for r in rs.subsets["val"]} == {yt: 2 - c for yt, _, _, c in K_VAL}
    rs = load_records("kinetics", k400, classes=["air drumming", "abseiling"])
    assert rs.classes == ["air drumming", "abseiling"] and rs.info["left_out"] == {"train": 2, "val": 1}
    # frame folders named like the clips, whatever depth, the clips themselves gone
    frames = tmp_path / "frames"
    for yt, s, e, _ in K_TRAIN + K_VAL:
        write_frames(frames / "any" / kinetics_name(yt, s, e)[:-4], 3, "img_{:05d}.jpg")
    rs = load_records("kinetics", k400, frames_root=frames)
    assert {k: len(v) for k, v in rs.subsets.items()} == {"train": 6, "val": 3, "test": 0}
    assert len(rs.problems) == 2 and "frame folder aaaaaaaaaaa_000003_000013 is missing" in rs.problems[0]
    assert positions(AutoDecoder().decode(rs.subsets["val"][0].path, [2, 0])) == [2, 0]


def test_kinetics_without_a_validation_csv(k400: Path, tmp_path: Path) -> None:
    root = tmp_path / "k400"
    shutil.copytree(k400, root)
    (root / "annotations" / "validate.csv").unlink()
    rs = load_records("kinetics", root)
    assert rs.subsets["val"] == [] and len(rs.subsets["train"]) == 6
    assert len(rs.problems) == 1 and "no validate.csv or val.csv or validation.csv found" in rs.problems[0]


def test_kinetics_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no Kinetics annotation CSVs"):
        load_records("kinetics", tmp_path)
    (tmp_path / "train.csv").write_text("label,video,start\nabseiling,x,1\n")
    with pytest.raises(
        DatasetError, match=r"train\.csv: line 1: the header must name youtube_id, time_start, time_end"
    ):
        load_records("kinetics", tmp_path)
    with pytest.raises(ConfigError, match="one official split"):
        load_records("kinetics", tmp_path, split=2)


def test_kinetics_config_and_data_show(k400: Path) -> None:
    from vidrec.config import load_config

    config = Path(__file__).resolve().parents[1] / "configs" / "kinetics400.yaml"
    cfg = load_config(config, overrides=[f"data.root={k400}"], environ={})
    assert cfg.data.dataset == "kinetics"
    rep = data_show_json("data.dataset=kinetics", f"data.root={k400}")
    assert rep["subsets"] == {"train": 6, "val": 3, "test": 2} and rep["classes"] == K_CLASSES
    assert rep["options"]["label_map"] is None and "annotations" in rep["options"]


# ------------------------------------------------------------------------------------------ MMAction2 lists

# The examples of MMAction2's docs (VideoDataset, RawframeDataset), verbatim.
VIDEO_LIST = """some/path/000.mp4 1
some/path/001.mp4 1
some/path/002.mp4 2
some/path/003.mp4 2
some/path/004.mp4 3
some/path/005.mp4 3
"""
RAWFRAMES_LIST = """some/directory-1 163 1
some/directory-2 122 1
some/directory-3 258 2
some/directory-4 234 2
some/directory-5 295 3
some/directory-6 121 3
"""
MULTI_CLASS_LIST = """some/directory-1 163 1 3 5
some/directory-2 122 1 2
some/directory-3 258 2
some/directory-4 234 2 4 6 8
some/directory-5 295 3
some/directory-6 121 3
"""


@pytest.fixture(scope="module")
def mm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mmaction")
    data = root / "data"  # MMAction2's data_prefix
    for i in range(6):
        tiny_video(data / "some" / "path" / f"{i:03d}.mp4", seed=50)
        write_frames(data / "some" / f"directory-{i + 1}", 4, "img_{:05d}.jpg")  # MMAction2's filename_tmpl
    (root / "videos.txt").write_text(VIDEO_LIST)
    (root / "rawframes.txt").write_text(RAWFRAMES_LIST)
    (root / "multi.txt").write_text(MULTI_CLASS_LIST)
    (root / "label_map.txt").write_text("".join(f"class_{i}\n" for i in range(9)))
    return root


@pytest.mark.parametrize("name,fmt", [("videos.txt", "video"), ("rawframes.txt", "rawframes")])
def test_mmaction2_documented_lists(mm: Path, name: str, fmt: str) -> None:
    rs = load_records("list", mm, train_list=name, val_list=name, prefix="data", label_map="label_map.txt")
    assert rs.problems == [] and rs.info["formats"] == {"train": fmt, "val": fmt}
    assert rs.classes == [f"class_{i}" for i in range(9)]
    assert [r.label for r in rs.subsets["train"]] == [1, 1, 2, 2, 3, 3]
    assert len(rs.subsets["val"]) == 6 and rs.subsets["test"] == rs.subsets["val"]
    first = rs.subsets["train"][0]
    if fmt == "video":
        assert first.path == mm / "data" / "some" / "path" / "000.mp4" and first.path.is_file()
    else:
        assert first.path == mm / "data" / "some" / "directory-1" and first.meta["total_frames"] == 163
        assert positions(AutoDecoder().decode(first.path, [3, 1])) == [3, 1]


def test_mmaction2_multi_class_list(mm: Path) -> None:
    rs = load_records("list", mm, train_list="multi.txt", prefix="data", label_map="label_map.txt")
    assert len(rs.subsets["train"]) == 3  # the single-label lines
    assert len(rs.problems) == 3 and "multi.txt: line 1: 3 labels (1 3 5): a multi-label list" in rs.problems[0]
    rs = load_records("list", mm, train_list="multi.txt", prefix="data", label_map="label_map.txt", multi_label=True)
    assert rs.problems == []
    assert [(r.label, r.meta.get("labels")) for r in rs.subsets["train"]] == [
        (1, [1, 3, 5]),
        (1, [1, 2]),
        (2, None),
        (2, [2, 4, 6, 8]),
        (3, None),
        (3, None),
    ]
    assert any("3 videos carry several labels" in n for n in rs.info["notes"])
    assert "no data.val_list: the val subset is empty" in rs.info["notes"]


def test_mmaction2_list_problems_and_names(mm: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(
        VIDEO_LIST + "some/path/missing.mp4 1\nsome/path/000.mp4 9\nno_label_here.mp4\nair drumming/clip 01.mp4 2\n"
    )
    (mm / "data" / "air drumming").mkdir(exist_ok=True)
    tiny_video(mm / "data" / "air drumming" / "clip 01.mp4", seed=50)  # a path with spaces
    rs = load_records("list", mm, train_list=bad, prefix=mm / "data", classes=["a", "b", "c", "d"])
    text = "\n".join(rs.problems)
    assert len(rs.problems) == 3, text
    assert "bad.txt: line 7: video some/path/missing.mp4 not found under" in text
    assert "bad.txt: line 8: unknown label 9: data.classes names 4 classes (0..3)" in text
    assert "bad.txt: line 9: expected '<path> <label>'" in text
    assert rs.subsets["train"][-1].path.name == "clip 01.mp4" and rs.subsets["train"][-1].label == 2
    # no class names at all: classes are named by their index, and data show says so
    rep = data_show_json("data.dataset=list", f"data.root={mm}", "data.train_list=videos.txt", "data.prefix=data")
    assert rep["classes"] == ["0", "1", "2", "3"] and any(
        "name them with data.label_map" in n for n in rep["info"]["notes"]
    )
    with pytest.raises(ConfigError, match="data.train_list / data.val_list: name MMAction2's annotation lists"):
        load_records("list", mm)
    with pytest.raises(DatasetError, match="data.train_list: nope.txt not found"):
        load_records("list", mm, train_list="nope.txt")


def test_mmaction2_json_list_and_frames_root(mm: Path, tmp_path: Path) -> None:
    (tmp_path / "train.json").write_text(
        json.dumps(
            [
                {"filename": "some/path/000.mp4", "label": 1},
                {"filename": "some/path/001.mp4", "label": [2, 3]},
                {"frame_dir": "x", "label": "oops"},
            ]
        )
    )
    rs = load_records("list", mm, train_list=tmp_path / "train.json", prefix="data", multi_label=True)
    assert [(r.label, r.meta.get("labels")) for r in rs.subsets["train"]] == [(1, None), (2, [2, 3])]
    assert len(rs.problems) == 1 and "train.json: item 2: expected" in rs.problems[0]
    frames = tmp_path / "frames"
    for i in range(6):
        write_frames(frames / "some" / "path" / f"{i:03d}", 2, "{:06d}.jpg")
    rs = load_records("list", mm, train_list="videos.txt", prefix="data", frames_root=frames)
    assert rs.problems == [] and all(r.path.is_dir() for r in rs.subsets["train"])
    assert rs.subsets["train"][0].meta["video_path"].endswith("000.mp4")
