"""The rich kinds of a row checked before sending: interactive buttons and lists, carousel
cards, replies in context, ``message_json`` (issue #20).

Two steps, around the type-based checks of :mod:`.rules`:

- :func:`gather` (while the messages are built): the ``card_N_media_url`` and
  ``card_N_params`` columns become one ``cards`` column (JSON, card by card), and a
  ``message_json`` row takes its ``type`` from its object;
- :func:`check_rich` (after the rules): WhatsApp's shapes and limits, and what only Kaleyra's
  v2 API can send, refused on v1.

=======  ================================================================================
code     refusal
=======  ================================================================================
KWA035   a v2-only row (interactive, list, carousel, template buttons, ``reply_to``,
         ``message_json``) validated for v1: "v2 only: send with api_version='v2'"
KWA036   more than 3 reply buttons, 10 list sections or rows, 10 cards
KWA037   reply title > 20, id > 256; list button > 20, section or row title > 24, row id
         > 200; header > 60, body > 1,024, footer > 60
KWA038   ``message_json`` not a message object; an interactive row without body, buttons
         or list (or with both), a list without ``list_button``; card columns with a gap;
         ``buttons`` or ``list`` on a row of another kind
=======  ================================================================================

The template's own buttons and cards are checked against the catalogue in
:mod:`.template_checks` (``KWA039``, ``KWA040``). Rich rows are few in a campaign: they are
checked one by one, and only they.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import Code, ConfigurationError
from ..fields import DERIVED_COLUMNS, V2_COLUMNS
from ..loading.headers import field_key
from ..message_objects import messaging_object, read_message_json
from .report import Problems

__all__ = [
    "API_VERSIONS",
    "CARD_COLUMN",
    "LIMITS",
    "MAX_CARDS",
    "check_api_version",
    "check_rich",
    "gather",
    "object_problems",
]

#: The API versions a row can be validated for.
API_VERSIONS = ("v1", "v2")
#: A carousel card's column: ``card_<N>_media_url`` or ``card_<N>_params`` (N from 1),
#: compared as :func:`~kwa_batch.loading.headers.field_key` spells a header.
CARD_COLUMN = re.compile(r"card_?([0-9]{1,3})_(media_url|params)")
#: WhatsApp's limits on interactive messages, in characters (and counts).
LIMITS = {
    "reply_buttons": 3,
    "reply_title": 20,
    "reply_id": 256,
    "list_sections": 10,
    "list_rows": 10,
    "list_button": 20,
    "section_title": 24,
    "row_title": 24,
    "row_id": 200,
    "row_description": 72,
    "header": 60,
    "body": 1024,
    "footer": 60,
}
#: The most cards a carousel holds.
MAX_CARDS = 10
# WhatsApp's message types and the object each one carries.
_OBJECT_TYPES = ("text", "image", "video", "audio", "document", "sticker", "location",
                 "contacts", "interactive", "template", "reaction")  # fmt: skip


def check_api_version(api_version: str) -> str:
    """``api_version`` as validate takes it (``v1`` or ``v2``, any case).

    Raises:
        ConfigurationError: another value.
    """
    version = str(api_version).strip().lower()
    if version not in API_VERSIONS:
        raise ConfigurationError(
            f"api_version={api_version!r}: use 'v1' or 'v2' (the version of Kaleyra's API the "
            "sending number is onboarded on)"
        )
    return version


@dataclass(frozen=True)
class _Refusal:
    position: int
    column: str
    check: str
    code: str
    message: str
    value: str


def gather(df: pd.DataFrame, columns: dict[str, pd.Series]) -> list[_Refusal]:
    """Fill ``columns["cards"]`` from the card columns of ``df`` and a ``message_json``
    row's ``columns["type"]`` from its object; return what cannot be read (KWA038)."""
    refused: list[_Refusal] = []
    cards = _card_columns(df)
    if cards:
        columns["cards"], gaps = _cards(df, cards)
        refused.extend(gaps)
    written = columns["message_json"]
    for i in np.flatnonzero(written.notna().to_numpy()):
        kind, reason = _object_type(written.iloc[i])
        if reason is not None:
            refused.append(_Refusal(int(i), "message_json", "message_json_shape",
                                    Code.RICH_SHAPE, reason, _short(written.iloc[i])))  # fmt: skip
        else:
            columns["type"].iloc[i] = kind
    return refused


