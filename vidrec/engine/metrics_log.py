"""A training run's metrics: ``metrics.jsonl`` (one JSON record per line) mirrored to TensorBoard (``tb/``).

A resumed run first cuts the log back to what was logged when its state was saved (:meth:`MetricsLog.rewind`),
and TensorBoard hides the events logged after that step (``purge_step``); the kept records of that step are
written to TensorBoard again, so a killed and resumed run logs what one that never stopped would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from vidrec.utils.io import head_lines, write_text_atomic

METRICS_LOG = "metrics.jsonl"


class MetricsLog:
    """``out_dir/metrics.jsonl`` and ``out_dir/tb/``; the TensorBoard writer opens at the first record."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / METRICS_LOG
        self.tb_dir = Path(out_dir) / "tb"
        self._writer: Any = None
        self._purge_step: int | None = None  # TensorBoard: on resume, hide what was logged after the saved step
        self._replay: list[dict[str, Any]] = []  # records at the saved step, logged again after the purge

    def append(self, record: dict[str, Any], *, step: int) -> None:
        """One line of ``metrics.jsonl``; its numbers are TensorBoard scalars at ``record["step"]`` (or ``step``)."""
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self._scalars(record, step)

    def rewind(self, source: Path | None, *, lines: int, step: int, by_step: bool = False) -> int:
        """Cut the log back to its first ``lines`` lines (``by_step``: a state with no line count, so keep the
        records up to ``step``), taken from ``source`` when the run continues in another directory. Returns the
        number of lines kept."""
        src = source or self.path
        if by_step:
            text = src.read_text(encoding="utf-8", errors="replace") if src.is_file() else ""
            kept = "".join(
                ln for ln in text.splitlines(keepends=True) if (s := _record_step(ln)) is not None and s <= step
            )
        else:
            kept = head_lines(src, lines)
        if self.path.is_file() or kept:
            write_text_atomic(self.path, kept)
        self._purge_step = step
        records = [r for r in map(_parse_record, kept.splitlines()) if r is not None]
        self._replay = [r for r in records if r.get("step") == step]
        return kept.count("\n")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def _scalars(self, record: dict[str, Any], default_step: int) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            _wait_past_event_files(self.tb_dir)
            self._writer = SummaryWriter(str(self.tb_dir), purge_step=self._purge_step)
            replay, self._replay = self._replay, []
            for r in replay:
                self._scalars(r, default_step)
        step = record.get("step", default_step)
        for k, v in record.items():
            if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                self._writer.add_scalar(k, v, step)


def _parse_record(line: str) -> dict[str, Any] | None:
    try:
        r = json.loads(line)
    except json.JSONDecodeError:
        return None
    return r if isinstance(r, dict) else None


def _record_step(line: str) -> int | None:
    r = _parse_record(line)
    return r.get("step") if r is not None and isinstance(r.get("step"), int) else None


def _wait_past_event_files(tb: Path) -> None:
    """Make the next event file sort after every existing one.

    TensorBoard reads a run's event files in name order, and applies a resume's ``purge_step`` only
    to the events read before it. The names are ``events.out.tfevents.<second>.<host>.<pid>.<n>``:
    two writers opened within one second sort by pid and counter as text, so a resumed run's file can
    sort before the killed run's one and its purge is lost. Waiting for the clock to pass the newest
    file's second (at most one second, and only when a run resumes that fast) keeps the order.
    """
    newest = -1
    for f in tb.glob("events.out.tfevents.*"):
        parts = f.name.split(".")
        if len(parts) > 3 and parts[3].isdigit():
            newest = max(newest, int(parts[3]))
    while int(time.time()) <= newest:
        time.sleep(0.05)
