"""The ``vidrec`` command. Each verb module attaches its commands to :data:`vidrec.cli.app.app`."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

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


def _set_verbosity(count: int) -> int:
    """``-v``: vidrec's own messages at DEBUG (libraries at INFO); ``-vv``: everything at DEBUG."""
    if count:
        logging.getLogger("vidrec").setLevel(logging.DEBUG)
        logging.getLogger().setLevel(logging.DEBUG if count > 1 else logging.INFO)
    return count


def _verbose_param() -> Any:
    """The ``--verbose/-v`` option every verb gets (built by typer, like the verbs' own options)."""
    import typer
    import typer.main
    import typer.models

    opt = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        is_eager=True,
        callback=_set_verbosity,
        help="Log more: -v vidrec's debug messages, -vv every library's too.",
    )
    param = typer.main._get_param(typer.models.ParamMeta(name="verbose", default=opt, annotation=int))
    param.expose_value = False  # the verbs' functions never see it
    return param


def command() -> Any:
    """The click command of :data:`vidrec.cli.app.app` with ``--verbose/-v`` on every verb."""
    import typer.main

    root = typer.main.get_command(app)

    def add(cmd: Any) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is None:
            if not any(p.name == "verbose" for p in cmd.params):
                cmd.params.append(_verbose_param())
            return
        for sub in subs.values():
            add(sub)

    add(root)
    return root


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


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
        # under accelerate launch / torchrun only rank 0 talks (the others still warn)
        logging.getLogger("vidrec").setLevel(logging.INFO if _rank() == 0 else logging.WARNING)
    _load_commands()
    levels = {name: logging.getLogger(name).level for name in ("", "vidrec")}  # -v changes them for this call only
    try:
        code = command()(args=argv, prog_name="vidrec", standalone_mode=False)
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
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    if code == 130:
        print("interrupted; a training run can be continued with --resume", file=sys.stderr)
    if isinstance(code, int) and code:
        sys.exit(code)


_load_commands()
