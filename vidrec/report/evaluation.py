"""The evaluation report: confusion analysis that stays readable at 101 and 174 classes.

:func:`write_eval_report` writes, into one folder::

    metrics.json        top-1/5, mean class accuracy, per-class accuracy, the confusion matrix
                        (rows: true class, columns: predicted, video counts) and the most-confused pairs
    confusion.csv       the same matrix with class names as the first row and column
    report.md           headline numbers, the 20 most-confused pairs, worst and best classes
    per_class.md        every class, best to worst, with the class it is most often mistaken for
    confusion.png       row-normalised matrix; above 20 classes ordered by confusion clusters
    confusion_top.png   a readable close-up of the classes in the most-confused pairs
    per_class.png       accuracy bars, best to worst
    training_curves.png when the checkpoint's run has a metrics.jsonl

The analysis functions (:func:`confused_pairs`, :func:`cluster_order`, :func:`ranked_classes`)
are plain NumPy over a ``K×K`` count matrix.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vidrec.report.tables import markdown_table
from vidrec.utils.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

TOP_PAIRS = 20


@dataclass(frozen=True)
class ConfusedPair:
    true: str
    predicted: str
    count: int  # videos of `true` predicted as `predicted`
    rate: float  # count / videos of `true`

    def as_dict(self) -> dict[str, Any]:
        return {"true": self.true, "predicted": self.predicted, "count": self.count, "rate": self.rate}


def _counts(confusion: Any) -> np.ndarray:
    cm = np.asarray(confusion.cpu() if hasattr(confusion, "cpu") else confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix is square; got shape {cm.shape}")
    return cm


def confused_pairs(confusion: Any, classes: Sequence[str], *, top: int = TOP_PAIRS) -> list[ConfusedPair]:
    """The ``top`` off-diagonal cells with the most videos (ties: higher rate, then class order)."""
    cm = _counts(confusion)
    support = cm.sum(1)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    t, p = np.nonzero(off)
    rate = off[t, p] / np.maximum(support[t], 1)
    order = np.lexsort((p, t, -rate, -off[t, p]))[:top]  # last key sorts first
    return [ConfusedPair(classes[t[i]], classes[p[i]], int(off[t[i], p[i]]), float(rate[i])) for i in order]


def cluster_order(confusion: Any) -> list[int]:
    """Class order that puts classes confused with each other next to each other.

    Average-linkage agglomerative clustering on the symmetric confusion rate
    ``(R + Rᵀ) / 2`` (``R``: row-normalised counts, diagonal dropped); each merge joins the two
    chains at their most similar ends. Classes nobody confuses keep their dataset order at the end.
    """
    cm = _counts(confusion).astype(float)
    k = cm.shape[0]
    rate = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    sim = (rate + rate.T) / 2
    np.fill_diagonal(sim, 0.0)
    chains: list[list[int]] = [[i] for i in range(k)]
    csim = sim.copy()  # similarity between chains (average linkage)
    np.fill_diagonal(csim, -np.inf)
    alive = np.ones(k, dtype=bool)
    while alive.sum() > 1:
        masked = np.where(alive[:, None] & alive[None, :], csim, -np.inf)
        a, b = np.unravel_index(int(np.argmax(masked)), masked.shape)
        if masked[a, b] <= 0:  # nothing left is confused with anything else
            break
        a, b = (a, b) if a < b else (b, a)
        ca, cb = chains[a], chains[b]
        # orient the two chains so that their most similar ends touch
        options = [(ca, cb), (ca, cb[::-1]), (ca[::-1], cb), (ca[::-1], cb[::-1])]
        x, y = max(options, key=lambda o: sim[o[0][-1], o[1][0]])
        na, nb = len(ca), len(cb)
        chains[a] = x + y
        csim[a, :] = csim[:, a] = (na * csim[a] + nb * csim[b]) / (na + nb)
        csim[a, a] = -np.inf
        alive[b] = False
    groups = [chains[i] for i in range(k) if alive[i]]
    groups.sort(key=lambda g: (len(g) == 1, min(g)))  # clusters first, then the unconfused in dataset order
    return [i for g in groups for i in g]


@dataclass(frozen=True)
class ClassRow:
    name: str
    videos: int
    accuracy: float | None  # None: no video of this class was evaluated
    confused_with: str | None  # the class it is most often predicted as (when wrong)
    confused_rate: float


def ranked_classes(
    per_class: Sequence[float], support: Sequence[int], confusion: Any, classes: Sequence[str]
) -> list[ClassRow]:
    """Every class, best accuracy first (classes without videos last), with its main confusion."""
    cm = _counts(confusion)
    rows = []
    for i, name in enumerate(classes):
        off = cm[i].copy()
        off[i] = 0
        j = int(off.argmax())
        n = int(support[i])
        rows.append(
            ClassRow(
                name,
                n,
                float(per_class[i]) if per_class[i] >= 0 else None,
                classes[j] if off[j] > 0 else None,
                float(off[j] / n) if n else 0.0,
            )
        )
    return sorted(rows, key=lambda r: (r.accuracy is None, -(r.accuracy or 0.0), r.name))


def _class_table(rows: Sequence[ClassRow], *, start: int = 1) -> str:
    def acc(r: ClassRow) -> Any:
        return "n/a" if r.accuracy is None else r.accuracy

    return markdown_table(
        ["rank", "class", "videos", "accuracy", "most often mistaken for"],
        [
            [
                start + i,
                r.name,
                r.videos,
                acc(r),
                f"{r.confused_with} ({r.confused_rate:.0%})" if r.confused_with else "-",
            ]
            for i, r in enumerate(rows)
        ],
    )


def pairs_table(pairs: Sequence[ConfusedPair]) -> str:
    return markdown_table(
        ["true class", "predicted as", "videos", "share of the class"],
        [[p.true, p.predicted, p.count, f"{p.rate:.0%}"] for p in pairs],
    )


def confusion_csv(confusion: Any, classes: Sequence[str]) -> str:
    """Rows: true class; columns: predicted class; cells: video counts."""
    cm = _counts(confusion)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true \\ predicted", *classes])
    for name, row in zip(classes, cm.tolist()):
        w.writerow([name, *row])
    return buf.getvalue()


def report_markdown(
    summary: dict[str, Any],
    rows: Sequence[ClassRow],
    pairs: Sequence[ConfusedPair],
    *,
    n_show: int = 10,
    title: str = "Evaluation report",
) -> str:
    rated = [r for r in rows if r.accuracy is not None]
    lines = [
        f"# {title}",
        "",
        f"top-1 **{summary['val_top1']:.3f}**, top-5 {summary['val_top5']:.3f}, mean class accuracy "
        f"{summary['mean_class_acc']:.3f} on {summary['num_videos']} videos ({summary['num_clips']} clips, "
        f"{len(rows)} classes).",
        "",
        f"## Most-confused pairs (top {len(pairs)})",
        "",
        pairs_table(pairs) if pairs else "No video was misclassified.",
        "",
        f"## Worst {min(n_show, len(rated))} classes",
        "",
        _class_table(rated[::-1][:n_show]),
        "",  # worst first
        f"## Best {min(n_show, len(rated))} classes",
        "",
        _class_table(rated[:n_show]),
        "",
        "Every class, best to worst: per_class.md. The full matrix: confusion.csv (and metrics.json).",
        "Figures: confusion.png (classes ordered so that confused classes sit together), confusion_top.png "
        "(a close-up of the most-confused classes), per_class.png.",
    ]
    return "\n".join(lines) + "\n"


def write_eval_report(
    result: Any,
    classes: Sequence[str],
    out_dir: str | Path,
    *,
    run_dir: str | Path | None = None,
    title: str = "Evaluation report",
) -> dict[str, Any]:
    """Write the files listed in the module docstring for an :class:`~vidrec.engine.evaluate.EvalResult`.

    ``run_dir``: a training run folder; its ``metrics.jsonl`` becomes ``training_curves.png``.
    Returns the ``metrics.json`` content.
    """
    from vidrec.report.plots import confusion_matrix_png, per_class_png, training_curves_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    classes = list(classes)
    cm = _counts(result.confusion)
    pairs = confused_pairs(cm, classes)
    rows = ranked_classes(result.per_class, result.support, cm, classes)
    summary = result.summary()
    summary["per_class"] = {c: (a if a >= 0 else None) for c, a in zip(classes, result.per_class)}
    summary["most_confused"] = [p.as_dict() for p in pairs]
    summary["confusion"] = {
        "classes": classes,
        "rows": "true class",
        "columns": "predicted class",
        "matrix": cm.tolist(),
    }
    write_json_atomic(out / "metrics.json", summary, indent=None)
    write_text_atomic(out / "confusion.csv", confusion_csv(cm, classes))
    write_text_atomic(out / "per_class.md", f"# Per-class accuracy, best to worst\n\n{_class_table(rows)}\n")
    write_text_atomic(out / "report.md", report_markdown(summary, rows, pairs, title=title))
    order = cluster_order(cm) if len(classes) > 20 else None
    confusion_matrix_png(cm, classes, out / "confusion.png", order=order)
    focus = _focus_classes(pairs, classes)
    if len(focus) >= 2:
        confusion_matrix_png(
            cm[np.ix_(focus, focus)],
            [classes[i] for i in focus],
            out / "confusion_top.png",
            order=cluster_order(cm[np.ix_(focus, focus)]),
            annotate=True,
            title=f"the classes of the {len(pairs)} most-confused pairs",
        )
    else:
        (out / "confusion_top.png").unlink(missing_ok=True)
    per_class_png(
        [r.accuracy if r.accuracy is not None else -1.0 for r in rows],
        [r.name for r in rows],
        out / "per_class.png",
        title="per-class accuracy, best to worst",
    )
    if run_dir is not None and (Path(run_dir) / "metrics.jsonl").is_file():
        training_curves_png(Path(run_dir) / "metrics.jsonl", out / "training_curves.png")
    return summary


def _focus_classes(pairs: Sequence[ConfusedPair], classes: Sequence[str], *, limit: int = 40) -> list[int]:
    index = {c: i for i, c in enumerate(classes)}
    out: list[int] = []
    for p in pairs:
        for name in (p.true, p.predicted):
            if index[name] not in out and len(out) < limit:
                out.append(index[name])
    return sorted(out)


# --------------------------------------------------------------------------------------------
# vidrec eval: a checkpoint's report folder and the text a person reads


def write_checkpoint_report(outcome: Any, out_dir: str | Path, *, title: str = "Evaluation report") -> dict[str, Any]:
    """:func:`write_eval_report` for an :class:`~vidrec.engine.evaluate.EvalOutcome`, with the training curves of
    the checkpoint's run (``RUN/checkpoints/<name>``) when it has its metrics.jsonl."""
    run_dir = Path(outcome.checkpoint.path).resolve().parent.parent
    return write_eval_report(outcome.result, outcome.classes, out_dir, run_dir=run_dir, title=title)


