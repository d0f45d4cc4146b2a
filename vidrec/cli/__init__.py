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
    "vidrec.cli.export",  # export (ONNX)
)


def _load_commands() -> None:
    for mod in _COMMAND_MODULES:
        importlib.import_module(mod)


def main(argv: list[str] | None = None) -> None:
    """Console entry point. Exit status (the same rule for every verb, see docs/usage.md):

    0: done; 1: done, but some inputs failed (each listed, the others processed); 2: nothing done,
    because of a user error, printed as one line ``error: ...`` (no traceback); 130: interrupted.
    """
    import typer

    try:
        from typer._click import exceptions as click_exc  # typer vendors click
    except ImportError:  # older typer: click itself
        from click import exceptions as click_exc  # type: ignore[no-redef]

    if not logging.getLogger().handlers:
        # vidrec's own messages at INFO; libraries (accelerate's checkpoint chatter, ...) at WARNING
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("vidrec").setLevel(logging.INFO)
    _load_commands()
    try:
        code = app(args=argv, prog_name="vidrec", standalone_mode=False)
    except VidrecError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(2)
    except click_exc.UsageError as exc:  # a wrong option or value, caught by the parser
        if exc.ctx is not None and not exc.format_message().strip():  # a bare group (`vidrec`): its help
            print(exc.ctx.get_help())
            sys.exit(2)
        where = exc.ctx.command_path if exc.ctx is not None else "vidrec"
        print(f"error: {' '.join(exc.format_message().split())} (see {where} --help)", file=sys.stderr)
        sys.exit(2)
    except click_exc.ClickException as exc:
        print(f"error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        sys.exit(exc.exit_code or 2)
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    if code == 130:
        print("interrupted; a training run can be continued with --resume", file=sys.stderr)
    if isinstance(code, int) and code:
        sys.exit(code)


_load_commands()
