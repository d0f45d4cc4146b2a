"""The query API over a :class:`~vidrec.embed.store.Store`: text → videos (and their best moments),
video → videos.

    from vidrec.embed import Store, search
    for hit in search(Store("store/"), "a person pours water into a cup", k=5):
        print(hit.path, hit.score, [(m.start_s, m.end_s) for m in hit.moments])

Scores are cosine similarities (every stored vector is L2-normalised). Small tables are searched
exactly; once :meth:`Store.ensure_index` has built an IVF-PQ index (tables above
``INDEX_THRESHOLD`` rows), LanceDB searches approximately and re-ranks the candidates exactly.
This module sits on the store's public methods; the store never imports it.
"""

from __future__ import annotations

import filecmp
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vidrec.embed.store import Store
from vidrec.errors import VidrecError

log = logging.getLogger(__name__)

StoreLike = Store | str | os.PathLike[str]


class QueryError(VidrecError):
    """The query is empty or unusable."""


@dataclass
class Moment:
    """A span of one video and how well it matches the query."""

    start_s: float
    end_s: float
    frame_indices: list[int]
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "frame_indices": self.frame_indices,
                "score": round(self.score, 6)}


@dataclass
class Hit:
    """One video found, with its best moments."""

    path: str
    score: float
    duration: float = 0.0
    moments: list[Moment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "score": round(self.score, 6), "duration": round(self.duration, 3),
                "moments": [m.to_dict() for m in self.moments]}


def _store(store: StoreLike) -> Store:
    return store if isinstance(store, Store) else Store(store)


def check_queries(queries: Sequence[str]) -> list[str]:
    """The queries, stripped; an empty one is a :class:`QueryError` naming which."""
    out = []
    for i, q in enumerate(queries):
        if not isinstance(q, str) or not q.strip():
            where = f" (query {i + 1})" if len(queries) > 1 else ""
            raise QueryError(f"empty query{where}: give a sentence, e.g. \"a person pours water into a cup\"")
        out.append(q.strip())
    return out


def _top_videos(store: Store, vec: np.ndarray, k: int, exclude: Sequence[str]) -> list[tuple[str, float, float]]:
    res = store.nearest_videos(vec, limit=k + len(exclude))
    out = []
    for p, d, score in zip(res["path"].to_pylist(), res["duration"].to_pylist(), res["score"].to_pylist()):
        if p not in exclude:
            out.append((p, float(score), float(d or 0.0)))
    return out[:k]


def _moments(store: Store, vec: np.ndarray, paths: Sequence[str], n: int) -> dict[str, list[Moment]]:
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


def search_vectors(store: StoreLike, vec: np.ndarray, *, k: int = 10, moments: int = 3, exclude: Sequence[str] = ()) -> list[Hit]:
    """Top-``k`` videos for one query embedding (``(E,)``, normalised), with their best moments."""
    store = _store(store)
    if k < 1:
        raise QueryError(f"-k {k}: ask for at least one result")
    vec = np.asarray(vec, dtype=np.float32).reshape(-1)
    if store.dim and vec.shape[0] != store.dim:
        raise QueryError(f"the query embedding has {vec.shape[0]} dimensions but the store holds {store.dim}-dimensional ones")
    top = _top_videos(store, vec, k, exclude)
    mom = _moments(store, vec, [p for p, _, _ in top], moments)
    return [Hit(path=p, score=s, duration=d, moments=mom.get(p, [])) for p, s, d in top]


def search(store: StoreLike, query: str | Sequence[str] | np.ndarray, *, k: int = 10, moments: int = 3,
           exclude: Sequence[str] = ()) -> Any:
    """Text (one string or a list) or an embedding → ``list[Hit]`` (``list[list[Hit]]`` for a list)."""
    store = _store(store)
    if isinstance(query, np.ndarray):
        return search_vectors(store, query, k=k, moments=moments, exclude=exclude)
    single = isinstance(query, str)
    queries = check_queries([query] if single else list(query))
    if not queries:
        raise QueryError("no queries given")
    encoder = store.encoder()
    emb = encoder.encode_text(queries).cpu().numpy()
    results = [search_vectors(store, e, k=k, moments=moments, exclude=exclude) for e in emb]
    return results[0] if single else results


def stored_copy(store: StoreLike, video: str | os.PathLike[str]) -> str | None:
    """The stored path of ``video`` if the store holds it: the same file, or a file with the same
    bytes (an uploaded or copied video); ``None`` otherwise. Only files of equal size are compared."""
    path = Path(video).expanduser()
    key = str(path.resolve())
    candidates = _store(store).paths_with_size(path.stat().st_size)
    if key in candidates:
        return key
    for p in candidates:
        try:
            if filecmp.cmp(p, path, shallow=False):
                return str(p)
        except OSError:  # the stored file is gone; it cannot be the same video
            continue
    return None


def search_by_video(store: StoreLike, video: str | os.PathLike[str], *, k: int = 10, moments: int = 3) -> list[Hit]:
    """Videos most like ``video``. A video the store already holds (the same file, or a copy with the
    same bytes, such as an upload of it) uses its stored embedding and is left out of the results;
    another one is embedded with the store's encoder."""
    from vidrec.embed.extract import embed_one

    store = _store(store)
    path = Path(video).expanduser()
    if not path.is_file():
        raise QueryError(f"--video {video}: no such file")
    stored = stored_copy(store, path)
    if stored is not None:
        vec = store.video_vector(stored)
        if vec is not None:
            return search_vectors(store, vec, k=k, moments=moments, exclude=[stored])
    vec = embed_one(store.encoder(), path)
    return search_vectors(store, vec, k=k, moments=moments)
