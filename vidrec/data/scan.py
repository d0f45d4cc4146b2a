"""``vidrec prepare scan``: probe every video once, keep the facts in one index file.

The index (Parquet, or JSON Lines by suffix) has one row per video file under ``root``:
``path`` (relative to root, POSIX), ``size_bytes``, ``num_frames``, ``fps``, ``duration``,
``width``, ``height`` (as displayed: a phone video turned by its display matrix is recorded
upright), ``codec``, ``ok``, ``error`` and ``rotation``. Loaders given ``index=PATH`` read it
with one file read and fill :attr:`VideoRecord.num_frames` / ``fps`` from it, so a dataset
of 220k videos starts without opening a single video.

A file is *bad* when it is empty, cannot be opened, has no video stream, decodes no frame,
or is *truncated*: its header announces more frames than its packets hold. Nothing stops on
one bad file; each gets its reason.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from vidrec.errors import DatasetError, VideoError
from vidrec.utils.io import atomic_path
from vidrec.video.decode import VIDEO_SUFFIXES, PyAVDecoder, open_video

log = logging.getLogger(__name__)

INDEX_VERSION = 1
# A header may count a frame or two that carry no packet (B-frame delay, an empty last packet).
_TRUNCATION_SLACK = 2


@dataclass(frozen=True)
class ScanEntry:
    path: str  # relative to the index root, POSIX separators
    size_bytes: int
    num_frames: int = 0
    fps: float = 0.0
    duration: float = 0.0
    width: int = 0
    height: int = 0
    codec: str = ""
    ok: bool = True
    error: str = ""  # why the file is bad ("" when ok)
    rotation: int = 0  # clockwise degrees that show the coded frames upright; width/height are as displayed


_COLUMNS = list(ScanEntry.__dataclass_fields__)
_OPTIONAL = {"rotation": 0}  # columns added later; older indexes without them still load


class ScanIndex:
    """Scan results keyed by path relative to ``root``; stored column-wise so 220k rows load fast."""

    def __init__(
        self, root: Path, entries: dict[str, ScanEntry] | None = None, *, columns: dict[str, list] | None = None
    ) -> None:
        self.root = Path(root)
        if columns is None:
            rows = list((entries or {}).values())
            columns = {c: [getattr(e, c) for e in rows] for c in _COLUMNS}
        self._cols = columns
        self._col_list = [columns[c] for c in _COLUMNS]
        self._pos = {p: i for i, p in enumerate(columns["path"])}
        self._entries = entries
        prefixes = {str(self.root)}
        try:
            prefixes.add(str(self.root.resolve()))
        except OSError:
            pass
        self._prefixes = tuple(p.rstrip("/") + "/" for p in prefixes)

    def __len__(self) -> int:
        return len(self._pos)

    @property
    def entries(self) -> dict[str, ScanEntry]:
        if self._entries is None:
            self._entries = {p: self._entry(i) for p, i in self._pos.items()}
        return self._entries

    @property
    def bad(self) -> list[ScanEntry]:
        return [self._entry(i) for i, ok in enumerate(self._cols["ok"]) if not ok]

    def _entry(self, i: int) -> ScanEntry:
        return ScanEntry(*[col[i] for col in self._col_list])

    def get(self, rel: str) -> ScanEntry | None:
        i = self._pos.get(rel)
        return None if i is None else self._entry(i)

    def column(self, name: str) -> list:
        """One column (``num_frames``, ``fps``, ``width``, ...), indexed by :meth:`position`."""
        return self._cols[name]

    def position(self, path: str | os.PathLike[str]) -> int | None:
        """Row of a video path (absolute, or relative to the index root); ``None`` when absent."""
        s = os.fspath(path)
        if not os.path.isabs(s):
            return self._pos.get(Path(s).as_posix())
        for prefix in self._prefixes:
            if s.startswith(prefix):
                return self._pos.get(s[len(prefix) :])
        try:  # another spelling of the root (symlinks, ..): slow path
            return self._pos.get(Path(s).resolve().relative_to(self.root.resolve()).as_posix())
        except (ValueError, OSError):
            return None

    def lookup(self, path: str | os.PathLike[str]) -> ScanEntry | None:
        """The entry for a video path (absolute, or relative to the index root)."""
        i = self.position(path)
        return None if i is None else self._entry(i)


def iter_videos(root: Path) -> Iterator[Path]:
    """Video files under ``root`` (by suffix), sorted, hidden folders skipped."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.lower().endswith(VIDEO_SUFFIXES) and not name.startswith("."):
                yield Path(dirpath) / name