def class_summary_text(result: Any, classes: Sequence[str], *, n: int = 10) -> str:
    """Per-class accuracy best to worst (all of it up to 30 classes, else the best and worst ``n``)
    and the most-confused pairs, as text tables."""
    from vidrec.report.tables import text_table

    rows = ranked_classes(result.per_class, result.support, result.confusion, list(classes))

    def table(part: list[Any], start: int) -> str:
        return text_table(
            ["rank", "class", "videos", "accuracy", "most often mistaken for"],
            [
                [
                    start + i,
                    c.name,
                    c.videos,
                    c.accuracy if c.accuracy is not None else "n/a",
                    f"{c.confused_with} ({c.confused_rate:.0%})" if c.confused_with else "-",
                ]
                for i, c in enumerate(part)
            ],
        )

    if len(rows) <= 30:
        out = [table(rows, 1)]
    else:
        out = [
            f"best {n} of {len(rows)} classes:",
            table(rows[:n], 1),
            f"\nworst {n}:",
            table(rows[-n:], len(rows) - n + 1),
        ]
    pairs = confused_pairs(result.confusion, list(classes), top=n)
    if pairs:
        out += [
            f"\nmost-confused pairs (top {len(pairs)}):",
            text_table(
                ["true class", "predicted as", "videos", "share"],
                [[p.true, p.predicted, p.count, f"{p.rate:.0%}"] for p in pairs],
            ),
        ]
    return "\n".join(out)


