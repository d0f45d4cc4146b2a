"""``vidrec prepare hands`` and ``vidrec prepare objects``: the multi-stream model's per-video cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from vidrec.cli.app import CONFIG_HELP, SET_HELP, prepare_app

_SUBSETS_HELP = "Comma-separated subsets to prepare (default: every subset of the dataset)."
_OUT_HELP = (
    "Cache folder (default: data.streams_dir, else <root>/streams for the synthetic dataset and "
    "~/.cache/vidrec/streams/<dataset>-<hash> for real ones, never inside a dataset root: where training looks)."
)
_BOXES_HELP = "Something-Else boxes (merged file or parts folder) when the dataset's records do not name them."


def _records(
    config: Optional[Path], sets: list[str], subsets: Optional[str], limit: Optional[int]
) -> tuple[Any, list[Any], Path]:
    from vidrec.config import load_config
    from vidrec.data.build import load_recordset
    from vidrec.errors import ConfigError

    cfg = load_config(config, overrides=sets or [])
    rs = load_recordset(cfg)
    names = [s.strip() for s in subsets.split(",") if s.strip()] if subsets else list(rs.subsets)
    records = []
    for name in names:
        if name not in rs.subsets:
            raise ConfigError(f"--subsets: the dataset has no subset {name!r}; it has: {', '.join(rs.subsets)}")
        records += rs.subsets[name][:limit] if limit else rs.subsets[name]
    from vidrec.data.streams.cache import streams_dir

    return rs, records, streams_dir(cfg)


def _run(
    kind: str,
    options: Any,
    config: Optional[Path],
    sets: list[str],
    out: Optional[Path],
    subsets: Optional[str],
    boxes: Optional[Path],
    workers: int,
    limit: Optional[int],
    overwrite: bool,
    quiet: bool,
) -> None:
    from vidrec.data.streams.prepare import prepare_streams

    rs, records, default_out = _records(config, sets, subsets, limit)
    cache = out or default_out
    typer.echo(f"prepare {kind}: {len({r.video_id for r in records})} videos → {cache}")
    summary = prepare_streams(
        records,
        kind,
        cache,
        options=options,
        workers=workers,
        boxes_file=boxes or rs.info.get("boxes"),
        overwrite=overwrite,
        progress=not quiet,
    )
    for line in summary.lines():
        typer.echo(line)
    if summary.failed:
        raise typer.Exit(1)


@prepare_app.command("hands")
def prepare_hands(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=_OUT_HELP),
    subsets: Optional[str] = typer.Option(None, "--subsets", help=_SUBSETS_HELP),
    boxes: Optional[Path] = typer.Option(None, "--boxes", help=_BOXES_HELP),
    margin: float = typer.Option(
        0.25, "--margin", min=0.0, help="Enlarge each hand box by this fraction of its longer side on every side."
    ),
    roi: bool = typer.Option(
        True,
        "--roi/--no-roi",
        help="Run MediaPipe on ground-truth hand crops (--no-roi: on the full frame, for data without boxes).",
    ),
    min_confidence: float = typer.Option(
        0.3, "--min-confidence", min=0.0, max=1.0, help="MediaPipe's min_detection_confidence."
    ),
    model_complexity: int = typer.Option(
        1, "--model-complexity", min=0, max=1, help="MediaPipe hand model: 0 lite, 1 full."
    ),
    workers: int = typer.Option(2, "--workers", "-w", min=0, help="Parallel processes (0: in this process)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N videos of each subset."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recompute videos that are already cached."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    # the backslash in \[hands] keeps rich markup in --help from swallowing "[hands]"
    r"""Cache MediaPipe hand joints (21 per hand, frame-normalised) for every video; resumable.

    Needs the optional MediaPipe extra: pip install 'vidrec\[hands]'.
    """
    from vidrec.data.streams.cache import StreamOptions
    from vidrec.data.streams.hands import make_landmarker

    make_landmarker().close()  # before any dataset work: say how to install MediaPipe if it is missing
    opts = StreamOptions(margin=margin, roi=roi, min_confidence=min_confidence, model_complexity=model_complexity)
    _run("hands", opts, config, set_, out, subsets, boxes, workers, limit, overwrite, quiet)


@prepare_app.command("objects")
def prepare_objects(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=_OUT_HELP),
    subsets: Optional[str] = typer.Option(None, "--subsets", help=_SUBSETS_HELP),
    boxes: Optional[Path] = typer.Option(None, "--boxes", help=_BOXES_HELP),
    size: int = typer.Option(112, "--size", min=8, help="Crop side in pixels (model.object_size)."),
    max_objects: int = typer.Option(
        4, "--max-objects", min=1, help="Object slots per frame, by placeholder id 0000, 0001, ... (model.num_objects)."
    ),
    workers: int = typer.Option(2, "--workers", "-w", min=0, help="Parallel processes (0: in this process)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N videos of each subset."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recompute videos that are already cached."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Cache ground-truth object crops (one slot per placeholder id, tracked across frames); resumable."""
    from vidrec.data.streams.cache import StreamOptions

    opts = StreamOptions(object_size=size, max_objects=max_objects)
    _run("objects", opts, config, set_, out, subsets, boxes, workers, limit, overwrite, quiet)