def probe_video(
    path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None, verify: bool = True
) -> ScanEntry:
    """Probe one file; never raises for a bad video (the entry says why)."""

    p = Path(path)
    rel = p.relative_to(root).as_posix() if root is not None else p.as_posix()
    try:
        size = p.stat().st_size
    except OSError as exc:
        return ScanEntry(rel, 0, ok=False, error=f"cannot stat: {exc}")
    if size == 0:
        return ScanEntry(rel, 0, ok=False, error="empty file (0 bytes)")
    try:
        info = PyAVDecoder().info(p)
    except VideoError as exc:
        return ScanEntry(rel, size, ok=False, error=_reason(str(exc), p))
    except Exception as exc:  # noqa: BLE001 - FFmpeg can raise odd errors on garbage; the scan must go on
        return ScanEntry(rel, size, ok=False, error=f"unreadable: {type(exc).__name__}: {exc}")
    entry = ScanEntry(
        rel, size, info.num_frames, info.fps, info.duration, info.width, info.height, info.codec, rotation=info.rotation
    )
    if info.num_frames <= 0:
        return _bad(entry, "no frames")
    if not verify:
        return entry
    try:
        with open_video(p) as container:
            stream = container.streams.video[0]
            header = int(stream.frames or 0)
            packets = 0
            decoded = False
            for packet in container.demux(stream):
                if packet.size <= 0:
                    continue
                packets += 1
                if not decoded:
                    decoded = bool(packet.decode())
            if not decoded:  # the decoder may hold the first frames until flushed
                decoded = bool(stream.codec_context.decode(None))
    except Exception as exc:  # noqa: BLE001 - any demuxing failure marks the file bad
        return _bad(entry, f"truncated or corrupt: demuxing failed ({type(exc).__name__}: {exc})")
    if not decoded:
        return _bad(entry, "no frame could be decoded")
    if header and packets + _TRUNCATION_SLACK < header:
        return _bad(entry, f"truncated: the header announces {header} frames, the file holds {packets}")
    expected = entry.duration * entry.fps
    if not header and expected > 0 and packets + _TRUNCATION_SLACK < 0.9 * expected:
        return _bad(
            entry,
            f"truncated: the container says {entry.duration:.2f} s (about {expected:.0f} frames), "
            f"the file holds {packets}",
        )
    if not header and packets != entry.num_frames:
        entry = ScanEntry(**{**asdict(entry), "num_frames": packets})
    return entry


def _bad(entry: ScanEntry, why: str) -> ScanEntry:
    return ScanEntry(**{**asdict(entry), "ok": False, "error": why})


