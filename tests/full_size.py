"""The complete UCF101 and HMDB51 trees, laid out from the official split files with hard links.

Every video the split files list becomes a hard link to one small real clip, in the layout the
publishers ship (and docs/datasets.md shows), so a loader is checked end to end at full size
(13,320 and 6,766 videos) in a second or two and a few kilobytes of disk. The split files are
``tests/assets/official-splits/`` (source and licence in its README.md).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SPLITS = Path(__file__).resolve().parent / "assets" / "official-splits"

# Official counts (the split files' own): train / test per split, and the classes.
UCF101_COUNTS = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}
UCF101_CLASSES = 101
HMDB51_COUNTS = {1: (3570, 1530), 2: (3570, 1530), 3: (3570, 1530)}
HMDB51_CLASSES = 51
HMDB51_VIDEOS = 6766


def _link(clip: Path, dst: Path) -> None:
    try:
        os.link(clip, dst)
    except OSError:  # another file system, or no hard links there: a copy is as real
        shutil.copyfile(clip, dst)


def layout_ucf101(root: Path, clip: Path) -> Path:
    """``root/UCF-101/<Class>/<video>.avi`` for every listed video, and ``root/ucfTrainTestlist/``."""
    shutil.copytree(SPLITS / "ucf101", root / "ucfTrainTestlist")
    videos: set[str] = set()
    for f in sorted((SPLITS / "ucf101").glob("*list0[123].txt")):
        videos.update(line.split()[0] for line in f.read_text().splitlines() if line.strip())
    for rel in sorted(videos):
        dst = root / "UCF-101" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        _link(clip, dst)
    return root


def layout_hmdb51(root: Path, clip: Path) -> Path:
    """``root/hmdb51_org/<class>/<video>.avi`` for every listed video, and ``root/testTrainMulti_7030_splits/``."""
    shutil.copytree(SPLITS / "hmdb51", root / "testTrainMulti_7030_splits")
    for f in sorted((SPLITS / "hmdb51").glob("*_test_split1.txt")):
        cls = f.name[: -len("_test_split1.txt")]
        folder = root / "hmdb51_org" / cls
        folder.mkdir(parents=True, exist_ok=True)
        for line in f.read_text().splitlines():
            if line.strip():
                _link(clip, folder / line.split()[0])
    return root