def classification_eval_text(outcome: Any, summary: dict[str, Any], out_dir: str | Path, subset: str) -> str:
    """What ``vidrec eval`` prints for a classifier: the class tables, the headline numbers, unreadable videos and
    the report's files."""
    r, out = outcome.result, Path(out_dir)
    lines = [
        class_summary_text(r, outcome.classes),
        "",
        f"{subset}: top-1 {r.top1:.3f}  top-5 {r.top5:.3f}  mean class acc {r.mean_class_acc:.3f}  "
        f"({summary['num_videos']} videos, {summary['num_clips']} clips)",
    ]
    if outcome.unreadable:
        lines.append(
            f"{len(outcome.unreadable)} unreadable video(s) left out of every metric (no stand-in was scored):"
        )
        lines += [f"  {path}: {why}" for path, why in outcome.unreadable.items()]
    curves = ", training_curves.png" if (out / "training_curves.png").is_file() else ""
    lines.append(
        f"report: {out / 'report.md'} (metrics.json, confusion.csv, per_class.md, confusion.png, "
        f"confusion_top.png, per_class.png{curves})"
    )
    return "\n".join(lines)


def retrieval_eval_text(m: dict[str, Any], out_dir: str | Path) -> str:
    """What ``vidrec eval`` prints for a video–text model: R@1/5/10 and ranks in both directions."""
    lines = [
        f"{name}: R@1 {m[f'{d}_r1']:.3f}  R@5 {m[f'{d}_r5']:.3f}  R@10 {m[f'{d}_r10']:.3f}  "
        f"median rank {m[f'{d}_median_rank']:.0f}  mean rank {m[f'{d}_mean_rank']:.1f}"
        for d, name in (("t2v", "text→video"), ("v2t", "video→text"))
    ]
    lines.append(
        f"{m['subset']}: {int(m['num_pairs'])} video–caption pairs (chance R@1 {m['chance_r1']:.3f}); "
        f"report: {Path(out_dir) / 'metrics.json'}"
    )
    return "\n".join(lines)
