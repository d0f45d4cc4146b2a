"""Evaluation reports at 101 and 174 classes: the exported matrix, most-confused pairs, sorted
per-class tables and a confusion figure that labels every class."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch

from vidrec.engine.evaluate import summarise
from vidrec.report.evaluation import cluster_order, confused_pairs, ranked_classes, write_eval_report


def _confusion(k: int, seed: int = 0) -> tuple[np.ndarray, list[list[int]]]:
    """Counts where classes confuse each other only inside hidden groups of 3 (shuffled over the order)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(k)
    groups = [perm[i : i + 3].tolist() for i in range(0, k, 3)]
    cm = np.zeros((k, k), dtype=np.int64)
    for g in groups:
        for a in g:
            cm[a, a] = rng.integers(5, 20)
            for b in g:
                if a != b:
                    cm[a, b] = rng.integers(1, 5)
    return cm, groups


def test_confused_pairs_and_ranking():
    cm = np.array([[8, 2, 0], [5, 5, 0], [0, 1, 9]])
    names = ["a", "b", "c"]
    pairs = confused_pairs(cm, names, top=20)
    assert [(p.true, p.predicted, p.count) for p in pairs] == [("b", "a", 5), ("a", "b", 2), ("c", "b", 1)]
    assert pairs[0].rate == 0.5
    rows = ranked_classes([0.8, 0.5, 0.9], [10, 10, 10], cm, names)
    assert [r.name for r in rows] == ["c", "a", "b"] and rows[-1].confused_with == "a" and rows[-1].confused_rate == 0.5


def test_cluster_order_puts_confused_classes_together():
    cm, groups = _confusion(174)
    order = cluster_order(cm)
    assert sorted(order) == list(range(174))
    pos = {c: i for i, c in enumerate(order)}
    # every hidden group of mutually confused classes ends up contiguous
    assert all(max(pos[c] for c in g) - min(pos[c] for c in g) == len(g) - 1 for g in groups)
    assert cluster_order(np.diag([3, 4, 5])) == [0, 1, 2]  # nothing confused: dataset order


def test_eval_report_at_174_classes(tmp_path):
    k = 174
    cm, _ = _confusion(k, seed=1)
    # an EvalResult with exactly these counts: one clip per video, logits pointing at the predicted class
    true, pred = np.nonzero(cm)
    reps = cm[true, pred]
    labels = torch.as_tensor(np.repeat(true, reps))
    logits = torch.nn.functional.one_hot(torch.as_tensor(np.repeat(pred, reps)), k).float() * 10
    res = summarise(logits, labels, torch.arange(len(labels)), num_classes=k)
    classes = [f"Pushing something {i} left" for i in range(k)]  # short names: label drawing dominates the time
    (tmp_path / "run").mkdir()
    epochs = [{"type": "epoch", "epoch": e, "train_loss": 1 / e, "val_top1": 0.1 * e} for e in (1, 2, 3)]
    (tmp_path / "run/metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    summary = write_eval_report(res, classes, tmp_path / "ev", run_dir=tmp_path / "run")

    metrics = json.loads((tmp_path / "ev/metrics.json").read_text())
    assert np.array_equal(np.array(metrics["confusion"]["matrix"]), cm) and metrics["confusion"]["classes"] == classes
    assert len(metrics["most_confused"]) == 20 and metrics["most_confused"] == summary["most_confused"]
    top = metrics["most_confused"][0]
    off = cm - np.diag(np.diag(cm))
    assert top["count"] == off.max() and cm[classes.index(top["true"]), classes.index(top["predicted"])] == top["count"]
    rows = list(csv.reader((tmp_path / "ev/confusion.csv").open()))
    assert rows[0][1:] == classes and [r[0] for r in rows[1:]] == classes
    assert np.array_equal(np.array([r[1:] for r in rows[1:]], dtype=int), cm)

    report = (tmp_path / "ev/report.md").read_text()
    assert "## Most-confused pairs (top 20)" in report and report.count(" | ") > 20 * 3
    per_class = (tmp_path / "ev/per_class.md").read_text().splitlines()
    accs = [float(line.split(" | ")[3]) for line in per_class if line.startswith("| ") and line[2].isdigit()]
    assert len(accs) == k and accs == sorted(accs, reverse=True)

    from PIL import Image

    full = Image.open(tmp_path / "ev/confusion.png")
    assert min(full.size) > 2000  # 174 labelled rows and columns (0.14 in each at 110 dpi) need the room
    assert Image.open(tmp_path / "ev/confusion_top.png").size[0] > 500
    assert (tmp_path / "ev/training_curves.png").is_file() and (tmp_path / "ev/per_class.png").is_file()
