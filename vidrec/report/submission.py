"""Submission files of predictions, in each benchmark's format.

| format | lines | for |
| --- | --- | --- |
| ``ids`` | header ``id,class``, then ``<id>,<class>`` | seed 001's HMDB51 submission, UCF101/HMDB51 and folders |
| ``topk`` | header ``id,class,top1,prob1,...``, then the top-k classes with probabilities | analysis |
| ``ssv2`` | ``<id>;<label>`` or ``<id>;<label1>;...;<label5>`` (no header) | Something-Something-v2's test set |

The SSv2 lines are the ones the reference implementations (TSM, TRN: ``test_models.py
--csv_file``) write for the 20BN evaluation: the video id, then the top-1, or the top-5 labels
best first, separated by ``;``. Labels are the class names of ``something-something-v2-labels.json``.
``auto`` picks ``ssv2`` for a Something-Something checkpoint and ``ids`` otherwise. A video that
could not be read keeps its line, with an empty class, so the ids stay complete.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Sequence

from vidrec.errors import ConfigError
from vidrec.utils.io import atomic_path

FORMATS = ("auto", "ids", "topk", "ssv2")
SSV2_DATASETS = ("ssv2", "something_else")


def resolve_format(fmt: str, dataset: str) -> str:
    """``auto`` → ``ssv2`` for a Something-Something dataset, else ``ids``; others as given (checked)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--csv-format {fmt}: unknown; use {', '.join(FORMATS)}")
    if fmt == "auto":
        return "ssv2" if dataset in SSV2_DATASETS else "ids"
    return fmt


def write_submission(path: str | os.PathLike[str], predictions: Sequence[Any], *, fmt: str, topk: int = 5) -> Path:
    """Write ``predictions`` (each with ``id``, ``label`` and ``topk``: ``[(class, prob), ...]``) to ``path``
    atomically, in format ``fmt`` (resolved, not ``auto``); ``topk`` labels per SSv2 line."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        if fmt == "ssv2":
            for p in predictions:
                fields = [str(p.id), *(c for c, _ in p.topk[:topk])]
                bad = next((x for x in fields if ";" in x or "\n" in x), None)
                if bad is not None:
                    raise ConfigError(
                        f"--csv-format ssv2: {bad!r} holds a ';' (the field separator); use --csv-format ids"
                    )
                f.write(";".join(fields) + "\n")
            return path
        w = csv.writer(f)
        if fmt == "ids":
            w.writerow(["id", "class"])
            for p in predictions:
                w.writerow([p.id, p.label or ""])
            return path
        k = max((len(p.topk) for p in predictions), default=0)
        w.writerow(["id", "class"] + [c for i in range(k) for c in (f"top{i + 1}", f"prob{i + 1}")])
        for p in predictions:
            row: list[Any] = [p.id, p.label or ""]
            for c, q in p.topk:
                row += [c, f"{q:.6f}"]
            w.writerow(row)
    return path
