"""``vidrec models``: the registered models, their size, expected input and known weights."""

from __future__ import annotations

import json
from typing import Any

import typer

from vidrec.cli.app import app


def model_rows(num_classes: int = 174) -> list[dict[str, Any]]:
    """One row per registered model, parameters counted at the standard size (on the meta device)."""
    import torch

    from vidrec.models.registry import create_model, list_models

    rows = []
    for entry in list_models():
        params: int | None = None
        if not entry.prefix_match:  # "hf:" needs a hub id or directory to have a size
            with torch.device("meta"):  # shapes only: no memory, no initialisation
                model = create_model(entry.name, num_classes=num_classes)
            params = sum(p.numel() for p in model.parameters())
        spec = entry.input
        rows.append(
            {
                "name": entry.name + ("<hub id or dir>" if entry.prefix_match else ""),
                "family": entry.family,
                "params": params,
                "num_frames": spec.num_frames,
                "image_size": spec.image_size,
                "mean": list(spec.mean),
                "std": list(spec.std),
                "side_inputs": list(spec.side_inputs),
                "pretrained": {tag: cfg.source for tag, cfg in entry.pretrained.items()},
                "description": entry.description,
            }
        )
    return rows


def _fmt_params(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f}M"


@app.command("models")
def models(
    num_classes: int = typer.Option(174, "--num-classes", min=1, help="Classes for the parameter count (SSv2: 174)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List registered models: parameters, expected input (frames × size), known pretrained weights.

    Use a name with --set model.name=NAME; model.pretrained=true fetches the listed weights
    (online), model.weights=PATH loads a local file or from_pretrained directory.
    """
    rows = model_rows(num_classes)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    header = ("model", "params", "input (T×S)", "side inputs", "pretrained", "description")
    table = [
        (
            r["name"],
            _fmt_params(r["params"]),
            f"{r['num_frames']}×{r['image_size']}²",
            f"{len(r['side_inputs'])} (see --json)" if r["side_inputs"] else "-",
            ", ".join(f"{tag}={src}" for tag, src in r["pretrained"].items()) or "-",
            r["description"],
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    widths[-1] = len(header[-1])  # the description runs on
    for i, line in enumerate([header, *table]):
        typer.echo("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())
        if i == 0:
            typer.echo("  ".join("-" * w for w in widths))
    typer.echo(
        f"\nparameters at {num_classes} classes; hf:<hub id or dir> takes its size and input from the checkpoint"
    )
