"""The typer application objects. Verb modules in ``vidrec/cli/`` attach commands to these."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="vidrec",
    help="Video understanding on PyTorch: train, evaluate and run action-recognition models; "
    "embed videos and search them with text.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)
data_app = typer.Typer(
    help="Download datasets (UCF101, HMDB51) and inspect them as read from their official files.", no_args_is_help=True
)
prepare_app = typer.Typer(
    help="Prepare data: scan videos, extract frames, merge annotations, cache hands/objects.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.add_typer(prepare_app, name="prepare")

# Shared option help, so every verb says the same thing.
SET_HELP = (
    "Override a config key, e.g. --set train.lr=3e-4 (repeatable). Applied after the file and VIDREC__* env vars."
)
CONFIG_HELP = "YAML config file (see configs/)."
