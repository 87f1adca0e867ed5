"""Option groups shared by several commands, as decorators (sqlite-utils' pattern).

Each group adds its options and hands the command one value built from them, so a command
reads as: options → one library call → rendering.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from ..config import (
    API_VERSIONS,
    DEFAULT_API_VERSION,
    ENV_API_KEY,
    ENV_API_VERSION,
    ENV_BASE_URL,
    ENV_FROM,
    ENV_SID,
)
from ..database import is_database_url
from .common import check_writable, fail

__all__ = [
    "RESULT_FORMATS",
    "account_options",
    "encoding_option",
    "file_options",
    "message_options",
    "output_path",
    "region_option",
    "sender_option",
    "server_options",
    "summary_json_option",
]

Command = Callable[..., Any]
#: The results formats, by extension (export.FORMATS, without importing pandas here).
RESULT_FORMATS = (".xlsx", ".csv", ".parquet")


class StoreParam(click.ParamType[str]):
    """A callback store: a SQLite file or a PostgreSQL database's URL (kept as given; the
    library shows it without its password). With ``exists``, a file must be there."""

    name = "store"

    def __init__(self, *, exists: bool = False) -> None:
        self.exists = exists

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if is_database_url(text):
            return text.strip()
        if self.exists and not Path(text).is_file():
            self.fail(
                f"{text} does not exist (give the store `kwa-batch receive --store` writes: "
                "a file or a postgresql:// URL)",
                param,
                ctx,
            )
        return text


def _apply(command: Command, options: list[Callable[[Command], Command]]) -> Command:
    for option in reversed(options):
        command = option(command)
    return command


def sender_option(command: Command) -> Command:
    """``--from NUMBER``: the sender of rows without their own (then KALEYRA_FROM)."""
    return click.option(
        "--from",
        "sender",
        metavar="NUMBER[,NUMBER…]",
        help="Sender for rows without one, with + and country code; several, "
        "comma-separated, pin each recipient to one of them by a hash of its number "
        f"[env: {ENV_FROM}].",
    )(command)


def region_option(command: Command) -> Command:
    """``--region CC``: the country of numbers written without ``+``."""
    return click.option(
        "--region", metavar="CC", help="Country of numbers written without + (e.g. IN)."
    )(command)


def encoding_option(command: Command) -> Command:
    """``--encoding NAME``: read the file in this encoding instead of detecting it."""
    return click.option(
        "--encoding",
        metavar="NAME",
        help="Read FILE in this encoding (e.g. cp1252) instead of detecting it.",
    )(command)


#: Where ``--column`` and ``--sheet`` are kept for the command (``ctx.meta``), so that
#: ``load_and_validate`` reads them without every command passing them along.
FILE_KEY = "kwa_batch.file_options"


def _columns(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> None:
    mapping: dict[str, str] = {}
    for item in value:
        name, equals, column = item.partition("=")
        if not equals or not name.strip() or not column.strip():
            fail(
                f'--column {item!r}: write FIELD=COLUMN, e.g. --column to="Phone 1 - Value" '
                "(the API field, then the header as the file writes it)"
            )
        if name.strip() in mapping:
            fail(f"--column {name.strip()} is given twice: map each field once")
        mapping[name.strip()] = column.strip()
    ctx.meta.setdefault(FILE_KEY, {})["columns"] = mapping or None


def _sheet(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    ctx.meta.setdefault(FILE_KEY, {})["sheet_name"] = value


def file_options(command: Command) -> Command:
    """``--column FIELD=COLUMN`` (repeatable) and ``--sheet NAME``: how to read FILE
    (load_recipients()' ``columns=`` and ``sheet_name=``), kept for ``load_and_validate``."""
    return _apply(
        command,
        [
            click.option(
                "--column",
                "file_columns",
                metavar="FIELD=COLUMN",
                multiple=True,
                callback=_columns,
                expose_value=False,
                help='Read an API field from a column of FILE, e.g. --column to="Phone 1 - '
                'Value" --column body=Message. Repeatable.',
            ),
            click.option(
                "--sheet",
                "file_sheet",
                metavar="NAME",
                callback=_sheet,
                expose_value=False,
                help="The sheet of an .xlsx FILE to read (the first by default).",
            ),
        ],
    )


def message_options(command: Command) -> Command:
    """The options that build messages from columns, shared by ``validate`` and ``send``;
    the command receives them together as ``messages`` (validate()'s keyword arguments)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        kwargs["messages"] = {
            name: kwargs.pop(name)
            for name in ("params_from", "body_template", "template_name", "lang_code")
        }
        kwargs["messages"]["callback_url"] = kwargs.pop("callback_url")
        store = kwargs.pop("windows")
        if store is not None:
            from ..receipts.conversations import open_windows

            if not is_database_url(store) and not Path(store).exists():
                fail(f"--windows {store}: no such file (the store `kwa-batch receive` writes)")
            kwargs["messages"]["windows"] = open_windows(store)
        lists = campaign_lists(
            kwargs.pop("templates"), kwargs.pop("suppress"), kwargs.get("region")
        )
        kwargs["messages"].update(lists)
        return command(*args, **kwargs)

    return _apply(
        run,
        [
            click.option(
                "--params-from",
                metavar="COLUMNS",
                help="Build a template's params from these columns, in order "
                "(comma-separated, e.g. name,order_id), for rows without params.",
            ),
            click.option(
                "--body-template",
                metavar="TEXT",
                help='Build a text body from columns, e.g. "Hi {name}, order {order_id} has '
                'shipped", for rows without a body.',
            ),
            click.option(
                "--template",
                "template_name",
                metavar="NAME",
                help="Template name for rows without one (rows with a template name are "
                "template messages).",
            ),
            click.option(
                "--lang", "lang_code", metavar="CODE", help="lang_code for rows without one."
            ),
            click.option(
                "--callback-url", metavar="URL", help="callback_url for rows without one."
            ),
            click.option(
                "--windows",
                metavar="STORE",
                type=StoreParam(),
                help="Receipts store of `kwa-batch receive`: refuse text rows to recipients "
                "with no open 24-hour conversation window (they need a template).",
            ),
            click.option(
                "--templates",
                metavar="PATH",
                type=click.Path(dir_okay=False),
                help="Template catalogue (.csv/.xlsx, or WhatsApp's .json; `kwa-batch "
                "templates` writes one): refuse template rows that do not match it.",
            ),
            click.option(
                "--suppress",
                metavar="FILE_OR_STORE",
                multiple=True,
                type=StoreParam(),
                help="Numbers not to message: a .csv/.xlsx/.txt of numbers (every sheet of "
                "an .xlsx is read; a list with no numbers is refused), or a receipts store "
                "(a file or a postgresql:// URL: its opt-outs, STOP replies and 131050). "
                "Repeatable.",
            ),
        ],
    )


def campaign_lists(
    templates: str | None, suppress: tuple[str, ...], region: str | None
) -> dict[str, Any]:
    """``--templates`` and ``--suppress`` read into validate()'s ``templates`` and
    ``suppress``. A receipts store given to ``--suppress`` is an
    :class:`~kwa_batch.receipts.optouts.OptOutSource` (its opt-outs, read again whenever
    the list is); opt-outs whose number cannot be read are printed as one line to stderr
    (they do not stop the command)."""
    out: dict[str, Any] = {}
    if templates is not None:
        from ..catalogue import load_templates

        out["templates"] = load_templates(templates)
    if suppress:
        from ..receipts.optouts import OptOutSource
        from ..validation.suppression import load_suppression, unreadable_note

        sources: list[Any] = []
        for value in suppress:
            if is_database_url(value):
                sources.append(OptOutSource(value))
                continue
            path = Path(value)
            if not path.is_file():
                fail(f"--suppress {value}: no such file")
            with path.open("rb") as handle:
                is_store = handle.read(16) == b"SQLite format 3\x00"
            sources.append(OptOutSource(path) if is_store else path)
        with _said_here():
            found = load_suppression(*sources, default_region=region)
        if found.attrs.get("unreadable"):
            click.echo(
                f"Warning: {unreadable_note(found.attrs['unreadable'], '--suppress')}", err=True
            )
        # The stores again, as sources: send() reads them while it sends (issue #17).
        live = [source for source in sources if isinstance(source, OptOutSource)]
        out["suppress"] = [found, *live] if live else found
    return out


class _SaidHere(logging.Filter):
    """Drops the library's warnings on unreadable opt-outs: ``campaign_lists`` prints them
    itself, once, from the frame (``attrs["unreadable"]``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not hasattr(record, "unreadable")


@contextlib.contextmanager
def _said_here() -> Iterator[None]:
    loggers = [
        logging.getLogger(name)
        for name in ("kwa_batch.receipts.optouts", "kwa_batch.validation.suppression")
    ]
    said = _SaidHere()
    for logger in loggers:
        logger.addFilter(said)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(said)


def output_path(
    option: str, formats: tuple[str, ...], *, help: str, dest: str | None = None
) -> Callable[[Command], Command]:
    """An output file option whose extension and writability are checked before the
    command does anything else; the command receives a ``Path`` (or None)."""
    name = dest or option.lstrip("-").replace("-", "_")
    shown = ", ".join(formats[:-1]) + f" or {formats[-1]}" if len(formats) > 1 else formats[0]

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value)
        if path.suffix.lower() not in formats:
            fail(f"{option} {value}: use a {shown} file name")
        check_writable(path, option)
        return path

    return click.option(
        option,
        name,
        type=click.Path(dir_okay=False),
        callback=check,
        is_eager=False,
        help=help,
    )


#: Where ``--summary-json`` is kept for the run (``ctx.meta`` is shared by every context),
#: so that a failure anywhere, even in another option's check, still writes the JSON.
SUMMARY_KEY = "kwa_batch.summary_json"


def summary_json_option(command: Command) -> Command:
    """``--summary-json PATH``: the outcome as JSON for cron jobs, checked first (eager) so
    that even an unusable input or setting (exit 2) writes it."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value)
        check_writable(path, "--summary-json")
        ctx.meta[SUMMARY_KEY] = path
        return path

    return click.option(
        "--summary-json",
        type=click.Path(dir_okay=False),
        callback=check,
        is_eager=True,
        help="Also write the outcome as JSON here (counts, error codes, exit code), for cron "
        "jobs; written on an unusable input (exit 2) too.",
    )(command)


def _api_version(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from ..config import check_api_version
    from ..errors import ConfigurationError

    try:
        return check_api_version(value, given_as="--api-version")
    except ConfigurationError as exc:
        fail(str(exc))


def account_options(command: Command) -> Command:
    """``--sid``, ``--api-key``, ``--base-url``, ``--api-version``: the account, else the
    environment (the command receives ``api_version`` None when the option is not given:
    ``KALEYRA_API_VERSION`` or v1 then, see :func:`kwa_batch.config.api_version_from_env`)."""
    return _apply(
        command,
        [
            click.option("--sid", metavar="SID", help=f"Account SID [env: {ENV_SID}]."),
            click.option(
                "--api-key",
                metavar="KEY",
                help=f"API key [env: {ENV_API_KEY}]; prefer the variable (a flag shows in ps).",
            ),
            click.option(
                "--base-url",
                metavar="URL",
                help=f"API host or region (sg, in, eu, na) [env: {ENV_BASE_URL}].",
            ),
            api_version_option,
        ],
    )


def api_version_option(command: Command) -> Command:
    """``--api-version v1|v2`` (None when not given: ``KALEYRA_API_VERSION`` or v1 then).
    ``validate`` takes it too: v1 refuses the rows only v2 can send."""
    return click.option(
        "--api-version",
        metavar="|".join(API_VERSIONS),
        callback=_api_version,
        help="Kaleyra's API the sending number is on (a number answers WA-401 through "
        f"the other; v1 cannot send buttons, lists, carousels...) [env: {ENV_API_VERSION}; "
        f"default: {DEFAULT_API_VERSION}].",
    )(command)


def server_options(
    default_port: int, port_help: str, host_help: str
) -> Callable[[Command], Command]:
    """``--host`` and ``--port`` of a server command."""

    def decorate(command: Command) -> Command:
        return _apply(
            command,
            [
                click.option("--host", default="127.0.0.1", show_default=True, help=host_help),
                click.option(
                    "--port",
                    default=default_port,
                    show_default=default_port != 0,
                    type=click.IntRange(0, 65535),
                    help=port_help,
                ),
            ],
        )

    return decorate
