"""UCF101 and HMDB51 at full size: every video of the official split files, laid out as users unpack them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.fixtures_datasets import tiny_video
from tests.full_size import (
    HMDB51_CLASSES,
    HMDB51_COUNTS,
    HMDB51_VIDEOS,
    SPLITS,
    UCF101_CLASSES,
    UCF101_COUNTS,
    layout_hmdb51,
    layout_ucf101,
)
from vidrec.data.records import load_records

pytestmark = pytest.mark.slow  # about 7 s on 2 cores: 20,000 hard links and nine full loads


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("data")
    clip = tiny_video(base / "clip.avi", frames=4, size=(16, 16))
    # the roots are named as in docs/datasets.md: /data/ucf101, /data/hmdb51
    return {"ucf101": layout_ucf101(base / "ucf101", clip), "hmdb51": layout_hmdb51(base / "hmdb51", clip)}


@pytest.mark.parametrize("split", [1, 2, 3])
def test_ucf101_official_counts(trees: dict[str, Path], split: int) -> None:
    rs = load_records("ucf101", trees["ucf101"], split=split)
    assert rs.problems == []
    assert len(rs.classes) == UCF101_CLASSES
    assert (len(rs.subsets["train"]), len(rs.subsets["test"])) == UCF101_COUNTS[split]
    assert rs.subsets["val"] == rs.subsets["test"]
    assert len({r.video_id for r in rs.subsets["train"] + rs.subsets["test"]}) == 13320
    for r in rs.subsets["train"][::500] + rs.subsets["test"][::500]:
        assert r.path.is_file() and rs.classes[r.label] == r.path.parent.name
    assert "remapped_ids" not in rs.info and "left_out" not in rs.info


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_official_counts(trees: dict[str, Path], split: int) -> None:
    rs = load_records("hmdb51", trees["hmdb51"], split=split)
    assert rs.problems == []
    assert len(rs.classes) == HMDB51_CLASSES
    assert (len(rs.subsets["train"]), len(rs.subsets["test"])) == HMDB51_COUNTS[split]
    assert rs.info["unused"] == HMDB51_VIDEOS - sum(HMDB51_COUNTS[split])


def test_ucf101_ten_class_subset_at_full_size(trees: dict[str, Path], tmp_path: Path) -> None:
    """A classInd.txt trimmed to 10 classes with their original ids (1, 11, ..., 91), the UCF-10 way."""
    import shutil

    root = tmp_path / "ucf101"
    root.mkdir()
    (root / "UCF-101").symlink_to(trees["ucf101"] / "UCF-101")
    shutil.copytree(SPLITS / "ucf101", root / "ucfTrainTestlist")
    lines = (SPLITS / "ucf101" / "classInd.txt").read_text().splitlines()
    kept = [line for line in lines if int(line.split()[0]) in range(1, 100, 10)]
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("\r\n".join(kept) + "\r\n")
    names = [line.split()[1] for line in kept]
    train_lines = (SPLITS / "ucf101" / "trainlist01.txt").read_text().splitlines()
    want = Counter(line.split("/")[0] for line in train_lines if line.strip())

    rs = load_records("ucf101", root, split=1)
    assert rs.problems == [] and rs.classes == names
    assert Counter(rs.classes[r.label] for r in rs.subsets["train"]) == {n: want[n] for n in names}
    assert rs.info["remapped_ids"]["map"] == {str(10 * k + 1): k for k in range(10)}
    left = rs.info["left_out"]
    assert left["train"] + len(rs.subsets["train"]) == UCF101_COUNTS[1][0]
    assert left["test"] + len(rs.subsets["test"]) == UCF101_COUNTS[1][1]
    assert len(rs.info["left_out_classes"]) == UCF101_CLASSES - 10
