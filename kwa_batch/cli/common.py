"""What every command shares: exit codes, the one-line failure, and the sender's resolution.

Nothing here imports pandas: ``kwa-batch --help`` must start at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..config import ENV_FROM
from ..errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_ROWS, EXIT_UNUSABLE

if TYPE_CHECKING:
    import pandas as pd

    from ..validation import ValidationReport

__all__ = [
    "DEMO_SENDER",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_ROWS",
    "EXIT_UNUSABLE",
    "Unusable",
    "check_writable",
    "fail",
    "file_reading",
    "in_flags",
    "load_and_validate",
    "resolve_sender",
    "wrapped",
]

# ``--column`` and ``--sheet`` (see options.file_options; the key is its FILE_KEY).
_FILE_KEY = "kwa_batch.file_options"
#: The sender used with --emulator when none is given (the emulator accepts any valid one).
DEMO_SENDER = "+911234567890"


# The library's messages name its parameters, often with the flag beside them
# ("pass default_region= (--region)"); on the command line only the flag makes sense.
_PARAMETER_AND_FLAG = re.compile(
    r"\b[a-z_]+=(?:True)?\s*(?:\(\s*(?P<paren>--[a-z-]+)\)|/\s*(?P<slash>--[a-z-]+))"
)
_FLAGS = {"sender=": "--from", "sid=": "--sid", "api_key=": "--api-key", "columns=": "--column"}
# "--column to=NAME / columns={'to': NAME}", "--sheet NAME / sheet_name=": the flag alone.
_FLAG_AND_PARAMETER = re.compile(r"(--[a-z-]+(?: [^\s/']*(?:'[^']*')?)?) / [a-z_]+=(?:\{[^}]*\})?")


def in_flags(text: str) -> str:
    """A library message worded for the command line: flags, never Python parameters.

    >>> in_flags("or pass default_region= (--region) for national numbers")
    'or pass --region for national numbers'
    """
    text = _PARAMETER_AND_FLAG.sub(lambda m: m["paren"] or m["slash"], text)
    text = _FLAG_AND_PARAMETER.sub(r"\1", text)
    for parameter, flag in _FLAGS.items():
        text = re.sub(rf"\b{re.escape(parameter)}(?=[\s,.;)]|$)", flag, text)
    return text


class Unusable(click.ClickException):
    """The input or the configuration cannot be used: one line, exit 2."""

    exit_code = EXIT_UNUSABLE

    def show(self, file: object = None) -> None:
        click.echo(f"Error: {in_flags(self.format_message())}", err=True)


def _width() -> int | None:
    """The columns to wrap at: ``COLUMNS`` when set, else the terminal's; None (no
    wrapping) when the output is a pipe or a file, so that a cron log keeps one line per
    problem for grep."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def wrapped(text: str, *, indent: int = 0, width: int | None = None) -> str:
    """``text`` wrapped at word boundaries to the terminal's width (``width`` when given),
    the lines after the first indented by ``indent`` spaces (fewer when that would leave
    less than 40 columns); unchanged when the output is not a terminal.

    >>> print(wrapped("line 17  to  E13009  '98765' has only 5 digits", indent=6, width=30))
    line 17  to  E13009  '98765'
          has only 5 digits
    """
    width = width if width is not None else _width()
    if width is None or len(text) <= width:
        return text
    hang = indent if width - indent >= 40 else min(indent, 6)
    return textwrap.fill(
        text,
        width=max(width, hang + 20),
        subsequent_indent=" " * hang,
        break_long_words=False,
        break_on_hyphens=False,
    )


def fail(message: str) -> NoReturn:
    """Stop the command with a one-line reason and exit code 2 (never a traceback)."""
    raise Unusable(message)


def check_writable(path: Path, option: str) -> None:
    """Refuse, before anything is read or sent, an output path that cannot be written."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        fail(f"{option} {path}: folder {folder} does not exist")
    if path.is_dir():
        fail(f"{option} {path}: is a folder; give a file name")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        fail(f"{option} {path}: cannot be written here (permissions)")


def resolve_sender(
    option: str | None, region: str | None = None, *, emulator: bool = False
) -> tuple[str | None, str]:
    """The sender for rows without their own, and where it came from: ``--from``, then
    ``KALEYRA_FROM``, then (with ``--emulator`` only) the demo number.

    Several numbers (``+91A,+91B``) are checked one by one. A sender that is given but is
    not a valid number stops the command here, in one line
    about ``--from``, before the file is even read: every row would be refused for it.
    """
    if option:
        sender, source = option, "--from"
    elif os.environ.get(ENV_FROM):
        sender, source = os.environ[ENV_FROM], ENV_FROM
    elif emulator:
        return DEMO_SENDER, "demo"
    else:
        return None, "none"
    from ..validation.sender import invalid_sender_message, read_sender, split_senders

    for number in split_senders(sender):  # several: comma-separated, each checked
        check = read_sender(number, region)
        if not check.ok:
            fail(f"{source} {number!r}: {invalid_sender_message(check.reason)}")
    return sender, source


def file_reading() -> dict[str, Any]:
    """How ``--column`` and ``--sheet`` say to read FILE: load_recipients()' ``columns=``
    and ``sheet_name=``."""
    context = click.get_current_context(silent=True)
    how = context.meta.get(_FILE_KEY, {}) if context is not None else {}
    return {"columns": how.get("columns"), "sheet_name": how.get("sheet_name")}


def load_and_validate(
    file: str,
    *,
    encoding: str | None,
    region: str | None,
    sender: str | None,
    messages: dict[str, Any],
    quiet: bool = False,
    api_version: str | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """The file loaded and validated, as ``validate`` and ``send`` both do (so they give
    the same verdicts on the same file and environment); ``quiet``: without the notes;
    ``api_version``: ``--api-version`` (None: ``KALEYRA_API_VERSION``, else v1)."""
    from ..config import api_version_from_env
    from ..loading.recipients import load_recipients
    from ..validation import validate

    version = api_version_from_env(api_version)

    with warnings_as_notes(shown=not quiet):
        df = load_recipients(file, encoding=encoding, **file_reading())
        for note in df.attrs.get("notes", ()):
            logging.getLogger("kwa_batch.loading.headers").warning("%s", note)
        return df, validate(
            df, default_region=region, sender=sender, api_version=version, **messages
        )


@contextlib.contextmanager
def warnings_as_notes(*, shown: bool = True) -> Iterator[None]:
    """The library's warnings meanwhile, printed once each as notes in the command line's
    words (flags, not parameters) instead of as log lines; not printed at all unless
    ``shown`` (``--quiet``: only errors)."""
    logger = logging.getLogger("kwa_batch")
    notes: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            notes.append(record.getMessage())

    handler = _Collect(logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        for note in dict.fromkeys(notes) if shown else ():
            click.echo(f"Note: {in_flags(note)}", err=True)