def _reason(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _probe_task(args: tuple[str, str, bool]) -> ScanEntry:
    path, root, verify = args
    return probe_video(path, root=root, verify=verify)


def scan_videos(
    root: str | os.PathLike[str],
    *,
    workers: int = 1,
    verify: bool = True,
    paths: Iterable[Path] | None = None,
    progress: Callable[[ScanEntry], None] | None = None,
) -> ScanIndex:
    """Probe every video under ``root`` (in ``workers`` processes); one bad file never stops it."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder. Give the dataset's video folder.")
    files = list(paths) if paths is not None else list(iter_videos(root))
    tasks = [(str(f), str(root), verify) for f in files]
    entries: dict[str, ScanEntry] = {}
    if workers <= 1 or len(tasks) <= 1:
        results: Iterable[ScanEntry] = map(_probe_task, tasks)
        for e in results:
            entries[e.path] = e
            if progress:
                progress(e)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            chunk = max(1, min(64, len(tasks) // (workers * 8)))
            for e in pool.map(_probe_task, tasks, chunksize=chunk):
                entries[e.path] = e
                if progress:
                    progress(e)
    return ScanIndex(root, entries)


# ------------------------------------------------------------------------------------------
# index file


def write_index(index: ScanIndex, path: str | os.PathLike[str]) -> Path:
    """Write atomically: ``.parquet`` (pyarrow) or ``.jsonl`` (JSON Lines, first line is a header)."""
    path = Path(path).expanduser()
    cols = index._cols
    root = str(index.root.resolve())
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pa.schema(
                [
                    ("path", pa.string()),
                    ("size_bytes", pa.int64()),
                    ("num_frames", pa.int64()),
                    ("fps", pa.float64()),
                    ("duration", pa.float64()),
                    ("width", pa.int64()),
                    ("height", pa.int64()),
                    ("codec", pa.string()),
                    ("ok", pa.bool_()),
                    ("error", pa.string()),
                    ("rotation", pa.int64()),
                ]
            )
            table = pa.table({c: cols[c] for c in _COLUMNS}, schema=schema)
            table = table.replace_schema_metadata({"vidrec_scan_root": root, "vidrec_scan_version": str(INDEX_VERSION)})
            pq.write_table(table, tmp)
        elif path.suffix in (".jsonl", ".ndjson"):
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps({"vidrec_scan": INDEX_VERSION, "root": root}) + "\n")
                for i in range(len(cols["path"])):
                    f.write(json.dumps({c: cols[c][i] for c in _COLUMNS}) + "\n")
        else:
            raise DatasetError(f"{path}: the scan index must end in .parquet or .jsonl")
    _CACHE.pop(path.resolve(), None)
    return path


_CACHE: dict[Path, tuple[float, ScanIndex]] = {}


def load_index(path: str | os.PathLike[str]) -> ScanIndex:
    """Read a scan index written by :func:`write_index` (one file read; cached per process)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"data.index: {path} does not exist. Write it with `vidrec prepare scan ROOT --out {path}`.")
    key = path.resolve()
    mtime = path.stat().st_mtime
    hit = _CACHE.get(key)
    if hit and hit[0] == mtime:
        return hit[1]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise DatasetError(
                f"{path}: not a readable Parquet scan index ({exc}). Re-run `vidrec prepare scan`."
            ) from exc
        meta = table.schema.metadata or {}
        if b"vidrec_scan_root" not in meta:
            raise DatasetError(
                f"{path}: not a vidrec scan index (no root in its metadata). Re-run `vidrec prepare scan`."
            )
        root = Path(meta[b"vidrec_scan_root"].decode())
        missing = [c for c in _COLUMNS if c not in table.column_names and c not in _OPTIONAL]
        if missing:
            raise DatasetError(f"{path}: the scan index lacks the columns {missing}. Re-run `vidrec prepare scan`.")
        cols = {
            c: table.column(c).to_pylist() if c in table.column_names else [_OPTIONAL[c]] * table.num_rows
            for c in _COLUMNS
        }
        index = ScanIndex(root, columns=cols)
    else:
        entries = {}
        with open(path, encoding="utf-8") as f:
            try:
                head = json.loads(f.readline())
                root = Path(head["root"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DatasetError(
                    f"{path}: line 1: not a vidrec scan index header ({exc}). Re-run `vidrec prepare scan`."
                ) from exc
            for n, line in enumerate(f, 2):
                if not line.strip():
                    continue
                try:
                    e = ScanEntry(**json.loads(line))
                except (json.JSONDecodeError, TypeError) as exc:
                    raise DatasetError(
                        f"{path}: line {n}: malformed entry ({exc}). Re-run `vidrec prepare scan`."
                    ) from exc
                entries[e.path] = e
        index = ScanIndex(root, entries)
    _CACHE[key] = (mtime, index)
    return index
