"""Matplotlib figures written as PNG (headless backend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np

from vidrec.utils.io import atomic_path


def _save(fig: Any, path: Path, *, tight: bool = True) -> Path:
    """PNG at 110 dpi. ``tight=False`` for figures laid out by hand: "tight" draws every label twice."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return path


def confusion_matrix_png(
    confusion: Any,
    classes: Sequence[str],
    path: str | Path,
    *,
    normalize: bool = True,
    order: Sequence[int] | None = None,
    annotate: bool | None = None,
    title: str | None = None,
) -> Path:
    """Rows: true class, columns: predicted; row-normalised by default.

    Every class is labelled at any size: the figure grows with the class count (0.14 in per class
    above 60 classes, 6-pt labels: a 174-class matrix is about 3,000 px square). ``order``: a
    permutation of the classes (e.g. :func:`vidrec.report.evaluation.cluster_order`).
    ``annotate``: print the value in each cell (default: up to 20 classes).
    """
    cm = np.asarray(confusion, dtype=float)
    if normalize:
        cm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    names = list(classes)
    if order is not None:
        idx = np.asarray(order)
        cm = cm[np.ix_(idx, idx)]
        names = [names[i] for i in idx]
    n = len(names)
    big = n > 60
    fontsize = 6 if big else 7
    longest = max((len(c) for c in names), default=1)
    label_in = min(longest, 80) * fontsize * 0.55 / 72  # room the tick labels take, in inches
    side = max(3.0, (0.14 if big else 0.3) * n)
    # laid out by hand (labels left and below, colour bar right): no second "tight" drawing pass
    left, bottom, right, top = label_in + 0.5, label_in + 0.5, 1.0, 0.5
    width, height = left + side + right, bottom + side + top
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    bar_box = ((left + side + 0.15) / width, (bottom + 0.25 * side) / height, 0.15 / width, 0.5 * side / height)
    cax = fig.add_axes(bar_box)
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None, interpolation="nearest", aspect="auto")
    fig.colorbar(im, cax=cax)
    short = [c if len(c) <= 80 else c[:77] + "..." for c in names]
    ax.set_xticks(range(n), short, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), short, fontsize=fontsize)
    if big:  # faint grid every 10 classes helps follow a row across 174 columns
        for k in range(10, n, 10):
            ax.axhline(k - 0.5, color="0.85", lw=0.4)
            ax.axvline(k - 0.5, color="0.85", lw=0.4)
    if annotate if annotate is not None else n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j] >= 0.005:
                    ax.text(
                        j,
                        i,
                        f"{cm[i, j]:.2f}" if normalize else f"{cm[i, j]:.0f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if cm[i, j] > 0.5 * (1 if normalize else cm.max()) else "black",
                    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    parts = [title or "confusion matrix"]
    if normalize:
        parts.append("row-normalised")
    if order is not None:
        parts.append("confused classes next to each other")
    ax.set_title(parts[0] + (f"\n({', '.join(parts[1:])})" if len(parts) > 1 else ""), fontsize=10 if big else 8)
    return _save(fig, Path(path), tight=False)


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
    """A run's curves from its metrics.jsonl: loss and accuracy per epoch (train and validation),
    the learning rate of every parameter group and the gradient norm per logged step."""
    rows = read_metrics_jsonl(metrics_jsonl)
    # a resumed run may log an epoch (or a step) twice: keep the last
    by_epoch = {r["epoch"]: r for r in rows if r.get("type") == "epoch"}
    by_step = {r["step"]: r for r in rows if r.get("type") == "train" and "step" in r}
    epochs, steps = sorted(by_epoch), sorted(by_step)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (a1, a2), (a3, a4) = axes
    for key, ax, label in (
        ("train_loss", a1, "train"),
        ("val_loss", a1, "val"),
        ("train_acc", a2, "train"),
        ("val_top1", a2, "val top-1"),
    ):
        ys = [by_epoch[e].get(key) for e in epochs]
        pts = [(e, y) for e, y in zip(epochs, ys) if y is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    groups = sorted({k for s in steps for k in by_step[s] if k.startswith("lr/")})
    for g in groups or ["lr"]:
        pts = [(s, by_step[s][g]) for s in steps if isinstance(by_step[s].get(g), (int, float)) and by_step[s][g] > 0]
        if pts:
            a3.plot(*zip(*pts), label=g[3:] if g.startswith("lr/") else g)
    if a3.lines:
        a3.set_yscale("log")
    pts = [(s, by_step[s]["grad_norm"]) for s in steps if isinstance(by_step[s].get("grad_norm"), (int, float))]
    if pts:
        a4.plot(*zip(*pts), color="tab:red", label="before clipping")
    for ax, title, xl in (
        (a1, "loss", "epoch"),
        (a2, "accuracy", "epoch"),
        (a3, "learning rate per parameter group", "optimiser step"),
        (a4, "gradient norm", "optimiser step"),
    ):
        ax.set_title(title)
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    a2.set_ylim(0, 1.02)
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _save(fig, Path(path))


def per_class_png(
    per_class: Sequence[float], classes: Sequence[str], path: str | Path, *, title: str = "per-class accuracy"
) -> Path:
    """Horizontal bars in the given order (top to bottom); -1 (no video) is drawn as 0."""
    n = len(classes)
    fontsize = 6 if n > 60 else 7
    label_in = min(max((len(c) for c in classes), default=1), 60) * fontsize * 0.55 / 72 + 0.3
    plot_h, plot_w = max(2.0, (0.14 if n > 60 else 0.25) * n), 5.0
    width, height = label_in + plot_w + 0.3, plot_h + 1.0
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((label_in / width, 0.6 / height, plot_w / width, plot_h / height))
    vals = [max(v, 0) for v in per_class]
    ax.barh(range(n), vals, color="tab:blue")
    ax.set_yticks(range(n), [c[:60] for c in classes], fontsize=fontsize)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, Path(path), tight=False)
