"""``vidrec export``: a checkpoint directory → an ONNX file that runs without vidrec's PyTorch models."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from vidrec.cli.app import app
from vidrec.errors import VidrecError


@app.command()
def export(
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", "-k", help="Checkpoint directory (e.g. RUN/checkpoints/best)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="File to write, e.g. model.onnx (replaced only when complete)."),
    fmt: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    opset: int = typer.Option(18, "--opset", min=7, help="ONNX opset to write (recorded in the file)."),
    check: bool = typer.Option(
        True, "--check/--no-check", help="Run the file with onnxruntime and compare its logits with PyTorch's."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    r"""Export a checkpoint to ONNX: video (batch, 3, T, H, W) → logits, batch size dynamic.

    The class names, input spec (frames, size, mean/std) and config go into the file's metadata, so
    vidrec predict --checkpoint model.onnx needs nothing else. Models with side inputs (multistream)
    are refused. Needs onnx, onnxruntime and onnxscript: pip install 'vidrec\[onnx]'.
    """
    from vidrec.engine.export import FORMATS, export_onnx

    if fmt not in FORMATS:
        raise VidrecError(f"--format {fmt}: unknown; use {', '.join(FORMATS)}")
    res = export_onnx(checkpoint, out, opset=opset, check=check)
    if as_json:
        typer.echo(json.dumps(res.to_dict(), indent=2))
        return
    shape = "×".join(str(d) for d in res.input_shape)
    typer.echo(f"wrote {res.path}: {res.model}, input video {shape}, opset {res.opset}, in {res.seconds:.1f} s")
    if res.max_abs_diff is not None:
        typer.echo(f"onnxruntime vs PyTorch at batch 1 and 3: max |Δlogit| {res.max_abs_diff:.2e}")
    typer.echo(f"predict: vidrec predict --checkpoint {res.path} VIDEO.mp4")
