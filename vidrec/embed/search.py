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
        return {
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "frame_indices": self.frame_indices,
            "score": round(self.score, 6),
        }


@dataclass
class Hit:
    """One video found, with its best moments."""

    path: str
    score: float
    duration: float = 0.0
    moments: list[Moment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "score": round(self.score, 6),
            "duration": round(self.duration, 3),
            "moments": [m.to_dict() for m in self.moments],
        }


def _store(store: StoreLike) -> Store:
    return store if isinstance(store, Store) else Store(store)


def check_queries(queries: Sequence[str]) -> list[str]:
    """The queries, stripped; an empty one is a :class:`QueryError` naming which."""
    out = []
    for i, q in enumerate(queries):
        if not isinstance(q, str) or not q.strip():
            where = f" (query {i + 1})" if len(queries) > 1 else ""
            raise QueryError(f'empty query{where}: give a sentence, e.g. "a person pours water into a cup"')
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
            lst.append(
                Moment(
                    float(cols["start_s"][i]), float(cols["end_s"][i]), list(cols["frame_indices"][i]), float(scores[i])
                )
            )
    return by_path


def search_vectors(
    store: StoreLike, vec: np.ndarray, *, k: int = 10, moments: int = 3, exclude: Sequence[str] = ()
) -> list[Hit]:
    """Top-``k`` videos for one query embedding (``(E,)``, normalised), with their best moments."""
    store = _store(store)
    if k < 1:
        raise QueryError(f"-k {k}: ask for at least one result")
    vec = np.asarray(vec, dtype=np.float32).reshape(-1)
    if store.dim and vec.shape[0] != store.dim:
        raise QueryError(
            f"the query embedding has {vec.shape[0]} dimensions but the store holds {store.dim}-dimensional ones"
        )
    top = _top_videos(store, vec, k, exclude)
    mom = _moments(store, vec, [p for p, _, _ in top], moments)
    return [Hit(path=p, score=s, duration=d, moments=mom.get(p, [])) for p, s, d in top]


def search(
    store: StoreLike,
    query: str | Sequence[str] | np.ndarray,
    *,
    k: int = 10,
    moments: int = 3,
    exclude: Sequence[str] = (),
) -> Any:
    """Text (one string or a list) or an embedding → ``list[Hit]`` (``list[list[Hit]]`` for a list)."""
    store = _store(store)
    if isinstance(query, np.ndarray):
        return search_vectors(store, query, k=k, moments=moments, exclude=exclude)
    single = isinstance(query, str)
    queries = check_queries([query] if isinstance(query, str) else list(query))
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


# ---------------------------------------------------------------------------------------------- moments
DEFAULT_WINDOW_SECONDS = 2.0  # moments embedded on the fly: 2-s windows ...
DEFAULT_STRIDE_FRACTION = 0.5  # ... starting every second (half a window) unless --stride-seconds says otherwise


def rank_segments(segments: Sequence[dict[str, Any]], vec: np.ndarray, *, k: int) -> list[Moment]:
    """The ``k`` segments (rows with ``start_s``, ``end_s``, ``frame_indices``, ``vector``) closest to ``vec``."""
    if k < 1:
        raise QueryError(f"-k {k}: ask for at least one moment")
    if not segments:
        return []
    vecs = np.asarray([np.asarray(s["vector"], dtype=np.float32) for s in segments])  # (S, E)
    scores = vecs @ np.asarray(vec, dtype=np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")[:k]
    return [
        Moment(
            float(segments[i]["start_s"]),
            float(segments[i]["end_s"]),
            [int(f) for f in segments[i]["frame_indices"]],
            float(scores[i]),
        )
        for i in order
    ]


def _windows(window_seconds: float | None, stride_seconds: float | None) -> tuple[float, float]:
    w = DEFAULT_WINDOW_SECONDS if window_seconds is None else float(window_seconds)
    if w <= 0:
        raise QueryError(f"--window-seconds {window_seconds}: must be positive")
    s = w * DEFAULT_STRIDE_FRACTION if stride_seconds is None else float(stride_seconds)
    if s <= 0:
        raise QueryError(f"--stride-seconds {stride_seconds}: must be positive")
    return w, s


def _video_file(video: str | os.PathLike[str]) -> Path:
    path = Path(video).expanduser()
    if not path.is_file():
        raise QueryError(f"{video}: no such video file")
    return path


def video_segments(
    encoder: Any,
    video: str | os.PathLike[str],
    *,
    window_seconds: float | None = None,
    stride_seconds: float | None = None,
) -> list[dict[str, Any]]:
    """``video`` cut into windows (default 2 s, every 1 s) and embedded by ``encoder``, no store needed."""
    from vidrec.embed.extract import embed_windows

    w, s = _windows(window_seconds, stride_seconds)
    return embed_windows(encoder, _video_file(video), window_seconds=w, stride_seconds=s)


def moments(
    encoder: Any,
    video: str | os.PathLike[str],
    query: str,
    *,
    k: int = 5,
    window_seconds: float | None = None,
    stride_seconds: float | None = None,
) -> list[Moment]:
    """The top-``k`` moments of one video for a sentence, embedding the video on the fly
    (``vidrec moments VIDEO "query" --model M``): overlapping windows, best first."""
    text = check_queries([query])[0]
    vec = encoder.encode_text([text])[0].float().cpu().numpy()
    return rank_segments(
        video_segments(encoder, video, window_seconds=window_seconds, stride_seconds=stride_seconds), vec, k=k
    )


def moments_in_store(
    store: StoreLike,
    video: str | os.PathLike[str],
    query: str,
    *,
    k: int = 5,
    window_seconds: float | None = None,
    stride_seconds: float | None = None,
) -> list[Moment]:
    """The top-``k`` moments of one video for a sentence (``vidrec search STORE "query" --video V``).

    A video the store holds (the same bytes) is ranked by its stored segments, unless a resolution
    is asked for (``window_seconds`` / ``stride_seconds``); otherwise, and for a video the store does
    not hold, the video is cut into windows and embedded on the fly by the store's encoder."""
    store = _store(store)
    text = check_queries([query])[0]
    path = _video_file(video)
    encoder = store.encoder()
    vec = encoder.encode_text([text])[0].float().cpu().numpy()
    stored = stored_copy(store, path)
    if stored is not None and window_seconds is None and stride_seconds is None:
        seg = store.segments([stored]).to_pylist()
        if seg:
            return rank_segments(seg, vec, k=k)
    return rank_segments(
        video_segments(encoder, path, window_seconds=window_seconds, stride_seconds=stride_seconds), vec, k=k
    )


@dataclass
class PairResult:
    """One line of a ``--pairs`` file answered: its moments, or why it failed, and how long it took."""

    video: str
    query: str
    status: str  # "ok" or "error"
    moments: list[Moment] = field(default_factory=list)
    error: str | None = None
    inference_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "query": self.query,
            "status": self.status,
            "error": self.error,
            "moments": [m.to_dict() for m in self.moments],
            "inference_ms": round(self.inference_ms, 1),
        }