def _card_columns(df: pd.DataFrame) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for column in df.columns:
        match = CARD_COLUMN.fullmatch(field_key(str(column)))
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = column
    return found


def _cards(
    df: pd.DataFrame, columns: dict[int, dict[str, Any]]
) -> tuple[pd.Series, list[_Refusal]]:
    """Each row's cards as JSON (NA for a row without), and the rows that leave a gap."""
    numbers = sorted(columns)
    cells = {
        (n, part): df[column].reset_index(drop=True).astype("str").str.strip()
        for n, parts in columns.items()
        for part, column in parts.items()
    }
    filled = {
        n: np.logical_or.reduce(
            [(cells[(n, p)].notna() & (cells[(n, p)] != "")).to_numpy() for p in columns[n]]
        )
        for n in numbers
    }
    out = np.full(len(df), None, dtype=object)
    refused: list[_Refusal] = []
    for i in np.flatnonzero(np.logical_or.reduce([filled[n] for n in numbers])):
        used = [n for n in numbers if filled[n][i]]
        if used != list(range(1, len(used) + 1)):
            missing = next(n for n in range(1, used[-1] + 1) if n not in used)
            message = (
                f"cards {', '.join(map(str, used))} are filled but card {missing} is not: "
                f"number the cards 1, 2, 3... (fill card_{missing}_media_url/params)"
            )
            refused.append(_Refusal(int(i), f"card_{missing}_media_url", "cards_numbered",
                                    Code.RICH_SHAPE, message, ""))  # fmt: skip
            continue
        out[i] = json.dumps(
            [
                {
                    part: (value if isinstance(value := cells[(n, part)].iloc[i], str)
                           and value else None)
                    for part in ("media_url", "params")
                    if (n, part) in cells
                }
                for n in used
            ],
            ensure_ascii=False,
        )  # fmt: skip
    return pd.Series(pd.array(out, dtype="str")), refused


