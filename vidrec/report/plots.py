"""Matplotlib figures written as PNG (headless backend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vidrec.utils.io import atomic_path  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def confusion_matrix_png(confusion: Any, classes: Sequence[str], path: str | Path, *, normalize: bool = True) -> Path:
    """Rows: true class, columns: predicted; row-normalised by default."""
    cm = np.asarray(confusion, dtype=float)
    if normalize:
        cm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    n = len(classes)
    size = max(5.0, min(0.45 * n + 2, 30))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if n <= 60:
        ax.set_xticks(range(n), [c[:40] for c in classes], rotation=90, fontsize=7)
        ax.set_yticks(range(n), [c[:40] for c in classes], fontsize=7)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if cm[i, j] >= 0.005:
                        ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                                color="white" if cm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    return _save(fig, Path(path))


def read_metrics_jsonl(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    p = Path(path)
    if p.is_file():
        for line in p.read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut by a killed run
    return rows


def training_curves_png(metrics_jsonl: str | Path, path: str | Path) -> Path:
    """Loss and accuracy per epoch (train and validation) from a run's metrics.jsonl."""
    rows = [r for r in read_metrics_jsonl(metrics_jsonl) if r.get("type") == "epoch"]
    # a resumed run may log an epoch twice: keep the last
    by_epoch = {r["epoch"]: r for r in rows}
    epochs = sorted(by_epoch)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax, label in (("train_loss", a1, "train"), ("val_loss", a1, "val"), ("train_acc", a2, "train"), ("val_top1", a2, "val top-1")):
        ys = [by_epoch[e].get(key) for e in epochs]
        pts = [(e, y) for e, y in zip(epochs, ys) if y is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    a1.set_title("loss")
    a2.set_title("accuracy")
    for ax in (a1, a2):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    a2.set_ylim(0, 1.02)
    return _save(fig, Path(path))


def per_class_png(per_class: Sequence[float], classes: Sequence[str], path: str | Path) -> Path:
    n = len(classes)
    fig, ax = plt.subplots(figsize=(8, max(3, 0.25 * n + 1)))
    vals = [max(v, 0) for v in per_class]
    ax.barh(range(n), vals, color="tab:blue")
    ax.set_yticks(range(n), [c[:50] for c in classes], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title("per-class accuracy")
    return _save(fig, Path(path))
