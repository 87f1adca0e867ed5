"""Building messages from columns for :func:`kwa_batch.validate`: ``params`` from a list of
columns (CSV-quoted where a value holds a comma), ``body`` from a template with
``{column}`` placeholders, and the column helpers validation shares.

A placeholder or a column that does not exist is a :class:`ConfigurationError` before
anything runs; an empty value makes its row invalid (``KWA009``).
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa_arrow
import pyarrow.compute as pc

from ..errors import Code, ConfigurationError, InputError
from .report import Problems

__all__: list[str] = []

#: Whitespace, spelled out: pandas runs \s in Python's ``re`` row by row, not in pyarrow.
SPACE = " \t\n\r\f\v\u00a0"


def strings(values: pd.Series, name: str) -> pd.Series:
    """A column as pandas strings; a cell that cannot be text is an input error."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        return values
    try:
        return values.astype("str")
    except (UnicodeError, TypeError, ValueError, pa_arrow.ArrowException) as exc:
        raise InputError(
            f"column {name!r} holds a value that cannot be read as text ({exc}): convert the "
            "column to text first"
        ) from None


def is_blank(values: pd.Series) -> np.ndarray[Any, Any]:
    """Which values are missing or only spaces."""
    out = values.isna().to_numpy() | (values.str.strip() == "").to_numpy(na_value=False)
    return np.asarray(out, dtype=bool)


def empty_strings(n: int) -> pd.Series:
    """A string column of ``n`` missing values."""
    return pd.Series(pd.array(pa_arrow.nulls(n, type=pa_arrow.large_string()), dtype="str"))


def choose(mask: np.ndarray[Any, Any], yes: str, no: str) -> pd.Series:
    """``yes`` where ``mask``, else ``no``, as a string column (built in pyarrow)."""
    chosen = pc.if_else(
        pa_arrow.array(mask),
        pa_arrow.scalar(yes, type=pa_arrow.large_string()),
        pa_arrow.scalar(no, type=pa_arrow.large_string()),
    )
    return pd.Series(pd.array(chosen, dtype="str"))


def resolve_column(df: pd.DataFrame, name: str, setting: str) -> Any:
    """The column of ``df`` that ``name`` refers to (exactly, else ignoring case and
    spaces), or a ConfigurationError that lists the columns."""
    if name in df.columns:
        return name
    key = _key(name)
    matches = [c for c in df.columns if _key(str(c)) == key]
    if len(matches) == 1:
        return matches[0]
    what = f"uses {{{name}}}" if setting == "body_template" else f"names {name!r}"
    if matches:
        raise ConfigurationError(
            f"{setting} {what}, which could be any of the columns "
            f"{', '.join(repr(str(m)) for m in matches)}: use the exact column name"
        )
    columns = ", ".join(str(c) for c in df.columns)
    raise ConfigurationError(
        f"{setting} {what}, but there is no column {name!r}: use one of {columns}"
    )


#: Headers people give the text of a message (compared as :func:`_key` spells them).
_BODY_NAMES = frozenset(
    {"message", "messages", "text", "content", "msg", "message_text", "text_message",
     "message_body", "body_text", "sms", "sms_text", "whatsapp_message", "wa_message"}
)  # fmt: skip


def body_hint(columns: Iterable[object]) -> str:
    """The end of "a text message needs a body" when the frame has no ``body`` column but
    one that looks like it (``Message``, ``Text``, ``Content``…): how to map it. Computed
    once per set of columns, not per row.

    >>> body_hint(["to", "Name", "Message"])[:50]
    "; the file has a 'Message' column: map it with --c"
    """
    names = [str(c) for c in columns]
    if "body" in names:
        return ""
    found = [name for name in names if _key(name) in _BODY_NAMES]
    if len(found) == 1:
        return (
            f"; the file has a {found[0]!r} column: map it with --column "
            f"body={shlex.quote(found[0])} / columns={{'body': {found[0]!r}}}"
        )
    if found:
        shown = " and ".join(repr(name) for name in found)
        return (
            f"; the file has {shown} columns: map the one to send with --column body=NAME / "
            "columns={'body': NAME}"
        )
    return ""


