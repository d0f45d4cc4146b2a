"""Data verbs: ``vidrec data show|download``, ``vidrec prepare scan|frames|transcode|something-else``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from typer._click import Context, HelpFormatter  # the click that typer vendors: TyperCommand's own types

from vidrec.cli.app import CONFIG_HELP, SET_HELP, data_app, prepare_app


def _echo(msg: str = "") -> None:
    typer.echo(msg)


def _bar(total: int | None, desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="video", disable=quiet, dynamic_ncols=True, leave=False)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def _human_time(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


# ---------------------------------------------------------------------------------------------- data show
class _DataShowCommand(TyperCommand):
    """``data show --help`` ends with every dataset and its options, computed only when help is asked for."""

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        if self.epilog is None:
            from vidrec.data.show import datasets_help

            self.epilog = datasets_help()
        super().format_help(ctx, formatter)


@data_app.command("show", cls=_DataShowCommand)
def data_show(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object (classes, subsets, per_class, problems)."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Stop at the first problem (exit 2) instead of listing them all."
    ),
) -> None:
    """Read a dataset from its official files and list classes, videos per subset and class, and every problem.

    Example: vidrec data show --set data.dataset=ucf101 --set data.root=/data/ucf101 --set data.split=2
    """
    from vidrec.config import load_config
    from vidrec.data.records import load_records
    from vidrec.data.show import dataset_report, format_report, loader_options
    from vidrec.errors import ConfigError

    import logging

    logging.getLogger("vidrec.data").setLevel(logging.ERROR)  # every problem is printed below; no log echo
    cfg = load_config(config, overrides=set_ or [], check_model=False)  # no model is built here
    if cfg.data.root is None:
        raise ConfigError("data.root: which folder? e.g. --set data.root=/data/ucf101")
    rs = load_records(
        cfg.data.dataset, cfg.data.root, split=cfg.data.split, strict=strict or cfg.data.strict, **cfg.data_options
    )
    options = loader_options(cfg.data.dataset, cfg.data_options)
    report = dataset_report(
        rs, dataset=cfg.data.dataset, root=str(cfg.data.root), split=cfg.data.split, options=options
    )
    _echo(json.dumps(report, indent=2, default=str) if as_json else format_report(report))


# ---------------------------------------------------------------------------------------------- prepare scan
@prepare_app.command("scan")
def prepare_scan(
    root: Path = typer.Argument(..., help="Folder of videos (searched recursively)."),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        "-o",
        help="Index file, .parquet or .jsonl (default: ./<root name>.scan.parquet; never inside ROOT).",
    ),
    workers: int = typer.Option(2, "--workers", "-j", help="Parallel probing processes."),
    no_verify: bool = typer.Option(
        False, "--no-verify", help="Trust headers: skip the packet count that finds truncated files."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Probe every video (frames, fps, duration, size, codec) into an index the loaders reuse (data.index=FILE).

    Lists every empty, unreadable or truncated file with its reason; exit status 1 when any failed.
    """
    from vidrec.data.scan import iter_videos, scan_videos, write_index
    from vidrec.errors import ConfigError

    root = root.expanduser()
    if not root.exists():
        raise ConfigError(f"{root}: no such folder. Give the dataset's video folder.")
    out = (out or Path(f"{root.resolve().name}.scan.parquet")).expanduser()
    if root.resolve() in out.resolve().parents:
        raise ConfigError(
            f"--out {out} lies inside the dataset root {root}; vidrec never writes there. Choose another place."
        )
    files = list(iter_videos(root)) if root.is_dir() else []
    t0 = time.perf_counter()
    with _bar(len(files), "scan", quiet) as bar:
        index = scan_videos(root, workers=workers, verify=not no_verify, paths=files, progress=lambda e: bar.update(1))
    write_index(index, out)
    bad = index.bad
    ok = len(index.entries) - len(bad)
    frames = sum(e.num_frames for e in index.entries.values() if e.ok)
    hours = sum(e.duration for e in index.entries.values() if e.ok) / 3600
    for e in bad:
        _echo(f"BAD  {e.path}: {e.error}")
    _echo(
        f"scanned {len(index.entries)} videos in {time.perf_counter() - t0:.1f} s: {ok} ok, {len(bad)} bad; "
        f"{frames} frames, {hours:.2f} h of video"
    )
    _echo(f"index written to {out} (use it with --set data.index={out})")
    if bad:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------- prepare frames