def read_pairs(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(video, query)`` rows of a CSV file with a header naming the columns ``video`` and ``query``.

    A relative video path is taken from the current folder, or else from the CSV file's folder."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise QueryError(f"--pairs {path}: no such file (a CSV with the columns video,query)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise QueryError(f"--pairs {path}: not a readable CSV file ({exc})") from None
    if "video" not in header or "query" not in header:
        raise QueryError(
            f"--pairs {path}: the first line must name the columns video,query (found: {','.join(header) or 'nothing'})"
        )
    out = []
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("video"):
            raise QueryError(f"--pairs {path}: line {line}: no video")
        video = Path(row["video"]).expanduser()
        if not video.is_absolute() and not video.exists() and (path.parent / video).exists():
            video = path.parent / video
        out.append((str(video), row.get("query", "")))
    if not out:
        raise QueryError(f"--pairs {path}: no pairs below the header line")
    return out


def search_pairs(
    pairs: Sequence[tuple[str, str]],
    *,
    store: StoreLike | None = None,
    encoder: Any = None,
    k: int = 5,
    window_seconds: float | None = None,
    stride_seconds: float | None = None,
    progress: bool = False,
) -> list[PairResult]:
    """Answer every ``(video, query)`` pair (seed 003's batch mode): its top-``k`` moments with scores,
    ``status`` ``ok`` or ``error`` (with the message; the other pairs go on), and ``inference_ms``:
    the wall time of that pair, embedding its video included unless an earlier pair of the same
    video already did. With a ``store``, its encoder and stored segments are used (as
    :func:`moments_in_store`); otherwise ``encoder`` embeds every video on the fly."""
    import time

    from tqdm.auto import tqdm

    if (store is None) == (encoder is None):
        raise ValueError("give a store or an encoder")
    st = _store(store) if store is not None else None
    enc = st.encoder() if st is not None else encoder
    w, s = _windows(window_seconds, stride_seconds)
    cache: dict[str, list[dict[str, Any]]] = {}  # video -> its segments, embedded once for all its pairs
    out = []
    for video, query in tqdm(pairs, desc="pairs", unit="pair", disable=not progress, dynamic_ncols=True):
        t0 = time.perf_counter()
        try:
            text = check_queries([query])[0]
            path = _video_file(video)
            key = str(path.resolve())
            if key not in cache:
                stored = (
                    stored_copy(st, path)
                    if st is not None and window_seconds is None and stride_seconds is None
                    else None
                )
                seg = st.segments([stored]).to_pylist() if st is not None and stored is not None else []
                cache[key] = seg or video_segments(enc, path, window_seconds=w, stride_seconds=s)
            vec = enc.encode_text([text])[0].float().cpu().numpy()
            res = PairResult(video, query, "ok", rank_segments(cache[key], vec, k=k))
        except (VidrecError, OSError) as exc:
            res = PairResult(video, query, "error", error=" ".join(str(exc).split()))
        except (RuntimeError, ValueError) as exc:  # the model failed on this video: the other pairs go on
            res = PairResult(video, query, "error", error=f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        res.inference_ms = (time.perf_counter() - t0) * 1000
        log.debug("pair %s / %r: %s in %.1f ms", video, query, res.status, res.inference_ms)
        out.append(res)
    return out