def _key(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.strip().lower()).strip("_")


def placeholders(template: str) -> list[tuple[str, str | None]]:
    """``body_template`` as (literal text, placeholder or None) pieces."""
    pieces: list[tuple[str, str | None]] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigurationError(
            f"body_template {template!r} cannot be read ({exc}): write placeholders as {{name}}"
            " and literal braces as {{ and }}"
        ) from None
    for literal, name, spec, conversion in parsed:
        if name is None:
            pieces.append((literal, None))
            continue
        if not name or name.isdigit():
            raise ConfigurationError(
                f"body_template {template!r} has an empty or numbered placeholder: name the "
                "column, e.g. {name}"
            )
        if spec or conversion:
            raise ConfigurationError(
                f"body_template placeholder {{{name}}} has a format ({conversion or ''}"
                f"{spec or ''}): only plain {{column}} placeholders are supported"
            )
        pieces.append((literal, name))
    return pieces


def _csv_param(values: pd.Series) -> pd.Series:
    """One template parameter, CSV-quoted when it holds a comma, a quote or starts with a
    space (as Kaleyra reads ``params``)."""
    needs = values.str.contains(rf'[,"]|^[{SPACE}]|[{SPACE}]$', regex=True)
    quoted = '"' + values.str.replace('"', '""', regex=False) + '"'
    return values.where(~needs, quoted)


def build_params(
    df: pd.DataFrame,
    sources: list[Any],
    rows: np.ndarray[Any, Any],
    current: pd.Series,
    problems: Problems,
) -> tuple[pd.Series, np.ndarray[Any, Any]]:
    """``params`` from the ``sources`` columns, in order, for the ``rows`` asked (a mask);
    the others keep ``current``. An empty value is reported (``KWA009``) in ``problems``.

    Returns:
        The params column, and which rows were built from an empty value.
    """
    empty = np.zeros(len(df), dtype=bool)
    joined: pd.Series | None = None
    for source in sources:
        values = strings(df[source], str(source)).reset_index(drop=True)
        blank = is_blank(values) & rows
        empty |= blank
        problems.add(
            np.flatnonzero(blank),
            str(source),
            "value_required",
            Code.EMPTY_SOURCE_VALUE,
            f"'{source}' is empty, and params_from builds the template's parameters from it: "
            "fill it (WhatsApp refuses empty template parameters)",
            values[blank],
        )
        part = _csv_param(values.fillna(""))
        joined = part if joined is None else joined + "," + part
    assert joined is not None
    return current.mask(rows, joined), empty


def build_body(
    df: pd.DataFrame,
    pieces: list[tuple[str, str | None]],
    sources: dict[str, Any],
    rows: np.ndarray[Any, Any],
    current: pd.Series,
    problems: Problems,
) -> tuple[pd.Series, np.ndarray[Any, Any]]:
    """``body`` from the template's ``pieces`` (see :func:`placeholders`), for the ``rows``
    asked (a mask); the others keep ``current``. An empty value is reported (``KWA009``).

    Returns:
        The body column, and which rows were built from an empty value.
    """
    n = len(df)
    empty = np.zeros(n, dtype=bool)
    body = choose(np.zeros(n, dtype=bool), "", "")
    reported: set[Any] = set()
    for literal, name in pieces:
        if literal:
            body = body + literal
        if name is None:
            continue
        source = sources[name]
        values = strings(df[source], str(source)).reset_index(drop=True)
        blank = is_blank(values) & rows
        empty |= blank
        if source not in reported:
            reported.add(source)
            problems.add(
                np.flatnonzero(blank),
                str(source),
                "value_required",
                Code.EMPTY_SOURCE_VALUE,
                f"'{source}' is empty, and body_template uses {{{name}}}: fill it, or the "
                "message would read wrong",
                values[blank],
            )
        body = body + values.fillna("")
    return current.mask(rows, body), empty
