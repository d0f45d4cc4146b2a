"""Test helpers: tiny real videos written with PyAV, and a tiny registered dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vidrec.data.records import RecordSet, VideoRecord, register_dataset
from vidrec.video.encode import write_video

TINY_CLASSES = ["moving square left to right", "moving square right to left"]


def marker_frames(n: int, h: int = 32, w: int = 48) -> np.ndarray:
    """Frame i is flat grey level 10 + 20*i (mod 240): the decoded value tells the frame index."""
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        frames[i] = 10 + (20 * i) % 240
    return frames


def moving_square(n: int, size: int, direction: int, rng: np.random.Generator) -> np.ndarray:
    """A bright square crossing a noisy background left→right (direction=1) or right→left (-1)."""
    frames = (rng.random((n, size, size, 3)) * 60).astype(np.uint8)
    s = size // 4
    y = int(rng.integers(0, size - s))
    xs = np.linspace(0, size - s, n).round().astype(int)
    if direction < 0:
        xs = xs[::-1]
    for t, x in enumerate(xs):
        frames[t, y : y + s, x : x + s] = (230, 200, 40)
    return frames


def write_tiny_dataset(
    root: Path, *, per_class: int = 6, val_per_class: int = 2, size: int = 32, frames: int = 12, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for subset, n in (("train", per_class), ("val", val_per_class)):
        for label, _ in enumerate(TINY_CLASSES):
            for k in range(n):
                vid = f"{subset}_{label}_{k}"
                write_video(
                    root / "videos" / f"{vid}.mp4", moving_square(frames, size, 1 if label == 0 else -1, rng), fps=12
                )
                rows.append({"id": vid, "label": label, "subset": subset})
    (root / "list.json").write_text(json.dumps(rows))
    return root


@register_dataset("tinyclips")
def load_tinyclips(root: Path, *, split: int = 1, strict: bool = False) -> RecordSet:
    """Test-only loader for :func:`write_tiny_dataset` folders."""
    rows = json.loads((Path(root) / "list.json").read_text())
    subsets: dict[str, list[VideoRecord]] = {"train": [], "val": []}
    for r in rows:
        subsets[r["subset"]].append(VideoRecord(Path(root) / "videos" / f"{r['id']}.mp4", r["label"], r["id"]))
    return RecordSet(subsets=subsets, classes=list(TINY_CLASSES))


def tiny_overrides(root: Path, out: Path, **extra: object) -> list[str]:
    """Config overrides for a fast CPU run of a tiny CNN-RNN on the tiny dataset."""
    sets = {
        "data.dataset": "tinyclips",
        "data.root": str(root),
        "data.num_frames": 4,
        "data.image_size": 32,
        "data.decode_size": 32,
        "data.batch_size": 4,
        "data.num_workers": 0,
        "model.name": "cnn_rnn",
        "model.backbone": "resnet10t",
        "model.hidden_size": 16,
        "model.attention_dim": 16,
        "train.epochs": 2,
        "train.lr": 3e-3,
        "train.warmup_epochs": 0,
        "train.out_dir": str(out),
        "train.device": "cpu",
        "train.early_stop_patience": None,
    }
    sets.update(extra)
    return [f"{k}={'null' if v is None else v}" for k, v in sets.items()]
