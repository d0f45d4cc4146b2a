"""The embedding store: a directory holding a LanceDB database, its description, and exports.

::

    STORE/
      store.json       which encoder built it (refuses any other), dim, created, vidrec version
      lancedb/         LanceDB tables: ``videos`` (one row per video) and ``segments``
                       (per sampled frame / merged clip, or per fixed window, with times)
      failures.json    videos that failed in the last run that tried them, with the error
                       (failures.rankN.json per shard or process of a sharded run)
      exports/         npy / json / parquet exports (``vidrec embed --format``)

Rows are keyed by the video's absolute path; ``size`` + ``mtime_ns`` tell whether a file changed
since it was embedded. A video's rows are replaced (delete, then add segments, then the video
row), so an interrupted run leaves at worst a video without its row, which the next run redoes.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa

from vidrec.errors import VidrecError
from vidrec.utils.io import atomic_path, create_json_exclusive, write_json_atomic

log = logging.getLogger(__name__)

META = "store.json"
FAILURES = "failures.json"
DB_DIR = "lancedb"
FORMAT_VERSION = 1
INDEX_THRESHOLD = 50_000  # videos (or segments) above which an ANN index is built
EXPORT_FORMATS = ("npy", "json", "parquet")


class StoreError(VidrecError):
    """The store path is unusable (a file, missing, damaged)."""


class EncoderMismatch(StoreError):
    """The store was built by another encoder; mixing embeddings of two encoders is refused."""


def _videos_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("path", pa.string()),
            pa.field("name", pa.string()),  # export name: path relative to the scanned folder, '/' → '__'
            pa.field("size", pa.int64()),
            pa.field("mtime_ns", pa.int64()),
            pa.field("num_frames", pa.int32()),
            pa.field("fps", pa.float32()),
            pa.field("duration", pa.float32()),
            pa.field("frame_indices", pa.list_(pa.int32())),
            pa.field("vector", pa.list_(pa.float32(), dim)),
            pa.field("embedded_at", pa.string()),
        ]
    )


def _segments_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("path", pa.string()),
            pa.field("segment", pa.int32()),
            pa.field("start_s", pa.float32()),
            pa.field("end_s", pa.float32()),
            pa.field("frame_start", pa.int32()),
            pa.field("frame_end", pa.int32()),
            pa.field("frame_indices", pa.list_(pa.int32())),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
    )


def _store_file(name: str) -> bool:
    """What a store (possibly being created by another process at this moment) may hold."""
    return (
        name in (DB_DIR, META, "exports")
        or name.startswith(f".{META}.")
        or (name.startswith("failures") and name.endswith(".json"))
    )


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _to_table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    cols: dict[str, Any] = {}
    for f in schema:
        vals = [r[f.name] for r in rows]
        if f.name == "vector":
            dim = f.type.list_size
            flat = np.asarray(np.stack(vals), dtype=np.float32).reshape(-1)
            cols[f.name] = pa.FixedSizeListArray.from_arrays(pa.array(flat), dim)
        else:
            cols[f.name] = pa.array(vals, type=f.type)
    return pa.table(cols, schema=schema)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Store:
    """An embedding store on disk (see the module doc): the storage layer. Queries are
    :mod:`vidrec.embed.search`'s (``search(Store(path), "query")``), built on the public methods here."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]+):/", os.fspath(path))  # "s3://b/x"; a Path makes it "s3:/b/x"
        if scheme:
            raise StoreError(
                f"{os.fspath(path)}: a store is a folder on a filesystem; {scheme[1]}:// object storage "
                "is not supported as --out. On a cluster, use a folder every machine mounts "
                "(docs/embeddings.md)."
            )
        self.path = Path(path).expanduser()
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(
                f"{self.path}: the store path is a file; a store is a directory. "
                "Choose another --out (nothing was changed)."
            )
        meta_file = self.path / META
        if not meta_file.is_file():
            if not create:
                if self.path.is_dir() and any(self.path.iterdir()):
                    raise StoreError(
                        f"{self.path}: not an embedding store (no {META}); it is a non-empty folder. "
                        "Choose another path."
                    )
                raise StoreError(
                    f"{self.path}: no embedding store here. Build one with: vidrec embed VIDEO_DIR --out {self.path}"
                )
            if self.path.is_dir() and any(not _store_file(p.name) for p in self.path.iterdir()):
                raise StoreError(
                    f"{self.path}: the folder is not empty and is not an embedding store; choose an empty or new --out"
                )
            self._meta: dict[str, Any] = {}
        else:
            try:
                self._meta = json.loads(meta_file.read_text())
            except json.JSONDecodeError as exc:
                raise StoreError(f"{meta_file}: damaged store description ({exc})") from exc
        self._db: Any = None
        self._encoder: Any = None

    # ------------------------------------------------------------------ description
    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._meta)

    @property
    def encoder_description(self) -> dict[str, Any]:
        return dict(self._meta.get("encoder", {}))

    @property
    def dim(self) -> int:
        return int(self._meta.get("dim", 0))

    def bind_encoder(self, encoder: Any) -> None:
        """Record ``encoder`` in a new store; refuse it (naming the differences) if another built this one."""
        from vidrec.embed.encoders import description_diff

        desc = encoder.describe()
        if self._meta:
            old = self._meta.get("encoder", {})
            if old != desc:
                diff = "; ".join(description_diff(old, desc))
                raise EncoderMismatch(
                    f"{self.path} was built by encoder {old.get('source')} "
                    f"and this run uses {desc.get('source')} ({diff}). "
                    "Embeddings of different encoders cannot be mixed: "
                    "use another --out, or the same --model and options."
                )
            self._encoder = encoder
            return
        self.path.mkdir(parents=True, exist_ok=True)
        dim = int(desc["dim"])
        meta = {
            "format": FORMAT_VERSION,
            "encoder": desc,
            "encoder_options": encoder.options,
            "dim": dim,
            "created": now_iso(),
            "vidrec_version": __import__("vidrec").__version__,
        }
        if not create_json_exclusive(self.path / META, meta):
            # another process or machine created the store meanwhile (sharded runs start together): check against it
            self._meta = json.loads((self.path / META).read_text())
            self.bind_encoder(encoder)
            return
        self._meta = meta
        self._encoder = encoder

    def encoder(self, *, device: str = "auto") -> Any:
        """The encoder that built the store (reloaded from what store.json recorded)."""
        if self._encoder is None:
            from vidrec.embed.encoders import encoder_from_record

            self._encoder = encoder_from_record(
                self.encoder_description, self._meta.get("encoder_options", {}), device=device
            )
        return self._encoder

    # ------------------------------------------------------------------ tables
    def _connect(self) -> Any:
        if self._db is None:
            import lancedb

            self._db = lancedb.connect(str(self.path / DB_DIR))
        return self._db

    def _table(self, name: str, *, create: bool = False) -> Any:
        db = self._connect()
        if name in db.table_names():
            return db.open_table(name)
        if not create:
            return None
        schema = _videos_schema(self.dim) if name == "videos" else _segments_schema(self.dim)
        return db.create_table(name, schema=schema, exist_ok=True)

    def videos(self) -> pa.Table:
        t = self._table("videos")
        return t.to_arrow() if t is not None else _videos_schema(max(self.dim, 1)).empty_table()

    def segments(self, paths: Iterable[str] | None = None) -> pa.Table:
        t = self._table("segments")
        if t is None:
            return _segments_schema(max(self.dim, 1)).empty_table()
        if paths is None:
            return t.to_arrow()
        paths = list(paths)
        if not paths:
            return _segments_schema(self.dim).empty_table()
        where = "path IN (" + ", ".join(_sql_str(p) for p in paths) + ")"
        return t.search().where(where).limit(None).to_arrow()

    def nearest_videos(self, vector: np.ndarray, *, limit: int) -> pa.Table:
        """The ``limit`` videos closest to ``vector`` (cosine), best first: columns ``path``,
        ``duration`` and ``score`` (cosine similarity). Exact below the index threshold; through the
        IVF-PQ index, re-ranked exactly, once :meth:`ensure_index` has built one."""
        table = self._table("videos")
        if table is None or table.count_rows() == 0:
            raise StoreError(
                f"{self.path}: the store holds no videos yet; run vidrec embed VIDEO_DIR --out {self.path}"
            )
        q = table.search(np.asarray(vector, dtype=np.float32)).distance_type("cosine").limit(limit)
        q = q.select(["path", "duration", "_distance"])
        q = q.nprobes(20).refine_factor(10) if self.has_index("videos") else q.bypass_vector_index()
        res = q.to_arrow()
        score = 1.0 - np.asarray(res["_distance"].to_numpy(zero_copy_only=False), dtype=np.float64)
        return res.drop_columns(["_distance"]).append_column("score", pa.array(score, pa.float64()))

    def video_vector(self, path: str) -> np.ndarray | None:
        """The stored embedding ``(E,)`` of the video at ``path`` (as stored: absolute), or ``None``."""
        t = self._table("videos")
        if t is None:
            return None
        hit = t.search().where(f"path = {_sql_str(path)}").select(["vector"]).limit(1).to_arrow()
        return np.asarray(hit["vector"][0].as_py(), dtype=np.float32) if hit.num_rows else None

    def paths_with_size(self, size: int) -> list[str]:
        """Stored paths of the videos whose file had ``size`` bytes when embedded (to find a copy)."""
        t = self._table("videos")
        if t is None:
            return []
        return t.search().where(f"size = {int(size)}").select(["path"]).limit(None).to_arrow()["path"].to_pylist()

    def count(self) -> int:
        t = self._table("videos")
        return int(t.count_rows()) if t is not None else 0

    def known(self) -> dict[str, tuple[int, int]]:
        """path → (size, mtime_ns) of every embedded video."""
        t = self._table("videos")
        if t is None:
            return {}
        tab = t.search().select(["path", "size", "mtime_ns"]).limit(None).to_arrow()
        return {
            p: (s, m) for p, s, m in zip(tab["path"].to_pylist(), tab["size"].to_pylist(), tab["mtime_ns"].to_pylist())
        }

    def write(self, videos: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]]) -> None:
        """Replace the rows of these videos (segments first, video rows last)."""
        if not videos:
            return
        vt = self._table("videos", create=True)
        st = self._table("segments", create=True)
        where = "path IN (" + ", ".join(_sql_str(v["path"]) for v in videos) + ")"
        vt.delete(where)
        st.delete(where)
        if segments:
            st.add(_to_table(segments, _segments_schema(self.dim)))
        vt.add(_to_table(videos, _videos_schema(self.dim)))

    def remove(self, paths: Sequence[str]) -> None:
        if not paths:
            return
        where = "path IN (" + ", ".join(_sql_str(p) for p in paths) + ")"
        for name in ("videos", "segments"):
            t = self._table(name)
            if t is not None:
                t.delete(where)

    def compact(self) -> None:
        """Merge the many small fragments a batched run leaves (faster scans); best effort."""
        for name in ("videos", "segments"):
            t = self._table(name)
            if t is not None:
                try:
                    t.optimize()
                except Exception as exc:  # noqa: BLE001 - compaction is an optimisation only
                    log.debug("compaction of %s skipped: %s", name, exc)

    # ------------------------------------------------------------------ failures
    def failures(self, *, key: str | None = None) -> dict[str, dict[str, Any]]:
        """path → {error, at} of videos that failed (all shards' files, or only ``key``.json)."""
        files = [self.path / f"{key}.json"] if key else sorted(self.path.glob("failures*.json"))
        out: dict[str, dict[str, Any]] = {}
        for f in files:
            if f.is_file():
                try:
                    out.update(json.loads(f.read_text()))
                except json.JSONDecodeError:
                    log.warning("%s: unreadable; its failures are forgotten (they are retried anyway)", f)
        if not key and len(files) > 1 and out:  # a shard's file may predate another shard embedding the video
            embedded = self.known()
            out = {p: e for p, e in out.items() if p not in embedded}
        return out

    # ------------------------------------------------------------------ ANN index
    def ensure_index(self, *, threshold: int = INDEX_THRESHOLD) -> list[str]:
        """Build an IVF-PQ cosine index on each table with at least ``threshold`` rows (or refresh
        one that has fallen behind by more than 10 %). Smaller tables are searched exactly."""
        from lancedb.index import IvfPq

        built = []
        for name in ("videos", "segments"):
            t = self._table(name)
            if t is None:
                continue
            n = int(t.count_rows())
            if n < threshold or n < 256:
                continue
            stale = True
            for idx in t.list_indices():
                if "vector" in idx.columns:
                    stats = t.index_stats(idx.name)
                    stale = stats is not None and stats.num_unindexed_rows > 0.1 * n
            if not stale:
                continue
            sub = next((s for s in (16, 8, 4, 2) if self.dim % s == 0 and self.dim // s >= 2), 1)  # PQ sub-vectors
            parts = max(1, min(int(np.sqrt(n)), n // 256))
            t.create_index(
                "vector", config=IvfPq(distance_type="cosine", num_partitions=parts, num_sub_vectors=sub), replace=True
            )
            built.append(name)
            log.info("built an IVF-PQ index on %s (%d rows, %d partitions)", name, n, parts)
        return built

    def has_index(self, name: str = "videos") -> bool:
        t = self._table(name)
        return t is not None and any("vector" in i.columns for i in t.list_indices())

    # ------------------------------------------------------------------ exports
    def export(self, formats: Sequence[str], out_dir: str | os.PathLike[str] | None = None) -> list[Path]:
        """Write exports of every embedded video: per-video ``<name>_embedding.npy`` / ``.json``
        (seed 003's files), ``embeddings.npy`` + ``embeddings_index.json``, the consolidated
        ``embeddings.json`` with metadata, and ``videos.parquet`` / ``segments.parquet``."""
        out = Path(out_dir) if out_dir is not None else self.path / "exports"
        out.mkdir(parents=True, exist_ok=True)
        tab = self.videos()
        rows = tab.drop_columns(["vector"]).to_pylist()
        vecs = (
            np.asarray(tab["vector"].to_pylist(), dtype=np.float32).reshape(len(rows), -1)
            if rows
            else np.zeros((0, self.dim), np.float32)
        )
        failures = self.failures()
        written: list[Path] = []
        for fmt in formats:
            if fmt not in EXPORT_FORMATS:
                raise StoreError(f"--format {fmt}: unknown; use npy, json, parquet or all")
            if fmt == "npy":
                for r, v in zip(rows, vecs):
                    with atomic_path(out / f"{r['name']}_embedding.npy") as tmp:
                        with open(tmp, "wb") as fh:
                            np.save(fh, v)
                with atomic_path(out / "embeddings.npy") as tmp:
                    with open(tmp, "wb") as fh:
                        np.save(fh, vecs)
                write_json_atomic(out / "embeddings_index.json", {"encoder": self.encoder_description, "videos": rows})
                written += [out / "embeddings.npy", out / "embeddings_index.json"]
            elif fmt == "json":
                consolidated: dict[str, Any] = {}
                for r, v in zip(rows, vecs):
                    item = {
                        "video_path": r["path"],
                        "embedding": v.tolist(),
                        "shape": list(v.shape),
                        "dtype": "float32",
                    }
                    write_json_atomic(out / f"{r['name']}_embedding.json", item, indent=None)
                    consolidated[r["name"]] = {
                        **item,
                        **{k: r[k] for k in ("duration", "fps", "num_frames", "frame_indices")},
                    }
                meta = {
                    "total_videos": len(rows) + len(failures),
                    "successful": len(rows),
                    "failed": len(failures),
                    "processing_date": now_iso(),
                    "encoder": self.encoder_description,
                    "failures": failures,
                }
                write_json_atomic(out / "embeddings.json", {"embeddings": consolidated, "metadata": meta}, indent=None)
                written.append(out / "embeddings.json")
            elif fmt == "parquet":
                import pyarrow.parquet as pq

                for name, table in (("videos", tab), ("segments", self.segments())):
                    with atomic_path(out / f"{name}.parquet") as tmp:
                        pq.write_table(
                            table.replace_schema_metadata({"encoder": json.dumps(self.encoder_description)}), tmp
                        )
                    written.append(out / f"{name}.parquet")
        return written