@prepare_app.command("frames")
def prepare_frames(
    root: Path = typer.Argument(..., help="Folder of videos (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where the frame folders go: OUT/<rel path>/<video>/000001.jpg."),
    workers: int = typer.Option(2, "--workers", "-j", help="Parallel extraction processes."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan with time and disk estimates; write nothing."
    ),
    subset: Optional[int] = typer.Option(None, "--subset", min=1, help="Only the first N videos (sorted by path)."),
    quality: int = typer.Option(90, "--quality", "-q", min=1, max=100, help="JPEG quality 1..100."),
    short_side: Optional[int] = typer.Option(None, "--short-side", help="Resize so the short side is S pixels."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Keep F frames per second (default: every frame)."),
    sample: int = typer.Option(
        3, "--sample", help="Videos extracted to a temp folder to estimate time and disk (dry run)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Extract JPEG frames, in parallel and resumably (a killed run continues where it stopped).

    Use them with --set data.frames_root=OUT. Exit status 1 when any video failed.
    """
    from vidrec.data.frames import FrameOptions, extract_frames, plan_frames

    options = FrameOptions(quality=quality, short_side=short_side, fps=fps)
    plan = plan_frames(root, out, subset=subset, options=options, workers=workers, sample=sample if dry_run else 0)
    _echo(
        f"{len(plan.videos)} videos under {root}: {plan.done} already extracted, {len(plan.todo)} to do"
        + (
            f" ({plan.stale_tmp} unfinished .tmp folders from an interrupted run will be redone)"
            if plan.stale_tmp
            else ""
        )
    )
    if plan.clashes:
        _echo(
            f"{len(plan.clashes)} video(s) would share a frame folder with another (same name, another suffix) "
            f"and fail, e.g. {plan.clashes[0][0]} vs {plan.clashes[0][1]}: rename one"
        )
    if dry_run:
        if plan.sampled:
            _echo(
                f"estimate from {plan.sampled} sampled video(s): {plan.est_frames:,.0f} frames, "
                f"{_human_bytes(plan.est_bytes)} on disk, "
                f"about {_human_time(plan.est_seconds)} with {workers} worker(s)"
            )
        elif plan.todo:
            _echo("no estimate: the sampled videos could not be read")
        _echo(f"options: quality {quality}, short side {short_side or 'native'}, fps {fps or 'native'}; output {out}")
        _echo("dry run: nothing written")
        return
    with _bar(len(plan.videos), "frames", quiet) as bar:
        summary = extract_frames(
            root, out, workers=workers, subset=subset, options=options, on_result=lambda r: bar.update(1)
        )
    for r in summary.failed:
        _echo(f"FAILED  {r.rel}: {r.error}")
    _echo(
        f"{summary.done} extracted, {summary.skipped} already done, {len(summary.failed)} failed; "
        f"{summary.frames} frames, {_human_bytes(summary.bytes)} in {summary.seconds:.1f} s -> {out}"
    )
    if summary.failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------- prepare something-else
@prepare_app.command("something-else")
def prepare_something_else(
    parts: Path = typer.Argument(..., help="Folder holding bounding_box_smthsmth_part*.json (or one part file)."),
    out: Path = typer.Option(..., "--out", "-o", help="The merged box file to write (SQLite, e.g. boxes.sqlite)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Merge the Something-Else box annotation parts into one file indexed by video id (use as data.boxes=OUT)."""
    from vidrec.data.boxes import find_parts, merge_box_parts

    files = find_parts(parts)
    _echo(f"merging {len(files)} part(s): {', '.join(p.name for p in files)}")
    t0 = time.perf_counter()
    with _bar(None, "videos", quiet) as bar:
        summary = merge_box_parts(files, out, progress=bar.update)
    for p in summary.problems[:50]:
        _echo(f"WARNING  {p}")
    if len(summary.problems) > 50:
        _echo(f"... and {len(summary.problems) - 50} more problems")
    _echo(
        f"{summary.videos} videos, {summary.frames} annotated frames, {summary.boxes} boxes"
        + (f", {summary.duplicates} ids repeated across parts (the later part wins)" if summary.duplicates else "")
        + f" -> {out} ({time.perf_counter() - t0:.1f} s)"
    )
    _echo(f"use it with --set data.boxes={out}")


# ---------------------------------------------------------------------------------------------- prepare transcode
@prepare_app.command("transcode")
def prepare_transcode(
    src: Path = typer.Argument(..., help="Folder of videos (searched recursively); only read."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Where the re-encoded tree goes (same relative paths; never inside SRC)."
    ),
    short_side: int = typer.Option(
        256, "--short-side", help="Short side of the output in pixels (smaller videos keep their size)."
    ),
    gop: int = typer.Option(
        16, "--gop", help="Frames between key frames: a seek lands at most GOP-1 frames before any frame."
    ),
    fps: Optional[float] = typer.Option(None, "--fps", help="Output frame rate (default: the source's)."),
    workers: int = typer.Option(2, "--workers", "-j", help="Parallel encoding processes."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be done; write nothing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Re-encode videos to H.264 that sampling can afford: short side, a key frame every GOP frames, no audio.

    Long or high-resolution videos (the encoder's default GOP of 250+ frames) make every sampled
    frame cost a long decode; after transcoding, TSN sampling of a 60 s 720p video is over 10x
    faster (docs/benchmarks.md). Resumable: a killed run continues where it stopped, and a
    half-written file never counts as done. Other files (annotation lists) are copied, so read
    the result with --set data.root=OUT (or data.videos=OUT). Exit status 1 when any video failed.
    """
    from vidrec.data.transcode import TranscodeOptions, plan_transcode, transcode

    options = TranscodeOptions(short_side=short_side, gop=gop, fps=fps)
    options.check()
    plan = plan_transcode(src, out)
    _echo(
        f"{len(plan.videos)} videos under {src}: {len(plan.done)} already transcoded, {len(plan.todo)} to do "
        f"({_human_bytes(plan.src_bytes)})"
        + (f"; {len(plan.stale_tmp)} unfinished files from an interrupted run will be redone" if plan.stale_tmp else "")
    )
    if dry_run:
        _echo(
            f"options: short side {short_side}, a key frame every {gop} frames, fps {fps or 'as the source'}, "
            f"H.264, no audio; {len(plan.others)} other files copied; output {out}"
        )
        _echo("dry run: nothing written")
        return
    with _bar(len(plan.videos), "transcode", quiet) as bar:
        summary = transcode(src, out, options=options, workers=workers, on_result=lambda r: bar.update(1))
    for r in summary.failed:
        _echo(f"FAILED  {r.rel}: {r.error}")
    saved = summary.saved_bytes
    pct = 100 * saved / summary.src_bytes if summary.src_bytes else 0.0
    _echo(
        f"{summary.done} transcoded, {summary.skipped} already done, "
        f"{len(summary.failed)} failed in {summary.seconds:.1f} s -> {out}"
    )
    _echo(
        f"{_human_bytes(summary.src_bytes)} of source videos became {_human_bytes(summary.dst_bytes)}: "
        + (f"{_human_bytes(saved)} saved ({pct:.0f}%)" if saved >= 0 else f"{_human_bytes(-saved)} more ({-pct:.0f}%)")
    )
    _echo(f"use it with --set data.root={out} (or data.videos={out})")
    if summary.failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------- data download
@data_app.command("download")
def data_download(
    dataset: str = typer.Argument(..., help="ucf101 or hmdb51."),
    to: Path = typer.Option(..., "--to", help="The dataset folder (data.root), created; archives unpack into it."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Fetch the same file names from this base URL."),
    no_checksum: bool = typer.Option(False, "--no-checksum", help="Skip the MD5 check (file CRCs are still checked)."),
    keep_archives: bool = typer.Option(False, "--keep-archives", help="Keep the archives in --to after unpacking."),
    unpacker: str = typer.Option("auto", "--unpacker", help="RAR unpacker: unar, bsdtar or auto (the first found)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Download UCF101 or HMDB51 from the publisher, check it and unpack it where the loaders look.

    A partial download resumes (run the same command again). Sizes, MD5 where known and the CRC32
    of every unpacked file are checked before each folder is renamed into place.

    RAR archives need unar (apt-get install unar / brew install unar) or bsdtar (libarchive-tools).

    Example: vidrec data download ucf101 --to /data/ucf101
    """
    from vidrec.data.download import download_dataset

    bars: dict[str, Any] = {}

    def progress(done: int, total: Optional[int], what: str) -> None:
        if quiet:
            return
        from tqdm import tqdm

        bar = bars.get(what)
        if bar is None:
            for old in bars.values():
                old.close()
            bars.clear()
            counts = what.startswith("unpack")
            bar = bars[what] = tqdm(
                total=total,
                desc=what,
                unit="file" if counts else "B",
                unit_scale=not counts,
                unit_divisor=1024,
                dynamic_ncols=True,
                leave=False,
            )
        bar.total = total
        bar.n = done
        bar.refresh()

    t0 = time.perf_counter()
    try:
        res = download_dataset(
            dataset,
            to,
            mirror=mirror,
            checksum=not no_checksum,
            keep_archives=keep_archives,
            unpacker=unpacker,
            progress=progress,
        )
    finally:
        for bar in bars.values():
            bar.close()
    for folder in res.skipped:
        _echo(f"{to / folder}: already there")
    for folder in res.unpacked:
        _echo(f"{to / folder}: unpacked")
    _echo(f"{res.dataset} is ready in {to} ({time.perf_counter() - t0:.0f} s). Look at it with:")
    _echo(f"  vidrec data show --set data.dataset={res.dataset} --set data.root={to}")
