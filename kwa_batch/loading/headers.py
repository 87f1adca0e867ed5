"""A recipient file's header, read as the API's fields: which column is ``to``, ``body``…

The loader (:mod:`kwa_batch.loading.recipients`) hands its header here and gets back the frame's
column names:

- the user's own columns keep their header exactly as written (trimmed of surrounding
  spaces only): ``Name`` stays ``Name``, and a ``{name}`` placeholder still finds it (see
  :func:`kwa_batch.validation.compose.resolve_column`);
- the API's own field names are recognised however they are cased and spaced (``Template
  Name`` is ``template_name``);
- ``columns={"to": "Phone 1 - Value"}`` maps any field from any column, named as the file
  writes it;
- without a ``to`` column or a mapping, the recipient column is found among the names
  people give it (:data:`TO_ALIASES`, Google Contacts' ``Phone 1 - Value``, Outlook's
  ``Mobile Phone``…): a WhatsApp column first, then a mobile one, then any other phone
  column; a choice among columns of equal rank is refused, naming them and the fix.

What was chosen, when it was a choice, is logged and returned as notes (the CLI prints
them).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import InputError
from ..fields import API_COLUMNS

__all__ = ["TO_ALIASES", "Header", "field_key", "read_header"]

log = logging.getLogger(__name__)

#: Names of a column of WhatsApp numbers (compared as :func:`field_key` spells them).
_WHATSAPP = frozenset(
    {"whatsapp", "whatsapp_number", "whatsapp_no", "whatsapp_mobile", "whatsapp_phone",
     "wa_number", "wa_no"}
)  # fmt: skip
#: Names of a column of mobile numbers.
_MOBILE = frozenset(
    {"mobile", "mobile_number", "mobilenumber", "mobileno", "mobile_no", "mobile_phone",
     "mobile_phone_number", "cell", "cellphone", "cell_phone", "cell_number"}
)  # fmt: skip
#: Other names of a phone column (Outlook's fixed-line ones among them).
_OTHER = frozenset(
    {"phone", "phone_number", "phonenumber", "phone_no", "number", "msisdn", "recipient",
     "recipient_number", "to_number", "contact_number", "contact_no",
     "telephone", "tel", "primary_phone", "business_phone", "business_phone_2", "home_phone",
     "home_phone_2", "other_phone", "company_main_phone", "car_phone"}
)  # fmt: skip
#: Every name of the recipient column recognised without a mapping ("Mobile No." is
#: ``mobile_no``), besides Google Contacts' ``Phone 1 - Value``, ``Phone 2 - Value``….
TO_ALIASES = _WHATSAPP | _MOBILE | _OTHER
_GOOGLE_PHONE = re.compile(r"phone_([0-9]+)_value")
_API_SPELLINGS = {"ref_1": "ref1", "ref_2": "ref2", "callbackurl": "callback_url"}
_RANKS = ("a WhatsApp", "a mobile", "a phone")


def field_key(name: str) -> str:
    """A name compared loosely: lower case, spaces, dots and dashes as one underscore.

    >>> field_key(" Mobile No. ")
    'mobile_no'
    """
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _api_field(name: str) -> str | None:
    key = field_key(name)
    key = _API_SPELLINGS.get(key, key)
    return key if key in API_COLUMNS else None


@dataclass
class Header:
    """The frame's column names (None for an unnamed empty column, dropped) and the notes
    saying what was chosen."""

    names: list[str | None]
    notes: list[str] = field(default_factory=list)
    mapped: dict[str, str] = field(default_factory=dict)


def read_header(
    file: object,
    header: Sequence[object],
    columns: Sequence[Any],
    mapping: Mapping[str, str] | None = None,
) -> Header:
    """The frame's column names for ``header`` (see the module docstring).

    Args:
        file: the path, for messages.
        header: the header's cells, as written.
        columns: the column values (to tell an empty column from one that holds values).
        mapping: API field -> column header, as the file writes it.

    Raises:
        InputError: a header cell is empty above values, a name repeats, the mapping names
            an unknown field or a column the file does not have, or no recipient column can
            be told.
    """
    written: list[str | None] = []
    for position, raw in enumerate(header, start=1):
        name = str(raw).strip()
        if not name and pd.Series(columns[position - 1]).notna().any():
            raise InputError(
                f"{file}: column {position} of the header has no name but holds values: "
                "name it or delete it"
            )
        written.append(name or None)
    fields = _mapping(file, written, mapping or {})
    names: list[str | None] = [
        fields.get(position) or (_api_field(name) or name if name else None)
        for position, name in enumerate(written)
    ]
    _refuse_repeats(file, names, written, fields)
    out = Header(names, mapped={f: str(written[p]) for p, f in fields.items()})
    if "to" not in names:
        _find_recipient(file, out, written, columns)
    return out


def _mapping(file: object, written: list[str | None], mapping: Mapping[str, str]) -> dict[int, str]:
    """The positions the user mapped, to their field."""
    if not isinstance(mapping, Mapping):
        raise InputError(
            f"columns= takes a dict of API field to column, e.g. "
            f"{{'to': 'Phone 1 - Value'}}, not {type(mapping).__name__}"
        )
    out: dict[int, str] = {}
    fields: dict[str, str] = {}
    for key, column in mapping.items():
        name = _api_field(str(key))
        if name is None:
            raise InputError(
                f"columns= maps {key!r}, which is not an API field: map one of "
                f"{', '.join(API_COLUMNS)}"
            )
        if name in fields:
            raise InputError(
                f"columns= maps the field {name!r} twice ({fields[name]!r} and {column!r}): "
                "map each field once"
            )
        fields[name] = str(column)
        wanted = str(column).strip()
        if wanted not in written:
            raise InputError(f"{file}: {_no_such_column(name, column, written)}")
        position = written.index(wanted)
        if position in out:
            raise InputError(
                f"columns= maps both {out[position]!r} and {name!r} to the column {wanted!r}: "
                "map each column to one field"
            )
        out[position] = name
    return out


def _no_such_column(name: str, column: object, written: list[str | None]) -> str:
    present = [w for w in written if w]
    alike = [w for w in present if field_key(w) == field_key(str(column))]
    hint = f" (did you mean {alike[0]!r}? give the header as the file writes it)" if alike else ""
    return (
        f"columns= maps {name!r} to the column {str(column)!r}, which the file does not have"
        f"{hint}; its columns are: {', '.join(repr(w) for w in present)}"
    )


def _refuse_repeats(
    file: object, names: list[str | None], written: list[str | None], fields: dict[int, str]
) -> None:
    seen: dict[str, int] = {}
    for position, named in enumerate(names):
        if named is None:
            continue
        if named in seen:
            first = seen[named]
            if first in fields or position in fields:
                mapped, other = (first, position) if first in fields else (position, first)
                raise InputError(
                    f"{file}: columns= maps {named!r} to {written[mapped]!r}, but the file "
                    f"also has the column {written[other]!r} (column {other + 1}), read as "
                    f"{named!r}: rename that one, or map {named!r} to it instead"
                )
            raise InputError(
                f"{file}: the header names {named!r} twice (columns {first + 1} and "
                f"{position + 1}): rename or remove one"
            )
        seen[named] = position


def _rank(name: str) -> tuple[int, int] | None:
    """How likely a column of this name holds WhatsApp numbers (lower is likelier), and its
    order within a family (Google's Phone 1, Phone 2…); None when it is no phone column."""
    key = field_key(name)
    if key in _WHATSAPP:
        return 0, 0
    if key in _MOBILE:
        return 1, 0
    if key in _OTHER:
        return 2, 0
    google = _GOOGLE_PHONE.fullmatch(key)
    if google:
        return 2, int(google[1])
    return None


def _find_recipient(
    file: object, out: Header, written: list[str | None], columns: Sequence[Any]
) -> None:
    """Name ``to`` the column of recipients, chosen among the phone-like ones."""
    candidates = [
        (rank, position)
        for position, name in enumerate(out.names)
        if name is not None and (rank := _rank(name)) is not None
    ]
    if not candidates:
        found = ", ".join(repr(w) for w in written if w)
        raise InputError(
            f"{file}: no recipient column: name the column of phone numbers 'to', or map it "
            f"with --column to=NAME / columns={{'to': NAME}} (found: {found})"
        )
    filled = [c for c in candidates if pd.Series(columns[c[1]]).notna().any()]
    pool = filled or candidates  # an empty column cannot be the one
    best = min(rank[0] for rank, _ in pool)
    tied = [(rank, position) for rank, position in pool if rank[0] == best]
    family = {rank[1] > 0 for rank, _ in tied}
    if len(tied) > 1 and family != {True}:
        choices = " and ".join(repr(written[p]) for _, p in tied)
        raise InputError(
            f"{file}: {choices} could each be the recipient column: choose one with "
            f"--column to=NAME / columns={{'to': NAME}}, or rename it 'to'"
        )
    _, chosen = min(tied)
    out.names[chosen] = "to"
    others = [written[p] for _, p in pool if p != chosen]  # the empty ones are no choice
    if others:
        note = (
            f"{written[chosen]!r} taken as the recipient column ({_RANKS[best]} column; the "
            f"file also has {', '.join(repr(o) for o in others)}): to send to another, use "
            "--column to=NAME / columns={'to': NAME}"
        )
        log.info("%s: %s", file, note)
        out.notes.append(note)
