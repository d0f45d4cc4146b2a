"""Embedding verbs: ``vidrec embed`` (folder → store), ``vidrec search`` (text or video → videos, moments of
one video, video–query pairs) and ``vidrec moments`` (moments of a video, no store)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

import typer

from vidrec.cli.app import app
from vidrec.utils.device import DEVICE_HELP
from vidrec.errors import VidrecError

log = logging.getLogger("vidrec")


def _shard_from(value: Optional[str]) -> tuple[int, int] | None:
    """``--shard I/N`` (this machine's share); the processes of a launch split it further (vidrec.embed.extract)."""
    if value is None:
        return None
    try:
        r, w = value.split("/")
        return int(r), int(w)
    except ValueError:
        raise VidrecError(f"--shard {value}: expected I/N, e.g. 0/4") from None


_MODEL_HELP = (
    "Encoder: a CLIP from_pretrained directory, a vidrec checkpoint directory, or a hub id (online). "
    "Default: openai/clip-vit-base-patch32 when cached or reachable."
)
_WINDOW_HELP = (
    "Moment length in seconds: the video is cut into windows of this length, each embedded as a clip (default 2)."
)
_STRIDE_HELP = "Seconds from one window's start to the next (default: half a window, i.e. overlapping)."


@app.command()
def embed(
    video_dir: Path = typer.Argument(..., help="Folder of videos (searched recursively), or one video file."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Store directory (created; a re-run adds only new or changed videos)."
    ),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=_MODEL_HELP),
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        "-c",
        help="YAML of these options (model, frames, merge, merge_layers, merge_keep, fusion, segments, "
        "window_seconds, stride_seconds, batch_size, workers, device); the command line wins.",
    ),
    frames: Optional[int] = typer.Option(
        None, "--frames", help="Frames sampled per video (or per window); default the model's (CLIP: 12)."
    ),
    merge: Optional[str] = typer.Option(
        None, "--merge", help="Temporal token merging schedule, e.g. 2-2-2; 'off' for plain per-frame CLIP."
    ),
    merge_layers: Optional[str] = typer.Option(
        None,
        "--merge-layers",
        help="Layers before which each merge stage runs, e.g. 6-8-10 "
        "(default: spread over the upper half of the tower).",
    ),
    merge_keep: Optional[str] = typer.Option(
        None,
        "--merge-keep",
        help="Share of a merged group's patch tokens kept: one value (0.5) or one per stage (0.3-0.7-0.7).",
    ),
    fusion: Optional[str] = typer.Option(None, "--fusion", help="Temporal fusion head: meanP or seqTransf."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", "-b", help="Videos decoded together; clips encoded together (default 8)."
    ),
    fmt: Optional[str] = typer.Option(
        None, "--format", help="Also export: npy, json, parquet or all (comma-separated)."
    ),
    segments: Optional[str] = typer.Option(
        None,
        "--segments",
        help="Segment embeddings per sampled frame/clip ('frame', default) or per window ('window').",
    ),
    window_seconds: Optional[float] = typer.Option(
        None, "--window-seconds", help="Window length for --segments window (default 5)."
    ),
    stride_seconds: Optional[float] = typer.Option(
        None,
        "--stride-seconds",
        help="Window start to start for --segments window (default: the window length; less: overlapping windows).",
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", help="Decoding processes (default: CPU cores - 1, at most 8)."
    ),
    device: Optional[str] = typer.Option(None, "--device", help=DEVICE_HELP),
    shard: Optional[str] = typer.Option(
        None,
        "--shard",
        help="I/N: this machine embeds every N-th video, from the I-th (0-based), into the shared store. "
        "Under torchrun / accelerate launch the processes split that share again.",
    ),
    summary_file: Optional[Path] = typer.Option(
        None,
        "--summary",
        help="Also write the processing summary to this JSON file "
        "(found, processed, skipped, failed and why, seconds, videos/s, exports).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Embed a folder of videos into a LanceDB store (video-level and segment-level embeddings).

    Resumable: videos already embedded (same path, size and mtime) are skipped. A video that
    fails is recorded in STORE/failures.json with its error and the run goes on; the exit status
    is then 1 (as for predict and prepare scan), and the next run retries it.

    Many GPUs or machines, one store: torchrun --nproc_per_node 8 -m vidrec embed VIDEOS --out STORE
    (each process embeds its share on its own GPU), and --shard I/N per machine (docs/embeddings.md).
    """
    from vidrec.embed.options import embed_options
    from vidrec.utils.device import check_device_name
    from vidrec.utils.io import check_writable, write_json_atomic

    opts = embed_options(
        config,
        model=model,
        frames=frames,
        merge=merge,
        merge_layers=merge_layers,
        merge_keep=merge_keep,
        fusion=fusion,
        segments=segments,
        window_seconds=window_seconds,
        stride_seconds=stride_seconds,
        batch_size=batch_size,
        workers=workers,
        device=device,
    )
    check_device_name(opts.device or "auto")
    rank = _shard_from(shard)
    if summary_file is not None:
        launched = int(os.environ.get("RANK", "0") or 0) if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else None
        if rank is not None or launched is not None:  # one summary per worker: they never write over each other
            worker = rank[0] + rank[1] * (launched or 0) if rank is not None else launched  # as extract splits the work
            summary_file = summary_file.with_name(f"{summary_file.stem}.rank{worker}{summary_file.suffix}")
        check_writable(summary_file, what="--summary", folder=False)  # before the work, not after it
    from vidrec.embed import extract

    summary = extract(
        video_dir,
        out,
        model=opts.model,
        batch_size=opts.batch_size or 8,
        segments=opts.segments or "frame",
        window_seconds=opts.window_seconds or 5.0,
        stride_seconds=opts.stride_seconds,
        formats=fmt,
        workers=opts.workers,
        device=opts.device or "auto",
        shard=rank,
        progress=True,
        **opts.encoder_kwargs(),
    )
    if summary_file is not None:
        write_json_atomic(summary_file, summary.to_dict())
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_summary(summary)
        if summary_file is not None:
            typer.echo(f"  wrote {summary_file}")
    if summary.failed:
        raise typer.Exit(1)


def _print_summary(summary: Any) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    who = f"process {os.environ.get('RANK', '0')} of {world}: " if world > 1 else ""  # each prints its own share
    typer.echo(
        f"{who}embedded {summary.processed} videos, skipped {summary.skipped} unchanged, {summary.failed} failed "
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
        raise VidrecError(f'--queries {path}: expected a non-empty JSON list of queries (strings or {{"query": ...}})')
    out = []
    for i, q in enumerate(data):
        if isinstance(q, str):
            out.append({"query": q})
        elif isinstance(q, dict) and isinstance(q.get("query"), str):
            out.append(q)
        else:
            raise VidrecError(f'--queries {path}: item {i + 1} is neither a string nor an object with a "query" string')
    return out


def _print_hits(title: str, hits: list[Any]) -> None:
    typer.echo(title)
    if not hits:
        typer.echo("  (no results)")
    for rank, h in enumerate(hits, 1):
        typer.echo(f"{rank:>3}. {h.score:.4f}  {h.path}")
        for m in h.moments:
            typer.echo(f"       {m.start_s:7.2f}-{m.end_s:7.2f} s  frames {m.frame_indices}  ({m.score:.4f})")


def _print_moments(title: str, found: list[Any]) -> None:
    typer.echo(title)
    if not found:
        typer.echo("  (no moments)")
    for rank, m in enumerate(found, 1):
        typer.echo(f"{rank:>3}. {m.score:.4f}  {m.start_s:7.2f}-{m.end_s:7.2f} s  frames {m.frame_indices}")


def _print_pairs(results: list[Any]) -> None:
    for r in results:
        head = f"{r.video}  {r.query!r}  {r.status}  {r.inference_ms:.0f} ms"
        if r.status != "ok":
            typer.echo(f"{head}: {r.error}")
            continue
        typer.echo(head)
        for m in r.moments:
            typer.echo(f"       {m.start_s:7.2f}-{m.end_s:7.2f} s  ({m.score:.4f})")
    bad = sum(r.status != "ok" for r in results)
    total = sum(r.inference_ms for r in results)
    typer.echo(f"{len(results)} pairs, {bad} failed, {total / 1000:.1f} s in all")


def _pairs_out(results: list[Any], as_json: bool) -> None:
    """Print the pairs' results; exit 1 when some failed (each is listed with its error)."""
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        _print_pairs(results)
    if any(r.status != "ok" for r in results):
        raise typer.Exit(1)


@app.command()
def search(
    store: Path = typer.Argument(..., help="A store built by vidrec embed."),
    query: Optional[str] = typer.Argument(None, help='A sentence, e.g. "a person pours water into a cup".'),
    k: Optional[int] = typer.Option(
        None,
        "-k",
        "--top",
        min=1,
        help="Results: videos (default 10), or moments with a query and --video, or per pair with --pairs (default 5).",
    ),
    moments: int = typer.Option(3, "--moments", min=0, help="Best moments (segments) shown per video."),
    queries: Optional[Path] = typer.Option(
        None, "--queries", help="JSON file with many queries (list of strings or {query, k})."
    ),
    video: Optional[Path] = typer.Option(
        None, "--video", help="Alone: find videos like this one. With a QUERY: the moments of this video that match it."
    ),
    pairs: Optional[Path] = typer.Option(
        None,
        "--pairs",
        help="CSV file with the columns video,query: the moments of each "
        "video for its query, with a status and inference_ms per pair.",
    ),
    window_seconds: Optional[float] = typer.Option(
        None,
        "--window-seconds",
        help=_WINDOW_HELP + " With --video or --pairs: "
        "re-embeds the video at this resolution instead of using its stored segments.",
    ),
    stride_seconds: Optional[float] = typer.Option(None, "--stride-seconds", help=_STRIDE_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP + " (to embed queries and videos)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Search a store with text (or a video): top videos with scores and their best moments.

    `search STORE "query" --video V` gives the moments of one video (start/end times), `--pairs`
    many video–query pairs at once (exit status 1 when some pair failed, each listed).
    """
    from vidrec.embed.search import (
        QueryError,
        check_queries,
        moments_in_store,
        read_pairs,
        search as search_store,
        search_by_video,
        search_pairs,
    )
    from vidrec.embed.store import Store, StoreError
    from vidrec.utils.device import check_device_name

    if pairs is not None and (query is not None or queries is not None or video is not None):
        raise QueryError(
            "--pairs FILE.csv names the videos and queries itself; give no QUERY, --queries or --video with it"
        )
    given = [x for x in (query, queries, video, pairs) if x is not None]
    if not given or (len(given) > 1 and not (query is not None and video is not None and len(given) == 2)):
        raise QueryError(
            "give one of: a QUERY sentence, --queries FILE.json, --video CLIP.mp4 (with or without a QUERY), "
            "or --pairs FILE.csv"
        )
    if (window_seconds is not None or stride_seconds is not None) and not (pairs is not None or (query and video)):
        raise QueryError(
            "--window-seconds / --stride-seconds set the moments of one video: use them with a QUERY and --video, "
            "or with --pairs"
        )
    check_device_name(device)
    pair_rows = read_pairs(pairs) if pairs is not None else []
    st = Store(store)
    if query is not None:
        check_queries([query])
    items = _read_queries(queries) if queries is not None else []
    check_queries([it["query"] for it in items])
    if st.count() == 0:
        raise StoreError(f"{store}: the store holds no videos yet; run vidrec embed VIDEO_DIR --out {store}")
    st.encoder(device=device)  # the encoder that built the store, on the chosen device
    if pairs is not None:
        _pairs_out(
            search_pairs(
                pair_rows,
                store=st,
                k=k or 5,
                window_seconds=window_seconds,
                stride_seconds=stride_seconds,
                progress=not as_json,
            ),
            as_json,
        )
        return
    if query is not None and video is not None:
        found = moments_in_store(
            st, video, query, k=k or 5, window_seconds=window_seconds, stride_seconds=stride_seconds
        )
        if as_json:
            typer.echo(
                json.dumps({"query": query, "video": str(video), "moments": [m.to_dict() for m in found]}, indent=2)
            )
        else:
            _print_moments(f"moments of {video} for {query!r}", found)
        return
    results: list[dict[str, Any]] = []
    if video is not None:
        hits = search_by_video(st, video, k=k or 10, moments=moments)
        results.append({"video": str(video), "results": hits})
    elif queries is not None:
        for it in items:
            hits = search_store(st, it["query"], k=int(it.get("k", k or 10)), moments=moments)
            results.append({"query": it["query"], "results": hits})
    else:
        assert query is not None
        results.append({"query": query, "results": search_store(st, query, k=k or 10, moments=moments)})
    if as_json:
        payload = [
            {**{kk: vv for kk, vv in r.items() if kk != "results"}, "results": [h.to_dict() for h in r["results"]]}
            for r in results
        ]
        typer.echo(json.dumps(payload[0] if len(payload) == 1 and queries is None else payload, indent=2))
        return
    for r in results:
        _print_hits(f"query: {r['query']!r}" if "query" in r else f"videos like {r['video']}", r["results"])


@app.command("moments")
def moments_(
    video: Optional[Path] = typer.Argument(None, help="A video file."),
    query: Optional[str] = typer.Argument(None, help='A sentence, e.g. "someone opens the door".'),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=_MODEL_HELP),
    k: int = typer.Option(5, "-k", "--top", min=1, help="Moments to return (per pair with --pairs)."),
    window_seconds: Optional[float] = typer.Option(None, "--window-seconds", help=_WINDOW_HELP),
    stride_seconds: Optional[float] = typer.Option(None, "--stride-seconds", help=_STRIDE_HELP),
    pairs: Optional[Path] = typer.Option(
        None,
        "--pairs",
        help="CSV file with the columns video,query, instead of VIDEO QUERY: "
        "the moments of each, with a status and inference_ms per pair.",
    ),
    frames: Optional[int] = typer.Option(
        None, "--frames", help="Frames sampled per window; default the model's (CLIP: 12)."
    ),
    merge: Optional[str] = typer.Option(
        None, "--merge", help="Temporal token merging schedule, e.g. 2-2-2; 'off' for plain per-frame CLIP."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The moments of a video that match a sentence, without a store: the video is cut into
    overlapping windows (--window-seconds, --stride-seconds), each embedded on the fly, and the
    top-k are printed with start/end times and scores.
    """
    from vidrec.embed.search import QueryError, check_queries, moments as find_moments, read_pairs, search_pairs
    from vidrec.utils.device import check_device_name

    if pairs is not None and (video is not None or query is not None):
        raise QueryError("give either VIDEO QUERY or --pairs FILE.csv, not both")
    if pairs is None and (video is None or query is None):
        raise QueryError(
            'give a VIDEO and a QUERY (vidrec moments clip.mp4 "someone opens the door"), or --pairs FILE.csv'
        )
    check_device_name(device)
    rows = read_pairs(pairs) if pairs is not None else []
    if query is not None:
        check_queries([query])
    if video is not None and not video.is_file():
        raise QueryError(f"{video}: no such video file")
    from vidrec.embed.encoders import load_encoder

    encoder = load_encoder(model, num_frames=frames, merge=merge, device=device)
    if pairs is not None:
        _pairs_out(
            search_pairs(
                rows,
                encoder=encoder,
                k=k,
                window_seconds=window_seconds,
                stride_seconds=stride_seconds,
                progress=not as_json,
            ),
            as_json,
        )
        return
    assert video is not None and query is not None
    found = find_moments(encoder, video, query, k=k, window_seconds=window_seconds, stride_seconds=stride_seconds)
    if as_json:
        typer.echo(json.dumps({"query": query, "video": str(video), "moments": [m.to_dict() for m in found]}, indent=2))
    else:
        _print_moments(f"moments of {video} for {query!r}", found)
