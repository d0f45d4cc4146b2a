"""Embedding verbs: ``vidrec embed`` (folder → store) and ``vidrec search`` (text or video → videos)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

import typer

from vidrec.cli.app import app
from vidrec.errors import VidrecError

log = logging.getLogger("vidrec")


def _shard_from(value: Optional[str]) -> tuple[int, int] | None:
    if value is None:
        rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
        if rank is not None and world is not None and int(world) > 1:
            return int(rank), int(world)
        return None
    try:
        r, w = value.split("/")
        return int(r), int(w)
    except ValueError:
        raise VidrecError(f"--shard {value}: expected RANK/WORLD, e.g. 0/4") from None


@app.command()
def embed(
    video_dir: Path = typer.Argument(..., help="Folder of videos (searched recursively), or one video file."),
    out: Path = typer.Option(..., "--out", "-o", help="Store directory (created; a re-run adds only new or changed videos)."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m",
        help="Encoder: a CLIP from_pretrained directory, a vidrec checkpoint directory, or a hub id (online). "
        "Default: openai/clip-vit-base-patch32 when cached or reachable.",
    ),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames sampled per video (or per window); default the model's (CLIP: 12)."),
    merge: Optional[str] = typer.Option(None, "--merge", help="Temporal token merging schedule, e.g. 2-2-2; 'off' for plain per-frame CLIP."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Videos decoded together; clips encoded together."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Also export: npy, json, parquet or all (comma-separated)."),
    segments: str = typer.Option("frame", "--segments", help="Segment embeddings per sampled frame/clip ('frame') or per fixed window ('window')."),
    window_seconds: float = typer.Option(5.0, "--window-seconds", help="Window length for --segments window."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decoding processes (default: CPU cores - 1, at most 8)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    shard: Optional[str] = typer.Option(None, "--shard", help="RANK/WORLD: embed every WORLD-th video (default from RANK/WORLD_SIZE)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Embed a folder of videos into a LanceDB store (video-level and segment-level embeddings).

    Resumable: videos already embedded (same path, size and mtime) are skipped. A video that
    fails is recorded in STORE/failures.json with its error and the run goes on; the exit status
    is then 1 (as for predict and prepare scan), and the next run retries it.
    """
    from vidrec.embed import extract

    summary = extract(
        video_dir, out, model=model, num_frames=frames, merge=merge, batch_size=batch_size, segments=segments,  # type: ignore[arg-type]
        window_seconds=window_seconds, formats=fmt, workers=workers, device=device, shard=_shard_from(shard), progress=True,
    )
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_summary(summary)
    if summary.failed:
        raise typer.Exit(1)


def _print_summary(summary: Any) -> None:
    typer.echo(
        f"embedded {summary.processed} videos, skipped {summary.skipped} unchanged, {summary.failed} failed "
        f"in {summary.seconds:.1f} s ({summary.videos_per_s:.2f} videos/s) → {summary.store}"
    )
    if summary.short:
        typer.echo(f"{summary.short} videos had fewer frames than sampled (frames repeated)")
    for path, err in list(summary.failures.items())[:10]:
        typer.echo(f"  failed: {path}: {err}")
    if len(summary.failures) > 10:
        typer.echo(f"  ... {len(summary.failures) - 10} more in {summary.store / 'failures.json'}")
    if summary.indexed:
        typer.echo(f"built an ANN index on: {', '.join(summary.indexed)}")
    for p in summary.exports:
        typer.echo(f"  wrote {p}")


def _read_queries(path: Path) -> list[dict[str, Any]]:
    """A JSON list of strings, of {"query": ..., "k": ...} objects, or {"queries": [...]}."""
    if not path.is_file():
        raise VidrecError(f"--queries {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise VidrecError(f"--queries {path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict) and "queries" in data:
        data = data["queries"]
    if not isinstance(data, list) or not data:
        raise VidrecError(f"--queries {path}: expected a non-empty JSON list of queries (strings or {{\"query\": ...}})")
    out = []
    for i, q in enumerate(data):
        if isinstance(q, str):
            out.append({"query": q})
        elif isinstance(q, dict) and isinstance(q.get("query"), str):
            out.append(q)
        else:
            raise VidrecError(f"--queries {path}: item {i + 1} is neither a string nor an object with a \"query\" string")
    return out


def _print_hits(title: str, hits: list[Any]) -> None:
    typer.echo(title)
    if not hits:
        typer.echo("  (no results)")
    for rank, h in enumerate(hits, 1):
        typer.echo(f"{rank:>3}. {h.score:.4f}  {h.path}")
        for m in h.moments:
            typer.echo(f"       {m.start_s:7.2f}-{m.end_s:7.2f} s  frames {m.frame_indices}  ({m.score:.4f})")


@app.command()
def search(
    store: Path = typer.Argument(..., help="A store built by vidrec embed."),
    query: Optional[str] = typer.Argument(None, help="A sentence, e.g. \"a person pours water into a cup\"."),
    k: int = typer.Option(10, "-k", "--top", help="Videos to return."),
    moments: int = typer.Option(3, "--moments", help="Best moments (segments) shown per video."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="JSON file with many queries (list of strings or {query, k})."),
    video: Optional[Path] = typer.Option(None, "--video", help="Find videos like this one (video-to-video)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (to embed the query)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Search a store with text (or a video): top videos with scores and their best moments."""
    from vidrec.embed.search import QueryError, check_queries, search as search_store, search_by_video
    from vidrec.embed.store import Store, StoreError

    given = [x for x in (query, queries, video) if x is not None]
    if len(given) != 1:
        raise QueryError("give exactly one of: a QUERY sentence, --queries FILE.json, or --video CLIP.mp4")
    st = Store(store)
    if query is not None:
        check_queries([query])
    items = _read_queries(queries) if queries is not None else []
    check_queries([it["query"] for it in items])
    if st.count() == 0:
        raise StoreError(f"{store}: the store holds no videos yet; run vidrec embed VIDEO_DIR --out {store}")
    st.encoder(device=device)  # the encoder that built the store, on the chosen device
    results: list[dict[str, Any]] = []
    if video is not None:
        hits = search_by_video(st, video, k=k, moments=moments)
        results.append({"video": str(video), "results": hits})
    elif queries is not None:
        for it in items:
            hits = search_store(st, it["query"], k=int(it.get("k", k)), moments=moments)
            results.append({"query": it["query"], "results": hits})
    else:
        assert query is not None
        results.append({"query": query, "results": search_store(st, query, k=k, moments=moments)})
    if as_json:
        payload = [{**{kk: vv for kk, vv in r.items() if kk != "results"}, "results": [h.to_dict() for h in r["results"]]} for r in results]
        typer.echo(json.dumps(payload[0] if len(payload) == 1 and queries is None else payload, indent=2))
        return
    for r in results:
        _print_hits(f"query: {r['query']!r}" if "query" in r else f"videos like {r['video']}", r["results"])
