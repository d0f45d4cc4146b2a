"""``vidrec serve``: the web demo (gradio) over a checkpoint and/or an embedding store."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Optional

import typer

from vidrec.cli.app import app

log = logging.getLogger("vidrec")


@app.command()
def serve(
    checkpoint: Optional[Path] = typer.Option(
        None,
        "--checkpoint",
        "-k",
        help="Checkpoint directory (RUN/checkpoints/best) or .onnx file: the Classify tab, a video → top-k classes.",
    ),
    store: Optional[Path] = typer.Option(
        None, "--store", help="Store built by vidrec embed: the Search tab, a sentence → videos and their moments."
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 makes the demo reachable from other machines."
    ),
    port: int = typer.Option(7860, "--port", help="Port to listen on."),
    share: bool = typer.Option(
        False, "--share/--no-share", help="Also open a temporary public *.gradio.live link (needs internet)."
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto, cpu, cuda or mps: where the model and the text encoder run."
    ),
    topk: int = typer.Option(5, "--topk", help="Classes shown by default (the page has a slider)."),
    k: int = typer.Option(5, "-n", "--top", help="Videos returned by default (the page has a slider)."),
    max_upload_mb: int = typer.Option(
        500,
        "--max-upload-mb",
        min=0,
        help="Largest upload the server accepts, in MB (0: no limit). Uploads are deleted when it stops.",
    ),
) -> None:
    # the backslash in \[serve] keeps rich markup in --help from swallowing "[serve]"
    r"""Web demo in the browser: upload a video to see its top-k classes, and search a video library with text.

    Give --checkpoint, --store, or both; the model and the store are loaded once, at startup.
    Needs gradio: pip install 'vidrec\[serve]'. Stop it with Ctrl+C.
    """
    from vidrec.serve import build_app, launch_app, load_resources, require_gradio

    if checkpoint is None and store is None:
        load_resources(None, None)  # the "nothing to serve" error, before anything is loaded
    require_gradio()  # a missing gradio is reported before the model is loaded
    resources = load_resources(checkpoint, store, device=device)
    demo = build_app(resources=resources, topk=topk, k=k, max_upload_mb=max_upload_mb)
    local_url, share_url = launch_app(demo, host=host, port=port, share=share)
    tabs = " and ".join(t for t, on in (("Classify", checkpoint), ("Search", store)) if on)
    typer.echo(f"serving {tabs} on {local_url}" + (f" and {share_url}" if share_url else "") + "; Ctrl+C stops")
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as Ctrl+C does: uploads and previews are deleted
    try:
        demo.block_thread()  # returns after Ctrl+C / SIGTERM, once gradio has closed the server
    finally:
        demo.close(verbose=False)
    typer.echo("stopped; uploads and previews deleted")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
