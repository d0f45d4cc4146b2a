"""Datasets as users lay them out: the documented trees under any root name, and class subsets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures_datasets import (
    HMDB_CLASSES,
    UCF_CLASSES,
    UCF_CLIPS,
    UCF_GROUPS,
    data_show_json,
    make_hmdb51,
    make_ucf101,
)
from tests.test_ssv2 import _write as write_ssv2
from vidrec.data.records import load_records
from vidrec.errors import ConfigError


@pytest.fixture(scope="module")
def ucf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ucf101(tmp_path_factory.mktemp("data") / "ucf101")


@pytest.fixture(scope="module")
def hmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hmdb51(tmp_path_factory.mktemp("data") / "hmdb51")


# ------------------------------------------------------------------------------------------ documented layouts


@pytest.mark.parametrize("name", ["ucf101", "UCF101", "UCF-101", "data"])
def test_ucf101_documented_layout_under_any_root_name(ucf: Path, tmp_path: Path, name: str) -> None:
    """docs/datasets.md: /data/ucf101/UCF-101/<Class>/... and /data/ucf101/ucfTrainTestlist/.

    A root called like the video folder must not be taken for it (every video was reported missing).
    """
    root = tmp_path / name
    shutil.copytree(ucf, root)
    assert sorted(p.name for p in root.iterdir()) == ["UCF-101", "ucfTrainTestlist"]
    rs = load_records("ucf101", root, split=1)
    assert rs.problems == []
    assert rs.info["video_root"] == str(root / "UCF-101")
    assert len(rs.subsets["train"]) == len(UCF_CLASSES) * (len(UCF_GROUPS) - 1) * len(UCF_CLIPS)


def test_ucf101_videos_directly_in_the_root(ucf: Path, tmp_path: Path) -> None:
    """Class folders straight under the root (named like the archive folder), lists beside them."""
    root = tmp_path / "UCF-101"
    shutil.copytree(ucf / "UCF-101", root)
    shutil.copytree(ucf / "ucfTrainTestlist", root / "ucfTrainTestlist")
    rs = load_records("ucf101", root, split=2)
    assert rs.problems == [] and rs.info["video_root"] == str(root)
    assert len(rs.subsets["test"]) == len(UCF_CLASSES) * len(UCF_CLIPS)


@pytest.mark.parametrize("name", ["hmdb51", "hmdb51_org", "testTrainMulti_7030_splits"])
def test_hmdb51_documented_layout_under_any_root_name(hmdb: Path, tmp_path: Path, name: str) -> None:
    root = tmp_path / name
    shutil.copytree(hmdb, root)
    rs = load_records("hmdb51", root, split=1)
    assert rs.problems == [] and rs.info["video_root"] == str(root / "hmdb51_org")
    assert rs.info["splits_dir"] == str(root / "testTrainMulti_7030_splits")
    assert len(rs.subsets["test"]) == len(HMDB_CLASSES)


# ------------------------------------------------------------------------------------------ class subsets


def test_ucf101_trimmed_class_ind_keeps_original_ids(ucf: Path, tmp_path: Path) -> None:
    root = tmp_path / "ucf101"
    shutil.copytree(ucf, root)
    # UCF_CLASSES = Basketball (1), ApplyEyeMakeup (2), HandstandPushups (3): keep ids 1 and 3, as users trim it
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 Basketball\r\n3 HandstandPushups\r\n")
    rs = load_records("ucf101", root, split=1)
    assert rs.problems == []
    assert rs.classes == ["Basketball", "HandstandPushups"]
    per_split = (len(UCF_GROUPS) - 1) * len(UCF_CLIPS)
    assert len(rs.subsets["train"]) == 2 * per_split and len(rs.subsets["test"]) == 2 * len(UCF_CLIPS)
    for r in rs.subsets["train"] + rs.subsets["test"]:
        assert rs.classes[r.label] == r.path.parent.name  # compact labels 0..1 follow the folder
    assert {r.label for r in rs.subsets["train"]} == {0, 1}
    assert rs.info["remapped_ids"] == {"source": "classInd.txt", "map": {"1": 0, "3": 1}}
    assert rs.info["left_out"] == {"train": per_split, "test": len(UCF_CLIPS)}
    assert rs.info["left_out_classes"] == ["ApplyEyeMakeup"]
    from vidrec.data.show import format_report

    text = format_report(data_show_json("data.dataset=ucf101", f"data.root={root}"))  # what `vidrec data show` prints
    assert "class ids remapped: labels are 0..1 in the order below; classInd.txt id -> label: 1->0, 3->1" in text
    assert (
        f"class subset: left out train {per_split}, test {len(UCF_CLIPS)} annotated videos of 1 other class(es): "
        "ApplyEyeMakeup"
    ) in text


def test_ucf101_full_class_ind_is_not_remapped(ucf: Path) -> None:
    rs = load_records("ucf101", ucf, split=1)
    assert "remapped_ids" not in rs.info and "left_out" not in rs.info


def test_ucf101_data_classes_selects_by_name_in_the_given_order(ucf: Path) -> None:
    rep = data_show_json("data.dataset=ucf101", f"data.root={ucf}", "data.classes=[handstandpushups, Basketball]")
    assert rep["classes"] == ["HandstandPushups", "Basketball"]  # the given order, the file's spelling
    assert rep["info"]["remapped_ids"]["map"] == {"3": 0, "1": 1}
    assert rep["per_class"]["test"] == {"HandstandPushups": len(UCF_CLIPS), "Basketball": len(UCF_CLIPS)}
    assert rep["problems"] == []
    rs = load_records("ucf101", ucf, split=1, classes=["HandstandPushups", "Basketball"])
    assert all(rs.classes[r.label] == r.path.parent.name for r in rs.subsets["train"])
    with pytest.raises(
        ConfigError, match=r"data.classes: 'Basketbal' is not a class of ucf101; did you mean 'Basketball'"
    ):
        load_records("ucf101", ucf, classes=["Basketbal"])
    with pytest.raises(ConfigError, match="named twice"):
        load_records("ucf101", ucf, classes=["Basketball", "basketball"])
    with pytest.raises(ConfigError, match="expected a list of class names"):
        load_records("ucf101", ucf, classes="Basketball")


def test_hmdb51_data_classes(hmdb: Path) -> None:
    rs = load_records("hmdb51", hmdb, split=1, classes=["catch", "brush_hair"])
    assert rs.classes == ["catch", "brush_hair"] and rs.problems == []
    assert {rs.classes[r.label] for r in rs.subsets["train"]} == {"catch", "brush_hair"}
    assert all(rs.classes[r.label] == r.path.parent.name for r in rs.subsets["train"] + rs.subsets["test"])
    assert rs.info["remapped_ids"]["map"] == {"2": 0, "0": 1}  # sorted position -> label
    assert rs.info["left_out"] == {"train": 3, "test": 1} and rs.info["left_out_classes"] == ["cartwheel"]
    with pytest.raises(ConfigError, match="'kick' is not a class of hmdb51"):
        load_records("hmdb51", hmdb, classes=["kick"])


def test_ssv2_data_classes(tmp_path: Path) -> None:
    root = write_ssv2(tmp_path)
    # names as in the labels file, with or without the template's brackets
    rs = load_records("ssv2", root, classes=["Putting [something] into [something]", "Moving something up"])
    assert rs.classes == ["Putting something into something", "Moving something up"] and rs.problems == []
    assert {r.video_id: r.label for r in rs.subsets["train"]} == {"11": 1, "12": 0, "14": 1}
    assert {r.video_id: r.label for r in rs.subsets["val"]} == {"22": 0}
    assert len(rs.subsets["test"]) == 2  # unlabelled: kept whole
    assert rs.info["remapped_ids"] == {"source": "something-something-v2-labels.json", "map": {"2": 0, "0": 1}}
    assert rs.info["left_out"] == {"train": 1, "val": 1}
    assert rs.info["left_out_classes"] == ["Pushing something from left to right"]
    with pytest.raises(ConfigError, match="did you mean 'Moving something up'"):
        load_records("ssv2", root, classes=["Moving something upp"])
