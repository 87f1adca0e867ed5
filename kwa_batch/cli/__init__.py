"""``kwa-batch``: the command line, a thin layer over the library.

Each command gathers its settings (shared option groups in :mod:`.options`), calls the
library, and renders the outcome (:mod:`.render`). A library error is one line and exit 2,
never a traceback. Nothing is imported at start-up but click and this package's option
definitions: ``kwa-batch --help`` does not load pandas.

Exit codes: 0 every row sent (or valid, for ``validate``); 1 some rows rejected or failed;
2 the input or the configuration was unusable; 3 incomplete: ``unknown`` or ``not_sent``
rows remain (3 wins over 1); 130, 143, 129: stopped by Ctrl-C, SIGTERM, SIGHUP.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

import click

from .. import __version__
from ..errors import KwaBatchError
from .common import EXIT_UNUSABLE, Unusable, in_flags
from .following_up import follow_up_command
from .options import SUMMARY_KEY
from .render import write_json
from .reporting import report_command, status_command
from .send import send_command
from .servers import emulator_command, receive_command
from .templates import templates_command
from .validate import validate_command

__all__ = ["cli", "main"]

EXIT_INTERRUPTED = 130


class _Group(click.Group):
    """Turns a library error inside any command into one line and exit 2 (and, with
    ``--summary-json``, a JSON summary that says so)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KwaBatchError as exc:
            _failure_json(ctx, str(exc))
            raise Unusable(str(exc)) from None
        except Unusable as exc:
            _failure_json(ctx, exc.format_message())
            raise


def _failure_json(ctx: click.Context, message: str) -> None:
    path = ctx.meta.get(SUMMARY_KEY)
    if path is not None:
        with contextlib.suppress(click.ClickException):  # the one-line error says enough
            write_json(path, {"exit_code": EXIT_UNUSABLE, "error": in_flags(message)})


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kwa-batch")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="How much the library logs (to stderr; phone numbers masked).",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="The same as the command's own --quiet (validate, send, follow-up): only errors.",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str, quiet: bool) -> None:
    """Send WhatsApp messages through Kaleyra to the recipients in a CSV or XLSX file.

    \b
    Start with your own file (a 'to' column of numbers, a 'body' column of text):
      kwa-batch validate recipients.csv
      kwa-batch send recipients.csv --emulator   (to a local Kaleyra)
    """
    if quiet:  # `kwa-batch -q send ...` as `kwa-batch send -q ...`
        defaults = dict(ctx.default_map or {})
        for name, command in cli.commands.items():
            if any(param.name == "quiet" for param in command.params):
                defaults[name] = {**defaults.get(name, {}), "quiet": True}
        ctx.default_map = defaults
    logging.basicConfig(
        level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


for _command in (
    validate_command,
    send_command,
    follow_up_command,
    report_command,
    receive_command,
    status_command,
    emulator_command,
    templates_command,
):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``kwa-batch`` console script."""
    try:
        cli.main(prog_name="kwa-batch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_UNUSABLE if isinstance(exc, Unusable) else exc.exit_code)
    except KwaBatchError as exc:  # a library error outside any command: still one line
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_UNUSABLE)
