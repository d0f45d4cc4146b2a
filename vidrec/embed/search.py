"""Search a store: text → videos (and their best moments), video → videos.

Scores are cosine similarities (every stored vector is L2-normalised). Small tables are searched
exactly; once :meth:`Store.ensure_index` has built an IVF-PQ index (tables above
``INDEX_THRESHOLD`` rows), LanceDB searches approximately and re-ranks the candidates exactly.
"""

from __future__ import annotations

import filecmp
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from vidrec.embed.store import Hit, Moment, StoreError, _sql_str
from vidrec.errors import VidrecError

if TYPE_CHECKING:
    from vidrec.embed.store import Store

log = logging.getLogger(__name__)


class QueryError(VidrecError):
    """The query is empty or unusable."""


def _check_queries(queries: Sequence[str]) -> list[str]:
    out = []
    for i, q in enumerate(queries):
        if not isinstance(q, str) or not q.strip():
            where = f" (query {i + 1})" if len(queries) > 1 else ""
            raise QueryError(f"empty query{where}: give a sentence, e.g. \"a person pours water into a cup\"")
        out.append(q.strip())
    return out


def _top_videos(store: "Store", vec: np.ndarray, k: int, exclude: Sequence[str]) -> list[tuple[str, float, float]]:
    table = store._table("videos")
    if table is None or table.count_rows() == 0:
        raise StoreError(f"{store.path}: the store holds no videos yet; run vidrec embed VIDEO_DIR --out {store.path}")
    q = table.search(vec.astype(np.float32)).distance_type("cosine").limit(k + len(exclude)).select(["path", "duration", "_distance"])
    if store.has_index("videos"):
        q = q.nprobes(20).refine_factor(10)
    else:
        q = q.bypass_vector_index()
    res = q.to_arrow()
    out = []
    for p, d, dist in zip(res["path"].to_pylist(), res["duration"].to_pylist(), res["_distance"].to_pylist()):
        if p in exclude:
            continue
        out.append((p, 1.0 - float(dist), float(d or 0.0)))
    return out[:k]


def _moments(store: "Store", vec: np.ndarray, paths: Sequence[str], n: int) -> dict[str, list[Moment]]:
    if n <= 0 or not paths:
        return {}
    seg = store.segments(paths)
    if seg.num_rows == 0:
        return {}
    vecs = np.asarray(seg["vector"].to_pylist(), dtype=np.float32)
    scores = vecs @ vec.astype(np.float32)
    by_path: dict[str, list[Moment]] = {}
    cols = {c: seg[c].to_pylist() for c in ("path", "start_s", "end_s", "frame_indices")}
    for i in np.argsort(-scores):
        p = cols["path"][i]
        lst = by_path.setdefault(p, [])
        if len(lst) < n:
            lst.append(Moment(float(cols["start_s"][i]), float(cols["end_s"][i]), list(cols["frame_indices"][i]), float(scores[i])))
    return by_path


def search_vectors(store: "Store", vec: np.ndarray, *, k: int = 10, moments: int = 3, exclude: Sequence[str] = ()) -> list[Hit]:
    """Top-``k`` videos for one query embedding (``(E,)``, normalised), with their best moments."""
    if k < 1:
        raise QueryError(f"-k {k}: ask for at least one result")
    vec = np.asarray(vec, dtype=np.float32).reshape(-1)
    if store.dim and vec.shape[0] != store.dim:
        raise QueryError(f"the query embedding has {vec.shape[0]} dimensions but the store holds {store.dim}-dimensional ones")
    top = _top_videos(store, vec, k, exclude)
    mom = _moments(store, vec, [p for p, _, _ in top], moments)
    return [Hit(path=p, score=s, duration=d, moments=mom.get(p, [])) for p, s, d in top]


def search(store: "Store", query: str | Sequence[str] | np.ndarray, *, k: int = 10, moments: int = 3,
           exclude: Sequence[str] = ()) -> Any:
    """Text (one string or a list) or an embedding → ``list[Hit]`` (``list[list[Hit]]`` for a list)."""
    if isinstance(query, np.ndarray):
        return search_vectors(store, query, k=k, moments=moments, exclude=exclude)
    single = isinstance(query, str)
    queries = _check_queries([query] if single else list(query))
    if not queries:
        raise QueryError("no queries given")
    encoder = store.encoder()
    emb = encoder.encode_text(queries).cpu().numpy()
    results = [search_vectors(store, e, k=k, moments=moments, exclude=exclude) for e in emb]
    return results[0] if single else results


def stored_copy(store: "Store", video: str | os.PathLike[str]) -> str | None:
    """The stored path of ``video`` if the store holds it: the same file, or a file with the same
    bytes (an uploaded or copied video); ``None`` otherwise. Only files of equal size are compared."""
    path = Path(video).expanduser()
    key = str(path.resolve())
    table = store._table("videos")
    if table is None:
        return None
    same_size = table.search().where(f"size = {int(path.stat().st_size)}").select(["path"]).limit(None).to_arrow()
    candidates = same_size["path"].to_pylist()
    if key in candidates:
        return key
    for p in candidates:
        try:
            if filecmp.cmp(p, path, shallow=False):
                return str(p)
        except OSError:  # the stored file is gone; it cannot be the same video
            continue
    return None


def search_by_video(store: "Store", video: str | os.PathLike[str], *, k: int = 10, moments: int = 3) -> list[Hit]:
    """Videos most like ``video``. A video the store already holds (the same file, or a copy with the
    same bytes, such as an upload of it) uses its stored embedding and is left out of the results;
    another one is embedded with the store's encoder."""
    from vidrec.embed.extract import embed_one

    path = Path(video).expanduser()
    if not path.is_file():
        raise QueryError(f"--video {video}: no such file")
    stored = stored_copy(store, path)
    if stored is not None:
        hit = store._table("videos").search().where(f"path = {_sql_str(stored)}").limit(1).to_arrow()
        vec = np.asarray(hit["vector"][0].as_py(), dtype=np.float32)
        return search_vectors(store, vec, k=k, moments=moments, exclude=[stored])
    vec = embed_one(store.encoder(), path)
    return search_vectors(store, vec, k=k, moments=moments)