def _short(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _object_type(cell: Any) -> tuple[str, str | None]:
    """A message_json cell's type, or the reason it is no message object."""
    try:
        parsed = read_message_json(cell)
    except (ValueError, RecursionError) as exc:
        return "", f"message_json is not valid JSON ({str(exc)[:80]}): write the message object"
    if not isinstance(parsed, Mapping):
        return "", "message_json is not a JSON object: write WhatsApp's message object {...}"
    kind = parsed.get("type")
    if not isinstance(kind, str) or kind not in _OBJECT_TYPES:
        return "", (
            f"message_json's type is {_short(kind, 30)!r}: give one of {', '.join(_OBJECT_TYPES)}"
        )
    if not isinstance(parsed.get(kind), Mapping | list):
        return "", f"message_json has type {kind!r} but no {kind!r} object: add it"
    return kind, None


#: The longest text message body WhatsApp takes.
TEXT_BODY = 4096
#: WhatsApp's media message types: their object needs a link (or an uploaded id).
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")


def object_problems(message: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """What WhatsApp would refuse in a message object: ``(code, part, message)``, the part
    being ``buttons``, ``list``, ``list_button``, ``body``, ``header`` or ``footer``.

    >>> next(object_problems({"type": "interactive", "interactive": {"type": "button",
    ...     "body": {"text": "Hi"}, "action": {"buttons": []}}}))[2]
    'reply buttons: 0 given; an interactive message has 1 to 3'
    """
    inner = message.get("interactive")
    kind = message.get("type")
    recipient_type = message.get("recipient_type", "individual")
    if recipient_type != "individual":
        yield (Code.RICH_SHAPE, "body",
               f"recipient_type {recipient_type!r}: a campaign sends to one person "
               "('individual')")  # fmt: skip
    if kind == "text":
        body = (
            message.get("text", {}).get("body")
            if isinstance(message.get("text"), Mapping)
            else None
        )
        if not isinstance(body, str) or not body.strip():
            yield Code.RICH_SHAPE, "body", "a text message's text.body is empty: fill it"
        yield from _length("body", "the text", body, TEXT_BODY)
        return
    if kind in MEDIA_TYPES:
        media = message.get(kind)
        if not (isinstance(media, Mapping) and (media.get("link") or media.get("id"))):
            yield (Code.RICH_SHAPE, "body",
                   f"a {kind} message needs {kind}.link (or an uploaded media id)")  # fmt: skip
        return
    if kind == "template":
        template = message.get("template")
        name = template.get("name") if isinstance(template, Mapping) else None
        if not isinstance(name, str) or not name.strip():
            yield Code.RICH_SHAPE, "body", "a template message needs template.name as text"
        return
    if kind == "interactive" and not isinstance(inner, Mapping):
        yield Code.RICH_SHAPE, "body", "an interactive message needs its interactive object"
        return
    if not isinstance(inner, Mapping):
        return
    yield from _texts(inner)
    action = inner.get("action")
    action = action if isinstance(action, Mapping) else {}
    if inner.get("type") == "button":
        yield from _reply_buttons(action.get("buttons"))
    elif inner.get("type") == "list":
        yield from _list(action)


def _length(part: str, what: str, text: Any, limit: int) -> Iterator[tuple[str, str, str]]:
    if isinstance(text, str) and len(text) > limit:
        yield (Code.RICH_LENGTH, part,
               f"{what} {_short(text, 30)!r} has {len(text)} characters; WhatsApp allows "
               f"{limit}: shorten it")  # fmt: skip


def _texts(inner: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    body = inner.get("body")
    text = body.get("text") if isinstance(body, Mapping) else None
    if inner.get("type") in ("button", "list") and (not isinstance(text, str) or not text.strip()):
        yield Code.RICH_SHAPE, "body", "an interactive message needs a body: fill it"
    yield from _length("body", "the body", text, LIMITS["body"])
    for part in ("header", "footer"):
        value = inner.get(part)
        if isinstance(value, Mapping):
            yield from _length(part, f"the {part}", value.get("text"), LIMITS[part])


def _reply_buttons(buttons: Any) -> Iterator[tuple[str, str, str]]:
    listed = buttons if isinstance(buttons, list) else []
    if not 1 <= len(listed) <= LIMITS["reply_buttons"]:
        count = len(listed)
        message = f"reply buttons: {count} given; an interactive message has 1 to 3"
        yield Code.RICH_COUNT, "buttons", message
        return
    seen: set[str] = set()
    for number, button in enumerate(listed, start=1):
        reply = button.get("reply") if isinstance(button, Mapping) else None
        reply = reply if isinstance(reply, Mapping) else {}
        title, ident = reply.get("title"), reply.get("id")
        if not isinstance(title, str) or not title.strip():
            yield Code.RICH_SHAPE, "buttons", f"reply button {number} has no title: give one"
        if not isinstance(ident, str) or not ident.strip():
            yield Code.RICH_SHAPE, "buttons", f"reply button {number} has an empty id: give one"
        yield from _length(
            "buttons", f"reply button {number}'s title", title, LIMITS["reply_title"]
        )
        yield from _length("buttons", f"reply button {number}'s id", ident, LIMITS["reply_id"])
        if isinstance(ident, str) and ident in seen:
            yield (Code.RICH_SHAPE, "buttons",
                   f"reply button {number}'s id {ident!r} repeats: give each button its own "
                   "id (id=title)")  # fmt: skip
        seen.add(str(ident))


def _list(action: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    button = action.get("button")
    if not isinstance(button, str) or not button.strip():
        yield (Code.RICH_SHAPE, "list_button",
               "a list needs the text of the button that opens it: fill list_button")  # fmt: skip
    yield from _length("list_button", "the list button", button, LIMITS["list_button"])
    listed = action.get("sections")
    sections: list[Any] = listed if isinstance(listed, list) else []
    rows: list[Any] = []
    for section in sections:
        found = section.get("rows") if isinstance(section, Mapping) else None
        rows.extend(found if isinstance(found, list) else [])
    if not sections or len(sections) > LIMITS["list_sections"]:
        yield (Code.RICH_COUNT, "list",
               f"the list has {len(sections)} sections; WhatsApp allows 1 to 10")  # fmt: skip
    if not rows or len(rows) > LIMITS["list_rows"]:
        yield (Code.RICH_COUNT, "list",
               f"the list has {len(rows)} rows in all; WhatsApp allows 1 to 10")  # fmt: skip
    for number, section in enumerate(sections, start=1):
        found = section.get("rows") if isinstance(section, Mapping) else None
        if not (isinstance(found, list) and found):
            empty = f"section {number} of the list has no rows: give it one, or remove it"
            yield Code.RICH_SHAPE, "list", empty
    ids: set[str] = set()
    for row in rows:
        ident = row.get("id") if isinstance(row, Mapping) else None
        title = row.get("title") if isinstance(row, Mapping) else None
        if not isinstance(title, str) or not title.strip():
            yield Code.RICH_SHAPE, "list", "a list row has no title: write id=title or a title"
        if not isinstance(ident, str) or not ident.strip():
            yield Code.RICH_SHAPE, "list", "a list row has an empty id: write id=title"
        elif ident in ids:
            again = f"the list row id {ident!r} repeats: each row needs its own id (id=title)"
            yield Code.RICH_SHAPE, "list", again
        else:
            ids.add(ident)
    for section in sections:
        if isinstance(section, Mapping):
            title = section.get("title")
            yield from _length("list", "the section title", title, LIMITS["section_title"])
            if len(sections) > 1 and not (isinstance(title, str) and title.strip()):
                yield (Code.RICH_SHAPE, "list",
                       "a list of several sections needs a title for each: write "
                       "'Title: row1|row2; Other: row3'")  # fmt: skip
    for row in rows:
        if isinstance(row, Mapping):
            yield from _length("list", "the row title", row.get("title"), LIMITS["row_title"])
            yield from _length("list", "the row id", row.get("id"), LIMITS["row_id"])
            yield from _length("list", "the row description", row.get("description"),
                               LIMITS["row_description"])  # fmt: skip


def _v2_column(prepared: pd.DataFrame) -> pd.Series:
    """The first v2-only column each row fills (NA for none); ``type=interactive`` counts."""
    out = pd.Series(pd.NA, index=prepared.index, dtype="str")
    for column in reversed([c for c in V2_COLUMNS if c in prepared.columns]):
        if column in DERIVED_COLUMNS:
            continue
        out = out.mask(prepared[column].notna(), column)
    interactive = (prepared["type"] == "interactive").fillna(False).to_numpy(dtype=bool)
    return out.mask(interactive & out.isna().to_numpy(), "type")


def check_rich(
    prepared: pd.DataFrame,
    problems: Problems,
    api_version: str = "v1",
    *,
    catalogue: bool = True,
) -> None:
    """Record what WhatsApp would refuse in the rows' rich kinds, and, on v1, every row
    only v2 can send (``prepared``: the built messages, indexed 0..n-1). ``catalogue``:
    whether a template catalogue was given (on v2 a template's buttons and cards need it:
    their indexes and count are the approved template's)."""
    refused: list[_Refusal] = []
    if api_version == "v2" and not catalogue:
        refused.extend(_uncatalogued(prepared))
    refused.extend(_ignored(prepared))
    if api_version == "v1":
        column = _v2_column(prepared)
        for i in np.flatnonzero(column.notna().to_numpy()):
            name = str(column.iloc[i])
            what = "type=interactive" if name == "type" else name
            refused.append(_Refusal(
                int(i), name, "v2_only", Code.V2_ONLY,
                f"{what} is v2 only: send with api_version='v2' (Kaleyra's v1 API cannot "
                "send it), or empty the row's v2 columns", _short(prepared[name].iloc[i]),
            ))  # fmt: skip
    refused.extend(_rich_rows(prepared))
    for r in refused:
        message, value = pd.Series([r.message], dtype="str"), pd.Series([r.value], dtype="str")
        problems.add(np.array([r.position]), r.column, r.check, r.code, message, value)


def _uncatalogued(prepared: pd.DataFrame) -> Iterator[_Refusal]:
    """Template rows with buttons or cards, without a catalogue: where each button goes
    (its index) and how many cards there are is the approved template's, not a guess."""
    templated = (
        prepared["type"].fillna("").isin(("template", "mediatemplate", "authenticationtemplate"))
        & prepared["message_json"].isna()
    )
    for column in ("buttons", "cards"):
        for i in np.flatnonzero((templated & prepared[column].notna()).to_numpy()):
            shown = "card_N_ columns" if column == "cards" else column
            yield _Refusal(
                int(i), column, "template_layout", Code.BUTTONS_MISMATCH,
                f"a template's {shown} need its catalogue on v2 (each button's index and the "
                "number of cards are the approved template's): pass templates= "
                "(--templates), e.g. from kwa-batch templates",
                _short(prepared[column].iloc[i]),
            )  # fmt: skip


def _ignored(prepared: pd.DataFrame) -> Iterator[_Refusal]:
    """A message_json row that fills columns the object overrides: never sent silently
    other than the row says."""
    as_json = prepared["message_json"].notna()
    for column in ("template_name", "body", "params", "buttons", "list", "cards", "media_url"):
        if column not in prepared.columns:
            continue
        for i in np.flatnonzero((as_json & prepared[column].notna()).to_numpy()):
            yield _Refusal(
                int(i), column, "message_json_alone", Code.RICH_SHAPE,
                f"{column} is ignored on a message_json row (the object is sent as written): "
                f"empty {column}, or put it in the object",
                _short(prepared[column].iloc[i]),
            )  # fmt: skip
    if "reply_to" in prepared.columns:
        both = as_json & prepared["reply_to"].notna()
        for i in np.flatnonzero(both.to_numpy()):
            text = str(prepared["message_json"].iloc[i])
            if '"context"' in text:
                yield _Refusal(
                    int(i), "reply_to", "message_json_alone", Code.RICH_SHAPE,
                    "reply_to and the message_json's own context both name the message "
                    "answered: keep one",
                    _short(prepared["reply_to"].iloc[i]),
                )  # fmt: skip


def _rich_rows(prepared: pd.DataFrame) -> Iterator[_Refusal]:
    kinds = prepared["type"].fillna("")
    as_json = prepared["message_json"].notna().to_numpy()
    interactive = (kinds == "interactive").to_numpy() & ~as_json
    templated = kinds.isin(("template", "mediatemplate", "authenticationtemplate")).to_numpy()
    for column, allowed in (("buttons", interactive | templated), ("list", interactive),
                            ("list_button", interactive), ("cards", templated)):  # fmt: skip
        misplaced = prepared[column].notna().to_numpy() & ~allowed & ~as_json
        for i in np.flatnonzero(misplaced):
            shown = "card_N_ columns" if column == "cards" else column
            yield _Refusal(
                int(i), column, "rich_kind", Code.RICH_SHAPE,
                f"{shown} belong{'' if column == 'cards' else 's'} to "
                f"{'an interactive' if column.startswith('list') else 'a template or interactive'}"
                f" row, not a {kinds.iloc[i] or 'text'} row: set type, or empty {shown}",
                _short(prepared[column].iloc[i]),
            )  # fmt: skip
    cards = prepared["cards"]
    for i in np.flatnonzero(cards.notna().to_numpy()):
        count = len(json.loads(str(cards.iloc[i])))
        if count > MAX_CARDS:
            yield _Refusal(int(i), f"card_{count}_media_url", "cards_count", Code.RICH_COUNT,
                           f"{count} cards; a carousel holds at most {MAX_CARDS}: remove "
                           f"cards {MAX_CARDS + 1} to {count}", str(count))  # fmt: skip
    yield from _objects(prepared, interactive, as_json)


def _objects(
    prepared: pd.DataFrame, interactive: np.ndarray[Any, Any], as_json: np.ndarray[Any, Any]
) -> Iterator[_Refusal]:
    """An interactive row's object, and a message_json row's, against WhatsApp's limits."""
    for i in np.flatnonzero(interactive | as_json):
        fields = {k: v for k, v in prepared.iloc[i].items() if isinstance(v, str)}
        if as_json[i]:
            if _object_type(fields["message_json"])[1] is not None:
                continue  # no message object: gather() said why
            message = messaging_object(fields, "0")
        else:
            if "buttons" in fields and "list" in fields:
                yield _Refusal(int(i), "list", "interactive_shape", Code.RICH_SHAPE,
                               "an interactive row sends reply buttons or a list, not both: "
                               "empty buttons or list", _short(fields["list"]))  # fmt: skip
                continue
            if "buttons" not in fields and "list" not in fields:
                yield _Refusal(int(i), "buttons", "interactive_shape", Code.RICH_SHAPE,
                               "an interactive row needs its reply buttons (buttons: "
                               "Yes|No) or a list (list: Section: row1|row2, with "
                               "list_button)", "")  # fmt: skip
                continue
            message = messaging_object(fields, "0")
        for code, part, text in object_problems(message):
            column = "message_json" if as_json[i] else part
            value = fields.get(column, "")
            yield _Refusal(int(i), column, "interactive_limits", code, text, _short(value))
