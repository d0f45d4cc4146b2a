"""The ``vidrec`` command. Each verb module attaches its commands to :data:`vidrec.cli.app.app`."""

from __future__ import annotations

import importlib
import logging
import sys

from vidrec.cli.app import app
from vidrec.errors import VidrecError

# Verb modules, imported for their side effect of registering commands.
_COMMAND_MODULES = (
    "vidrec.cli.core",  # demo, synth, train, eval, predict, config show
    "vidrec.cli.data",  # data show, prepare scan / frames / something-else
    "vidrec.cli.prepare_streams",  # prepare hands / objects (multi-stream cache)
    "vidrec.cli.embed",  # embed, search
    "vidrec.cli.models",  # models (the model zoo table)
    "vidrec.cli.serve",  # serve (the web demo)
)


def _load_commands() -> None:
    for mod in _COMMAND_MODULES:
        importlib.import_module(mod)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one clear message and exit 2, no traceback."""
    if not logging.getLogger().handlers:
        # vidrec's own messages at INFO; libraries (accelerate's checkpoint chatter, ...) at WARNING
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("vidrec").setLevel(logging.INFO)
    _load_commands()
    try:
        app(args=argv, prog_name="vidrec")
    except VidrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; a training run can be continued with --resume", file=sys.stderr)
        sys.exit(130)


_load_commands()
