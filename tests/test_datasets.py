"""Dataset loaders read the official files as shipped: class order, counts per split, problems, read-only roots."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.fixtures_datasets import (
    HMDB_CLASSES,
    HMDB_VIDEOS,
    SE_SIZE,
    UCF_CLASSES,
    UCF_CLIPS,
    UCF_GROUPS,
    hmdb_assignment,
    hmdb_name,
    make_folder,
    make_hmdb51,
    make_something_else,
    make_ucf101,
    snapshot,
    tiny_video,
)
from vidrec.data.boxes import BoxesSideInput, merge_box_parts
from vidrec.data.folder import group_split
from vidrec.data.records import load_records
from vidrec.data.scan import scan_videos, write_index
from vidrec.errors import ConfigError, DatasetError
from vidrec.video.decode import PyAVDecoder
from vidrec.video.sampling import segment_indices


@pytest.fixture(scope="module")
def ucf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ucf101(tmp_path_factory.mktemp("ucf"))


@pytest.fixture(scope="module")
def hmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hmdb51(tmp_path_factory.mktemp("hmdb"))


@pytest.fixture(scope="module")
def sse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sse")
    paths = make_something_else(base / "ssv2")
    merge_box_parts(paths["parts"], base / "boxes.sqlite")
    paths["merged"] = base / "boxes.sqlite"
    return paths


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------ UCF101


@pytest.mark.parametrize("split", [1, 2, 3])
def test_ucf101_official_splits(ucf: Path, split: int) -> None:
    before = snapshot(ucf)
    rs = load_records("ucf101", ucf, split=split)
    assert rs.classes == UCF_CLASSES  # classInd's order, not alphabetical
    n_test = len(UCF_CLASSES) * len(UCF_CLIPS)
    assert len(rs.subsets["test"]) == n_test
    assert len(rs.subsets["train"]) == len(UCF_CLASSES) * (len(UCF_GROUPS) - 1) * len(UCF_CLIPS)
    assert [r.video_id for r in rs.subsets["val"]] == [r.video_id for r in rs.subsets["test"]]
    assert rs.problems == []
    # test labels come from the folder, train labels from the index column: both must agree with the path
    for r in rs.subsets["train"] + rs.subsets["test"]:
        assert rs.classes[r.label] == r.path.parent.name
        assert r.path.is_file()
    assert {r.meta["group"] for r in rs.subsets["test"]} == {f"g{split:02d}"}
    assert f"g{split:02d}" not in {r.meta["group"] for r in rs.subsets["train"]}
    assert snapshot(ucf) == before  # nothing written into the dataset root


def test_ucf101_problems_and_strict(ucf: Path, tmp_path: Path) -> None:
    root = _copy(ucf, tmp_path / "ucf")
    lists = root / "ucfTrainTestlist"
    # a missing video, an unknown class index, a class outside classInd; and a path in other letter case
    (root / "UCF-101" / "Basketball" / "v_Basketball_g02_c01.avi").unlink()
    train = (lists / "trainlist01.txt").read_text().splitlines()
    train.append("Basketball/v_Basketball_g02_c02.avi 7")
    train.append("basketball/V_BASKETBALL_G03_C01.AVI 1")
    (lists / "trainlist01.txt").write_text("\r\n".join(train) + "\r\n")
    with open(lists / "testlist01.txt", "a") as f:
        f.write("Juggling/v_Juggling_g01_c01.avi\r\n")
    rs = load_records("ucf101", root, split=1)
    text = "\n".join(rs.problems)
    assert len(rs.problems) == 2, text
    assert re.search(r"trainlist01\.txt: line \d+: video Basketball/v_Basketball_g02_c01\.avi not found", text)
    assert re.search(r"trainlist01\.txt: line \d+: class index 7 is not in classInd\.txt \(1\.\.3\)", text)
    # a class classInd.txt does not list is a class left out (a trimmed classInd), counted and named, not a problem
    assert rs.info["left_out"] == {"test": 1} and rs.info["left_out_classes"] == ["Juggling"]
    assert any(r.path.name == "v_Basketball_g03_c01.avi" and r.path.is_file() for r in rs.subsets["train"])
    with pytest.raises(DatasetError, match=r"trainlist01\.txt: line \d+: video .* not found"):
        load_records("ucf101", root, split=1, strict=True)
    for bad in (0, 4):
        with pytest.raises(DatasetError, match="split .* not an official split; use data.split=1, 2 or 3"):
            load_records("ucf101", root, split=bad)


def test_ucf101_missing_list_folder(tmp_path: Path) -> None:
    (tmp_path / "UCF-101").mkdir()
    with pytest.raises(DatasetError, match="no ucfTrainTestlist/ folder"):
        load_records("ucf101", tmp_path)


# ------------------------------------------------------------------------------------------ HMDB51


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_official_splits(hmdb: Path, split: int) -> None:
    before = snapshot(hmdb)
    rs = load_records("hmdb51", hmdb, split=split)
    assert rs.classes == sorted(HMDB_CLASSES)
    expect_test = {
        hmdb_name(c, i)[:-4] for c in HMDB_CLASSES for i in range(HMDB_VIDEOS) if hmdb_assignment(split, i) == "2"
    }
    expect_train = {
        hmdb_name(c, i)[:-4] for c in HMDB_CLASSES for i in range(HMDB_VIDEOS) if hmdb_assignment(split, i) == "1"
    }
    assert {r.video_id for r in rs.subsets["test"]} == expect_test
    assert {r.video_id for r in rs.subsets["train"]} == expect_train
    assert rs.info["unused"] == len(HMDB_CLASSES)  # "0" lines are left out
    for r in rs.subsets["train"]:
        assert rs.classes[r.label] == r.path.parent.name
    assert rs.problems == []
    assert snapshot(hmdb) == before


def test_hmdb51_problems(hmdb: Path, tmp_path: Path) -> None:
    root = _copy(hmdb, tmp_path / "hmdb")
    sdir = root / "testTrainMulti_7030_splits"
    with open(sdir / "catch_test_split1.txt", "a") as f:
        f.write("ghost_video.avi 1 \nApril_09_catch_x.avi 5 \n")
    (sdir / "catch_test_split4.txt").write_text(f"{hmdb_name('catch', 0)} 1 \n")
    shutil.rmtree(root / "hmdb51_org" / "cartwheel")
    (root / "hmdb51_org" / "cartwheel").mkdir()
    rs = load_records("hmdb51", root, split=1)
    text = "\n".join(rs.problems)
    assert "catch_test_split1.txt: line 6: video catch/ghost_video.avi not found" in text
    assert "catch_test_split1.txt: line 7: expected '<video>.avi 0|1|2'" in text
    assert "catch_test_split4.txt: split number 4 is outside 1..3" in text
    assert re.search(r"cartwheel: the class folder is empty", text)
    assert rs.classes == sorted(HMDB_CLASSES)
    with pytest.raises(DatasetError):
        load_records("hmdb51", root, split=1, strict=True)


# ------------------------------------------------------------------------------------------ folder


def test_group_split_never_straddles_and_is_stratified() -> None:
    items = []
    for label in range(4):
        for g in range(10):
            for c in range(1 + (g % 3)):  # groups of 1..3 clips
                items.append((f"v_{label}_g{g:02d}_c{c}", label, f"g{g:02d}"))
    tr, va, notes = group_split(items, val_fraction=0.25, seed=3)
    assert sorted(tr + va) == list(range(len(items))) and not set(tr) & set(va)
    for label in range(4):
        tr_groups = {items[i][2] for i in tr if items[i][1] == label}
        va_groups = {items[i][2] for i in va if items[i][1] == label}
        assert tr_groups and va_groups and not tr_groups & va_groups
        n = sum(1 for it in items if it[1] == label)
        n_val = sum(1 for i in va if items[i][1] == label)
        assert abs(n_val - 0.25 * n) <= 2  # close to the fraction in every class
    assert notes == []
    assert group_split(items, val_fraction=0.25, seed=3) == (tr, va, notes)  # deterministic
    assert group_split(items, val_fraction=0.25, seed=4)[1] != va


def test_folder_loader_groups_and_regex(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "own", classes=3, groups=5, clips=3)
    tiny_video(root / "class_1" / "single_take.mp4")  # no _gNN_: its own group
    (root / "empty_class").mkdir()
    (root / "class_2" / "notes.txt").write_text("not a video")
    before = snapshot(root)
    rs = load_records("folder", root, val_fraction=0.4, seed=1)
    assert rs.classes == ["class_0", "class_1", "class_2"]
    assert len(rs.problems) == 1 and "empty_class: the class folder holds no videos" in rs.problems[0]
    for label in range(3):
        tr = {r.meta["group"] for r in rs.subsets["train"] if r.label == label}
        va = {r.meta["group"] for r in rs.subsets["val"] if r.label == label}
        assert va and tr and not tr & va
    assert len(rs.subsets["train"]) + len(rs.subsets["val"]) == 3 * 5 * 3 + 1
    assert snapshot(root) == before
    # a user regex: the group is the clip number here, so all c01 clips of a class stay together
    rs2 = load_records("folder", root, val_fraction=0.4, seed=1, group_regex=r"_(c\d+)")
    for label in range(3):
        tr = {r.meta["group"] for r in rs2.subsets["train"] if r.label == label}
        va = {r.meta["group"] for r in rs2.subsets["val"] if r.label == label}
        assert not tr & va
    assert {r.meta["group"] for r in rs2.subsets["train"] + rs2.subsets["val"]} >= {"c01", "c02", "c03"}
    with pytest.raises(ConfigError, match="data.group_regex"):
        load_records("folder", root, group_regex="(unclosed")


def test_folder_list_files(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "own", classes=2, groups=2, clips=1)
    (root / "list.csv").write_text(
        "path,label\nclass_0/clip_g01_c01.mp4,cat\nclass_0/clip_g02_c01.mp4,cat\n"
        "class_1/clip_g01_c01.mp4,dog\nclass_1/clip_g02_c01.mp4,dog\nclass_1/missing.mp4,dog\n"
    )
    rs = load_records("folder", root, list_file="list.csv", val_fraction=0.5)
    assert rs.classes == ["cat", "dog"]
    assert len(rs.subsets["train"]) == 2 and len(rs.subsets["val"]) == 2
    assert len(rs.problems) == 1 and "list.csv: line 6: video class_1/missing.mp4 not found" in rs.problems[0]
    lines = [
        json.dumps({"path": "class_0/clip_g01_c01.mp4", "label": "cat", "subset": "train"}),
        "{not json",
        json.dumps({"path": "class_1/clip_g01_c01.mp4", "label": "bird", "subset": "val"}),
        json.dumps({"path": "class_1/clip_g02_c01.mp4", "label": "dog", "subset": "val"}),
    ]
    (tmp_path / "list.jsonl").write_text("\n".join(lines) + "\n")
    rs = load_records("folder", root, list_file=tmp_path / "list.jsonl", classes=["cat", "dog"])
    text = "\n".join(rs.problems)
    assert "list.jsonl: line 2: malformed JSON" in text
    assert "list.jsonl: line 3: unknown class 'bird'" in text
    assert [r.video_id for r in rs.subsets["val"]] == ["clip_g02_c01"] and len(rs.subsets["train"]) == 1
    (tmp_path / "list.json").write_text('[{"path": "class_0/clip_g01_c01.mp4", "label": "cat"},\n {"path": oops}]')
    with pytest.raises(DatasetError, match=r"list.json: line 2: malformed JSON"):
        load_records("folder", root, list_file=tmp_path / "list.json")


# ------------------------------------------------------------------------------------------ frames and scan index reuse


def test_frames_root_and_index_reuse(hmdb: Path, tmp_path: Path) -> None:
    from vidrec.data.frames import extract_frames

    frames = tmp_path / "frames"
    extract_frames(hmdb, frames)
    rs = load_records("hmdb51", hmdb, split=1, frames_root=frames)
    assert rs.problems == []
    rec = rs.subsets["train"][0]
    assert rec.path.is_dir() and (rec.path / "000001.jpg").is_file()
    assert rec.meta["video_path"].endswith(".avi")
    from vidrec.video.decode import AutoDecoder

    clip = AutoDecoder().decode(rec.path, [0, 5, 11])
    assert clip.shape == (3, 32, 48, 3) and clip.dtype == torch.uint8
    index = write_index(scan_videos(hmdb), tmp_path / "hmdb.parquet")
    rs = load_records("hmdb51", hmdb, split=1, index=index)
    assert all(r.num_frames == 12 and r.fps == 12.0 for r in rs.subsets["train"])
    assert rs.subsets["train"][0].meta["frame_size"] == (48, 32)


# ------------------------------------------------------------------------------------------ Something-Else


@pytest.mark.parametrize(
    "split_set,train_ids", [("compositional", ["102", "103", "104"]), ("shuffled", ["101", "102", "103", "104"])]
)
def test_something_else_split_sets(sse: dict[str, Path], split_set: str, train_ids: list[str]) -> None:
    before = snapshot(sse["root"])
    rs = load_records("something_else", sse["root"], split_set=split_set, splits_dir=sse["splits"], boxes=sse["merged"])
    assert [r.video_id for r in rs.subsets["train"]] == train_ids
    assert {r.video_id for r in rs.subsets["val"]} == {"101", "102", "103", "104", "105", "106"} - set(train_ids)
    assert rs.classes[0] == "Pushing something from left to right" and len(rs.classes) == 3
    assert all(r.meta["boxes_file"] == str(sse["merged"]) for r in rs.subsets["train"])
    assert rs.problems == []
    assert snapshot(sse["root"]) == before


def test_something_else_problems(sse: dict[str, Path], tmp_path: Path) -> None:
    splits = _copy(sse["splits"], tmp_path / "splits")
    train = json.loads((splits / "compositional" / "train.json").read_text())
    train.append({"id": "999", "template": "Pushing [something] from left to right", "placeholders": ["x"]})
    train.append({"id": "101", "template": "Juggling [something]", "placeholders": ["x"]})
    (splits / "compositional" / "train.json").write_text(json.dumps(train))
    rs = load_records("something_else", sse["root"], splits_dir=splits, boxes=sse["merged"])
    text = "\n".join(rs.problems)
    assert "train.json: entry 3: video 999 is not among the SSv2 videos" in text
    assert "train.json: entry 4 (id 101): template 'Juggling [something]' matches no class" in text
    # with frame sizes from a scan index, boxes outside the frame are named
    index = write_index(scan_videos(sse["root"]), tmp_path / "ssv2.jsonl")
    rs = load_records("something_else", sse["root"], splits_dir=sse["splits"], boxes=sse["merged"], index=index)
    assert len(rs.problems) == 1
    assert re.search(
        r"boxes.sqlite: video 101 frame 0006\.jpg: hand box \(40, -3, 60, 12\) lies outside the 48x32 frame",
        rs.problems[0],
    )
    with pytest.raises(DatasetError, match="lies outside"):
        load_records(
            "something_else", sse["root"], splits_dir=sse["splits"], boxes=sse["merged"], index=index, strict=True
        )
    with pytest.raises(ConfigError, match="data.split_set"):
        load_records("something_else", sse["root"], split_set="random")


@pytest.mark.parametrize("source", ["merged", "parts"])
def test_boxes_aligned_with_sampled_frames(sse: dict[str, Path], source: str) -> None:
    rs = load_records("something_else", sse["root"], splits_dir=sse["splits"], boxes=sse[source])
    rec = next(r for r in rs.subsets["val"] if r.video_id == "101")
    info = PyAVDecoder().info(rec.path)
    h, w = SE_SIZE
    side = BoxesSideInput(max_objects=3)
    indices = segment_indices(info.num_frames, 8)  # centre of 8 segments over 24 frames: 1, 4, 7, ...
    indices[1] = 3  # frame 3 (file 0004.jpg) has no annotation
    out = side(rec, indices, info)
    assert out["hand_boxes"].shape == (8, 2, 4) and out["hand_mask"].shape == (8, 2)
    assert out["object_boxes"].shape == (8, 3, 4) and out["object_mask"].dtype == torch.bool
    for row, t in enumerate(indices):
        if t == 3:
            assert not out["hand_mask"][row].any() and not out["object_mask"][row].any()
            assert out["hand_boxes"][row].abs().sum() == 0
            continue
        # the fixture puts frame t's hand at x1 = t, object '0000' at x1 = t + 1 (pixels): aligned with index t
        torch.testing.assert_close(out["hand_boxes"][row, 0], torch.tensor([t / w, 2 / h, (t + 10) / w, 12 / h]))
        assert out["hand_mask"][row].tolist() == [True, False]
        torch.testing.assert_close(out["object_boxes"][row, 0], torch.tensor([(t + 1) / w, 4 / h, (t + 7) / w, 10 / h]))
        assert out["object_mask"][row, 0] and out["object_mask"][row, 1] == (t % 2 == 0)  # '0001' in even frames
        assert not out["object_mask"][row, 2]
    # frame 5's hand box runs off the frame: clipped into [0, 1] and counted
    out = side(rec, [5], info)
    assert out["hand_mask"][0, 0] and side.clipped == 1
    torch.testing.assert_close(out["hand_boxes"][0, 0], torch.tensor([40 / w, 0.0, 1.0, 12 / h]))
    # a video decoded at twice the annotation rate maps frame i to annotation frame i / 2
    assert side.annotation_index(10, 24.0, False) == 5 and side.annotation_index(10, 12.0, False) == 10


# ------------------------------------------------------------------------------------------ data show


def test_data_show_cli(ucf: Path, tmp_path: Path) -> None:
    import vidrec.cli  # noqa: F401  (registers the verbs)
    from vidrec.cli.app import app

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "data",
            "show",
            "--set",
            "data.dataset=ucf101",
            "--set",
            f"data.root={ucf}",
            "--set",
            "data.split=2",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["classes"] == UCF_CLASSES and rep["problems"] == []
    assert rep["subsets"] == {"train": 18, "test": 6, "val": 6}
    assert rep["per_class"]["test"] == dict.fromkeys(UCF_CLASSES, 2)
    res = runner.invoke(app, ["data", "show", "--set", "data.dataset=ucf101", "--set", f"data.root={ucf}"])
    assert res.exit_code == 0 and "HandstandPushups" in res.stdout and "no problems found" in res.stdout
    root = _copy(ucf, tmp_path / "ucf")
    (root / "UCF-101" / "Basketball" / "v_Basketball_g01_c01.avi").unlink()
    res = runner.invoke(app, ["data", "show", "--set", "data.dataset=ucf101", "--set", f"data.root={root}"])
    assert res.exit_code == 0 and "1 problem(s)" in res.stdout and "v_Basketball_g01_c01.avi not found" in res.stdout
    res = runner.invoke(app, ["data", "show", "--set", "data.dataset=ucf101", "--set", f"data.root={root}", "--strict"])
    assert isinstance(res.exception, DatasetError)  # main() turns it into one line and exit code 2


# ------------------------------------------------------------------------------------------ configs


@pytest.mark.parametrize("name", ["ucf101", "hmdb51", "ssv2", "something_else", "folder"])
def test_dataset_configs_resolve(name: str, tmp_path: Path) -> None:
    from vidrec.config import load_config

    config = Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml"
    cfg = load_config(config, overrides=[f"data.root={tmp_path}"], environ={})  # unknown data.* keys would raise here
    assert cfg.data.dataset == name and cfg.data.root == tmp_path
    from vidrec.data.records import get_dataset_loader
    import inspect

    params = inspect.signature(get_dataset_loader(name)).parameters
    assert set(cfg.data_options) <= set(params)


def test_boxes_reach_the_sample_dict_through_the_dataset(sse: dict[str, Path]) -> None:
    """The one Dataset class calls the side input with the indices it decoded: boxes follow frame_indices."""
    from vidrec.data.dataset import VideoClipDataset
    from vidrec.video.sampling import make_frame_sampler

    rs = load_records("something_else", sse["root"], splits_dir=sse["splits"], boxes=sse["merged"])
    ds = VideoClipDataset(
        rs.subsets["train"],
        frame_sampler=make_frame_sampler("segments", num_frames=6),
        train=True,
        transform=lambda x: x.permute(3, 0, 1, 2).float() / 255,
        side_inputs=[BoxesSideInput()],
        seed=5,
    )
    w = SE_SIZE[1]
    for i in range(len(ds)):
        s = ds[i]
        assert s["hand_boxes"].shape == (6, 2, 4) and s["object_mask"].shape == (6, 4)
        for row, t in enumerate(s["frame_indices"].tolist()):
            assert bool(s["hand_mask"][row, 0]) == (t != 3)
            if t != 3:
                assert s["hand_boxes"][row, 0, 0].item() == pytest.approx(t / w)  # the fixture's hand sits at x1 = t
